"""Support metrics: tickets (volume, first-reply waits) and satisfaction ratings."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, Select, case, func, literal_column, select
from sqlalchemy.orm import Session

from okr_targets.models import Rating, Ticket
from okr_targets.periods import Period
from transforms.lineage import record_columns
from transforms.metric import Matches, Metric, MetricError, MetricResult, metric
from transforms.sql import exact_sum, from_units, live, median


class TicketParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Annotated[str | None, Matches("ticket.source", "ticket source")] = Field(
        default=None, description="only this helpdesk's tickets"
    )
    channel: Annotated[str | None, Matches("ticket.channel", "ticket channel")] = None
    priority: Annotated[str | None, Matches("ticket.priority", "ticket priority")] = None


def _tickets_created_in(period: Period, params: TicketParams, *columns: Any) -> Select[Any]:
    statement = (
        select(*columns)
        .select_from(Ticket)
        .where(
            live(Ticket), Ticket.created_at >= period.start_at, Ticket.created_at < period.end_at
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


@metric("ticket_volume", VolumeParams, needs=("ticket.created_at",))
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
        .where(live(Ticket))
        .order_by(Ticket.source_modified_at.desc())
        .limit(1)
    )
    end = min(period.end_at, cutoff) if cutoff else period.end_at
    days = (end - period.start_at).total_seconds() / 86400
    value = tickets / days if days > 0 else None
    details = {"tickets": tickets, "days": days}
    return MetricResult(value, "tickets/day", records, details, tickets)


@metric(
    "median_first_response_hours",
    TicketParams,
    needs=("ticket.created_at", "ticket.first_response_at"),
)
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

    def hours_in(minutes: list[int]) -> list[float]:
        waits = sorted(session.scalars(answered(wait).where(minute.in_(minutes))))
        # seconds, then hours, as timedelta.total_seconds() / 3600 always rounded them
        return [ms / 1000 / 3600 for ms in waits]

    value = median([(at, n) for at, n in per_minute], hours_in)
    records = answered(*record_columns(Ticket, "ticket"))
    return MetricResult(value, "hours", records, record_count=tickets)


class RatingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Annotated[str | None, Matches("rating.source", "rating source")] = None


def _ratings_in(period: Period, params: RatingParams, *columns: Any) -> Select[Any]:
    statement = (
        select(*columns)
        .select_from(Rating)
        .where(live(Rating), Rating.rated_at >= period.start_at, Rating.rated_at < period.end_at)
    )
    if params.source is not None:
        statement = statement.where(Rating.source == params.source)
    return statement


@metric("csat", RatingParams, needs=("rating.rated_at", "rating.good"))
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


@metric(
    "csat_mean_score", RatingParams, needs=("rating.rated_at", "rating.score", "rating.scale_max")
)
def csat_mean_score(session: Session, period: Period, params: RatingParams) -> MetricResult:
    """Mean score of the 1-5 satisfaction ratings given in the period.

    Ratings on another scale (good/bad, ``scale_max`` 1) cannot be averaged as 1-5
    scores: a period that has only those is an error saying so, not "no data"."""
    scored = (Rating.scale_max == 5, Rating.score.is_not(None))
    ratings, total = session.execute(
        _ratings_in(period, params, func.count(), exact_sum(Rating.score)).where(*scored)
    ).one()
    if not ratings:
        _refuse_other_scales(session, period, params)
    value = float(cast(Decimal, from_units(total, Rating.score)) / ratings) if ratings else None
    records = _ratings_in(period, params, *record_columns(Rating, "rating")).where(*scored)
    return MetricResult(value, "/5", records, record_count=ratings)


def _refuse_other_scales(session: Session, period: Period, params: RatingParams) -> None:
    """A MetricError when the period's answered ratings are all on scales other than 1-5."""
    other = session.execute(
        _ratings_in(period, params, Rating.scale_max, func.count())
        .where(Rating.scale_max.is_not(None), Rating.scale_max != 5)
        .group_by(Rating.scale_max)
        .order_by(Rating.scale_max)
    ).all()
    if other:
        scales = ", ".join(
            f"{n:,} on scale_max {scale}{_SCALE_NAMES.get(scale, '')}" for scale, n in other
        )
        raise MetricError(
            f"csat_mean_score needs 1-5 scores (scale_max 5); the period has none, "
            f"but has ratings on another scale: {scales} (csat measures good/bad ratings)"
        )


_SCALE_NAMES = {1: " (good/bad)"}


METRICS: tuple[Metric[Any], ...] = (
    ticket_volume,
    median_first_response_hours,
    csat,
    csat_mean_score,
)
