"""Sales metrics: won revenue and deal value, sales cycle, new customers, win rate and
new reps' quota attainment."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, and_, case, exists, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from okr_targets.models import Deal, Rep
from okr_targets.periods import Period, add_months
from transforms.lineage import record_columns
from transforms.metric import Matches, Metric, MetricError, MetricResult, metric
from transforms.money import Converter, converted_sum, summed_amounts
from transforms.sql import (
    Filters,
    days_between,
    dialect,
    live,
    local_date,
    median,
    owned,
    owners,
    shared,
)


class MoneyParams(Filters):
    currency: str | None = Field(
        default=None, description="report in this ISO currency; default: the corporate one"
    )


WON_AMOUNTS = ("deal.outcome", "deal.close_on", "deal.amount", "deal.currency")


def _won_deals_in(period: Period, filters: Filters, *columns: Any) -> Select[Any]:
    statement = (
        select(*columns)
        .select_from(Deal)
        .where(
            live(Deal),
            Deal.outcome == "won",
            Deal.close_on >= period.start,
            Deal.close_on < period.end,
        )
    )
    return owned(statement, filters)


def _priced_won_deals_in(period: Period, filters: Filters, *columns: Any) -> Select[Any]:
    return _won_deals_in(period, filters, *columns).where(Deal.amount.is_not(None))


def _converted_won_total(
    session: Session, period: Period, params: MoneyParams
) -> tuple[Decimal, int, str]:
    """The won deals' amounts in the report currency: (total, deals, currency).

    SQL sums the amounts per source, currency and close date (a dated rate holds for
    whole days); each sum is converted here in Decimal, as its deals would be one by one.
    """
    summed = _priced_won_deals_in(
        period,
        params,
        Deal.source,
        Deal.currency,
        Deal.home_currency,
        Deal.close_on,
        *summed_amounts(),
    ).group_by(Deal.source, Deal.currency, Deal.home_currency, Deal.close_on)
    key = ("won sums", period.start, period.end, params.owner, params.team)
    groups = shared(session, key, lambda: session.execute(summed).all())
    converter = Converter(session)
    target = converter.target_currency({group.source for group in groups}, params.currency)
    currencies = {group.currency for group in groups}
    if target is None and len(currencies) > 1:
        raise MetricError(f"deals in {sorted(currencies)} but no exchange rates in the mirror")
    unit = target or (currencies.pop() if currencies else "")
    total, deals = Decimal(0), 0
    for group in groups:
        total += converted_sum(converter, group, target)
        deals += group.deals
    return total, deals, unit


@metric("won_revenue", MoneyParams, needs=WON_AMOUNTS)
def won_revenue(session: Session, period: Period, params: MoneyParams) -> MetricResult:
    """Sum of won deals closed in the period, converted to one currency."""
    total, deals, unit = _converted_won_total(session, period, params)
    records = _priced_won_deals_in(period, params, *record_columns(Deal, "deal"))
    return MetricResult(float(total), unit, records, record_count=deals)


@metric("avg_won_deal_value", MoneyParams, needs=WON_AMOUNTS)
def avg_won_deal_value(session: Session, period: Period, params: MoneyParams) -> MetricResult:
    """Mean amount of won deals closed in the period, converted to one currency."""
    total, deals, unit = _converted_won_total(session, period, params)
    records = _priced_won_deals_in(period, params, *record_columns(Deal, "deal"))
    value = float(total / deals) if deals else None
    return MetricResult(value, unit, records, record_count=deals)


@metric(
    "median_sales_cycle_days", Filters, needs=("deal.outcome", "deal.close_on", "deal.created_at")
)
def median_sales_cycle_days(session: Session, period: Period, params: Filters) -> MetricResult:
    """Median days from a won deal's creation to its close date, for deals closed in the period.

    A deal closed before it was created (imported or migrated from another CRM, created at
    the import) has no real cycle: it is left out of the median and counted in the details
    (``left_out``, which ``okr-sync explain`` shows); it still counts everywhere else.
    """
    # Both dates are the organisation's local days: a deal created late in the evening in
    # its time zone was created that day, whatever the UTC date.
    won = _won_deals_in(period, params, Deal.source_id)
    created_on = local_date(session, period.calendar, Deal.created_at, won)
    cycle = days_between(dialect(session), created_on, Deal.close_on)
    days = won.with_only_columns(cycle.label("days")).subquery()
    counts = session.execute(
        select(days.c.days, func.count()).group_by(days.c.days).order_by(days.c.days)
    ).all()
    measured = [(value, n) for value, n in counts if value >= 0]
    negative = sum(n for value, n in counts if value < 0)
    records = _won_deals_in(period, params, *record_columns(Deal, "deal")).where(cycle >= 0)
    details: dict[str, Any] = {}
    if negative:
        details["left_out"] = [
            {"count": negative, "what": "won deals", "why": CLOSED_BEFORE_CREATED},
        ]
    return MetricResult(
        median(measured), "days", records, details, record_count=sum(n for _, n in measured)
    )


CLOSED_BEFORE_CREATED = (
    "closed before they were created (imported or migrated: the CRM stamped them at the "
    "import), so they have no sales cycle; they count in revenue and win rate"
)


def _first_won_deals_in(period: Period, params: Filters, *columns: Any) -> Select[Any]:
    """Won deals in the period that are their customer's first won deal (ever): no live
    won deal of the customer closed before it (or the same day, with a smaller id)."""
    earlier = aliased(Deal)
    first = ~exists().where(
        earlier.source == Deal.source,
        earlier.customer_id == Deal.customer_id,
        live(earlier),
        earlier.outcome == "won",
        tuple_(earlier.close_on, earlier.source_id) < tuple_(Deal.close_on, Deal.source_id),
    )
    return _won_deals_in(period, params, *columns).where(Deal.customer_id.is_not(None), first)


@metric("new_customers_won", Filters, needs=("deal.outcome", "deal.close_on", "deal.customer_id"))
def new_customers_won(session: Session, period: Period, params: Filters) -> MetricResult:
    """Customers whose first won deal (ever) closed in the period; counts each customer once."""
    # Counted per owner of that first deal, so key results on the same period (the company,
    # a team, a rep) share one probe of the period's won deals.
    per_owner = _first_won_deals_in(period, Filters(), Deal.source, Deal.owner_id, func.count())
    key = ("first won deals per owner", period.start, period.end)
    counts = shared(
        session, key, lambda: session.execute(per_owner.group_by(Deal.source, Deal.owner_id)).all()
    )
    if params.owner is None and params.team is None:
        customers = sum(n for _, _, n in counts)
    else:
        named = set(session.execute(owners(params)).tuples())
        customers = sum(n for source, owner, n in counts if (source, owner) in named)
    records = _first_won_deals_in(period, params, *record_columns(Deal, "deal"))
    return MetricResult(float(customers), "customers", records, record_count=customers)


class RampParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    months: int = Field(default=4, ge=1, le=24, description="months a new rep has to hit quota")
    team: Annotated[str | None, Matches("rep.team", "team")] = None


Ramp = tuple[Rep, date, date]
"""A new rep, the day their ramp starts and its deadline (the day after it ends)."""


def _ramps(session: Session, period: Period, params: RampParams) -> dict[tuple[str, str], Ramp]:
    """The cohort, by (source, id): reps with a start date and a quota whose ramp
    deadline falls in the period."""
    reps = session.scalars(
        select(Rep).where(live(Rep), Rep.started_on.is_not(None), Rep.monthly_quota.is_not(None))
    ).all()
    return {
        (rep.source, rep.source_id): (
            rep,
            rep.started_on,
            add_months(rep.started_on, params.months),
        )
        for rep in reps
        if rep.started_on is not None
        and period.start <= add_months(rep.started_on, params.months) < period.end
        and (params.team is None or rep.team == params.team)
    }


def _won_per_month(
    session: Session, ramps: dict[tuple[str, str], Ramp]
) -> dict[tuple[str, str], dict[tuple[int, int], Decimal]]:
    """Per rep of the cohort and calendar month of their ramp, the won deals' amounts in
    the rep's quota currency."""
    by_month: dict[tuple[str, str], dict[tuple[int, int], Decimal]] = {key: {} for key in ramps}
    if not ramps:
        return by_month
    in_a_ramp = or_(  # the won deals of every ramp, summed per rep, currency and close date
        *(
            and_(
                Deal.source == source,
                Deal.owner_id == owner,
                Deal.close_on >= started,
                Deal.close_on < deadline,
            )
            for (source, owner), (_, started, deadline) in ramps.items()
        )
    )
    groups = session.execute(
        select(
            Deal.source,
            Deal.owner_id,
            Deal.currency,
            Deal.home_currency,
            Deal.close_on,
            *summed_amounts(),
        )
        .where(live(Deal), Deal.outcome == "won", Deal.amount.is_not(None), in_a_ramp)
        .where(  # the same, as one range of close dates the index can be read by
            Deal.close_on >= min(started for _, started, _ in ramps.values()),
            Deal.close_on < max(deadline for _, _, deadline in ramps.values()),
            tuple_(Deal.source, Deal.owner_id).in_(list(ramps)),
        )
        .group_by(Deal.source, Deal.owner_id, Deal.currency, Deal.home_currency, Deal.close_on)
    ).all()
    converter = Converter(session)
    for group in groups:
        rep = ramps[(group.source, group.owner_id)][0]
        converted_amount = converted_sum(converter, group, rep.quota_currency)
        month = by_month[(group.source, group.owner_id)]
        key = (group.close_on.year, group.close_on.month)
        month[key] = month.get(key, Decimal(0)) + converted_amount
    return by_month


@metric(
    "new_rep_quota_attainment",
    RampParams,
    needs=("rep.started_on", "rep.monthly_quota", *WON_AMOUNTS),
)
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
    ramps = _ramps(session, period, params)
    by_month = _won_per_month(session, ramps)
    reached = sorted(
        owner
        for (source, owner), totals in by_month.items()
        if any(
            total >= cast(Decimal, ramps[(source, owner)][0].monthly_quota)
            for total in totals.values()
        )
    )
    value = 100.0 * len(reached) / len(ramps) if ramps else None
    records = select(*record_columns(Rep, "rep")).where(
        tuple_(Rep.source, Rep.source_id).in_(list(ramps))
    )
    details = {"cohort": len(ramps), "reached_quota": reached}
    return MetricResult(value, "%", records, details, len(ramps))


@metric("win_rate", Filters, needs=("deal.outcome", "deal.close_on"))
def win_rate(session: Session, period: Period, params: Filters) -> MetricResult:
    """Percent of the deals closed in the period (won or lost) that were won."""

    def closed_in(*columns: Any) -> Select[Any]:
        statement = (
            select(*columns)
            .select_from(Deal)
            .where(
                live(Deal),
                Deal.outcome.in_(("won", "lost")),
                Deal.close_on >= period.start,
                Deal.close_on < period.end,
            )
        )
        return owned(statement, params)

    closed, won = session.execute(
        closed_in(func.count(), func.count(case((Deal.outcome == "won", 1))))
    ).one()
    value = 100.0 * won / closed if closed else None
    records = closed_in(*record_columns(Deal, "deal"))
    return MetricResult(value, "%", records, {"won": won, "closed": closed}, closed)


METRICS: tuple[Metric[Any], ...] = (
    won_revenue,
    avg_won_deal_value,
    median_sales_cycle_days,
    new_customers_won,
    new_rep_quota_attainment,
    win_rate,
)
