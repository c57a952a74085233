"""Where a key result will end the period if its trend so far continues.

Method ``ols_linear_trend``: an ordinary least-squares line through the measurements taken
inside the period up to ``now`` (x = days since the period start, y = value), read off at
the period end:

    slope     = Σ (xᵢ − x̄)(yᵢ − ȳ) / Σ (xᵢ − x̄)²
    projected = ȳ + slope · (x_end − x̄)

It needs two distinct measurement times; otherwise there is no trend and the forecast is
None with the reason. The projected value then goes through the kind's own progress
formula, so "will it hit the target" means the same as the status does. Sources and
limits: ``docs/scoring.md`` ("Forecast").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from okr_targets.periods import Period
from okr_targets.scoring import Kind, clamp01, is_met, progress

METHOD = "ols_linear_trend"
_DAY = 86_400.0


@dataclass(frozen=True)
class Forecast:
    """A projected end-of-period value, or None with ``reason``; always says how."""

    value: float | None
    method: str
    points: int
    reason: str | None = None
    slope_per_day: float | None = None
    progress: float | None = None
    progress_raw: float | None = None
    will_hit: bool | None = None


def forecast(
    history: Sequence[tuple[datetime, float]],
    period: Period,
    now: datetime,
    *,
    kind: Kind = "increase_to",
    baseline: float = 0.0,
    target: float | None = None,
) -> Forecast:
    """Project the value at ``period.end_at`` from the history inside the period.

    Points count when ``period.start_at ≤ measured_at ≤ min(now, period.end_at)``; without a
    target only the value is projected.
    """
    if kind == "milestone":
        return Forecast(None, METHOD, 0, "a milestone is done or not: there is no trend")
    start, end = period.start_at, period.end_at
    last = min(now, end)
    used = [(at, float(value)) for at, value in history if start <= at <= last]
    for at, value in used:
        if not math.isfinite(value):
            raise ValueError(f"measurement at {at.isoformat()} is not a finite number")
    if len({at for at, _ in used}) < 2:
        return Forecast(
            None, METHOD, len(used), "needs measurements at two different times in the period"
        )
    xs = [(at - start).total_seconds() / _DAY for at, _ in used]
    ys = [value for _, value in used]
    x_mean = math.fsum(xs) / len(xs)
    y_mean = math.fsum(ys) / len(ys)
    sxx = math.fsum((x - x_mean) ** 2 for x in xs)
    sxy = math.fsum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    x_end = (end - start).total_seconds() / _DAY
    projected = y_mean + slope * (x_end - x_mean)
    if target is None:
        return Forecast(projected, METHOD, len(used), slope_per_day=slope)
    raw = progress(projected, baseline, target, kind=kind)
    return Forecast(
        projected,
        METHOD,
        len(used),
        slope_per_day=slope,
        progress=clamp01(raw),
        progress_raw=raw,
        will_hit=is_met(kind, projected, baseline, target),
    )
