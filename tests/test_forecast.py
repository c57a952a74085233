"""The end-of-period forecast follows docs/scoring.md ("Forecast"): known series, worked by hand.

Every expected value below is computed in the test from the least-squares formulas (or read
off a printed t table), never from okr_targets.forecast.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okr_targets.forecast import METHOD, MIN_POINTS, MIN_SPAN_DAYS, forecast, value_range
from okr_targets.periods import Period

Q4 = Period.parse("2026-Q4")  # 92 days long
END = 92.0
T_90_3DF = 1.638  # Student's t, 0.90 quantile, 3 degrees of freedom (printed tables: 1.638)
NOT_ENOUGH = "not enough history"


def _day(days: float) -> datetime:
    return Q4.start_at + timedelta(days=days)


def _series(values: list[float], every: float = 1.0) -> list[tuple[datetime, float]]:
    return [(_day(i * every), v) for i, v in enumerate(values)]


def _least_squares(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """slope, intercept and residual standard error, by the textbook formulas."""
    n = len(xs)
    x_mean, y_mean = sum(xs) / n, sum(ys) / n
    sxx = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = y_mean - slope * x_mean
    ssr = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, intercept, math.sqrt(ssr / (n - 2))


def test_a_flat_series_forecasts_its_value_with_no_spread() -> None:
    result = forecast(_series([42.0] * 10), Q4, _day(10), target=50)
    assert result.value == pytest.approx(42.0)
    assert result.slope_per_day == pytest.approx(0.0, abs=1e-12)
    assert (result.low, result.high) == (pytest.approx(42.0), pytest.approx(42.0))
    assert (result.method, result.points, result.reason) == (METHOD, 10, None)
    assert result.will_hit is False  # 42 < 50


def test_a_linear_series_projects_along_its_line() -> None:
    # 10 + 2·day for days 0..9: at day 92, 10 + 184 = 194, every residual 0
    result = forecast(_series([10.0 + 2 * d for d in range(10)]), Q4, _day(9.5), target=200)
    assert result.value == pytest.approx(194.0)
    assert result.slope_per_day == pytest.approx(2.0)
    assert (result.low, result.high) == (pytest.approx(194.0), pytest.approx(194.0))
    assert result.progress == pytest.approx(194 / 200)


def test_a_noisy_series_worked_by_hand() -> None:
    # days 0, 2, 4, 6, 8; values 1, 3, 2, 5, 4: x̄ = 4, ȳ = 3
    # Sxx = 16 + 4 + 0 + 4 + 16 = 40; Sxy = 8 + 0 + 0 + 4 + 4 = 16 → slope 0.4, intercept 1.4
    # at day 92: 1.4 + 0.4 · 92 = 38.2
    # fitted 1.4, 2.2, 3.0, 3.8, 4.6 → residuals −0.4, 0.8, −1, 1.2, −0.6 → SSR 3.6, s² = 1.2
    # half-width = t(0.90, 3) · √1.2 · √(1 + 1/5 + (92 − 4)² / 40) = 1.638 · √1.2 · √194.8
    result = forecast(_series([1, 3, 2, 5, 4], every=2), Q4, _day(9))
    half = T_90_3DF * math.sqrt(1.2) * math.sqrt(194.8)
    assert result.value == pytest.approx(38.2)
    assert result.slope_per_day == pytest.approx(0.4)
    assert result.low == pytest.approx(38.2 - half, rel=1e-3)
    assert result.high == pytest.approx(38.2 + half, rel=1e-3)


def test_a_step_is_fitted_as_a_trend_with_a_wide_interval() -> None:
    values = [0.0] * 5 + [10.0] * 5  # days 0..9
    slope, intercept, spread = _least_squares([float(d) for d in range(10)], values)
    result = forecast(_series(values), Q4, _day(9.5))
    assert slope == pytest.approx(125 / 82.5)  # Sxy = 125, Sxx = 82.5
    assert result.value == pytest.approx(intercept + slope * END)
    assert result.low is not None
    assert result.high is not None
    assert result.high - result.low > 4 * spread  # far wider than the scatter alone


@pytest.mark.parametrize(
    ("history", "points", "seen"),
    [
        ([], 0, "no values yet"),
        (_series([5.0] * 4), 4, "4 days of values over 3 days"),  # too few points
        # six days over five: too short
        (_series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], every=1), 6, "6 days of values over 5 days"),
        # the case: values minutes apart on one day are one day's value
        (
            [(_day(3) + timedelta(minutes=20 * i), 3.4e6 * i) for i in range(12)],
            1,
            "1 day of values",
        ),
    ],
)
def test_too_short_a_history_gives_no_forecast_and_says_so(
    history: list[tuple[datetime, float]], points: int, seen: str
) -> None:
    result = forecast(history, Q4, _day(10), target=10)
    assert (result.value, result.low, result.high, result.will_hit) == (None, None, None, None)
    assert result.points == points
    assert result.reason == (
        f"{NOT_ENOUGH}: {seen}; a forecast needs {MIN_POINTS} days over at least "
        f"{MIN_SPAN_DAYS:.0f}"
    )


def test_one_value_per_day_the_days_last() -> None:
    # two readings a day; only each day's last counts: 0, 1, 2, 3, 4, 5, 6, 7 at 18:00
    history = []
    for d in range(8):
        history += [(_day(d + 0.25), 1000.0), (_day(d + 0.75), float(d))]
    result = forecast(history, Q4, _day(8))
    assert result.points == 8
    assert result.slope_per_day == pytest.approx(1.0)
    assert result.value == pytest.approx(END - 0.75)  # y = x − 0.75 at x = 92


def test_a_rate_cannot_be_forecast_beyond_100_percent() -> None:
    # a win rate rising 2.5 points a day from 20 % would be 250 % at day 92: shown as 100 %
    rising = _series([20.0, 25.0, 30.0, 35.0, 40.0], every=2)
    result = forecast(rising, Q4, _day(9), target=35, baseline=25, bounds=value_range("x", "%"))
    assert (result.value, result.low, result.high) == (100.0, 100.0, 100.0)
    assert result.clamped is True


def test_money_and_counts_cannot_be_forecast_below_zero() -> None:
    # 1000 falling 100 a day would be 1000 − 9200 at day 92: shown as 0
    falling = _series([1000.0 - 100 * d for d in range(8)])
    result = forecast(falling, Q4, _day(8), target=5000, bounds=value_range("increase_to", "USD"))
    assert (result.value, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.progress == 0.0
    assert result.clamped is True


def test_a_series_already_outside_the_range_is_not_clamped() -> None:
    # a custom metric that does go negative (e.g. a net score): its own trend is kept
    history = _series([-10.0, -12.0, -14.0, -16.0, -18.0, -20.0, -22.0, -24.0])
    result = forecast(history, Q4, _day(8), bounds=value_range("increase_to", "points"))
    assert result.value == pytest.approx(-10.0 - 2 * END)
    assert result.clamped is False


@pytest.mark.parametrize(
    ("kind", "unit", "bounds"),
    [
        ("percent_change", "%", (-100.0, None)),  # a change of a non-negative quantity
        ("increase_to", "%", (0.0, 100.0)),  # a rate
        ("at_least", "%", (0.0, 100.0)),
        ("increase_to", "/5", (0.0, 5.0)),  # a score out of 5
        ("increase_to", "USD", (0.0, None)),  # money
        ("decrease_to", "tickets", (0.0, None)),  # a count
        ("decrease_to", "hours", (0.0, None)),
    ],
)
def test_each_metric_has_one_range(kind: str, unit: str, bounds: tuple[float, float]) -> None:
    assert value_range(kind, unit) == bounds


def test_only_points_inside_the_period_and_up_to_now_count() -> None:
    history = [
        (Q4.start_at - timedelta(days=5), 1000.0),  # last quarter
        *_series([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0]),
        (_day(30), 5000.0),  # after now: not known yet
        (Q4.end_at + timedelta(days=1), -7.0),  # next quarter
    ]
    result = forecast(history, Q4, _day(7.5))
    assert result.points == 8
    assert result.value == pytest.approx(10.0 + END)


def test_milestones_have_no_trend_and_bad_values_are_refused() -> None:
    milestone = forecast(_series([0.0] * 9), Q4, _day(10), kind="milestone", target=1)
    assert (milestone.value, milestone.points) == (None, 0)
    assert milestone.reason == "a milestone is done or not: there is no trend"
    with pytest.raises(ValueError, match="finite"):
        forecast([(_day(0), 0), (_day(9), math.nan)], Q4, _day(10))


@given(
    st.floats(min_value=-1e4, max_value=1e4),
    st.floats(min_value=-1e4, max_value=1e4),
    st.lists(st.integers(min_value=0, max_value=91), min_size=MIN_POINTS, unique=True).filter(
        lambda days: max(days) - min(days) >= MIN_SPAN_DAYS
    ),
)
def test_forecast_of_daily_points_on_a_line_reproduces_the_line(
    intercept: float, slope: float, days: list[int]
) -> None:
    history = [(_day(d), intercept + slope * d) for d in days]
    result = forecast(history, Q4, Q4.end_at)
    expected = intercept + slope * END
    assert result.value is not None
    assert result.points == len(days)
    scale = 1 + abs(intercept) + abs(slope) * END
    assert result.value == pytest.approx(expected, rel=1e-6, abs=1e-6 * scale)
