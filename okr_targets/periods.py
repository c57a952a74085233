"""OKR periods such as ``2026-Q4`` or ``FY2027-Q1`` in the organisation's calendar.

A :class:`Calendar` is the organisation's time zone and the month its fiscal year starts.
A :class:`Period` is a half-open range of local days ``[start, end)``; its instants
``start_at``/``end_at`` are the local midnights converted to UTC, so a timestamp filter
and the share of time elapsed follow the real clock (a daylight-saving day has 23 or 25
hours), while date filters (close dates, start dates) compare local dates.

Labels:

- calendar periods: ``2026``, ``2026-H2``, ``2026-Q4``, ``2026-11``;
- fiscal periods: ``FY2027``, ``FY2027-H1``, ``FY2027-Q1``. A fiscal year is named after
  the calendar year in which it ends: with the fiscal year starting in February,
  ``FY2027`` runs 2026-02-01 .. 2027-02-01 and ``FY2027-Q1`` is February to April 2026.
  With the default start month (January) ``FY2026`` is the same range as ``2026``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

_PATTERN = re.compile(
    r"^(?P<fy>FY)?(?P<year>\d{4})"
    r"(?:-(?:Q(?P<quarter>[1-4])|H(?P<half>[12])|(?P<month>\d{2})))?$"
)
# Years a label may name: far from the ends of ``date`` so that a fiscal year's start, the
# period before and the period after always exist.
YEARS = range(1900, 3000)


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later, clamped to that month's last day.

    This is the calendar-months rule for windows such as "within 4 months of starting":
    2026-01-31 + 4 months is 2026-05-31, 2028-02-29 + 12 months is 2029-02-28.
    """
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"{months} months from {day} is outside the years 1 to 9999")
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin', "
            "'America/New_York' or 'UTC'"
        ) from None


class Calendar(BaseModel):
    """The organisation's time zone and fiscal-year start: what periods are measured in.

    It is the ``calendar:`` section of the OKR file; the default (UTC, January) keeps
    periods as they were before calendars existed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(default="UTC", description="an IANA time zone, e.g. Europe/Berlin")
    fiscal_year_start_month: Annotated[int, Strict()] = Field(
        default=1, description="the month (1-12) the fiscal year starts; FY names its end year"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @field_validator("fiscal_year_start_month")
    @classmethod
    def _a_month(cls, value: int) -> int:
        if not 1 <= value <= 12:
            raise ValueError(
                f"fiscal_year_start_month must be a month number from 1 to 12 "
                f"(2 = February), not {value}"
            )
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches one instance per name

    def midnight(self, day: date) -> datetime:
        """The first instant of the local ``day``, as an aware UTC datetime.

        ``fold=0`` picks the earlier reading of an ambiguous midnight and, for a midnight
        skipped by a daylight-saving jump, the instant of the jump: the day's first instant
        either way.
        """
        return datetime.combine(day, time(), tzinfo=self.zone).astimezone(UTC)

    def local_date(self, moment: datetime) -> date:
        """The local calendar day of an aware instant."""
        if moment.tzinfo is None:
            raise ValueError(f"naive datetime {moment!r}: pass an aware one")
        return moment.astimezone(self.zone).date()

    def fiscal_year_start(self, fiscal_year: int) -> date:
        """First day of ``FY<fiscal_year>``: the fiscal year that ends in that calendar year."""
        first = date(fiscal_year, self.fiscal_year_start_month, 1)
        return first if self.fiscal_year_start_month == 1 else add_months(first, -12)

    def period(self, label: str) -> Period:
        """Read a calendar (``2026-Q4``) or fiscal (``FY2027-Q1``) period label."""
        text = label.strip()
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(
                f"period {label!r} is not one of YYYY, YYYY-H1/H2, YYYY-Q1..Q4, YYYY-MM "
                "or a fiscal period such as FY2027, FY2027-H1/H2, FY2027-Q1..Q4"
            )
        year = int(match["year"])
        if year not in YEARS:
            raise ValueError(f"period {label!r}: the year must be from {YEARS[0]} to {YEARS[-1]}")
        if match["fy"]:
            if match["month"]:
                raise ValueError(
                    f"period {label!r}: fiscal periods are years, halves or quarters "
                    "(FY2027, FY2027-H1/H2, FY2027-Q1..Q4); write a month as YYYY-MM"
                )
            first = self.fiscal_year_start(year)
        else:
            first = date(year, 1, 1)
        if match["quarter"]:
            start, months = add_months(first, 3 * int(match["quarter"]) - 3), 3
        elif match["half"]:
            start, months = add_months(first, 6 * int(match["half"]) - 6), 6
        elif match["month"]:
            month = int(match["month"])
            if not 1 <= month <= 12:
                raise ValueError(f"period {label!r} has no month {month}")
            start, months = date(year, month, 1), 1
        else:
            start, months = first, 12
        return Period(start, add_months(start, months), text, self)

    def label(self, start: date, months: int, fiscal: bool = False) -> str:
        """The label of the period of ``months`` months starting on ``start``."""
        if not fiscal:
            return _calendar_label(start, months)
        offset = (start.month - self.fiscal_year_start_month) % 12
        first = add_months(start, -offset)
        year = first.year + (0 if self.fiscal_year_start_month == 1 else 1)
        if months == 12:
            return f"FY{year}"
        if months == 6:
            return f"FY{year}-H{offset // 6 + 1}"
        if months == 3:
            return f"FY{year}-Q{offset // 3 + 1}"
        return _calendar_label(start, months)


UTC_CALENDAR = Calendar()


@dataclass(frozen=True, order=True)
class Period:
    """A half-open range of local days ``[start, end)`` with its label and calendar."""

    start: date
    end: date
    label: str
    calendar: Calendar = field(default=UTC_CALENDAR)

    @classmethod
    def parse(cls, text: str) -> Period:
        """A period of the default calendar (UTC, fiscal year from January)."""
        return UTC_CALENDAR.period(text)

    @property
    def months(self) -> int:
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month

    @property
    def fiscal(self) -> bool:
        return self.label.startswith("FY")

    def previous(self) -> Period:
        """The period of the same length just before, in the same calendar and label style.

        ``2026-Q1`` → ``2025-Q4``, ``FY2027-Q1`` → ``FY2026-Q4``, ``FY2027`` → ``FY2026``.
        Built from the dates, not by reading its label, so ``1900-Q1`` has one too.
        """
        start = add_months(self.start, -self.months)
        label = self.calendar.label(start, self.months, self.fiscal)
        return Period(start, self.start, label, self.calendar)

    @property
    def start_at(self) -> datetime:
        """The local midnight the period starts at, in UTC."""
        return self.calendar.midnight(self.start)

    @property
    def end_at(self) -> datetime:
        """The local midnight the period ends at (exclusive), in UTC."""
        return self.calendar.midnight(self.end)

    def contains(self, moment: datetime) -> bool:
        """Whether an aware instant falls in ``[start_at, end_at)``."""
        return self.start_at <= moment < self.end_at

    def elapsed_fraction(self, now: datetime) -> float:
        """Share of the period's real time (UTC seconds) that has passed at ``now``, 0 to 1."""
        if now.tzinfo is None:
            raise ValueError(f"naive datetime {now!r}: pass an aware one")
        start, end = self.start_at, self.end_at
        total = (end - start).total_seconds()
        done = (now.astimezone(UTC) - start).total_seconds()
        return min(1.0, max(0.0, done / total))

    def __str__(self) -> str:
        return self.label


def _calendar_label(start: date, months: int) -> str:
    if months == 12:
        return f"{start.year}"
    if months == 6:
        return f"{start.year}-H{1 if start.month == 1 else 2}"
    if months == 3:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year}-{start.month:02d}"
