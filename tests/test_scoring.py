"""Periods, progress and status follow the formulas documented in okr_targets.scoring."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from okr_targets.periods import Period
from okr_targets.scoring import StatusThresholds, progress, score


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
