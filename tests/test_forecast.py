"""The end-of-period forecast follows docs/scoring.md ("Forecast")."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okr_targets.forecast import METHOD, forecast
from okr_targets.periods import Period

Q4 = Period.parse("2026-Q4")  # 92 days long


def _day(days: float) -> datetime:
    return Q4.start_at + timedelta(days=days)


def test_points_on_a_line_project_along_it() -> None:
    # 10, 20, 30 at days 0, 10, 20: slope 1 a day; at day 92: 10 + 92 = 102
    result = forecast([(_day(0), 10), (_day(10), 20), (_day(20), 30)], Q4, _day(21))
    assert result.value == pytest.approx(102)
    assert result.slope_per_day == pytest.approx(1)
    assert (result.method, result.points, result.reason) == (METHOD, 3, None)


def test_least_squares_worked_example_with_target() -> None:
    # days 0, 10, 20; values 0, 10, 14: x̄ = 10, ȳ = 8
    # Sxx = 100 + 0 + 100 = 200; Sxy = (−10)(−8) + 0·2 + 10·6 = 80 + 60 = 140
    # slope = 140 / 200 = 0.7 a day; projected = 8 + 0.7 · (92 − 10) = 8 + 57.4 = 65.4
    history = [(_day(0), 0.0), (_day(10), 10.0), (_day(20), 14.0)]
    result = forecast(history, Q4, _day(20), baseline=0, target=100)
    assert result.value == pytest.approx(65.4)
    assert result.slope_per_day == pytest.approx(0.7)
    # progress of the projection: (65.4 − 0) / (100 − 0) = 0.654, short of the target
    assert result.progress == pytest.approx(0.654)
    assert result.progress_raw == pytest.approx(0.654)
    assert result.will_hit is False


def test_decrease_forecast_can_hit() -> None:
    # 40 at day 0, 24 at day 46: slope −16/46 a day; at day 92: 40 − 32 = 8
    # decrease_to 10 from 40: (8 − 40) / (10 − 40) = 32 / 30 ≈ 1.067, shown 1.0 → hits
    result = forecast(
        [(_day(0), 40), (_day(46), 24)], Q4, _day(50), kind="decrease_to", baseline=40, target=10
    )
    assert result.value == pytest.approx(8)
    assert result.progress_raw == pytest.approx(32 / 30)
    assert (result.progress, result.will_hit) == (1.0, True)


def test_stay_kind_forecast_says_whether_the_line_holds() -> None:
    # at_least 95: 99 at day 0, 96 at day 46 → 99 − 6 = 93 at day 92 → below the line
    result = forecast([(_day(0), 99), (_day(46), 96)], Q4, _day(46), kind="at_least", target=95)
    assert result.value == pytest.approx(93)
    assert (result.progress, result.progress_raw, result.will_hit) == (0.0, 0.0, False)


def test_only_points_inside_the_period_and_up_to_now_count() -> None:
    history = [
        (Q4.start_at - timedelta(days=5), 1000.0),  # last quarter
        (_day(0), 10.0),
        (_day(10), 20.0),
        (_day(30), 5000.0),  # after now: not known yet
        (Q4.end_at + timedelta(days=1), -7.0),  # next quarter
    ]
    result = forecast(history, Q4, _day(15))
    assert result.points == 2
    assert result.value == pytest.approx(102)


@pytest.mark.parametrize(
    ("history", "points"),
    [
        ([], 0),
        ([(_day(3), 5.0)], 1),
        ([(_day(3), 5.0), (_day(3), 7.0)], 2),  # two values, but no time between them
    ],
)
def test_no_trend_without_two_distinct_times(
    history: list[tuple[datetime, float]], points: int
) -> None:
    result = forecast(history, Q4, _day(10), target=10)
    assert result.value is None
    assert result.will_hit is None
    assert result.points == points
    assert result.reason is not None
    assert result.method == METHOD


def test_milestones_have_no_trend_and_bad_values_are_refused() -> None:
    milestone = forecast([(_day(0), 0), (_day(9), 0)], Q4, _day(10), kind="milestone", target=1)
    assert (milestone.value, milestone.points) == (None, 0)
    assert milestone.reason is not None
    with pytest.raises(ValueError, match="finite"):
        forecast([(_day(0), 0), (_day(9), math.nan)], Q4, _day(10))


@given(
    st.floats(min_value=-1e4, max_value=1e4),
    st.floats(min_value=-1e4, max_value=1e4),
    st.lists(st.integers(min_value=0, max_value=92 * 24), min_size=2, unique=True),
)
def test_forecast_of_points_on_a_line_reproduces_the_line(
    intercept: float, slope: float, hours: list[int]
) -> None:
    history = [(_day(h / 24), intercept + slope * h / 24) for h in hours]
    result = forecast(history, Q4, Q4.end_at)
    expected = intercept + slope * 92
    assert result.value is not None
    assert result.points == len(hours)
    assert result.value == pytest.approx(expected, rel=1e-6, abs=1e-6 * (1 + abs(slope) * 92))
