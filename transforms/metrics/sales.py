"""Named key-result metrics: SQL over the record mirror for one period.

Each metric reduces the mirror rows that count for the period to its number with SQL
aggregates (portable SQL: the same statement runs on SQLite and PostgreSQL), so no row
travels to Python only to be counted or summed. It returns the number together with a
SELECT of the records behind it and their count; the measurement's lineage is written
from that SELECT inside the database (``INSERT … SELECT``), so no record id does either.
Key results name a metric and pass parameters, validated by the metric's own pydantic
model, so a typo in the OKR file is caught before any sync starts.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from itertools import pairwise
from typing import Any, Generic, TypeVar, cast
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Date,
    Integer,
    Numeric,
    Select,
    String,
    and_,
    case,
    column,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union,
    union_all,
    values,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, aliased

from okr_targets.models import Customer, Deal, FxRate, MirrorRecord, Rating, Rep, Ticket
from okr_targets.periods import Calendar, Period, add_months


class MetricError(Exception):
    """A metric cannot produce a number from the mirror (e.g. no exchange rate)."""


@dataclass(frozen=True)
class RecordRef:
    entity: str
    source: str
    source_id: str


RecordSelect = Select[Any] | CompoundSelect[Any]
"""A SELECT of ``(entity, source, source_id)`` rows, each record once."""


@dataclass
class MetricResult:
    """A metric's value (None when there is nothing to measure yet) and what it rests on.

    ``records`` selects the records behind the value (None: none) and ``record_count``
    says how many rows it selects, so lineage never has to be read into Python.
    ``current`` is, for ``pct_change``, the current period's own result: its records
    alone are the lineage once the baseline is frozen.
    """

    value: float | None
    unit: str
    records: RecordSelect | None = None
    details: dict[str, Any] = field(default_factory=dict)
    record_count: int = 0
    current: MetricResult | None = None


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
    records_in_period: bool = False
    """Each record belongs to one period (by its close date, creation or rating time), so
    two periods that do not overlap share no record."""

    def run(self, session: Session, period: Period, params: dict[str, Any]) -> MetricResult:
        return self.compute(session, period, self.params.model_validate(params))


METRICS: dict[str, Metric[Any]] = {}


def metric(
    name: str, params: type[P], *, records_in_period: bool = True
) -> Callable[
    [Callable[[Session, Period, P], MetricResult]], Callable[[Session, Period, P], MetricResult]
]:
    """Register a metric function under ``name``; its docstring is its description."""

    def register(
        compute: Callable[[Session, Period, P], MetricResult],
    ) -> Callable[[Session, Period, P], MetricResult]:
        description = (compute.__doc__ or "").strip()
        METRICS[name] = Metric(name, description, params, compute, records_in_period)
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


# --- lineage --------------------------------------------------------------------------------


def record_columns(model: type[MirrorRecord], entity: str) -> tuple[Any, Any, Any]:
    """The lineage columns of a mirror table's rows: ``entity, source, source_id``."""
    return (
        literal(entity, String).label("entity"),
        model.source.label("source"),
        model.source_id.label("source_id"),
    )


def record_select(refs: Iterable[RecordRef]) -> RecordSelect | None:
    """Records listed in Python (a custom Python metric's) as a SELECT, each once.

    The ids are rendered into the statement as quoted literals, so a long list needs
    no bind parameter per id (SQLite caps those).
    """
    unique = list(dict.fromkeys(refs))
    if not unique:
        return None
    listed = (
        values(
            column("entity", String),
            column("source", String),
            column("source_id", String),
            name="listed_records",
            literal_binds=True,
        )
        .data([(ref.entity, str(ref.source), str(ref.source_id)) for ref in unique])
        .cte()
    )
    return select(listed.c.entity, listed.c.source, listed.c.source_id)


def count_records(session: Session, records: RecordSelect | None) -> int:
    if records is None:
        return 0
    return int(session.scalar(select(func.count()).select_from(records.subquery())) or 0)


def record_refs(session: Session, result: MetricResult) -> list[RecordRef]:
    """The records behind a result, read into Python: for tests and small sets only."""
    if result.records is None:
        return []
    rows: Any = session.execute(result.records)
    return [RecordRef(entity, source, source_id) for entity, source, source_id in rows]


# --- building blocks ----------------------------------------------------------------------

T = TypeVar("T")


@contextmanager
def shared_results(session: Session) -> Iterator[None]:
    """Within it, what one metric read for a period is reused by the others.

    For measuring every key result in one go, while the mirror does not change: three
    key results on the same period's new customers then probe its won deals once.
    """
    session.info["metric_results"] = {}
    try:
        yield
    finally:
        session.info.pop("metric_results", None)


def _shared(session: Session, key: Hashable, compute: Callable[[], T]) -> T:
    results = session.info.get("metric_results")
    if results is None:
        return compute()
    if key not in results:
        results[key] = compute()
    return cast(T, results[key])


def _live(model: Any) -> Any:
    return model.deleted_at.is_(None)


AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


def _filtered(statement: AnySelect, filters: Filters) -> AnySelect:
    """Keep the deals owned by the rep or team the filters name, if any.

    The owners are looked up first (``IN`` a SELECT of the few matching reps), so the
    deals are filtered from the index they are read from, never joined row by row.
    """
    if filters.owner is None and filters.team is None:
        return statement
    return statement.where(tuple_(Deal.source, Deal.owner_id).in_(_owners(filters)))


def _owners(filters: Filters) -> Select[str, str]:
    """The (source, id) of the reps the filters name."""
    owners = select(Rep.source, Rep.source_id)
    if filters.owner is not None:
        owners = owners.where(func.lower(Rep.email) == filters.owner.lower())
    if filters.team is not None:
        owners = owners.where(Rep.team == filters.team)
    return owners


def _won_deals_in(period: Period, filters: Filters, *columns: Any) -> Select[Any]:
    statement = (
        select(*columns)
        .select_from(Deal)
        .where(
            _live(Deal),
            Deal.outcome == "won",
            Deal.close_on >= period.start,
            Deal.close_on < period.end,
        )
    )
    return _filtered(statement, filters)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _scale(money: Any) -> int:
    return _column_scale(money.class_, money.key)


@cache  # called per summed group: reading the type through the ORM attribute is slow
def _column_scale(model: type[Any], key: str) -> int:
    return int(cast(Numeric[Decimal], model.__table__.c[key].type).scale or 0)


def _exact_sum(money: Any) -> Any:
    """SUM of a decimal column in its smallest unit (cents of a cent), as an integer.

    SQLite keeps NUMERIC values as floating point; summing whole units is exact there too.
    """
    return func.sum(sql_cast(func.round(money * 10 ** _scale(money)), BigInteger))


def _from_units(total: Any, money: Any) -> Decimal | None:
    """An :func:`_exact_sum` back in the column's unit, exactly."""
    return None if total is None else Decimal(total).scaleb(-_scale(money))


def _days_between(dialect: str, earlier: Any, later: Any) -> Any:
    """Whole days from one SQL date to another."""
    if dialect == "sqlite":
        return sql_cast(func.julianday(later) - func.julianday(earlier), Integer)
    return sql_cast(later - earlier, Integer)  # PostgreSQL: date - date is an integer


def _offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The zone's UTC offset (seconds) at ``start``, then each (instant, new offset) it
    changes to up to ``end``: found day by day, then to the second (tzdata changes
    offsets on whole seconds, never twice in a day)."""

    def offset(at: datetime) -> int:
        shift = at.astimezone(zone).utcoffset()
        return int(shift.total_seconds()) if shift is not None else 0

    changes = [(start, offset(start))]
    day = start
    while day < end:
        following = min(day + timedelta(days=1), end)
        if offset(following) != changes[-1][1]:
            low, high = int(day.timestamp()), int(following.timestamp()) + 1
            while high - low > 1:
                middle = (low + high) // 2
                if offset(datetime.fromtimestamp(middle, start.tzinfo)) == changes[-1][1]:
                    low = middle
                else:
                    high = middle
            changes.append((datetime.fromtimestamp(high, start.tzinfo), offset(following)))
        day = following
    return changes


def _local_date(session: Session, calendar: Calendar, moment: Any, rows: Select[Any]) -> Any:
    """The local day (in the calendar's zone) of a timestamp column, as an SQL date.

    PostgreSQL converts with its own time-zone data. SQLite adds the UTC offset: a fixed
    zone's (UTC, Etc/…), else one chosen by a CASE over the offset changes between the
    earliest and latest ``moment`` of ``rows``.
    """
    if _dialect(session) != "sqlite":
        return sql_cast(func.timezone(calendar.timezone, moment), Date)

    def shift(seconds: int) -> str:
        return f"{seconds:+d} seconds"

    if calendar.timezone == "UTC" or calendar.timezone.startswith("Etc/"):  # a fixed offset
        offset = calendar.zone.utcoffset(datetime.now(UTC))
        seconds = int(offset.total_seconds()) if offset is not None else 0
        return func.date(moment, shift(seconds)) if seconds else func.date(moment)
    earliest, latest = session.execute(
        rows.with_only_columns(func.min(moment), func.max(moment))
    ).one()
    if earliest is None:
        return func.date(moment)
    changes = _offset_changes(calendar.zone, earliest, latest)
    if len(changes) == 1:
        return func.date(moment, shift(changes[0][1]))
    whens = [
        (moment < changed_at, shift(offset)) for (_, offset), (changed_at, _) in pairwise(changes)
    ]
    return func.date(moment, case(*whens, else_=shift(changes[-1][1])))


def _median_of_counts(counts: Sequence[tuple[int, int]]) -> float | None:
    """The median of values given as sorted (value, how many) pairs."""
    total = sum(n for _, n in counts)
    if not total:
        return None
    middle = {(total - 1) // 2, total // 2}
    found, seen = [], 0
    for value, n in counts:
        found += [value for position in sorted(middle) if seen <= position < seen + n]
        seen += n
    return float(statistics.median(found))


# --- currencies ---------------------------------------------------------------------------


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
        *_summed_amounts(),
    ).group_by(Deal.source, Deal.currency, Deal.home_currency, Deal.close_on)
    key = ("won sums", period.start, period.end, params.owner, params.team)
    groups = _shared(session, key, lambda: session.execute(summed).all())
    converter = Converter(session)
    target = converter.target_currency({group.source for group in groups}, params.currency)
    currencies = {group.currency for group in groups}
    if target is None and len(currencies) > 1:
        raise MetricError(f"deals in {sorted(currencies)} but no exchange rates in the mirror")
    unit = target or (currencies.pop() if currencies else "")
    total, deals = Decimal(0), 0
    for group in groups:
        total += _converted_sum(converter, group, target)
        deals += group.deals
    return total, deals, unit


def _summed_amounts() -> tuple[Any, ...]:
    """Per group of won deals: the exact sum of amounts, the deals, and the sum and count
    of the amounts the source converted itself (``amount_home``)."""
    return (
        _exact_sum(Deal.amount).label("amount"),
        func.count().label("deals"),
        _exact_sum(Deal.amount_home).label("home"),
        func.count(Deal.amount_home).label("converted"),
    )


def _converted_sum(converter: Converter, group: Any, target: str | None) -> Decimal:
    """One group's sum (of ``_summed_amounts``) in ``target``; the source's own conversion
    counts only when every deal of the group has one."""
    amount_home = (
        _from_units(group.home, Deal.amount_home) if group.converted == group.deals else None
    )
    return converter.convert(
        cast(Decimal, _from_units(group.amount, Deal.amount)),
        group.currency,
        group.source,
        target,
        group.close_on,
        amount_home,
        group.home_currency,
    )


# --- the metrics ----------------------------------------------------------------------------


@metric("won_revenue", MoneyParams)
def won_revenue(session: Session, period: Period, params: MoneyParams) -> MetricResult:
    """Sum of won deals closed in the period, converted to one currency."""
    total, deals, unit = _converted_won_total(session, period, params)
    records = _priced_won_deals_in(period, params, *record_columns(Deal, "deal"))
    return MetricResult(float(total), unit, records, record_count=deals)


@metric("avg_won_deal_value", MoneyParams)
def avg_won_deal_value(session: Session, period: Period, params: MoneyParams) -> MetricResult:
    """Mean amount of won deals closed in the period, converted to one currency."""
    total, deals, unit = _converted_won_total(session, period, params)
    records = _priced_won_deals_in(period, params, *record_columns(Deal, "deal"))
    value = float(total / deals) if deals else None
    return MetricResult(value, unit, records, record_count=deals)


@metric("median_sales_cycle_days", Filters)
def median_sales_cycle_days(session: Session, period: Period, params: Filters) -> MetricResult:
    """Median days from a won deal's creation to its close date, for deals closed in the period."""
    # Both dates are the organisation's local days: a deal created late in the evening in
    # its time zone was created that day, whatever the UTC date.
    won = _won_deals_in(period, params, Deal.source_id)
    created_on = _local_date(session, period.calendar, Deal.created_at, won)
    days = won.with_only_columns(
        _days_between(_dialect(session), created_on, Deal.close_on).label("days")
    ).subquery()
    counts = session.execute(
        select(days.c.days, func.count()).group_by(days.c.days).order_by(days.c.days)
    ).all()
    records = _won_deals_in(period, params, *record_columns(Deal, "deal"))
    return MetricResult(
        _median_of_counts([(value, n) for value, n in counts]),
        "days",
        records,
        record_count=sum(n for _, n in counts),
    )


def _first_won_deals_in(period: Period, params: Filters, *columns: Any) -> Select[Any]:
    """Won deals in the period that are their customer's first won deal (ever): no live
    won deal of the customer closed before it (or the same day, with a smaller id)."""
    earlier = aliased(Deal)
    first = ~exists().where(
        earlier.source == Deal.source,
        earlier.customer_id == Deal.customer_id,
        _live(earlier),
        earlier.outcome == "won",
        tuple_(earlier.close_on, earlier.source_id) < tuple_(Deal.close_on, Deal.source_id),
    )
    return _won_deals_in(period, params, *columns).where(Deal.customer_id.is_not(None), first)


@metric("new_customers_won", Filters)
def new_customers_won(session: Session, period: Period, params: Filters) -> MetricResult:
    """Customers whose first won deal (ever) closed in the period; counts each customer once."""
    # Counted per owner of that first deal, so key results on the same period (the company,
    # a team, a rep) share one probe of the period's won deals.
    per_owner = _first_won_deals_in(period, Filters(), Deal.source, Deal.owner_id, func.count())
    key = ("first won deals per owner", period.start, period.end)
    counts = _shared(
        session, key, lambda: session.execute(per_owner.group_by(Deal.source, Deal.owner_id)).all()
    )
    if params.owner is None and params.team is None:
        customers = sum(n for _, _, n in counts)
    else:
        owners = set(session.execute(_owners(params)).tuples())
        customers = sum(n for source, owner, n in counts if (source, owner) in owners)
    records = _first_won_deals_in(period, params, *record_columns(Deal, "deal"))
    return MetricResult(float(customers), "customers", records, record_count=customers)


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
    ramps = {
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
    by_month: dict[tuple[str, str], dict[tuple[int, int], Decimal]] = {key: {} for key in ramps}
    if ramps:  # the won deals of every ramp, summed per rep, currency and close date
        in_a_ramp = or_(
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
                *_summed_amounts(),
            )
            .where(_live(Deal), Deal.outcome == "won", Deal.amount.is_not(None), in_a_ramp)
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
            converted_amount = _converted_sum(converter, group, rep.quota_currency)
            month = by_month[(group.source, group.owner_id)]
            key = (group.close_on.year, group.close_on.month)
            month[key] = month.get(key, Decimal(0)) + converted_amount
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


@metric("win_rate", Filters)
def win_rate(session: Session, period: Period, params: Filters) -> MetricResult:
    """Percent of the deals closed in the period (won or lost) that were won."""

    def closed_in(*columns: Any) -> Select[Any]:
        statement = (
            select(*columns)
            .select_from(Deal)
            .where(
                _live(Deal),
                Deal.outcome.in_(("won", "lost")),
                Deal.close_on >= period.start,
                Deal.close_on < period.end,
            )
        )
        return _filtered(statement, params)

    closed, won = session.execute(
        closed_in(func.count(), func.count(case((Deal.outcome == "won", 1))))
    ).one()
    value = 100.0 * won / closed if closed else None
    records = closed_in(*record_columns(Deal, "deal"))
    return MetricResult(value, "%", records, {"won": won, "closed": closed}, closed)


class CustomerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, description="only this CRM's customers")
    segment: str | None = None


def _customers_at_start(period: Period, params: CustomerParams, *columns: Any) -> Select[Any]:
    """Customers on the period's first day: became one before it, not churned before it."""
    statement = (
        select(*columns)
        .select_from(Customer)
        .where(
            _live(Customer),
            Customer.became_customer_on < period.start,
            or_(Customer.churned_on.is_(None), Customer.churned_on >= period.start),
        )
    )
    if params.source is not None:
        statement = statement.where(Customer.source == params.source)
    if params.segment is not None:
        statement = statement.where(Customer.segment == params.segment)
    return statement


def _churn(
    session: Session, period: Period, params: CustomerParams
) -> tuple[int, int, RecordSelect]:
    """Customers at the period's start, how many of them churned in it, and their records."""
    at_start, churned = session.execute(
        _customers_at_start(
            period, params, func.count(), func.count(case((Customer.churned_on < period.end, 1)))
        )
    ).one()
    return (
        at_start,
        churned,
        _customers_at_start(period, params, *record_columns(Customer, "customer")),
    )


@metric("retention_rate", CustomerParams, records_in_period=False)
def retention_rate(session: Session, period: Period, params: CustomerParams) -> MetricResult:
    """Percent of the customers at the period's start who are still customers at its end."""
    at_start, churned, records = _churn(session, period, params)
    kept = at_start - churned
    value = 100.0 * kept / at_start if at_start else None
    details = {"at_start": at_start, "retained": kept}
    return MetricResult(value, "%", records, details, at_start)


@metric("churn_rate", CustomerParams, records_in_period=False)
def churn_rate(session: Session, period: Period, params: CustomerParams) -> MetricResult:
    """Percent of the customers at the period's start who stopped being customers in it."""
    at_start, churned, records = _churn(session, period, params)
    value = 100.0 * churned / at_start if at_start else None
    details = {"at_start": at_start, "churned": churned}
    return MetricResult(value, "%", records, details, at_start)


class TicketParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, description="only this helpdesk's tickets")
    channel: str | None = None
    priority: str | None = None


def _tickets_created_in(period: Period, params: TicketParams, *columns: Any) -> Select[Any]:
    statement = (
        select(*columns)
        .select_from(Ticket)
        .where(
            _live(Ticket), Ticket.created_at >= period.start_at, Ticket.created_at < period.end_at
        )
    )
    for name in ("source", "channel", "priority"):
        wanted = getattr(params, name)
        if wanted is not None:
            statement = statement.where(getattr(Ticket, name) == wanted)
    return statement


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
    tickets = int(session.scalar(_tickets_created_in(period, params, func.count())) or 0)
    records = _tickets_created_in(period, params, *record_columns(Ticket, "ticket"))
    if not params.per_day:
        return MetricResult(float(tickets), "tickets", records, record_count=tickets)
    cutoff = session.scalar(  # ORDER BY … LIMIT 1, not MAX(): both databases walk the index
        select(Ticket.source_modified_at)
        .where(_live(Ticket))
        .order_by(Ticket.source_modified_at.desc())
        .limit(1)
    )
    end = min(period.end_at, cutoff) if cutoff else period.end_at
    days = (end - period.start_at).total_seconds() / 86400
    value = tickets / days if days > 0 else None
    details = {"tickets": tickets, "days": days}
    return MetricResult(value, "tickets/day", records, details, tickets)


@metric("median_first_response_hours", TicketParams)
def median_first_response_hours(
    session: Session, period: Period, params: TicketParams
) -> MetricResult:
    """Median hours to the first agent reply, for tickets created in the period and answered."""

    wait = Ticket.first_response_ms  # computed by the database, read from the index

    def answered(*columns: Any) -> Select[Any]:
        return _tickets_created_in(period, params, *columns).where(wait.is_not(None))

    # Two passes, no sort of every ticket: count the tickets per minute of wait, then
    # read only the minute(s) holding the middle one or two and order those exactly.
    # The constant is in the SQL, not bound: GROUP BY and ORDER BY then name the very
    # expression of the SELECT, and the database groups and orders in one pass.
    minute = wait // literal_column("60000", Integer)
    per_minute = session.execute(
        answered(minute.label("minute"), func.count()).group_by(minute).order_by(minute)
    ).all()
    tickets = sum(n for _, n in per_minute)
    value = None
    if tickets:
        middle = sorted({(tickets - 1) // 2, tickets // 2})
        wanted: list[int] = []  # the minutes to read, and the position they start at
        start = seen = 0
        for at, n in per_minute:
            if any(seen <= position < seen + n for position in middle):
                start = start if wanted else seen
                wanted.append(at)
            seen += n
        waits = sorted(session.scalars(answered(wait).where(minute.in_(wanted))))
        # seconds, then hours, as timedelta.total_seconds() / 3600 always rounded them
        hours = [waits[position - start] / 1000 / 3600 for position in middle]
        value = float(statistics.median(hours))
    records = answered(*record_columns(Ticket, "ticket"))
    return MetricResult(value, "hours", records, record_count=tickets)


class RatingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = None


def _ratings_in(period: Period, params: RatingParams, *columns: Any) -> Select[Any]:
    statement = (
        select(*columns)
        .select_from(Rating)
        .where(_live(Rating), Rating.rated_at >= period.start_at, Rating.rated_at < period.end_at)
    )
    if params.source is not None:
        statement = statement.where(Rating.source == params.source)
    return statement


@metric("csat", RatingParams)
def csat(session: Session, period: Period, params: RatingParams) -> MetricResult:
    """Percent of answered satisfaction ratings in the period that are good (4-5 of 5 count)."""
    answered = Rating.good.is_not(None)
    ratings, good = session.execute(
        _ratings_in(
            period, params, func.count(), func.count(case((Rating.good.is_(True), 1)))
        ).where(answered)
    ).one()
    value = 100.0 * good / ratings if ratings else None
    records = _ratings_in(period, params, *record_columns(Rating, "rating")).where(answered)
    return MetricResult(value, "%", records, {"good": good, "answered": ratings}, ratings)


@metric("csat_mean_score", RatingParams)
def csat_mean_score(session: Session, period: Period, params: RatingParams) -> MetricResult:
    """Mean score of the 1-5 satisfaction ratings given in the period."""
    scored = (Rating.scale_max == 5, Rating.score.is_not(None))
    ratings, total = session.execute(
        _ratings_in(period, params, func.count(), _exact_sum(Rating.score)).where(*scored)
    ).one()
    value = float(cast(Decimal, _from_units(total, Rating.score)) / ratings) if ratings else None
    records = _ratings_in(period, params, *record_columns(Rating, "rating")).where(*scored)
    return MetricResult(value, "/5", records, record_count=ratings)


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


def _both(
    session: Session, current: MetricResult, baseline: MetricResult, disjoint: bool
) -> tuple[RecordSelect | None, int]:
    """The records of two results, each once, and how many: records that cannot be in
    both are simply put together (and counted by addition); others go through UNION."""
    if current.records is None or baseline.records is None:
        either = current if baseline.records is None else baseline
        return either.records, either.record_count
    if disjoint:
        both = union_all(current.records, baseline.records)
        return both, current.record_count + baseline.record_count
    records = union(current.records, baseline.records)  # customers recur
    return records, count_records(session, records)


@metric("pct_change", ChangeParams, records_in_period=False)
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
        "current_records": current.record_count,
        "baseline": baseline.value,
        "baseline_records": baseline.record_count,
        "baseline_period": baseline_period.label,
        "baseline_period_end": baseline_period.end_at.isoformat(),
        "calendar": period.calendar.model_dump(),
        "unit": current.unit,
    }
    if current.value is None or not baseline.value:
        details["reason"] = "no baseline value" if not baseline.value else "no current value"
        return MetricResult(
            None, "%", current.records, details, current.record_count, current=current
        )
    value = 100.0 * (current.value - baseline.value) / abs(baseline.value)
    disjoint = inner.records_in_period and (
        baseline_period.end <= period.start or period.end <= baseline_period.start
    )
    records, count = _both(session, current, baseline, disjoint)
    return MetricResult(value, "%", records, details, count, current=current)


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
