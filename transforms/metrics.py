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

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from okr_targets.models import Customer, Deal, FxRate, Rating, Rep, Ticket
from okr_targets.periods import Period, add_months


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
    if name not in METRICS:  # packages' metrics (okr_sync.metrics entry points), loaded once
        from transforms.custom import load_entry_points

        load_entry_points()
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(sorted(METRICS))
        raise MetricError(f"unknown metric {name!r}; known metrics: {known}") from None


# --- building blocks ----------------------------------------------------------------------


def _live(model: Any) -> Any:
    return model.deleted_at.is_(None)


AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


def _filtered(statement: AnySelect, filters: Filters) -> AnySelect:
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


CONFIG_SOURCE = "config"
"""Rates from the OKR file's ``money:`` section are mirrored under this source name."""


class Converter:
    """Converts amounts to a reporting currency, never silently.

    A pair of rates is taken from one table, so both share a base: first the OKR file's
    ``money.rates``, then the deal's own source (its dated rate for the deal's close date,
    else its static rate). A deal its source already converted (HubSpot's
    ``amount_in_home_currency``) uses that amount when the target is its home currency.
    No rate at all is a MetricError naming the currency, never a zero.
    """

    def __init__(self, session: Session) -> None:
        self.static: dict[tuple[str, str], Decimal] = {}
        self.dated: dict[tuple[str, str], list[tuple[date, date | None, Decimal]]] = {}
        self.corporate: dict[str, str] = {}
        for rate in session.scalars(select(FxRate).where(_live(FxRate))):
            key = (rate.source, rate.currency)
            if rate.valid_from is None:
                self.static[key] = rate.rate
            else:
                self.dated.setdefault(key, []).append((rate.valid_from, rate.valid_to, rate.rate))
            if rate.is_corporate:
                self.corporate[rate.source] = rate.currency
                self.static.setdefault(key, Decimal(1))

    def target_currency(self, sources: Iterable[str], wanted: str | None) -> str | None:
        """The wanted currency, else the OKR file's, else the sources' corporate one."""
        if wanted:
            return wanted.upper()
        if CONFIG_SOURCE in self.corporate:
            return self.corporate[CONFIG_SOURCE]
        names = set(sources) or set(self.corporate)
        corporate = {self.corporate[s] for s in names if s in self.corporate}
        if len(corporate) > 1:
            raise MetricError(
                f"sources have different corporate currencies {sorted(corporate)}; "
                "set `money.currency` in the OKR file or the metric's `currency` parameter"
            )
        return corporate.pop() if corporate else None

    def _rate(self, source: str, currency: str, on: date | None) -> Decimal | None:
        if on is not None:
            for start, end, rate in self.dated.get((source, currency), ()):
                if start <= on and (end is None or on < end):
                    return rate
        return self.static.get((source, currency))

    def known(self, source: str, currency: str) -> bool:
        return any(
            (table, currency) in self.static or (table, currency) in self.dated
            for table in (CONFIG_SOURCE, source)
        )

    def convert(
        self,
        amount: Decimal,
        currency: str,
        source: str,
        target: str | None,
        on: date | None = None,
        amount_home: Decimal | None = None,
        home_currency: str | None = None,
    ) -> Decimal:
        if target is None or currency == target:
            return amount
        for table in (CONFIG_SOURCE, source):
            have, want = self._rate(table, currency, on), self._rate(table, target, on)
            if have is not None and want is not None:
                return amount / have * want
        if amount_home is not None and home_currency == target:
            return amount_home
        raise MetricError(f"no exchange rate from {currency} to {target} for {source} deals")


def unconvertible_currencies(session: Session) -> list[str]:
    """Validation findings: live deal currencies that no rate can convert to the target."""
    converter = Converter(session)
    findings = []
    groups = session.execute(
        select(Deal.source, Deal.currency, func.count(), func.count(Deal.amount_home))
        .where(_live(Deal), Deal.amount.is_not(None))
        .group_by(Deal.source, Deal.currency)
        .order_by(Deal.source, Deal.currency)
    ).all()
    for source, currency, deals, converted_at_source in groups:
        target = converter.target_currency([source], None)
        if target is None or currency == target or converted_at_source == deals:
            continue
        if not (converter.known(source, currency) and converter.known(source, target)):
            findings.append(
                f"{deals} {source} deal(s) in {currency} have no exchange rate to {target}; "
                "money key results that include them fail instead of counting them as zero "
                "(add the rate under `money.rates` in the OKR file)"
            )
    return findings


def _refs(entity: str, rows: Iterable[Any]) -> list[RecordRef]:
    return [RecordRef(entity, row.source, row.source_id) for row in rows]


def _converted_won_amounts(
    session: Session, period: Period, params: MoneyParams
) -> tuple[list[Any], list[Decimal], str]:
    columns = (Deal.amount, Deal.currency, Deal.close_on, Deal.amount_home, Deal.home_currency)
    rows = session.execute(_won_deals_in(period, params, *columns)).all()
    rows = [row for row in rows if row.amount is not None]
    converter = Converter(session)
    target = converter.target_currency({row.source for row in rows}, params.currency)
    currencies = {row.currency for row in rows}
    if target is None and len(currencies) > 1:
        raise MetricError(f"deals in {sorted(currencies)} but no exchange rates in the mirror")
    unit = target or (currencies.pop() if currencies else "")
    amounts = [
        converter.convert(
            row.amount,
            row.currency,
            row.source,
            target,
            row.close_on,
            row.amount_home,
            row.home_currency,
        )
        for row in rows
    ]
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
    # Both dates are the organisation's local days: a deal created late in the evening in
    # its time zone was created that day, whatever the UTC date.
    days = [(row.close_on - period.calendar.local_date(row.created_at)).days for row in rows]
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


@metric("new_rep_quota_attainment", RampParams)
def new_rep_quota_attainment(session: Session, period: Period, params: RampParams) -> MetricResult:
    """Percent of new reps whose ramp deadline falls in the period who hit their monthly quota.

    A rep's ramp runs from their start date to the deadline, ``months`` months later. Quotas
    are per calendar month, so the rep hits quota when the won deals they own, closed in
    one calendar month of the ramp (on or after the start, before the deadline) and
    converted to the quota's currency, reach the quota. The cohort is every rep with a
    start date and a quota whose deadline falls in the period; a rep who has not hit
    quota yet counts as not (yet) there. Start, close and deadline dates are the
    organisation's local days; the deadline is clamped to the month's end (a rep starting
    on 2026-01-31 has until 2026-05-31 for 4 months).
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
            select(
                Deal.amount, Deal.currency, Deal.close_on, Deal.amount_home, Deal.home_currency
            ).where(
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
            amount = converter.convert(
                deal.amount,
                deal.currency,
                rep.source,
                rep.quota_currency,
                deal.close_on,
                deal.amount_home,
                deal.home_currency,
            )
            by_month[month] = by_month.get(month, Decimal(0)) + amount
        if any(total >= rep.monthly_quota for total in by_month.values()):
            reached.append(rep.source_id)
    value = 100.0 * len(reached) / len(cohort) if cohort else None
    return MetricResult(
        value, "%", _refs("rep", cohort), {"cohort": len(cohort), "reached_quota": sorted(reached)}
    )


@metric("win_rate", Filters)
def win_rate(session: Session, period: Period, params: Filters) -> MetricResult:
    """Percent of the deals closed in the period (won or lost) that were won."""
    statement = select(Deal.source, Deal.source_id, Deal.outcome).where(
        _live(Deal),
        Deal.outcome.in_(("won", "lost")),
        Deal.close_on >= period.start,
        Deal.close_on < period.end,
    )
    rows = session.execute(_filtered(statement, params).order_by(Deal.source, Deal.source_id)).all()
    won = sum(1 for row in rows if row.outcome == "won")
    value = 100.0 * won / len(rows) if rows else None
    return MetricResult(value, "%", _refs("deal", rows), {"won": won, "closed": len(rows)})


class CustomerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, description="only this CRM's customers")
    segment: str | None = None


def _customers_at_start(session: Session, period: Period, params: CustomerParams) -> list[Any]:
    """Customers on the period's first day: became one before it, not churned before it."""
    statement = select(Customer.source, Customer.source_id, Customer.churned_on).where(
        _live(Customer),
        Customer.became_customer_on < period.start,
        or_(Customer.churned_on.is_(None), Customer.churned_on >= period.start),
    )
    if params.source is not None:
        statement = statement.where(Customer.source == params.source)
    if params.segment is not None:
        statement = statement.where(Customer.segment == params.segment)
    return list(session.execute(statement.order_by(Customer.source, Customer.source_id)).all())


@metric("retention_rate", CustomerParams)
def retention_rate(session: Session, period: Period, params: CustomerParams) -> MetricResult:
    """Percent of the customers at the period's start who are still customers at its end."""
    start = _customers_at_start(session, period, params)
    kept = [row for row in start if row.churned_on is None or row.churned_on >= period.end]
    value = 100.0 * len(kept) / len(start) if start else None
    return MetricResult(
        value, "%", _refs("customer", start), {"at_start": len(start), "retained": len(kept)}
    )


@metric("churn_rate", CustomerParams)
def churn_rate(session: Session, period: Period, params: CustomerParams) -> MetricResult:
    """Percent of the customers at the period's start who stopped being customers in it."""
    start = _customers_at_start(session, period, params)
    lost = [row for row in start if row.churned_on is not None and row.churned_on < period.end]
    value = 100.0 * len(lost) / len(start) if start else None
    return MetricResult(
        value, "%", _refs("customer", start), {"at_start": len(start), "churned": len(lost)}
    )


class TicketParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, description="only this helpdesk's tickets")
    channel: str | None = None
    priority: str | None = None


def _tickets_created_in(period: Period, params: TicketParams, *columns: Any) -> Select[Any]:
    statement = select(Ticket.source, Ticket.source_id, *columns).where(
        _live(Ticket), Ticket.created_at >= period.start_at, Ticket.created_at < period.end_at
    )
    for name in ("source", "channel", "priority"):
        wanted = getattr(params, name)
        if wanted is not None:
            statement = statement.where(getattr(Ticket, name) == wanted)
    return statement.order_by(Ticket.source, Ticket.source_id)


class VolumeParams(TicketParams):
    per_day: bool = Field(
        default=False,
        description="divide by the days of the period the data covers, so a period under "
        "way compares fairly with a whole one",
    )


@metric("ticket_volume", VolumeParams)
def ticket_volume(session: Session, period: Period, params: VolumeParams) -> MetricResult:
    """Support requests (tickets, cases) created in the period, or per day covered.

    Per day, the days run from the period's start to its end or, for a period under way,
    to the data's cutoff (the newest ticket change in the mirror), not to the wall clock,
    so an unchanged mirror gives an unchanged number. Days are real elapsed time (86,400
    seconds each), so a quarter with a daylight-saving change is an hour shorter or longer.
    """
    rows = session.execute(_tickets_created_in(period, params)).all()
    if not params.per_day:
        return MetricResult(float(len(rows)), "tickets", _refs("ticket", rows))
    cutoff = session.scalar(select(func.max(Ticket.source_modified_at)).where(_live(Ticket)))
    end = min(period.end_at, cutoff) if cutoff else period.end_at
    days = (end - period.start_at).total_seconds() / 86400
    value = len(rows) / days if days > 0 else None
    return MetricResult(
        value, "tickets/day", _refs("ticket", rows), {"tickets": len(rows), "days": days}
    )


@metric("median_first_response_hours", TicketParams)
def median_first_response_hours(
    session: Session, period: Period, params: TicketParams
) -> MetricResult:
    """Median hours to the first agent reply, for tickets created in the period and answered."""
    statement = _tickets_created_in(period, params, Ticket.created_at, Ticket.first_response_at)
    rows = [row for row in session.execute(statement) if row.first_response_at is not None]
    hours = [(row.first_response_at - row.created_at).total_seconds() / 3600 for row in rows]
    value = float(statistics.median(hours)) if hours else None
    return MetricResult(value, "hours", _refs("ticket", rows))


class RatingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = None


def _ratings_in(session: Session, period: Period, params: RatingParams, *where: Any) -> list[Any]:
    statement = select(Rating.source, Rating.source_id, Rating.score, Rating.good).where(
        _live(Rating), Rating.rated_at >= period.start_at, Rating.rated_at < period.end_at, *where
    )
    if params.source is not None:
        statement = statement.where(Rating.source == params.source)
    return list(session.execute(statement.order_by(Rating.source, Rating.source_id)).all())


@metric("csat", RatingParams)
def csat(session: Session, period: Period, params: RatingParams) -> MetricResult:
    """Percent of answered satisfaction ratings in the period that are good (4-5 of 5 count)."""
    rows = _ratings_in(session, period, params, Rating.good.is_not(None))
    good = sum(1 for row in rows if row.good)
    value = 100.0 * good / len(rows) if rows else None
    return MetricResult(value, "%", _refs("rating", rows), {"good": good, "answered": len(rows)})


@metric("csat_mean_score", RatingParams)
def csat_mean_score(session: Session, period: Period, params: RatingParams) -> MetricResult:
    """Mean score of the 1-5 satisfaction ratings given in the period."""
    rows = _ratings_in(session, period, params, Rating.scale_max == 5, Rating.score.is_not(None))
    value = float(sum(row.score for row in rows) / len(rows)) if rows else None
    return MetricResult(value, "/5", _refs("rating", rows))


class ChangeParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    metric: str = Field(description="the metric to compare")
    baseline_period: str = Field(default="previous", description="'previous' or a period label")

    @field_validator("baseline_period")
    @classmethod
    def _a_period(cls, value: str) -> str:
        """Catch a mistyped label when the OKR file loads; its calendar is applied at run time."""
        if value != "previous":
            Period.parse(value)
        return value


@metric("pct_change", ChangeParams)
def pct_change(session: Session, period: Period, params: ChangeParams) -> MetricResult:
    """Percent change of another metric between a baseline period and this one."""
    inner = get_metric(params.metric)
    inner_params = dict(params.model_extra or {})
    baseline_period = (
        period.previous()
        if params.baseline_period == "previous"
        else period.calendar.period(params.baseline_period)  # the same calendar as the period
    )
    current = inner.run(session, period, inner_params)
    baseline = inner.run(session, baseline_period, inner_params)
    details = {
        "metric": params.metric,
        "params": inner_params,
        "current": current.value,
        "current_records": len(dict.fromkeys(current.records)),
        "baseline": baseline.value,
        "baseline_records": len(dict.fromkeys(baseline.records)),
        "baseline_period": baseline_period.label,
        "baseline_period_end": baseline_period.end_at.isoformat(),
        "calendar": period.calendar.model_dump(),
        "unit": current.unit,
    }
    if current.value is None or not baseline.value:
        details["reason"] = "no baseline value" if not baseline.value else "no current value"
        return MetricResult(None, "%", current.records, details)
    value = 100.0 * (current.value - baseline.value) / abs(baseline.value)
    records = list(dict.fromkeys(current.records + baseline.records))  # customers recur
    return MetricResult(value, "%", records, details)


def metric_names() -> Sequence[str]:
    from transforms.custom import load_entry_points

    load_entry_points()
    return sorted(METRICS)


def check_params(name: str, params: dict[str, Any]) -> None:
    """Validate a key result's metric name and parameters (raises MetricError / ValidationError)."""
    parsed = get_metric(name).params.model_validate(params)
    if isinstance(parsed, ChangeParams):
        if parsed.metric == "pct_change":
            raise MetricError("pct_change cannot compare pct_change with itself")
        check_params(parsed.metric, dict(parsed.model_extra or {}))
