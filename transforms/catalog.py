"""The metric catalog: every metric an OKR file may name, fixed when the file loads.

It is built once per OKR file from the built-in metrics, the packages' metrics
(``okr_sync.metrics`` entry points) and the file's own ``metrics:``, and then passed to
whatever measures, lints or explains; nothing adds to it afterwards, and no other file's
metrics can leak into it (a worker may run several OKR files).

:func:`load` is what callers use: it reads the OKR file (its structure is checked by
:mod:`okr_targets.config`), builds the catalog and checks every key result's metric name
and parameters against it, raising ``ConfigError`` with the file, the line and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from okr_targets.config import ConfigError, OkrConfig, dotted, fix_for, load_okrs
from transforms.custom import CustomMetricError, entry_point_metrics, file_metric
from transforms.metric import Metric, MetricError, find_metric
from transforms.metrics import customers, finance, sales, support
from transforms.metrics.change import PCT_CHANGE, ChangeParams, check_change, pct_change


@dataclass(frozen=True)
class MetricCatalog:
    """Metrics by name (read-only), and where each custom one was defined."""

    metrics: Mapping[str, Metric[Any]]
    origins: Mapping[str, str]
    """A custom metric's origin (``file …`` or ``package …``), for conflict messages."""

    def find(self, name: str) -> Metric[Any]:
        """The metric; an unknown name is a MetricError listing the known ones."""
        return find_metric(self.metrics, name)

    def __contains__(self, name: object) -> bool:
        return name in self.metrics

    def check(self, name: str, params: Mapping[str, Any]) -> None:
        """Validate a key result's metric name and parameters (MetricError, ValidationError)."""
        parsed = self.find(name).params.model_validate(dict(params))
        if isinstance(parsed, ChangeParams):
            check_change(parsed)
            self.check(parsed.metric, parsed.inner_params)


def _catalog(metrics: Iterable[Metric[Any]], origins: Mapping[str, str]) -> MetricCatalog:
    """A catalog of the metrics plus ``pct_change``, which compares any of them."""
    table = {metric.name: metric for metric in metrics}
    frozen = MappingProxyType(table)
    table[PCT_CHANGE] = pct_change(frozen)  # reads the other metrics through the same view
    return MetricCatalog(frozen, MappingProxyType(dict(origins)))


BUILT_IN = _catalog((*sales.METRICS, *customers.METRICS, *support.METRICS, *finance.METRICS), {})
"""The built-in metrics alone (no package's, no file's)."""


def _refused(name: str, origin: str, origins: Mapping[str, str]) -> CustomMetricError | None:
    """Why a custom metric may not take that name: a built-in's, or another origin's."""
    if name in BUILT_IN:
        return CustomMetricError(f"metric {name!r} is a built-in metric; give yours another name")
    previous = origins.get(name)
    if previous is not None and previous != origin:
        return CustomMetricError(f"metric {name!r} is already defined by {previous}")
    return None


@cache
def package_metrics() -> tuple[tuple[Metric[Any], str], ...]:
    """The packages' metrics and their origins, loaded once per process; one that takes
    a built-in's or another package's name is left out, with a warning."""
    chosen: dict[str, tuple[Metric[Any], str]] = {}
    for metric, origin in entry_point_metrics():
        taken = {name: where for name, (_, where) in chosen.items()}
        refused = _refused(metric.name, origin, taken)
        if refused is not None:  # a built-in or another package's name: theirs stays
            logging.getLogger("okr_sync").warning("%s from %s: not registered", refused, origin)
            continue
        chosen[metric.name] = (metric, origin)
    return tuple(chosen.values())


def build_catalog(config: OkrConfig) -> MetricCatalog:
    """Built-in, package and the file's own metrics; a bad file metric is a ConfigError."""
    defined = []
    for name, spec in config.spec.metrics.items():
        try:
            defined.append(file_metric(name, spec))
        except CustomMetricError as exc:
            part = "sql" if spec.sql is not None else "python"
            raise ConfigError(f"{config.where('metrics', name, part)}: {exc}") from None
    metrics = {name: metric for name, metric in BUILT_IN.metrics.items() if name != PCT_CHANGE}
    origins = {}
    for metric, origin in package_metrics():
        metrics[metric.name], origins[metric.name] = metric, origin
    for metric in defined:
        origin = f"file {config.path}"
        refused = _refused(metric.name, origin, origins)
        if refused is not None:
            raise ConfigError(f"{config.where('metrics')}: {refused}")
        metrics[metric.name], origins[metric.name] = metric, origin
    return _catalog(metrics.values(), origins)


def check_key_results(config: OkrConfig, catalog: MetricCatalog) -> None:
    """Every key result's metric is in the catalog and takes its parameters."""
    for _objective, key_result, where in config.key_results():
        if key_result.metric is None:
            continue
        try:
            catalog.check(key_result.metric, key_result.params)
        except MetricError as exc:
            raise ConfigError(
                f"{config.where(*where, 'metric')}: {exc}; fix: pick a known metric"
            ) from None
        except ValidationError as exc:
            error = exc.errors()[0]
            name = dotted(tuple(error["loc"])) or "params"
            raise ConfigError(
                f"{config.where(*where, 'params')}: metric {key_result.metric!r} "
                f"parameter {name}: {error['msg']}; fix: {fix_for(error['type'])}"
            ) from None


def load(path: str | Path) -> tuple[OkrConfig, MetricCatalog]:
    """Read and check an OKR file and build its catalog; raises ConfigError (file:line, fix)."""
    config = load_okrs(path)
    catalog = build_catalog(config)
    check_key_results(config, catalog)
    return config, catalog
