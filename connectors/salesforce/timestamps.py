"""Salesforce datetime strings (``2026-01-05T10:00:00.000+0000``).

Salesforce always renders datetimes in UTC with millis and a ``+0000`` offset;
keeping one canonical form lets callers compare timestamps as plain strings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_SF_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?"
    r"(Z|[+-]\d{2}:?\d{2})"
)


def format_sf_datetime(dt: datetime) -> str:
    """Render an aware datetime the way the REST API does (UTC, millis, +0000)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {dt!r}")
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "+0000"


def parse_sf_datetime(s: str) -> datetime:
    """Parse a Salesforce/ISO datetime with an explicit offset into an aware UTC datetime."""
    m = _SF_DATETIME.fullmatch(s.strip())
    if m is None:
        raise ValueError(f"not a Salesforce datetime: {s!r}")
    day, clock, frac, offset = m.groups()
    base = datetime.fromisoformat(f"{day}T{clock}")
    if frac:
        base += timedelta(microseconds=int(frac.ljust(6, "0")))
    if offset == "Z":
        delta = timedelta(0)
    else:
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset[0] == "-":
            delta = -delta
    return (base - delta).replace(tzinfo=UTC)
