"""SQL building blocks the metrics share: live rows, owner and team filters, exact sums,
local days, and the median of values counted per group.

Every statement is portable SQL (SQLite and PostgreSQL); where the two differ (days
between dates, time zones) the dialect is asked here, once.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from itertools import pairwise
from typing import Annotated, Any, TypeVar, cast
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    Numeric,
    Select,
    SQLColumnExpression,
    case,
    func,
    select,
    tuple_,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.orm.util import AliasedClass

from okr_targets.models import Deal, MirrorRecord, Rep
from okr_targets.periods import Calendar
from transforms.metric import Matches

T = TypeVar("T")
K = TypeVar("K")
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


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


def shared(session: Session, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, or what it returned for the same key within :func:`shared_results`."""
    results = session.info.get("metric_results")
    if results is None:
        return compute()
    if key not in results:
        results[key] = compute()
    return cast(T, results[key])


def live(model: type[MirrorRecord] | AliasedClass[Any]) -> ColumnElement[bool]:
    """The mirror rows not tombstoned."""
    return model.deleted_at.is_(None)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# --- owner and team ----------------------------------------------------------------------


OWNER = Matches("rep.email", "rep's e-mail", ignore_case=True)
TEAM = Matches("rep.team", "team")
"""What an ``owner`` or ``team`` must match: built-in and SQL metrics check them alike."""


class Filters(BaseModel):
    """Narrow a metric to one rep (by e-mail) or one team, for team and personal OKRs."""

    model_config = ConfigDict(extra="forbid")

    owner: Annotated[str | None, OWNER] = Field(
        default=None, description="the rep's e-mail address"
    )
    team: Annotated[str | None, TEAM] = None


def owned(statement: AnySelect, filters: Filters) -> AnySelect:
    """Keep the deals owned by the rep or team the filters name, if any.

    The owners are looked up first (``IN`` a SELECT of the few matching reps), so the
    deals are filtered from the index they are read from, never joined row by row.
    """
    if filters.owner is None and filters.team is None:
        return statement
    return statement.where(tuple_(Deal.source, Deal.owner_id).in_(owners(filters)))


def owners(filters: Filters) -> Select[str, str]:
    """The (source, id) of the reps the filters name."""
    chosen = select(Rep.source, Rep.source_id)
    if filters.owner is not None:
        chosen = chosen.where(func.lower(Rep.email) == filters.owner.lower())
    if filters.team is not None:
        chosen = chosen.where(Rep.team == filters.team)
    return chosen


# --- exact sums --------------------------------------------------------------------------

Money = InstrumentedAttribute[Decimal | None]


def _scale(money: Money) -> int:
    return _column_scale(cast(type[MirrorRecord], money.class_), money.key)


@cache  # called per summed group: reading the type through the ORM attribute is slow
def _column_scale(model: type[MirrorRecord], key: str) -> int:
    return int(cast(Numeric[Decimal], model.__table__.c[key].type).scale or 0)


def exact_sum(money: Money) -> ColumnElement[int]:
    """SUM of a decimal column in its smallest unit (cents of a cent), as an integer.

    SQLite keeps NUMERIC values as floating point; summing whole units is exact there too.
    """
    return func.sum(sql_cast(func.round(money * 10 ** _scale(money)), BigInteger))


def from_units(total: int | None, money: Money) -> Decimal | None:
    """An :func:`exact_sum` back in the column's unit, exactly."""
    return None if total is None else Decimal(total).scaleb(-_scale(money))


# --- days --------------------------------------------------------------------------------


def days_between(
    dialect_name: str, earlier: SQLColumnExpression[Any], later: SQLColumnExpression[Any]
) -> ColumnElement[int]:
    """Whole days from one SQL date to another."""
    if dialect_name == "sqlite":
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


def local_date(
    session: Session, calendar: Calendar, moment: SQLColumnExpression[datetime], rows: Select[Any]
) -> ColumnElement[Any]:
    """The local day (in the calendar's zone) of a timestamp column, as an SQL date.

    PostgreSQL converts with its own time-zone data. SQLite adds the UTC offset: a fixed
    zone's (UTC, Etc/…), else one chosen by a CASE over the offset changes between the
    earliest and latest ``moment`` of ``rows``.
    """
    if dialect(session) != "sqlite":
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


# --- medians -----------------------------------------------------------------------------


def median(
    counts: Sequence[tuple[K, int]], values_in: Callable[[list[K]], list[float]] | None = None
) -> float | None:
    """The median of values counted per group: ``counts`` are (group, how many) pairs in
    the values' order, as SQL's GROUP BY … ORDER BY gives them; None when there are none.

    Without ``values_in`` each group is its value (days to close, counted per day). With
    it, a group holds many values (waits, counted per minute) and ``values_in(groups)``
    reads, in order, the values of only the one or two groups holding the middle, so no
    value but those is ever sorted or read.
    """
    total = sum(n for _, n in counts)
    if not total:
        return None
    middle = sorted({(total - 1) // 2, total // 2})
    held: list[tuple[K, int]] = []  # the groups holding the middle, and where each starts
    seen = 0
    for group, n in counts:
        if any(seen <= position < seen + n for position in middle):
            held.append((group, seen))
        seen += n
    if values_in is None:
        picked: list[Any] = [
            next(group for group, start in reversed(held) if start <= position)
            for position in middle
        ]
    else:
        values, first = values_in([group for group, _ in held]), held[0][1]
        picked = [values[position - first] for position in middle]
    return float(statistics.median(picked))
