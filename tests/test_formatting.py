"""How numbers, changes, times and ages read (okr_targets/formatting.py).

Every expected string is written out by hand from the rules in the module's docstring,
never produced by calling the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from okr_targets.formatting import (
    format_age,
    format_change,
    format_movement,
    format_percent,
    format_progress,
    format_time,
    format_value,
    freshness_text,
    iso_seconds,
    raw_number,
    short_time,
)

M = "\u2212"  # the minus sign


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1_612_345.0, "USD", "1.61M USD"),
        (1_600_000.0, "USD", "1.6M USD"),
        (1_000_000.0, "USD", "1M USD"),
        (999_999.0, "EUR", "1M EUR"),  # rounds up to the next scale, never "1000k"
        (612_345.67, "USD", "612k USD"),
        (12_345.0, "tickets", "12.3k tickets"),
        (10_000.0, "USD", "10k USD"),
        (9_876.54, "USD", "9,876.5 USD"),
        (11.0, "customers", "11 customers"),
        (92.4, "%", "92.4%"),
        (92.44, "%", "92.4%"),
        (26.0, "%", "26%"),
        (-9.8, "%", f"{M}9.8%"),
        (-2.920137737087879, "%", f"{M}2.9%"),
        (-1_250_000.0, "USD", f"{M}1.25M USD"),
        (0.042, "", "0.042"),
        (0.0, "USD", "0 USD"),
        (-0.01, "%", f"{M}0.01%"),  # below 1: two significant digits
        (-0.0, "%", "0%"),  # zero has no sign
        (1.0, "", "1"),  # a milestone done
        (2_500_000_000.0, "USD", "2.5B USD"),
        (None, "USD", "—"),
    ],
)
def test_values_read_short_with_their_unit(value: float | None, unit: str, expected: str) -> None:
    assert format_value(value, unit) == expected


@pytest.mark.parametrize(
    ("value", "since", "expected"),
    [
        (3.0, "2026-Q3", "+3.0% vs 2026-Q3"),  # the example: 3 against a target of -8
        (-8.0, "2026-Q3", f"{M}8.0% vs 2026-Q3"),
        (-2.920137737087879, "2026-Q3", f"{M}2.9% vs 2026-Q3"),
        (12.345, "2026-10", "+12.3% vs 2026-10"),
        (0.0, "2026-Q3", "0.0% vs 2026-Q3"),
        (0.04, "2026-Q3", "0.0% vs 2026-Q3"),  # shows as zero: no sign
        (1234.5, "2025", "+1,234.5% vs 2025"),
        (None, "2026-Q3", "—"),
    ],
)
def test_a_change_key_result_shows_its_sign_and_baseline_period(
    value: float | None, since: str, expected: str
) -> None:
    assert format_value(value, "%", since) == expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (3.0, "%", "+3.0%"),
        (-0.25, "%", f"{M}0.2%"),  # round half to even: 0.25 → 0.2
        (120_000.0, "USD", "+120k USD"),
        (-4.0, "customers", f"{M}4 customers"),
        (1.5, "pts", "+1.5 pts"),
    ],
)
def test_a_change_without_a_period(value: float, unit: str, expected: str) -> None:
    assert format_change(value, unit) == expected


@pytest.mark.parametrize(
    ("old", "new", "unit", "since", "expected"),
    [
        (1_100_000.0, 1_220_000.0, "USD", None, "+120k USD (was 1.1M USD)"),
        (3_000_000.0, 2_500_000.0, "USD", None, f"{M}500k USD (was 3M USD)"),
        (92.4, 93.9, "%", None, "+1.5 pts (was 92.4%)"),  # a percentage moves by points
        (1.0, 3.0, "%", "2026-Q3", "+2 pts (was +1.0% vs 2026-Q3)"),
        (None, 3.0, "%", None, "first value"),
        (5.0, None, "customers", None, "no value now (was 5 customers)"),
    ],
)
def test_a_movement_since_the_last_value(
    old: float | None, new: float | None, unit: str, since: str | None, expected: str
) -> None:
    assert format_movement(old, new, unit, since) == expected


def test_percentages_and_progress() -> None:
    assert format_percent(0.35) == "35%"
    assert format_percent(0.924) == "92%"
    assert format_percent(1.0) == "100%"
    assert format_percent(0.0) == "0%"
    assert format_percent(None) == "—"
    assert format_progress(0.35, 0.5) == "35% done, 50% expected"
    assert format_progress(None, 0.5) == "no progress yet, 50% expected"
    assert format_progress(1.0, None) == "100% done"


def test_times_in_the_organisations_zone_to_the_minute_with_the_zone() -> None:
    assert format_time("2026-11-30T04:12:59+00:00") == "2026-11-30 04:12 UTC"
    assert format_time("2026-11-30T04:12:00+00:00", "Europe/Berlin") == "2026-11-30 05:12 CET"
    assert format_time("2026-07-01T04:12:00+00:00", "Europe/Berlin") == "2026-07-01 06:12 CEST"
    # 23:30 in New York on Nov 29 is already Nov 30 in UTC
    assert format_time("2026-11-30T04:30:00+00:00", "America/New_York") == "2026-11-29 23:30 EST"
    assert format_time(None) == "never"


def test_short_times_for_a_table_cell() -> None:
    short = short_time(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    assert short("2026-11-30T04:30:00+00:00", "UTC") == "04:30"
    assert short("2026-11-29T04:30:00+00:00", "UTC") == "Nov 29 04:30"
    # noon UTC is 07:00 in New York, still Nov 30 there; 04:30 UTC was Nov 29 there
    assert short("2026-11-30T04:30:00+00:00", "America/New_York") == "Nov 29 23:30"
    assert short(None, "UTC") == "never"


def test_freshness_says_when_checked_and_since_when_unchanged() -> None:
    checked, changed = "2026-11-30T04:30:00+00:00", "2026-11-30T04:04:00+00:00"
    assert (
        freshness_text(checked, changed)
        == "checked 2026-11-30 04:30 UTC · unchanged since 2026-11-30 04:04 UTC"
    )
    assert freshness_text(changed, changed) == "updated 2026-11-30 04:04 UTC"
    assert freshness_text(checked, None) == "checked 2026-11-30 04:30 UTC · no value yet"
    assert freshness_text(None, None) == ""
    short = short_time(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    assert freshness_text(checked, changed, "UTC", short) == "checked 04:30 · unchanged since 04:04"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "0 min"),
        (-30.0, "0 min"),  # a source clock slightly ahead is not a negative age
        (61 * 60.0, "61 min"),
        (119 * 60.0, "119 min"),
        (2 * 3600.0, "2 h"),
        (47 * 3600.0, "47 h"),
        (3 * 86400.0, "3 days"),
        (None, "unknown"),
    ],
)
def test_ages(seconds: float | None, expected: str) -> None:
    assert format_age(seconds) == expected


def test_raw_values_for_spreadsheets() -> None:
    assert iso_seconds("2026-11-27T11:00:00.123456+00:00") == "2026-11-27T11:00:00+00:00"
    assert iso_seconds("2026-11-27T12:00:00+01:00") == "2026-11-27T12:00:00+01:00"
    assert iso_seconds(None) == ""
    assert raw_number(-2.920137737087879) == -2.9201
    assert raw_number(0.6000000000000001) == 0.6
    assert raw_number(600_000.0) == 600_000
    assert isinstance(raw_number(600_000.0), int)
    assert raw_number(None) is None
