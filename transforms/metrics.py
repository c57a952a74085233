"""Named key-result metrics: SQL over the record mirror for one period.

Each metric selects the mirror rows that count for the period (portable SQL: the same
statement runs on SQLite and PostgreSQL), then reduces them to one number. It returns the
number together with the ids of the records behind it, which become the measurement's
lineage. Key results name a metric and pass parameters, validated by the metric's own
pydantic model, so a typo in the OKR file is caught before any sync starts.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from okr_targets.models import Deal, FxRate, Rep
from okr_targets.periods import Period


class MetricError(Exception):
    """A metric cannot produce a number from the mirror (e.g. no exchange rate)."""


@dataclass(frozen=True)
class RecordRef:
    entity: str
    source: str
    source_id: str


@dataclass
class MetricResult:
    """A metric's value (None when there is nothing to measure yet) and what it rests on."""

    value: float | None
    unit: str
    records: list[RecordRef] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Filters(BaseModel):
    """Narrow a metric to one rep (by e-mail) or one team, for team and personal OKRs."""

    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(default=None, description="the rep's e-mail address")
    team: str | None = None


class MoneyParams(Filters):
    currency: str | None = Field(
        default=None, description="report in this ISO currency; default: the corporate one"
    )


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class Metric(Generic[P]):
    name: str
    description: str
    params: type[P]
    compute: Callable[[Session, Period, P], MetricResult]

    def run(self, session: Session, period: Period, params: dict[str, Any]) -> MetricResult:
        return self.compute(session, period, self.params.model_validate(params))


METRICS: dict[str, Metric[Any]] = {}


def metric(
    name: str, params: type[P]
) -> Callable[
    [Callable[[Session, Period, P], MetricResult]], Callable[[Session, Period, P], MetricResult]
]:
    """Register a metric function under ``name``; its docstring is its description."""

    def register(
        compute: Callable[[Session, Period, P], MetricResult],
    ) -> Callable[[Session, Period, P], MetricResult]:
        METRICS[name] = Metric(name, (compute.__doc__ or "").strip(), params, compute)
        return compute

    return register


def get_metric(name: str) -> Metric[Any]:
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(sorted(METRICS))
        raise MetricError(f"unknown metric {name!r}; known metrics: {known}") from None


# --- building blocks ----------------------------------------------------------------------


def _live(model: Any) -> Any:
    return model.deleted_at.is_(None)


def _filtered(statement: Select[Any], filters: Filters) -> Select[Any]:
    """Join the deal's owner when a rep or team filter is set."""
    if filters.owner is None and filters.team is None:
        return statement
    statement = statement.join(Rep, and_(Rep.source == Deal.source, Rep.source_id == Deal.owner_id))
    if filters.owner is not None:
        statement = statement.where(func.lower(Rep.email) == filters.owner.lower())
    if filters.team is not None:
        statement = statement.where(Rep.team == filters.team)
    return statement


def _won_deals_in(period: Period, filters: Filters, *columns: Any) -> Select[Any]:
    statement = select(Deal.source, Deal.source_id, *columns).where(
        _live(Deal),
        Deal.outcome == "won",
        Deal.close_on >= period.start,
        Deal.close_on < period.end,
    )
    return _filtered(statement, filters).order_by(Deal.source, Deal.source_id)


class Converter:
    """Converts amounts between currencies with each source's own exchange rates."""

    def __init__(self, session: Session) -> None:
        self.rates: dict[tuple[str, str], Decimal] = {}
        self.corporate: dict[str, str] = {}
        for rate in session.scalars(select(FxRate).where(_live(FxRate))):
            self.rates[(rate.source, rate.currency)] = rate.rate
            if rate.is_corporate:
                self.corporate[rate.source] = rate.currency

    def target_currency(self, sources: Iterable[str], wanted: str | None) -> str | None:
        """The wanted currency, else the corporate one of the sources (of all, if none)."""
        if wanted:
            return wanted.upper()
        names = set(sources) or set(self.corporate)
        corporate = {self.corporate[s] for s in names if s in self.corporate}
        if len(corporate) > 1:
            raise MetricError(
                f"sources have different corporate currencies {sorted(corporate)}; "
                "set the metric's `currency` parameter"
            )
        return corporate.pop() if corporate else None

    def convert(self, amount: Decimal, currency: str, source: str, target: str | None) -> Decimal:
        if target is None or currency == target:
            return amount
        try:
            return amount / self.rates[(source, currency)] * self.rates[(source, target)]
        except KeyError:
            missing = currency if (source, currency) not in self.rates else target
            raise MetricError(f"{source} has no exchange rate for {missing}") from None


def _refs(entity: str, rows: Iterable[Any]) -> list[RecordRef]:
    return [RecordRef(entity, row.source, row.source_id) for row in rows]


def _converted_won_amounts(
    session: Session, period: Period, params: MoneyParams
) -> tuple[list[Any], list[Decimal], str]:
    rows = session.execute(_won_deals_in(period, params, Deal.amount, Deal.currency)).all()
    rows = [row for row in rows if row.amount is not None]
    converter = Converter(session)
    target = converter.target_currency({row.source for row in rows}, params.currency)
    currencies = {row.currency for row in rows}
    if target is None and len(currencies) > 1:
        raise MetricError(f"deals in {sorted(currencies)} but no exchange rates in the mirror")
    unit = target or (currencies.pop() if currencies else "")
    amounts = [converter.convert(row.amount, row.currency, row.source, target) for row in rows]
    return rows, amounts, unit


# --- the metrics ----------------------------------------------------------------------------


@metric("won_revenue", MoneyParams)
def won_revenue(session: Session, period: Period, params: MoneyParams) -> MetricResult:
    """Sum of won deals closed in the period, converted to one currency."""
    rows, amounts, unit = _converted_won_amounts(session, period, params)
    return MetricResult(float(sum(amounts, Decimal(0))), unit, _refs("deal", rows))


@metric("avg_won_deal_value", MoneyParams)
def avg_won_deal_value(session: Session, period: Period, params: MoneyParams) -> MetricResult:
    """Mean amount of won deals closed in the period, converted to one currency."""
    rows, amounts, unit = _converted_won_amounts(session, period, params)
    value = float(sum(amounts, Decimal(0)) / len(amounts)) if amounts else None
    return MetricResult(value, unit, _refs("deal", rows))


@metric("median_sales_cycle_days", Filters)
def median_sales_cycle_days(session: Session, period: Period, params: Filters) -> MetricResult:
    """Median days from a won deal's creation to its close date, for deals closed in the period."""
    rows = session.execute(_won_deals_in(period, params, Deal.created_at, Deal.close_on)).all()
    days = [(row.close_on - row.created_at.date()).days for row in rows]
    return MetricResult(
        float(statistics.median(days)) if days else None, "days", _refs("deal", rows)
    )


@metric("new_customers_won", Filters)
def new_customers_won(session: Session, period: Period, params: Filters) -> MetricResult:
    """Customers whose first won deal (ever) closed in the period; counts each customer once."""
    order = func.row_number().over(
        partition_by=(Deal.source, Deal.customer_id), order_by=(Deal.close_on, Deal.source_id)
    )
    first_won = (
        select(
            Deal.source,
            Deal.source_id,
            Deal.customer_id,
            Deal.owner_id,
            Deal.close_on,
            order.label("nth"),
        )
        .where(_live(Deal), Deal.outcome == "won", Deal.customer_id.is_not(None))
        .subquery()
    )
    statement = select(first_won.c.source, first_won.c.source_id).where(
        first_won.c.nth == 1,
        first_won.c.close_on >= period.start,
        first_won.c.close_on < period.end,
    )
    if params.owner is not None or params.team is not None:
        statement = statement.join(
            Rep, and_(Rep.source == first_won.c.source, Rep.source_id == first_won.c.owner_id)
        )
        if params.owner is not None:
            statement = statement.where(func.lower(Rep.email) == params.owner.lower())
        if params.team is not None:
            statement = statement.where(Rep.team == params.team)
    rows = session.execute(statement.order_by(first_won.c.source, first_won.c.source_id)).all()
    return MetricResult(float(len(rows)), "customers", _refs("deal", rows))


class RampParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    months: int = Field(default=4, ge=1, le=24, description="months a new rep has to hit quota")
    team: str | None = None


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later, clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for last in (31, 30, 29, 28):
        try:
            return date(year, month + 1, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


@metric("new_rep_quota_attainment", RampParams)
def new_rep_quota_attainment(session: Session, period: Period, params: RampParams) -> MetricResult:
    """Percent of new reps whose ramp deadline falls in the period who hit their monthly quota.

    A rep's ramp runs from their start date to the deadline, ``months`` months later. Quotas
    are per calendar month, so the rep hits quota when the won deals they own, closed in
    one calendar month of the ramp (on or after the start, before the deadline) and
    converted to the quota's currency, reach the quota. The cohort is every rep with a
    start date and a quota whose deadline falls in the period; a rep who has not hit
    quota yet counts as not (yet) there.
    """
    reps = session.scalars(
        select(Rep).where(_live(Rep), Rep.started_on.is_not(None), Rep.monthly_quota.is_not(None))
    ).all()
    cohort = [
        rep
        for rep in reps
        if rep.started_on is not None
        and period.start <= add_months(rep.started_on, params.months) < period.end
        and (params.team is None or rep.team == params.team)
    ]
    converter = Converter(session)
    reached: list[str] = []
    for rep in cohort:
        assert rep.started_on is not None
        assert rep.monthly_quota is not None
        deadline = add_months(rep.started_on, params.months)
        deals = session.execute(
            select(Deal.amount, Deal.currency, Deal.close_on).where(
                _live(Deal),
                Deal.outcome == "won",
                Deal.source == rep.source,
                Deal.owner_id == rep.source_id,
                Deal.close_on >= rep.started_on,
                Deal.close_on < deadline,
                Deal.amount.is_not(None),
            )
        ).all()
        by_month: dict[tuple[int, int], Decimal] = {}
        for deal in deals:
            month = (deal.close_on.year, deal.close_on.month)
            amount = converter.convert(deal.amount, deal.currency, rep.source, rep.quota_currency)
            by_month[month] = by_month.get(month, Decimal(0)) + amount
        if any(total >= rep.monthly_quota for total in by_month.values()):
            reached.append(rep.source_id)
    value = 100.0 * len(reached) / len(cohort) if cohort else None
    return MetricResult(
        value, "%", _refs("rep", cohort), {"cohort": len(cohort), "reached_quota": sorted(reached)}
    )


class ChangeParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    metric: str = Field(description="the metric to compare")
    baseline_period: str = Field(default="previous", description="'previous' or a period label")


@metric("pct_change", ChangeParams)
def pct_change(session: Session, period: Period, params: ChangeParams) -> MetricResult:
    """Percent change of another metric between a baseline period and this one."""
    inner = get_metric(params.metric)
    inner_params = dict(params.model_extra or {})
    baseline_period = (
        period.previous()
        if params.baseline_period == "previous"
        else Period.parse(params.baseline_period)
    )
    current = inner.run(session, period, inner_params)
    baseline = inner.run(session, baseline_period, inner_params)
    details = {
        "metric": params.metric,
        "current": current.value,
        "baseline": baseline.value,
        "baseline_period": baseline_period.label,
        "unit": current.unit,
    }
    if current.value is None or not baseline.value:
        details["reason"] = "no baseline value" if not baseline.value else "no current value"
        return MetricResult(None, "%", current.records, details)
    value = 100.0 * (current.value - baseline.value) / abs(baseline.value)
    return MetricResult(value, "%", current.records + baseline.records, details)


def metric_names() -> Sequence[str]:
    return sorted(METRICS)


def check_params(name: str, params: dict[str, Any]) -> None:
    """Validate a key result's metric name and parameters (raises MetricError / ValidationError)."""
    parsed = get_metric(name).params.model_validate(params)
    if isinstance(parsed, ChangeParams):
        if parsed.metric == "pct_change":
            raise MetricError("pct_change cannot compare pct_change with itself")
        check_params(parsed.metric, dict(parsed.model_extra or {}))
