"""Tables whose columns already carry canonical names, to canonical rows.

The generic SQL and file connectors read one table (a database table or view, a CSV or
Excel export) per canonical entity. Its columns are named like the entity's fields (see
``connectors.canonical``), plus an id, an updated-at timestamp and, optionally, a
deleted-at timestamp. Renaming a billing database's columns is the job of a view there;
this module only types the values: each is read as its field's type, and a value
that cannot be is a :class:`MappingError`, so that one record is quarantined with the
reason. Naive timestamps are read in a configured time zone, then stored in UTC.

A date field holding a timestamp is a day: a naive one (Excel keeps dates as midnight
datetimes) is its own date; an aware one (a ``timestamptz`` column, text with an offset)
is the day it falls on in the OKR calendar's zone, which the sync sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from connectors.base import CalendarDays, StreamInfo
from connectors.canonical import IDENTITY, CanonicalRow, EntityField, fields_of

STREAMS = (
    StreamInfo("customers", "customer", "updated_at"),
    StreamInfo("deals", "deal", "updated_at"),
    StreamInfo("reps", "rep", "updated_at"),
    StreamInfo("fx_rates", "fx_rate", "updated_at"),
    StreamInfo("tickets", "ticket", "updated_at"),
    StreamInfo("ratings", "rating", "updated_at"),
    StreamInfo("finance_lines", "finance_line", "updated_at"),
)
"""One table per canonical entity, named after the stream unless configured otherwise."""

TRUE, FALSE = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}


class MappingError(ValueError):
    """A value cannot become its canonical type; the record is quarantined with this."""


@dataclass(frozen=True)
class Columns:
    """What a table must (and may) hold to feed an entity."""

    required: tuple[str, ...]
    optional: tuple[str, ...]

    def missing(self, present: set[str]) -> list[str]:
        return sorted(set(self.required) - present)


def columns_for(entity: str) -> Columns:
    """The entity's own fields: those that may not be None are required, the rest optional."""
    own = [field for field in fields_of(entity) if field.name not in IDENTITY]
    return Columns(
        tuple(f.name for f in own if not f.optional),
        tuple(f.name for f in own if f.optional),
    )


class TableSettings(CalendarDays):
    """What every table-per-entity source configures: identity columns, naive-time zone
    (and, set by the sync, the OKR calendar's zone that aware date values are cut in)."""

    id_column: str = "id"
    updated_at_column: str = "updated_at"
    deleted_at_column: str = Field(
        default="deleted_at", description="read when the table has it: set means deleted"
    )
    timezone: str = Field(
        default="UTC",
        description="IANA zone of timestamps written without an offset (spreadsheets "
        "usually are): they are read as that zone's wall time and stored in UTC",
    )
    page_size: int = Field(default=1000, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
        return value

    def layout(self, source: str) -> Layout:
        return Layout(
            source,
            self.id_column,
            self.updated_at_column,
            self.deleted_at_column,
            ZoneInfo(self.timezone),
            self.calendar_zone,
        )


@dataclass(frozen=True)
class Layout:
    """How a source's tables name their identity columns, and the zone of naive times."""

    source: str
    id_column: str = "id"
    updated_at_column: str = "updated_at"
    deleted_at_column: str = "deleted_at"
    zone: tzinfo = UTC
    calendar_zone: tzinfo = UTC  # where an aware instant in a date field is cut into a day

    def check(self, stream: StreamInfo, present: set[str]) -> list[str]:
        """Columns the table lacks (empty when it can feed the stream)."""
        needed = {self.id_column, self.updated_at_column}
        return sorted(needed - present) + columns_for(stream.entity).missing(present)

    def record_id(self, record: Mapping[str, Any]) -> str:
        value = record.get(self.id_column)
        text = _text(value)
        if text is None:
            raise MappingError(f"{self.id_column} is missing")
        return text

    def updated_at(self, record: Mapping[str, Any]) -> datetime:
        value = self.timestamp(record.get(self.updated_at_column), self.updated_at_column)
        if value is None:
            raise MappingError(
                f"{self.updated_at_column} is missing: the record cannot be read incrementally"
            )
        return value

    def timestamp(self, value: Any, name: str) -> datetime | None:
        """An aware UTC datetime; a naive one (or text without an offset) is in ``zone``."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise MappingError(f"{name} {value!r} is not an ISO 8601 timestamp") from None
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)  # noqa: DTZ001 - zoned below
        if not isinstance(value, datetime):
            raise MappingError(f"{name} {value!r} is not a timestamp")
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        return value.astimezone(UTC)

    def to_canonical(self, entity: str, record: Mapping[str, Any]) -> CanonicalRow:
        """One canonical row; raises MappingError naming the first value that cannot be."""
        row: dict[str, object] = {
            "source": self.source,
            "source_id": self.record_id(record),
            "source_modified_at": self.updated_at(record),
            "deleted_at": self.timestamp(
                record.get(self.deleted_at_column), self.deleted_at_column
            ),
        }
        for field in fields_of(entity):
            if field.name in IDENTITY:
                continue
            value = self._typed(field, record.get(field.name))
            if value is None and not field.optional:
                raise MappingError(f"{field.name} is missing")
            row[field.name] = value
        return cast(CanonicalRow, row)  # each of the entity's fields, read as its type

    def _typed(self, field: EntityField, value: Any) -> Any:
        name = field.name
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if field.kind is datetime:
            return self.timestamp(value, name)
        if field.kind is date:
            return _date(value, name, self.calendar_zone)
        if field.kind is Decimal:
            return _decimal(value, name)
        if field.kind is bool:
            return _bool(value, name)
        if field.kind is int:
            number = _decimal(value, name)
            if number != number.to_integral_value():
                raise MappingError(f"{name} {value!r} is not a whole number")
            return int(number)
        return _text(value)


def _text(value: Any) -> str | None:
    """Text as written; a whole number (Excel reads ids as floats) without ``.0``."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _date(value: Any, name: str, calendar_zone: tzinfo) -> date:
    """A day: a date, a naive datetime's own date, an aware one's day in the calendar zone."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise MappingError(f"{name} {value!r} is not an ISO date (YYYY-MM-DD)") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:  # Excel keeps dates as midnight datetimes
            return value.date()
        return value.astimezone(calendar_zone).date()
    if isinstance(value, date):
        return value
    raise MappingError(f"{name} {value!r} is not an ISO date (YYYY-MM-DD)")


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool):
        raise MappingError(f"{name} {value!r} is not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise MappingError(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise MappingError(f"{name} {value!r} is not a finite number")
    return number


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise MappingError(f"{name} {value!r} is not true or false")
