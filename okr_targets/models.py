"""The OKR store's tables: OKR definitions, measurements, sync bookkeeping and the record mirror.

Every timestamp column is timezone-aware and holds UTC. Money columns keep their currency
in a sibling column. The mirror keeps one canonical copy of every record a connector has
seen, keyed by ``(source, source_id)``; deletes are tombstones (``deleted_at``), never
physical deletes, so a measurement's record ids stay resolvable.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    column,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: okr-sync stores aware UTC timestamps")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""Characters no store's text holds: NUL (PostgreSQL refuses it) and lone surrogates (no
UTF-8 encoding). The validator quarantines mirror rows holding them (expectations/)."""


def storable(text: str) -> str:
    """``text`` with what no store holds replaced by U+FFFD: for the quarantine's own texts
    (an id, a reason), which must be written even when the record's are not."""
    return UNSTORABLE.sub("\ufffd", text)


Timestamp = Annotated[datetime, mapped_column(UTCDateTime())]
Money = Annotated[Decimal, mapped_column(Numeric(18, 4, asdecimal=True))]
Currency = Annotated[str, mapped_column(String(3))]
Id = Annotated[str, mapped_column(String(64))]
Json = Annotated[Any, mapped_column(JSON())]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- OKRs as configured -------------------------------------------------------------


class Objective(Base):
    __tablename__ = "objectives"

    id: Mapped[Id] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("objectives.id"), default=None)
    weight: Mapped[float] = mapped_column(default=1.0)  # in its parent's roll-up
    updated_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """When it left the OKR file: kept for history and ``explain``, out of live views."""

    key_results: Mapped[list[KeyResult]] = relationship(back_populates="objective")


class KeyResult(Base):
    __tablename__ = "key_results"

    id: Mapped[Id] = mapped_column(primary_key=True)
    objective_id: Mapped[str] = mapped_column(ForeignKey("objectives.id"))
    title: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(100))
    params: Mapped[Json] = mapped_column(default=dict)
    baseline: Mapped[float]
    target: Mapped[float]
    direction: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(20), default="increase_to")
    weight: Mapped[float] = mapped_column(default=1.0)  # in its objective's roll-up
    # The organisation's calendar (time zone, fiscal-year start) its period is read in, and
    # how old each source's data may be (seconds, by source and "default") before stale.
    calendar: Mapped[Any] = mapped_column(JSON(), default=None, nullable=True)
    freshness: Mapped[Any] = mapped_column(JSON(), default=None, nullable=True)
    unit: Mapped[str] = mapped_column(String(32))
    at_risk_gap: Mapped[float] = mapped_column(default=0.10)
    off_track_gap: Mapped[float] = mapped_column(default=0.25)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The entities its metric reads (from ``Metric.needs``): a sync's trouble with a stream
    # of one of them is this key result's trouble. None: not declared (a custom metric).
    reads: Mapped[Any] = mapped_column(JSON(), default=None, nullable=True)
    final_score: Mapped[float | None] = mapped_column(default=None)  # 0.0–1.0 once closed
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """When it left the OKR file: kept for history and ``explain``, out of live views."""

    objective: Mapped[Objective] = relationship(back_populates="key_results")


class Organisation(Base):
    """The OKR file's organisation-wide words: the company's name and its ``people:`` map.

    One row (``id`` 1), replaced by each sync that saves the file. ``people`` maps a
    lower-case e-mail to ``{"name": …, "team": … or null}``; it wins over the CRM's reps
    when an owner's e-mail is shown as a name (``okr_targets/people.py``).
    """

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    company: Mapped[str] = mapped_column(Text)
    people: Mapped[Json] = mapped_column(default=dict)
    updated_at: Mapped[Timestamp] = mapped_column(default=utcnow)


# --- Sync bookkeeping -----------------------------------------------------------------


class SyncRun(Base):
    """One sync: when, how it ended, why, and what each stream did."""

    __tablename__ = "sync_runs"

    id: Mapped[Id] = mapped_column(primary_key=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    started_at: Mapped[Timestamp]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    status: Mapped[str] = mapped_column(String(16))  # a RunStatus (okr_targets/status.py)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    stream_counts: Mapped[Json] = mapped_column(default=dict)
    details: Mapped[Json] = mapped_column(default=dict)  # customers matched, findings, …
    code_version: Mapped[str] = mapped_column(String(64))


class Cursor(Base):
    """How far each stream has been read; committed with the rows it covers."""

    __tablename__ = "cursors"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Timestamp]
    token: Mapped[str | None] = mapped_column(Text, default=None)
    last_id: Mapped[str | None] = mapped_column(String(64), default=None)
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"))
    updated_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class QuarantinedRow(Base):
    """A record kept out of the mirror because it failed an expectation."""

    __tablename__ = "quarantined_rows"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"), index=True)
    entity: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str | None] = mapped_column(String(64))
    expectations: Mapped[Json]
    record: Mapped[Json]
    quarantined_at: Mapped[Timestamp] = mapped_column(default=utcnow)


# --- Measurements ---------------------------------------------------------------------


class Measurement(Base):
    """One value of one key result; a time series, never updated in place."""

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key_result_id: Mapped[str] = mapped_column(ForeignKey("key_results.id"))
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"))
    measured_at: Mapped[Timestamp]
    value: Mapped[float | None]
    unit: Mapped[str] = mapped_column(String(32))
    progress: Mapped[float | None]
    progress_raw: Mapped[float | None]
    expected_progress: Mapped[float]
    status: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(100))
    params: Mapped[Json]
    details: Mapped[Json]
    record_count: Mapped[int]
    code_version: Mapped[str] = mapped_column(String(64))
    # Source data as of: changes at the sources after this moment are not in the value.
    data_cutoff: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # A value of a closed period that changed: the measurement this one corrects.
    restates_id: Mapped[int | None] = mapped_column(ForeignKey("measurements.id"), default=None)

    __table_args__ = (Index("ix_measurements_kr_time", "key_result_id", "measured_at"),)


class DailyValue(Base):
    """A key result's last confirmed value of each day, in its calendar: what forecasts fit.

    A measurement row marks a change; this keeps one point a day whether the value changed
    or was confirmed unchanged, so a steady key result has a history too, and a sync every
    few minutes still gives one point a day, not a cloud of points minutes apart.
    """

    __tablename__ = "key_result_days"

    key_result_id: Mapped[str] = mapped_column(ForeignKey("key_results.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    value: Mapped[float | None]
    checked_at: Mapped[Timestamp]  # the day's last measuring pass
    data_cutoff: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"))


class Baseline(Base):
    """A baseline computed once (e.g. "vs previous quarter") and never silently recomputed.

    Keyed by what was asked (metric, parameters, period, calendar), kept with that query,
    the value, how many records it came from, and when: later changes to the baseline
    period's data are reported as a finding beside it, never folded into it.
    """

    __tablename__ = "baselines"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(String(100))
    params: Mapped[Json]
    period: Mapped[str] = mapped_column(String(16))
    query: Mapped[Json]  # everything needed to compute it again, for explain
    value: Mapped[float | None]
    record_count: Mapped[int]
    computed_at: Mapped[Timestamp]
    run_id: Mapped[str | None] = mapped_column(ForeignKey("sync_runs.id"), default=None)


class SourceRead(Base):
    """When each source was last read in full: a key result's inputs are that fresh."""

    __tablename__ = "source_reads"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    read_at: Mapped[Timestamp]  # the data cutoff of that read
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"))


class MeasurementRecord(Base):
    """Which mirror records a measurement was computed from (its lineage)."""

    __tablename__ = "measurement_records"

    measurement_id: Mapped[int] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_id: Mapped[Id] = mapped_column(primary_key=True)


# --- The canonical record mirror --------------------------------------------------------


LIVE_ONLY: dict[str, Any] = {
    "sqlite_where": text("deleted_at IS NULL"),
    "postgresql_where": text("deleted_at IS NULL"),
}
"""A partial index of live rows: what every metric reads (tombstones never count)."""
PRICED_ONLY: dict[str, Any] = {
    dialect: text("deleted_at IS NULL AND amount IS NOT NULL")
    for dialect in ("sqlite_where", "postgresql_where")
}
"""A partial index of live deals that have an amount."""


class MirrorRecord(Base):
    """Columns every canonical record carries, whatever system it came from."""

    __abstract__ = True

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_id: Mapped[Id] = mapped_column(primary_key=True)
    source_modified_at: Mapped[Timestamp]
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    run_id: Mapped[str] = mapped_column(String(64))


class Customer(MirrorRecord):
    __tablename__ = "mirror_customers"

    name: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    segment: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[Timestamp]
    became_customer_on: Mapped[date | None]
    churned_on: Mapped[date | None]
    domain: Mapped[str | None] = mapped_column(String(200), default=None)
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)

    __table_args__ = (  # retention and churn: who was a customer on a period's first day
        Index(
            "ix_mirror_customers_live_since",
            *("became_customer_on", "churned_on", "source", "segment", "source_id"),
            **LIVE_ONLY,
        ),
    )


class Deal(MirrorRecord):
    __tablename__ = "mirror_deals"

    name: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(64), index=True)
    amount: Mapped[Money | None]
    currency: Mapped[Currency]
    amount_home: Mapped[Money | None] = mapped_column(default=None)  # the source's own conversion
    home_currency: Mapped[Currency | None] = mapped_column(default=None)
    stage: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(8))  # open | won | lost
    pipeline: Mapped[str | None] = mapped_column(String(100))
    deal_type: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[Timestamp]
    close_on: Mapped[date | None]  # the close date (expected while open)

    __table_args__ = (
        # The deal metrics read live deals by outcome and close date; every column they
        # filter, group or sum is in the index, so the database answers from it alone.
        Index(
            "ix_mirror_deals_live_closed",
            *("outcome", "close_on", "source", "source_id", "owner_id", "customer_id"),
            *("currency", "home_currency", "amount", "amount_home", "created_at"),
            **LIVE_ONLY,
        ),
        # a customer's earlier won deals: is this one their first (new_customers_won)?
        Index(
            "ix_mirror_deals_live_customer_won",
            *("source", "customer_id", "outcome", "close_on", "source_id"),
            **LIVE_ONLY,
        ),
        # the priced deals per currency, read in order (the unconvertible-currency check)
        Index(
            "ix_mirror_deals_live_currency",
            *("source", "currency", "amount_home"),
            **PRICED_ONLY,
        ),
    )


class Rep(MirrorRecord):
    __tablename__ = "mirror_reps"

    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(200), index=True)
    team: Mapped[str | None] = mapped_column(String(100))
    started_on: Mapped[date | None]
    monthly_quota: Mapped[Money | None]
    quota_currency: Mapped[Currency | None]
    active: Mapped[bool]


class FxRate(MirrorRecord):
    """How many units of ``currency`` one unit of the source's corporate currency buys.

    Dated rates (Salesforce DatedConversionRate) hold for ``[valid_from, valid_to)``;
    static ones (CurrencyType, rates from the OKR file) leave both empty.
    """

    __tablename__ = "mirror_fx_rates"

    currency: Mapped[Currency]
    rate: Mapped[Decimal] = mapped_column(Numeric(18, 9, asdecimal=True))
    is_corporate: Mapped[bool]
    valid_from: Mapped[date | None] = mapped_column(default=None)
    valid_to: Mapped[date | None] = mapped_column(default=None)


class MillisecondsBetween(FunctionElement[int]):
    """Whole milliseconds from one timestamp to a later one, in SQL that may define a
    generated column: julianday() keeps SQLite's millisecond precision exactly."""

    type = BigInteger()
    name = "milliseconds_between"
    inherit_cache = True


@compiles(MillisecondsBetween, "sqlite")
def _milliseconds_sqlite(element: MillisecondsBetween, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(round((julianday({end}) - julianday({start})) * 86400000) AS INTEGER)"


@compiles(MillisecondsBetween, "postgresql")
def _milliseconds_postgresql(element: MillisecondsBetween, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(round(EXTRACT(EPOCH FROM {end} - {start}) * 1000) AS BIGINT)"


class Ticket(MirrorRecord):
    """A support request (Zendesk ticket, Salesforce Case, HubSpot ticket)."""

    __tablename__ = "mirror_tickets"
    __table_args__ = (
        # The ticket metrics' rows by creation time, with what they filter and measure.
        Index(
            "ix_mirror_tickets_live_created",
            *("created_at", "first_response_ms", "source", "source_id", "channel", "priority"),
            **LIVE_ONLY,
        ),
        # The data's cutoff of ticket_volume per day: the newest change, read off the index.
        Index("ix_mirror_tickets_source_modified_at", "source_modified_at"),
    )

    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # new | open | pending | solved | closed; None for a deleted ticket (Zendesk drops it)
    status: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[Timestamp]
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The wait for the first reply, computed by the database (virtual on SQLite, stored on
    # PostgreSQL) and kept in the index: the median reads integers, computes nothing per row.
    first_response_ms: Mapped[int | None] = mapped_column(
        BigInteger(),
        Computed(MillisecondsBetween(column("created_at"), column("first_response_at"))),
    )


class Rating(MirrorRecord):
    """A satisfaction rating: good/bad (``scale_max`` 1) or a 1–5 score (``scale_max`` 5).

    ``customer_id`` is None for Zendesk ratings: Zendesk's rating names its ticket, not an
    organization, so the customer is the ticket's (join ``Ticket`` on source and ticket_id).
    """

    __tablename__ = "mirror_ratings"

    ticket_id: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2, asdecimal=True))
    scale_max: Mapped[int | None]  # None: a survey offered but not answered
    good: Mapped[bool | None]
    rated_at: Mapped[Timestamp]

    __table_args__ = (  # the rating metrics' rows by time, with what they count and average
        Index(
            "ix_mirror_ratings_live_rated",
            *("rated_at", "good", "scale_max", "score", "source", "source_id"),
            **LIVE_ONLY,
        ),
    )


class FinanceLine(MirrorRecord):
    """A booked ledger line: revenue ``amount`` and direct ``cost`` in one ``currency``.

    Gross profit is ``amount - cost``; a cost-only line has ``amount`` 0, a credit note a
    negative ``amount``. ``customer_id`` names the CRM's customer (or the source's own,
    linked through ``customer_links``).
    """

    __tablename__ = "mirror_finance_lines"

    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    segment: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[Money]
    cost: Mapped[Money]
    currency: Mapped[Currency]
    booked_on: Mapped[date]
    description: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (  # the finance metrics' rows by day, with what they sum and filter
        Index(
            "ix_mirror_finance_lines_live_booked",
            *("booked_on", "source", "currency", "amount", "cost", "segment", "source_id"),
            **LIVE_ONLY,
        ),
    )


for _key in (Customer.domain, Customer.external_id, Customer.source_id):
    # Matching compares keys case-insensitively and looks up only the keys that changed.
    Index(
        f"ix_mirror_customers_live_lower_{_key.key}",
        func.lower(_key),
        Customer.source,
        Customer.source_id,
        **LIVE_ONLY,
    )


class CustomerLink(Base):
    """A customer record of one system matched to the primary CRM's customer."""

    __tablename__ = "customer_links"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_id: Mapped[Id] = mapped_column(primary_key=True)
    crm_source: Mapped[str] = mapped_column(String(32))
    crm_id: Mapped[str] = mapped_column(String(64), index=True)
    matched_by: Mapped[str] = mapped_column(String(32))


class CustomerLinkBuild(Base):
    """The run whose sync last brought ``customer_links`` up to date, and the matching rule
    it used: the next sync matches again only the customers changed since that run began."""

    __tablename__ = "customer_link_builds"

    crm_source: Mapped[str] = mapped_column(String(32), primary_key=True)
    match_by: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"))


def supplied_columns(model: type[Base] | Table) -> list[Column[Any]]:
    """The columns a writer supplies: all but those the database computes."""
    table = model if isinstance(model, Table) else cast(Table, model.__table__)
    return [column for column in table.columns if column.computed is None]


MIRROR: dict[str, type[MirrorRecord]] = {
    "customer": Customer,
    "deal": Deal,
    "rep": Rep,
    "fx_rate": FxRate,
    "ticket": Ticket,
    "rating": Rating,
    "finance_line": FinanceLine,
}
"""Canonical entity name → its mirror table. Connectors emit dicts with these columns."""

METRIC_TABLES: tuple[str, ...] = (
    *(model.__tablename__ for model in MIRROR.values()),
    CustomerLink.__tablename__,
)
"""What a custom metric may read: the mirror, and which customer of each system is which
primary CRM customer (to join tickets to CRM customers, as the built-in metrics do). Runs,
OKRs, measurements and the quarantine are the sync's, not the metric's."""
