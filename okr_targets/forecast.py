"""Where a key result will end the period if its trend so far continues, or why we cannot say.

Method ``ols_daily_trend``: an ordinary least-squares line (numpy) through one value per
day inside the period up to ``now`` — each day's last confirmed value, in the period's
calendar, so confirmations of an unchanged value count and a sync every few minutes does
not weigh more than a daily one — read off at the period end (x = days since the period
start), with an 80 % prediction interval from the residuals (Student's t, scipy):

    slope, intercept = least squares of y on x          (numpy.polyfit, degree 1)
    projected = intercept + slope · x_end
    s         = √( Σ residual² / (n − 2) )
    half      = t(0.90, n − 2) · s · √( 1 + 1/n + (x_end − x̄)² / Σ (xᵢ − x̄)² )
    interval  = projected ± half

No forecast ("not enough history") with fewer than ``MIN_POINTS`` days or when they span
fewer than ``MIN_SPAN_DAYS``. The value and the interval are clamped into the metric's
range (``value_range``: a rate stays within 0–100 %, a count or an amount of money never
goes below 0), then go through the kind's own progress formula, so "will it hit the
target" means what the status means. Sources and limits: ``docs/scoring.md`` ("Forecast").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import numpy as np

from okr_targets.periods import Period
from okr_targets.scoring import Kind, clamp01, is_met, progress

METHOD = "ols_daily_trend"
MIN_POINTS = 5
"""Days with a value a forecast needs: fewer, and a line says more about noise than trend."""
MIN_SPAN_DAYS = 7.0
"""Days from the first of those to the last: a week, so a weekday pattern is not a trend."""
LEVEL = 0.80
"""Coverage of the interval (as Prophet's default ``interval_width``)."""
_DAY = 86_400.0

Range = tuple[float | None, float | None]


def value_range(kind: str, unit: str) -> Range:
    """The values a key result's number can take, from its kind and unit (one place).

    A percent change of a quantity that is never negative cannot fall below −100 %; any
    other ``%`` is a rate, 0–100; ``/N`` is a score out of N; anything else (a count,
    money, hours, days, tickets a day) is never negative.
    """
    if kind == "percent_change":
        return (-100.0, None)
    if unit == "%":
        return (0.0, 100.0)
    if unit.startswith("/"):
        try:
            return (0.0, float(unit[1:]))
        except ValueError:
            return (0.0, None)
    return (0.0, None)


@dataclass(frozen=True)
class Forecast:
    """A projected end-of-period value with its interval, or None with ``reason``."""

    value: float | None
    method: str
    points: int
    reason: str | None = None
    slope_per_day: float | None = None
    low: float | None = None
    high: float | None = None
    clamped: bool = False  # the line left the metric's range; the value is its edge
    progress: float | None = None
    progress_raw: float | None = None
    will_hit: bool | None = None


def daily_values(
    history: Sequence[tuple[datetime, float]], period: Period, now: datetime
) -> list[tuple[datetime, float]]:
    """Each day's last value inside the period up to ``now``, in the period's calendar."""
    last = min(now, period.end_at)
    by_day: dict[date, tuple[datetime, float]] = {}
    for at, value in sorted(history, key=lambda point: point[0]):
        if not period.start_at <= at <= last:
            continue
        if not math.isfinite(value):
            raise ValueError(f"measurement at {at.isoformat()} is not a finite number")
        by_day[period.calendar.local_date(at)] = (at, float(value))
    return list(by_day.values())


def _clamp(value: float, bounds: Range) -> float:
    low, high = bounds
    if low is not None:
        value = max(low, value)
    if high is not None:
        value = min(high, value)
    return value


def _days_of_values(points: int, span: float) -> str:
    """The history as a reader sees it under the chart: "no values yet", "1 day of values",
    "4 days of values over 3 days" (not "1 day(s) of values over 0 day(s)")."""
    if points == 0:
        return "no values yet"
    if points == 1:
        return "1 day of values"
    return f"{points} days of values over {span:.0f} day{'' if round(span) == 1 else 's'}"


def forecast(
    history: Sequence[tuple[datetime, float]],
    period: Period,
    now: datetime,
    *,
    kind: Kind = "increase_to",
    baseline: float = 0.0,
    target: float | None = None,
    bounds: Range = (None, None),
) -> Forecast:
    """Project the value at ``period.end_at`` from one value per day inside the period.

    ``bounds`` is the metric's range (``value_range``); it applies when every value seen
    lies in it (a custom metric that does go negative is not clamped to 0). Without a
    target only the value is projected.
    """
    if kind == "milestone":
        return Forecast(None, METHOD, 0, "a milestone is done or not: there is no trend")
    used = daily_values(history, period, now)
    start = period.start_at
    xs = np.array([(at - start).total_seconds() / _DAY for at, _ in used])
    ys = np.array([value for _, value in used])
    span = float(xs.max() - xs.min()) if len(used) else 0.0
    if len(used) < MIN_POINTS or span < MIN_SPAN_DAYS:
        return Forecast(
            None,
            METHOD,
            len(used),
            f"not enough history: {_days_of_values(len(used), span)}; "
            f"a forecast needs {MIN_POINTS} days over at least {MIN_SPAN_DAYS:.0f}",
        )
    slope, intercept = (float(c) for c in np.polyfit(xs, ys, 1))
    x_end = (period.end_at - start).total_seconds() / _DAY
    projected = intercept + slope * x_end
    n = len(used)
    residuals = ys - (intercept + slope * xs)
    spread = math.sqrt(float(np.sum(residuals**2)) / (n - 2))
    leverage = 1 + 1 / n + (x_end - float(xs.mean())) ** 2 / float(np.sum((xs - xs.mean()) ** 2))
    # Student's t quantile: scipy.special's stdtrit is what stats.t.ppf computes it with,
    # without a second of importing scipy.stats; loaded only when a forecast has a line.
    from scipy.special import stdtrit

    half = float(stdtrit(n - 2, 0.5 + LEVEL / 2)) * spread * math.sqrt(leverage)
    low, high = projected - half, projected + half
    if all(_clamp(value, bounds) == value for value in ys):
        clamped = _clamp(projected, bounds) != projected
        projected, low, high = (_clamp(v, bounds) for v in (projected, low, high))
    else:
        clamped = False
    shown = Forecast(projected, METHOD, n, None, slope, low, high, clamped)
    if target is None:
        return shown
    raw = progress(projected, baseline, target, kind=kind)
    hit = is_met(kind, projected, baseline, target)
    return replace(shown, progress=clamp01(raw), progress_raw=raw, will_hit=hit)
