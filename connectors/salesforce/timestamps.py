"""Salesforce datetime strings (``2026-01-05T10:00:00.000+0000``).

Salesforce always renders datetimes in UTC with millis and a ``+0000`` offset;
keeping one canonical form lets callers compare timestamps as plain strings. Parsing
also takes ``Z`` and other offsets (``+00:00``, ``-0500``), which some APIs and exports use.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_SF_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})",
    re.ASCII,  # "\d" would otherwise take any script's digits
)


def format_sf_datetime(dt: datetime) -> str:
    """Render an aware datetime the way the REST API does (UTC, millis, +0000)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {dt!r}")
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "+0000"


def parse_sf_datetime(s: str) -> datetime:
    """Parse a Salesforce/ISO datetime with an explicit offset into an aware UTC datetime.

    Raises TypeError for a value that is not text, ValueError("not a Salesforce datetime:
    …") for text of another shape, and ValueError with just the reason for one of the right
    shape naming a day that does not exist (2026-02-30), an impossible offset, or an
    instant past the representable range once moved to UTC.
    """
    if not isinstance(s, str):
        raise TypeError(f"not a Salesforce datetime: {s!r} is {type(s).__name__}, not text")
    if _canonical(s):  # what the REST API sends: the standard parser, 40x faster
        try:
            return datetime.fromisoformat(s)
        except ValueError:
            pass  # a day that does not exist: the reason comes from below
    m = _SF_DATETIME.fullmatch(s.strip())
    if m is None:
        raise ValueError(f"not a Salesforce datetime: {s!r}")
    day, clock, frac, offset = m.groups()
    try:
        base = datetime.fromisoformat(f"{day}T{clock}")
    except ValueError as exc:
        raise ValueError(str(exc)) from None  # e.g. "day is out of range for month"
    if frac:
        base += timedelta(microseconds=int(frac.ljust(6, "0")))
    if offset == "Z":
        delta = timedelta(0)
    else:
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise ValueError(f"{offset} is not a UTC offset")
        delta = timedelta(hours=hours, minutes=minutes)
        if offset[0] == "-":
            delta = -delta
    try:
        return (base - delta).replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("out of range once moved to UTC") from None


def _canonical(s: str) -> bool:
    """The REST API's own shape, ``2026-01-05T10:00:00.000+0000`` (ASCII: no other
    script's digits), which :meth:`datetime.fromisoformat` reads as UTC."""
    return len(s) == 28 and s.isascii() and s[10] == "T" and s[19] == "." and s[23:] == "+0000"
