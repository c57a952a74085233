"""Progress, status and period-close score of a key result.

Every formula, its defaults and its source are written out in ``docs/scoring.md``; this is
the short version.

Kinds (``Kind``)
    increase_to, decrease_to, percent_change — linear:
        raw = (value − baseline) / (target − baseline), shown = clamp(raw, 0, 1).
        The sign of (target − baseline) carries the direction; percent_change measures from
        0 (its value already is the % change against the baseline period). When target ==
        baseline: raw = 1 once value is on the target's side (≥ for increase_to, ≤ for
        decrease_to, == for percent_change), else 0.
    at_least, at_most, milestone — threshold: raw = shown = 1 when met, else 0
        (value ≥ target, value ≤ target, value ≥ 1 meaning "done").

Expected progress
    expected = period.elapsed_fraction(now): the share of the period that has passed.

Status (``KeyResultStatus``, okr_targets/status.py)
    linear kinds, gap = expected − shown: on_track when shown ≥ 1 or gap ≤ at_risk_gap
    (default 0.10), at_risk when gap ≤ off_track_gap (default 0.25), else off_track.
    at_least / at_most: met → on_track, not met → off_track.
    milestone: done → on_track; not done → on_track while expected ≤ 1 − off_track_gap,
    at_risk until the period closes, off_track once it has.
    no_data when there is no value; stale (with the reason, the band kept in
    ``underlying_status``) when the caller says the inputs are too old or held back.

Period-close score (``final_score``): shown progress, 0.0–1.0 (Google re:Work grading).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from okr_targets.periods import Period
from okr_targets.status import KeyResultStatus

Kind = Literal["increase_to", "decrease_to", "at_least", "at_most", "percent_change", "milestone"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
LINEAR_KINDS: Final[frozenset[Kind]] = frozenset({"increase_to", "decrease_to", "percent_change"})
THRESHOLD_KINDS: Final[frozenset[Kind]] = frozenset({"at_least", "at_most", "milestone"})


class StatusThresholds(BaseModel):
    """How far behind expected progress a key result may fall before it changes colour."""

    model_config = ConfigDict(extra="forbid")

    # Strict: `yes` is not a gap of 1.0.
    at_risk_gap: Annotated[float, Strict()] = Field(default=0.10, ge=0, le=1)
    off_track_gap: Annotated[float, Strict()] = Field(default=0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> StatusThresholds:
        if self.off_track_gap < self.at_risk_gap:
            raise ValueError("off_track_gap must be at least at_risk_gap")
        return self


@dataclass(frozen=True)
class Score:
    """A key result's progress at ``now``.

    ``status`` is what to show; ``underlying_status`` is always the band the numbers give
    (equal to ``status`` unless the score is stale), so a stale key result keeps its colour
    available without showing it as if it were current.
    """

    progress: float | None
    progress_raw: float | None
    expected: float
    status: KeyResultStatus
    stale_reason: str | None = None
    underlying_status: KeyResultStatus | None = None

    def __post_init__(self) -> None:
        if self.underlying_status is None:
            object.__setattr__(self, "underlying_status", self.status)


def _check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"unknown key-result kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def is_met(kind: Kind, value: float, baseline: float, target: float) -> bool:
    """Whether the value reaches the target (the whole answer for threshold kinds)."""
    _check_kind(kind)
    if kind == "at_least":
        return value >= target
    if kind == "at_most":
        return value <= target
    if kind == "milestone":
        return value >= 1
    return progress(value, baseline, target, kind=kind) >= 1


def progress(value: float, baseline: float, target: float, *, kind: Kind = "increase_to") -> float:
    """The raw progress ratio (unclamped; 1.0 means the target is reached)."""
    _check_kind(kind)
    if kind in THRESHOLD_KINDS:
        return 1.0 if is_met(kind, value, baseline, target) else 0.0
    start = 0.0 if kind == "percent_change" else baseline
    if target == start:
        # No span to divide by: reached or not, on the side the kind names.
        if kind == "increase_to":
            return 1.0 if value >= target else 0.0
        if kind == "decrease_to":
            return 1.0 if value <= target else 0.0
        return 1.0 if value == target else 0.0
    return (value - start) / (target - start)


def clamp01(raw: float) -> float:
    """The shown progress: over-achievement shows as 1, going backwards as 0."""
    return min(1.0, max(0.0, raw))


def final_score(kind: Kind, value: float, baseline: float, target: float) -> float:
    """The 0.0–1.0 grade when the period closes: shown progress of the closing value."""
    return clamp01(progress(value, baseline, target, kind=kind))


def band_status(
    kind: Kind, shown: float, expected: float, thresholds: StatusThresholds | None = None
) -> KeyResultStatus:
    """on_track / at_risk / off_track from shown progress and expected progress."""
    limits = thresholds or StatusThresholds()
    _check_kind(kind)
    if shown >= 1.0:
        return KeyResultStatus.ON_TRACK
    if kind in ("at_least", "at_most"):
        # A "stay" promise is broken as soon as the value is on the wrong side.
        return KeyResultStatus.OFF_TRACK
    if kind == "milestone":
        # No partial progress to compare: warn in the last off_track_gap of the period,
        # red once the period has closed without it.
        if expected >= 1.0:
            return KeyResultStatus.OFF_TRACK
        return (
            KeyResultStatus.ON_TRACK
            if expected <= 1.0 - limits.off_track_gap
            else KeyResultStatus.AT_RISK
        )
    gap = expected - shown
    if gap <= limits.at_risk_gap:
        return KeyResultStatus.ON_TRACK
    if gap <= limits.off_track_gap:
        return KeyResultStatus.AT_RISK
    return KeyResultStatus.OFF_TRACK


def mark_stale(scored: Score, reason: str) -> Score:
    """The same score shown as stale: status "stale", the band kept as underlying_status."""
    if not reason or not reason.strip():
        raise ValueError("a stale score needs a reason the reader can act on")
    return dataclasses.replace(
        scored,
        status=KeyResultStatus.STALE,
        stale_reason=reason,
        underlying_status=scored.underlying_status,
    )


def score(
    value: float | None,
    baseline: float,
    target: float,
    period: Period,
    now: datetime,
    thresholds: StatusThresholds | None = None,
    *,
    kind: Kind = "increase_to",
    stale_reason: str | None = None,
) -> Score:
    """Progress, expected progress and status of a value at ``now``."""
    _check_kind(kind)
    expected = period.elapsed_fraction(now)
    if value is None:
        result = Score(None, None, expected, KeyResultStatus.NO_DATA)
    else:
        raw = progress(value, baseline, target, kind=kind)
        shown = clamp01(raw)
        result = Score(shown, raw, expected, band_status(kind, shown, expected, thresholds))
    return result if stale_reason is None else mark_stale(result, stale_reason)


def check_target(kind: Kind, baseline: float, target: float) -> str | None:
    """Why the baseline/target pair does not fit the kind, or None when it does."""
    _check_kind(kind)
    if kind == "increase_to" and target <= baseline:
        return f"increase_to needs a target above the baseline ({target} <= {baseline})"
    if kind == "decrease_to" and target >= baseline:
        return f"decrease_to needs a target below the baseline ({target} >= {baseline})"
    if kind == "percent_change" and target == 0:
        return "percent_change needs a non-zero target (+ for growth, − for a cut)"
    if kind == "milestone" and target != 1:
        return f"milestone's target is 1 (done), not {target}"
    return None
