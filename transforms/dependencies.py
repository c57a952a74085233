"""Which key results rest on which entities: entity -> metric -> key result.

Derived from the metrics' own declarations, never kept beside them: a metric's ``needs``
(``deal.close_on``), the filter parameters a key result sets that are marked with
``Matches`` (``team`` reads ``rep.team``), and exchange rates for a metric that needs a
record's currency (it converts amounts). ``pct_change`` reads what the metric it compares
reads. A metric that declares no ``needs`` (a custom one) may read anything: every change
touches it. A sync re-measures only the key results whose entities changed; ``okr-sync
explain`` prints the same map.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from okr_targets.config import KeyResultSpec, OkrConfig
from transforms.catalog import MetricCatalog
from transforms.metric import Matches
from transforms.metrics.change import PCT_CHANGE, ChangeParams

ANYTHING = "*"
"""In a printed map: the entity of a metric that does not say what it reads."""
RATES = "fx_rate"
"""The entity a metric that needs a currency reads too: it converts amounts with it."""


def key_result_needs(catalog: MetricCatalog, spec: KeyResultSpec) -> frozenset[str]:
    """The canonical fields (``entity.field``) a key result's value rests on: its metric's
    ``needs``, and for ``pct_change`` those of the metric it compares."""
    if spec.metric is None or spec.metric not in catalog:
        return frozenset()
    needs = set(catalog.find(spec.metric).needs)
    compared = spec.params.get("metric") if spec.metric == PCT_CHANGE else None
    if isinstance(compared, str) and compared in catalog:
        needs |= catalog.find(compared).needs
    return frozenset(needs)


def key_result_entities(catalog: MetricCatalog, spec: KeyResultSpec) -> frozenset[str] | None:
    """The entities a key result's value reads; ``frozenset()`` for a milestone set by hand,
    None when its metric does not say (it may read anything)."""
    if spec.metric is None:
        return frozenset()
    needs = key_result_needs(catalog, spec)
    if not needs:
        return None
    entities = {need.split(".", 1)[0] for need in needs}
    if any(need.split(".", 1)[1] == "currency" for need in needs):
        entities.add(RATES)
    filtered = _filtered_entities(catalog, spec.metric, dict(spec.params))
    return None if filtered is None else frozenset(entities | filtered)


def _filtered_entities(
    catalog: MetricCatalog, name: str, params: dict[str, Any]
) -> set[str] | None:
    """The entities of the filter parameters set (checked against the mirror, and read to
    narrow the records); None when the parameters do not validate (say nothing)."""
    try:
        parsed = catalog.find(name).params.model_validate(params)
        if isinstance(parsed, ChangeParams):
            return _filtered_entities(catalog, parsed.metric, parsed.inner_params)
    except ValidationError:
        return None
    return set(_matched_entities(parsed))


def _matched_entities(params: BaseModel) -> Iterable[str]:
    for name, info in type(params).model_fields.items():
        if getattr(params, name) is None:
            continue
        for marker in info.metadata:
            if isinstance(marker, Matches):
                yield marker.column.split(".", 1)[0]


@dataclass(frozen=True)
class Dependencies:
    """Each key result's metric and the entities it reads (None: anything)."""

    metrics: Mapping[str, str]  # key result id -> metric name ("milestone": set by hand)
    reads: Mapping[str, frozenset[str] | None]

    def touched(self, changed: Collection[str]) -> set[str]:
        """The key results whose value may differ once ``changed`` entities changed."""
        return {
            key_result
            for key_result, entities in self.reads.items()
            if entities is None or not entities.isdisjoint(changed)
        }

    def by_entity(self) -> dict[str, dict[str, list[str]]]:
        """entity -> metric -> key results (``*``: metrics that may read anything)."""
        table: dict[str, dict[str, list[str]]] = {}
        for key_result in sorted(self.reads):
            entities = self.reads[key_result]
            for entity in sorted(entities) if entities is not None else [ANYTHING]:
                metric = self.metrics[key_result]
                table.setdefault(entity, {}).setdefault(metric, []).append(key_result)
        return {entity: dict(sorted(metrics.items())) for entity, metrics in sorted(table.items())}


def metric_label(metric: str, params: Mapping[str, Any]) -> str:
    """``pct_change(ticket_volume)``: a comparison names what it compares."""
    compared = params.get("metric") if metric == PCT_CHANGE else None
    return f"{metric}({compared})" if compared else (metric or "milestone")


def dependencies(config: OkrConfig, catalog: MetricCatalog) -> Dependencies:
    """The OKR file's dependency map, from its catalog's declarations."""
    metrics, reads = {}, {}
    for _objective, spec, _where in config.key_results():
        metrics[spec.id] = metric_label(spec.metric or "", spec.params)
        reads[spec.id] = key_result_entities(catalog, spec)
    return Dependencies(metrics, reads)
