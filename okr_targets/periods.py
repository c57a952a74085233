"""OKR periods such as ``2026-Q4``: parsing, bounds and the period before."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

_PATTERN = re.compile(
    r"^(?P<year>\d{4})(?:-(?:Q(?P<quarter>[1-4])|H(?P<half>[12])|(?P<month>\d{2})))?$"
)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, order=True)
class Period:
    """A half-open range of calendar days ``[start, end)`` with its label."""

    start: date
    end: date
    label: str

    @classmethod
    def parse(cls, text: str) -> Period:
        """Read ``2026``, ``2026-H2``, ``2026-Q4`` or ``2026-11``."""
        match = _PATTERN.match(text.strip())
        if not match:
            raise ValueError(
                f"period {text!r} is not one of YYYY, YYYY-H1/H2, YYYY-Q1..Q4 or YYYY-MM"
            )
        year = int(match["year"])
        if match["quarter"]:
            start, months = date(year, 3 * int(match["quarter"]) - 2, 1), 3
        elif match["half"]:
            start, months = date(year, 6 * int(match["half"]) - 5, 1), 6
        elif match["month"]:
            month = int(match["month"])
            if not 1 <= month <= 12:
                raise ValueError(f"period {text!r} has no month {month}")
            start, months = date(year, month, 1), 1
        else:
            start, months = date(year, 1, 1), 12
        return cls(start, _add_months(start, months), text.strip())

    @property
    def months(self) -> int:
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month

    def previous(self) -> Period:
        """The period of the same length just before this one (Q4 → Q3, 2026 → 2025)."""
        start = _add_months(self.start, -self.months)
        return Period.parse(_label(start, self.months))

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, datetime.min.time(), tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, datetime.min.time(), tzinfo=UTC)

    def elapsed_fraction(self, now: datetime) -> float:
        """Share of the period that has passed at ``now``, between 0 and 1."""
        total = (self.end_at - self.start_at).total_seconds()
        done = (now - self.start_at).total_seconds()
        return min(1.0, max(0.0, done / total))

    def __str__(self) -> str:
        return self.label


def _label(start: date, months: int) -> str:
    if months == 12:
        return f"{start.year}"
    if months == 6:
        return f"{start.year}-H{1 if start.month == 1 else 2}"
    if months == 3:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year}-{start.month:02d}"
