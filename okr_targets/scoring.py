"""Progress and status of a key result: the formulas, each with where it comes from.

Progress (linear from baseline to target)
    raw = (value - baseline) / (target - baseline);  progress = clamp(raw, 0, 1)
    The same formula serves "increase" and "decrease" key results, because the sign of
    (target - baseline) carries the direction: baseline 0, target -10 (%) and value -5 give
    0.5. The clamped value is shown; the raw ratio is kept (over-achievement shows as > 1).
    Source: the "(check-in − start) / (target − start)" rule used by OKR tools such as
    Feedback4e ("Key result progress calculation") and MetaPulse ("Objective Key Result
    Progress Calculation", linear target), and Google re:Work's 0.0–1.0 grading scale
    ("Set goals with OKRs: grade OKRs").

Expected progress
    expected = time elapsed in the period / length of the period (0 before, 1 after).
    Source: "Expected Progress = Min + (Max − Min) × (Days Passed ÷ Total Days)"
    (Innovation Minds, "How Key Result Progress Is Calculated").

Status, from gap = expected − progress
    on_track   when progress ≥ 1, or gap ≤ at_risk_gap (default 0.10)
    at_risk    when gap ≤ off_track_gap (default 0.25)
    off_track  otherwise
    no_data    when the metric has no value yet (nothing to measure in the period)
    The 10-point tolerance follows Planview's OKR Health ("On Track – within 10% of the
    projected progress, inclusively"; "Behind – 10% or more behind"); the second band splits
    "behind" into at risk and off track. Both gaps are set per OKR file (``status:``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from okr_targets.periods import Period


class StatusThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_risk_gap: float = Field(default=0.10, ge=0, le=1)
    off_track_gap: float = Field(default=0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> StatusThresholds:
        if self.off_track_gap < self.at_risk_gap:
            raise ValueError("off_track_gap must be at least at_risk_gap")
        return self


@dataclass(frozen=True)
class Score:
    progress: float | None
    progress_raw: float | None
    expected: float
    status: str


def progress(value: float, baseline: float, target: float) -> float:
    """The raw linear progress ratio; 1.0 means the target is reached."""
    if target == baseline:
        return 1.0 if value == target else 0.0
    return (value - baseline) / (target - baseline)


def score(
    value: float | None,
    baseline: float,
    target: float,
    period: Period,
    now: datetime,
    thresholds: StatusThresholds | None = None,
) -> Score:
    """Progress, expected progress and status of a value at ``now``."""
    limits = thresholds or StatusThresholds()
    expected = period.elapsed_fraction(now)
    if value is None:
        return Score(None, None, expected, "no_data")
    raw = progress(value, baseline, target)
    shown = min(1.0, max(0.0, raw))
    gap = expected - shown
    if shown >= 1.0 or gap <= limits.at_risk_gap:
        status = "on_track"
    elif gap <= limits.off_track_gap:
        status = "at_risk"
    else:
        status = "off_track"
    return Score(shown, raw, expected, status)
