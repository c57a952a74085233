"""How every view writes a number, a change, a time or an age for a person to read.

The CLI table, the dashboard, the CSV's readable columns, the sync's markdown artifact and
the key-result events (and so the notifications) all format through here, so "1.6M USD"
or "+3.0% vs 2026-Q3" reads the same wherever a leader meets it. Rules:

- values keep their unit, money its currency code; three significant digits from 10,000 up
  (612k USD, 1.6M USD), else up to one decimal (11 customers, 92.4%), two significant
  digits below 1 (0.042);
- a negative number carries the minus sign U+2212 ("−8%"): it is the typographic sign,
  and a spreadsheet does not take a cell starting with it for a formula;
- a change (a ``pct_change`` key result, a value's movement) always shows its sign and,
  when known, the period it is measured against: "+3.0% vs 2026-Q3";
- times are shown in the organisation's time zone, to the minute, with the zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from okr_targets.freshness import age_text

MINUS = "\u2212"
NONE = "—"
"""What a missing number shows."""
_SCALES = ((1e9, "B"), (1e6, "M"), (1e3, "k"))


def _trim(text: str) -> str:
    """Drop a decimal part's trailing zeros: 1.60 → 1.6, 12.0 → 12."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def _magnitude(size: float) -> str:
    """A non-negative number, short: 1.6M, 612k, 9,876.5, 11, 0.042."""
    if size >= 10_000:
        rounded = float(f"{size:.3g}")  # 999,999 → 1.00e6: "1M", never "1000k"
        for scale, suffix in _SCALES:
            if rounded >= scale:
                short = rounded / scale
                places = 2 if short < 10 else 1 if short < 100 else 0
                return _trim(f"{short:,.{places}f}") + suffix
    if size >= 1 or size == 0:
        return _trim(f"{size:,.1f}")
    return f"{size:.2g}"


def _with_unit(number: str, unit: str) -> str:
    """``%`` sticks to the number; any other unit (a currency code, "customers") follows it."""
    return f"{number}%" if unit == "%" else f"{number} {unit}".strip()


def format_value(value: float | None, unit: str, baseline_period: str | None = None) -> str:
    """Short, human numbers with their unit: 1.6M USD, 612k USD, 11 customers, −9.8%.

    A value measured against a baseline period (a ``pct_change`` key result) is a change,
    shown as one: ``format_change``.
    """
    if value is None:
        return NONE
    if baseline_period is not None:
        return format_change(value, unit, baseline_period)
    number = _magnitude(abs(value))
    sign = MINUS if value < 0 and number != "0" else ""
    return _with_unit(sign + number, unit)


def format_change(value: float | None, unit: str = "%", since: str | None = None) -> str:
    """A change with its sign always shown, and the period it is against when known.

    "+3.0% vs 2026-Q3", "−8.0% vs 2026-Q3", "+120k USD". Percent changes keep one decimal
    so small moves do not read as none; zero has no sign ("0.0%").
    """
    if value is None:
        return NONE
    number = f"{abs(value):,.1f}" if unit == "%" else _magnitude(abs(value))
    sign = "" if not number.strip("0.") else "+" if value > 0 else MINUS  # 0.0: no sign
    text = _with_unit(sign + number, unit)
    return f"{text} vs {since}" if since else text


def format_movement(
    old: float | None, new: float | None, unit: str, baseline_period: str | None = None
) -> str:
    """How a value moved since the previous measurement: "+120k USD (was 1.1M USD)".

    A percentage moves by percentage points ("+1.5 pts (was 92.4%)").
    """
    was = format_value(old, unit, baseline_period)
    if old is None:
        return "first value"
    if new is None:
        return f"no value now (was {was})"
    delta = format_change(new - old, "pts" if unit == "%" else unit)
    return f"{delta} (was {was})"


def format_percent(fraction: float | None) -> str:
    """A 0–1 fraction as a whole percentage: 0.35 → "35%"."""
    return NONE if fraction is None else f"{fraction:.0%}".replace("-", MINUS)


def format_progress(progress: float | None, expected: float | None) -> str:
    """Progress against time: "35% done, 50% expected"."""
    done = "no progress yet" if progress is None else f"{format_percent(progress)} done"
    return done if expected is None else f"{done}, {format_percent(expected)} expected"


def format_time(iso: str | None, timezone: str = "UTC") -> str:
    """An ISO timestamp in the organisation's time zone, with the zone: 2026-11-30 04:12 UTC."""
    if not iso:
        return "never"
    moment = datetime.fromisoformat(iso).astimezone(ZoneInfo(timezone))
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def short_time(now: datetime) -> Callable[[str | None, str], str]:
    """Moments short enough for a table cell, in the given zone: "04:30" on ``now``'s day,
    else "Nov 30 04:30" (the table's heading says the zone is the key result's)."""

    def short(iso: str | None, timezone: str) -> str:
        if iso is None:
            return "never"
        zone = ZoneInfo(timezone)
        moment = datetime.fromisoformat(iso).astimezone(zone)
        today = moment.date() == now.astimezone(zone).date()
        return moment.strftime("%H:%M" if today else "%b %d %H:%M")

    return short


def freshness_text(
    checked_at: str | None,
    as_of: str | None,
    timezone: str = "UTC",
    time: Callable[[str | None, str], str] | None = None,
) -> str:
    """When the number was last checked and since when it has had this value.

    "checked 2026-11-30 04:30 UTC · unchanged since 2026-11-30 04:04 UTC": a confirmed,
    unchanged value was checked now, not left behind at its last change. ``time`` formats
    each moment (default ``format_time``); empty before the first check.
    """
    shown = time or format_time
    if as_of is None:
        return f"checked {shown(checked_at, timezone)} · no value yet" if checked_at else ""
    if checked_at is None or datetime.fromisoformat(checked_at) <= datetime.fromisoformat(as_of):
        return f"updated {shown(as_of, timezone)}"
    return f"checked {shown(checked_at, timezone)} · unchanged since {shown(as_of, timezone)}"


def format_age(seconds: float | None) -> str:
    """How old data is: "61 min" up to two hours, then "5 h", from two days "3 days"."""
    if seconds is None:
        return "unknown"
    return age_text(timedelta(seconds=max(seconds, 0.0)))


# --- for machines: the CSV's raw columns -----------------------------------------------------


def iso_seconds(iso: str | None) -> str:
    """An ISO 8601 timestamp to the second, with its offset: 2026-11-27T11:00:00+00:00."""
    return datetime.fromisoformat(iso).isoformat(timespec="seconds") if iso else ""


def raw_number(value: float | None, places: int = 4) -> float | int | None:
    """A number for a spreadsheet: rounded (no 17-digit floats), whole numbers as integers."""
    if value is None:
        return None
    rounded = round(value, places)
    return int(rounded) if rounded.is_integer() else rounded
