"""Periods, progress, status and grades follow the formulas in docs/scoring.md."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okr_targets.periods import Period
from okr_targets.scoring import (
    KINDS,
    LINEAR_KINDS,
    THRESHOLD_KINDS,
    Kind,
    StatusThresholds,
    check_target,
    final_score,
    mark_stale,
    progress,
    score,
)
from okr_targets.status import KeyResultStatus


@pytest.mark.parametrize(
    ("label", "start", "end", "previous"),
    [
        ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1), "2026-Q3"),
        ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1), "2025-Q4"),
        ("2026-H1", date(2026, 1, 1), date(2026, 7, 1), "2025-H2"),
        ("2026-01", date(2026, 1, 1), date(2026, 2, 1), "2025-12"),
        ("2026", date(2026, 1, 1), date(2027, 1, 1), "2025"),
    ],
)
def test_period_bounds_and_previous(label: str, start: date, end: date, previous: str) -> None:
    period = Period.parse(label)
    assert (period.start, period.end) == (start, end)
    assert period.previous().label == previous


@pytest.mark.parametrize("label", ["2026-Q5", "2026-13", "Q4", "2026-q4x", ""])
def test_bad_period_labels_are_refused(label: str) -> None:
    with pytest.raises(ValueError, match="period"):
        Period.parse(label)


def test_elapsed_fraction_is_clamped_and_utc() -> None:
    q4 = Period.parse("2026-Q4")
    assert q4.elapsed_fraction(datetime(2026, 9, 1, tzinfo=UTC)) == 0.0
    assert q4.elapsed_fraction(datetime(2027, 2, 1, tzinfo=UTC)) == 1.0
    halfway = q4.start_at + (q4.end_at - q4.start_at) / 2
    assert q4.elapsed_fraction(halfway) == pytest.approx(0.5)


def test_progress_is_linear_both_ways() -> None:
    assert progress(5, 0, 10) == 0.5
    assert progress(-5, 0, -10) == 0.5  # a decrease: the sign of the span carries direction
    assert progress(15, 0, 10) == 1.5  # the raw ratio keeps over-achievement
    assert progress(80, 100, 60) == 0.5


def test_score_clamps_for_display_and_keeps_raw() -> None:
    q4 = Period.parse("2026-Q4")
    result = score(15, 0, 10, q4, q4.start_at)
    assert (result.progress, result.progress_raw, result.status) == (1.0, 1.5, "on_track")
    behind = score(-3, 0, 10, q4, q4.end_at)
    assert (behind.progress, behind.progress_raw, behind.status) == (0.0, -0.3, "off_track")


@pytest.mark.parametrize(
    ("value", "status"),
    [(50, "on_track"), (41, "on_track"), (39, "at_risk"), (26, "at_risk"), (24, "off_track")],
)
def test_status_against_expected_progress(value: float, status: str) -> None:
    q4 = Period.parse("2026-Q4")
    halfway = q4.start_at + (q4.end_at - q4.start_at) / 2  # expected progress 0.5
    assert score(value, 0, 100, q4, halfway).status == status


def test_thresholds_are_configurable_and_no_value_is_no_data() -> None:
    q4 = Period.parse("2026-Q4")
    halfway = q4.start_at + (q4.end_at - q4.start_at) / 2
    strict = StatusThresholds(at_risk_gap=0.0, off_track_gap=0.05)
    assert score(48, 0, 100, q4, halfway, strict).status == "at_risk"
    assert score(None, 0, 100, q4, halfway).status == "no_data"
    with pytest.raises(ValueError, match="off_track_gap"):
        StatusThresholds(at_risk_gap=0.3, off_track_gap=0.1)


# --- Kinds: worked examples (arithmetic in the comments) ---------------------------------

Q4 = Period.parse("2026-Q4")  # 92 days: 2026-10-01 to 2027-01-01


def _at(fraction: float) -> datetime:
    return Q4.start_at + (Q4.end_at - Q4.start_at) * fraction


@pytest.mark.parametrize(
    ("kind", "value", "baseline", "target", "raw"),
    [
        # increase_to: (150 − 100) / (200 − 100) = 50 / 100 = 0.5
        ("increase_to", 150, 100, 200, 0.5),
        # increase_to, over-achieved: (250 − 100) / 100 = 1.5 (shown 1.0)
        ("increase_to", 250, 100, 200, 1.5),
        # decrease_to: (31 − 40) / (10 − 40) = −9 / −30 = 0.3
        ("decrease_to", 31, 40, 10, 0.3),
        # decrease_to, went up instead: (46 − 40) / (10 − 40) = 6 / −30 = −0.2 (shown 0.0)
        ("decrease_to", 46, 40, 10, -0.2),
        # percent_change measures from 0, whatever the baseline: 5 / 20 = 0.25
        ("percent_change", 5, 999, 20, 0.25),
        # percent_change, a cut: −4 / −10 = 0.4
        ("percent_change", -4, 0, -10, 0.4),
        # no span: reached once on the kind's side of the target
        ("increase_to", 11, 10, 10, 1.0),
        ("increase_to", 9, 10, 10, 0.0),
        ("decrease_to", 9, 10, 10, 1.0),
        ("decrease_to", 11, 10, 10, 0.0),
        # threshold kinds: met → 1, not met → 0 (baseline ignored)
        ("at_least", 95, 0, 95, 1.0),  # 95 ≥ 95
        ("at_least", 94.9, 0, 95, 0.0),  # 94.9 < 95
        ("at_most", 4, 10, 4, 1.0),  # 4 ≤ 4
        ("at_most", 4.5, 10, 4, 0.0),  # 4.5 > 4
        ("milestone", 1, 0, 1, 1.0),  # done
        ("milestone", 0, 0, 1, 0.0),  # not done
    ],
)
def test_progress_of_each_kind(
    kind: Kind, value: float, baseline: float, target: float, raw: float
) -> None:
    assert progress(value, baseline, target, kind=kind) == pytest.approx(raw)
    result = score(value, baseline, target, Q4, Q4.start_at, kind=kind)
    assert result.progress_raw == pytest.approx(raw)
    assert result.progress == pytest.approx(min(1.0, max(0.0, raw)))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        progress(1, 0, 2, kind="grow_to")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "value", "baseline", "target", "grade"),
    [
        ("increase_to", 150, 100, 200, 0.5),  # (150 − 100) / 100 = 0.5
        ("increase_to", 250, 100, 200, 1.0),  # raw 1.5, graded 1.0
        ("increase_to", 80, 100, 200, 0.0),  # raw (80 − 100) / 100 = −0.2, graded 0.0
        ("decrease_to", 19, 40, 10, 0.7),  # (19 − 40) / (10 − 40) = −21 / −30 = 0.7
        ("percent_change", 12, 0, 20, 0.6),  # 12 / 20 = 0.6
        ("at_most", 3, 0, 4, 1.0),  # 3 ≤ 4
        ("at_least", 90, 0, 95, 0.0),  # 90 < 95
        ("milestone", 0, 0, 1, 0.0),
    ],
)
def test_final_score_is_the_graded_progress(
    kind: Kind, value: float, baseline: float, target: float, grade: float
) -> None:
    assert final_score(kind, value, baseline, target) == pytest.approx(grade)


# --- Status of threshold kinds and milestones --------------------------------------------


def test_stay_kinds_are_on_or_off_track() -> None:
    # at_least 95: 96 is met → on_track at any time; 94 is a broken promise → off_track,
    # even on the first day, when expected progress is 0.
    assert score(96, 0, 95, Q4, _at(0.9), kind="at_least").status == "on_track"
    assert score(94, 0, 95, Q4, Q4.start_at, kind="at_least").status == "off_track"
    assert score(4, 0, 4, Q4, _at(0.5), kind="at_most").status == "on_track"
    assert score(5, 0, 4, Q4, _at(0.1), kind="at_most").status == "off_track"


@pytest.mark.parametrize(
    ("elapsed", "status"),
    [
        (0.0, "on_track"),
        (0.75, "on_track"),  # 0.75 ≤ 1 − 0.25 (default off_track_gap)
        (0.8, "at_risk"),  # 0.8 > 0.75 and the period is still open
        (0.99, "at_risk"),
        (1.0, "off_track"),  # the period closed without it
    ],
)
def test_milestone_not_done_warns_late_in_the_period(elapsed: float, status: str) -> None:
    assert score(0, 0, 1, Q4, _at(elapsed), kind="milestone").status == status
    assert score(1, 0, 1, Q4, _at(elapsed), kind="milestone").status == "on_track"


def test_milestone_warning_window_follows_off_track_gap() -> None:
    wide = StatusThresholds(at_risk_gap=0.1, off_track_gap=0.5)
    # 0.6 > 1 − 0.5 = 0.5 → at_risk; with the default window (0.75) it is still on track
    assert score(0, 0, 1, Q4, _at(0.6), wide, kind="milestone").status == "at_risk"
    assert score(0, 0, 1, Q4, _at(0.6), kind="milestone").status == "on_track"


def test_decrease_kind_status_uses_the_same_bands() -> None:
    # halfway, expected 0.5; (34 − 40) / (10 − 40) = 0.2 → gap 0.3 > 0.25 → off_track
    assert score(34, 40, 10, Q4, _at(0.5), kind="decrease_to").status == "off_track"
    # (28 − 40) / (10 − 40) = 0.4 → gap 0.1 ≤ 0.10 → on_track
    assert score(28, 40, 10, Q4, _at(0.5), kind="decrease_to").status == "on_track"


# --- Stale --------------------------------------------------------------------------------


def test_stale_shows_the_reason_and_keeps_the_band() -> None:
    reason = "zendesk data is 3 days old; its freshness limit is 24 hours"
    stale = score(50, 0, 100, Q4, _at(0.5), stale_reason=reason)
    assert (stale.status, stale.stale_reason, stale.underlying_status) == (
        "stale",
        reason,
        "on_track",
    )
    assert stale.progress == 0.5  # the numbers stay available
    fresh = score(50, 0, 100, Q4, _at(0.5))
    assert (fresh.status, fresh.underlying_status, fresh.stale_reason) == (
        "on_track",
        "on_track",
        None,
    )
    held = score(None, 0, 100, Q4, _at(0.5), stale_reason="validation held 12 deals back")
    assert (held.status, held.underlying_status) == ("stale", "no_data")
    assert mark_stale(fresh, "late").status == "stale"
    with pytest.raises(ValueError, match="reason"):
        score(50, 0, 100, Q4, _at(0.5), stale_reason=" ")


def test_check_target_names_a_mismatched_kind() -> None:
    assert check_target("increase_to", 0, 10) is None
    assert check_target("decrease_to", 40, 10) is None
    assert "below" in (check_target("decrease_to", 10, 40) or "")
    assert "above" in (check_target("increase_to", 10, 10) or "")
    assert "non-zero" in (check_target("percent_change", 0, 0) or "")
    assert check_target("milestone", 0, 2) is not None
    assert check_target("at_least", 0, 95) is None


# --- Properties -----------------------------------------------------------------------------

numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
fractions = st.floats(min_value=0, max_value=1)


@given(numbers, numbers, numbers, numbers)
def test_increase_kinds_never_lose_progress_as_value_grows(
    v1: float, v2: float, a: float, b: float
) -> None:
    low, high = sorted((v1, v2))
    baseline, target = sorted((a, b))  # target ≥ baseline: an increase
    assert progress(low, baseline, target, kind="increase_to") <= progress(
        high, baseline, target, kind="increase_to"
    )
    if b != 0:
        up = abs(b)  # percent_change with a positive target grows too
        assert progress(low, 0, up, kind="percent_change") <= progress(
            high, 0, up, kind="percent_change"
        )


@given(numbers, numbers, numbers, numbers)
def test_decrease_kinds_never_gain_progress_as_value_grows(
    v1: float, v2: float, a: float, b: float
) -> None:
    low, high = sorted((v1, v2))
    target, baseline = sorted((a, b))  # target ≤ baseline: a decrease
    assert progress(low, baseline, target, kind="decrease_to") >= progress(
        high, baseline, target, kind="decrease_to"
    )
    if b != 0:
        down = -abs(b)
        assert progress(low, 0, down, kind="percent_change") >= progress(
            high, 0, down, kind="percent_change"
        )


@given(st.sampled_from(KINDS), numbers, numbers, numbers, fractions)
def test_shown_progress_and_grade_stay_in_0_1(
    kind: Kind, value: float, baseline: float, target: float, elapsed: float
) -> None:
    result = score(value, baseline, target, Q4, _at(elapsed), kind=kind)
    assert result.progress is not None
    assert 0.0 <= result.progress <= 1.0
    assert 0.0 <= final_score(kind, value, baseline, target) <= 1.0
    assert result.status in tuple(KeyResultStatus)
    assert result.status != "stale"


@given(st.sampled_from(sorted(THRESHOLD_KINDS)), numbers, numbers, numbers)
def test_threshold_kinds_are_exactly_0_or_1(
    kind: Kind, value: float, baseline: float, target: float
) -> None:
    assert progress(value, baseline, target, kind=kind) in (0.0, 1.0)
    assert final_score(kind, value, baseline, target) in (0.0, 1.0)


@given(st.sampled_from(sorted(LINEAR_KINDS)), numbers, numbers, numbers, fractions)
def test_stale_keeps_what_the_fresh_score_would_say(
    kind: Kind, value: float, baseline: float, target: float, elapsed: float
) -> None:
    fresh = score(value, baseline, target, Q4, _at(elapsed), kind=kind)
    stale = score(value, baseline, target, Q4, _at(elapsed), kind=kind, stale_reason="old")
    assert stale.status == "stale"
    assert stale.underlying_status == fresh.status
    assert (stale.progress, stale.progress_raw) == (fresh.progress, fresh.progress_raw)
