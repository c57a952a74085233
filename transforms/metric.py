"""What a metric is: a name, a parameter model and a function from the mirror to a number.

Each metric reduces the mirror rows that count for the period to its number with SQL
aggregates (portable SQL: the same statement runs on SQLite and PostgreSQL), so no row
travels to Python only to be counted or summed. It returns the number together with a
SELECT of the records behind it and their count; the measurement's lineage is written
from that SELECT inside the database (``INSERT … SELECT``), so no record id does either.
Key results name a metric and pass parameters, validated by the metric's own pydantic
model, so a typo in the OKR file is caught before any sync starts.

The built-in metrics live in :mod:`transforms.metrics` by family (sales, customers, support,
change); packages and OKR files add their own (:mod:`transforms.custom`); the catalog
(:mod:`transforms.catalog`) puts them together when an OKR file loads. Packages build
their metrics from the names here: ``Metric``, ``MetricResult``, ``RecordRef``, and
``Matches`` to mark a filter parameter with the mirror column its value must match.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import CompoundSelect, Select, exists, func, select
from sqlalchemy.orm import Session

from okr_targets.models import MIRROR
from okr_targets.periods import Calendar, Period


class MetricError(Exception):
    """A metric cannot produce a number from the mirror (e.g. no exchange rate)."""


@dataclass(frozen=True)
class Matches:
    """Marks a filter parameter with the mirror column its value must match, as
    ``entity.column`` (``rep.team``): ``team: Annotated[str | None, Matches("rep.team",
    "team")] = None``. A value that matches no live row there is a finding, never a 0."""

    column: str
    noun: str
    ignore_case: bool = False

    def check(self, session: Session, name: str, value: str) -> str | None:
        """None when some live row has the value; else the finding, naming the known values."""
        entity, column_name = self.column.split(".", 1)
        model = MIRROR[entity]
        column = getattr(model, column_name)
        live = model.deleted_at.is_(None)
        same = func.lower(column) == value.lower() if self.ignore_case else column == value
        if session.scalar(select(exists().where(live, same))):
            return None
        known = sorted(
            session.scalars(select(column).where(live, column.is_not(None)).distinct()), key=str
        )
        return f"{name} {value!r} matches no {self.noun}; known: {_listed(value, known)}"


def _listed(value: str, known: list[str], most: int = 10) -> str:
    """The known values, or the closest ``most`` of them when there are more."""
    if not known:
        return "none (the mirror holds no such records yet)"
    if len(known) <= most:
        return ", ".join(known)
    close = difflib.get_close_matches(value, known, n=most, cutoff=0) or known[:most]
    return f"{', '.join(close)} … ({len(known):,} in all)"


def unmatched_filters(session: Session, params: BaseModel) -> list[str]:
    """A finding per filter parameter (marked with :class:`Matches`) whose value matches
    nothing in the mirror: one check for every metric, built-in or from a package."""
    findings = []
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        for marker in info.metadata:
            if isinstance(marker, Matches) and value is not None:
                finding = marker.check(session, name, str(value))
                if finding is not None:
                    findings.append(finding)
    return findings


@dataclass(frozen=True)
class RecordRef:
    entity: str
    source: str
    source_id: str


RecordSelect = Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]
"""A SELECT of ``(entity, source, source_id)`` rows, each record once."""


@dataclass
class MetricResult:
    """A metric's value (None when there is nothing to measure yet) and what it rests on.

    ``records`` selects the records behind the value (None: none) and ``record_count``
    says how many rows it selects, so lineage never has to be read into Python.
    ``comparison`` is, for ``pct_change``, what it compared: measuring freezes the
    baseline from it.
    """

    value: float | None
    unit: str
    records: RecordSelect | None = None
    details: dict[str, Any] = field(default_factory=dict)
    record_count: int = 0
    comparison: Comparison | None = None


@dataclass(frozen=True)
class Comparison:
    """What ``pct_change`` compared: a metric with its parameters, over the current period
    and a baseline period of the same calendar.

    The current period's own result is kept whole: once the baseline is frozen, its
    records alone are the lineage.
    """

    metric: str
    params: dict[str, Any]
    current: MetricResult
    baseline: float | None
    baseline_records: int
    baseline_period: Period
    calendar: Calendar

    def details(self) -> dict[str, Any]:
        """As a measurement's details keep it (JSON)."""
        return {
            "metric": self.metric,
            "params": self.params,
            "current": self.current.value,
            "current_records": self.current.record_count,
            "baseline": self.baseline,
            "baseline_records": self.baseline_records,
            "baseline_period": self.baseline_period.label,
            "baseline_period_end": self.baseline_period.end_at.isoformat(),
            "calendar": self.calendar.model_dump(),
            "unit": self.current.unit,
        }


P = TypeVar("P", bound=BaseModel)

Compute = Callable[[Session, Period, P], MetricResult]


@dataclass(frozen=True)
class Metric(Generic[P]):
    name: str
    description: str
    params: type[P]
    compute: Compute[P]
    records_in_period: bool = False
    """Each record belongs to one period (by its close date, creation or rating time), so
    two periods that do not overlap share no record."""
    needs: frozenset[str] = frozenset()
    """The canonical fields the value rests on, as ``entity.field`` (``deal.close_on``):
    what a source must supply for the number to mean anything. Empty: not declared (a
    custom metric), so nothing can be said about it."""

    @property
    def entities(self) -> frozenset[str]:
        """The entities the metric reads (``deal``, ``customer``, …), from ``needs``."""
        return frozenset(need.split(".", 1)[0] for need in self.needs)

    def run(self, session: Session, period: Period, params: dict[str, Any]) -> MetricResult:
        """The metric's result; a filter value matching nothing known is a MetricError."""
        validated = self.params.model_validate(params)
        unmatched = unmatched_filters(session, validated)
        if unmatched:
            raise MetricError("; ".join(unmatched))
        return self.compute(session, period, validated)


def metric(
    name: str, params: type[P], *, needs: Iterable[str], records_in_period: bool = True
) -> Callable[[Compute[P]], Metric[P]]:
    """Make a built-in metric of a function; its docstring is its description."""

    def make(compute: Compute[P]) -> Metric[P]:
        description = (compute.__doc__ or "").strip()
        return Metric(name, description, params, compute, records_in_period, frozenset(needs))

    return make


def find_metric(metrics: Mapping[str, Metric[Any]], name: str) -> Metric[Any]:
    """The metric of that name; an unknown one is a MetricError listing the known ones."""
    try:
        return metrics[name]
    except KeyError:
        known = ", ".join(sorted(metrics))
        raise MetricError(f"unknown metric {name!r}; known metrics: {known}") from None
