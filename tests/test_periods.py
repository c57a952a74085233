"""Calendars: periods in the organisation's time zone and fiscal year, worked out by hand.

Every expected instant, length and fraction below is written out from the time-zone rules
(New York is UTC-5 in winter; Berlin is UTC+1, UTC+2 from the last Sunday of March to the
last Sunday of October), not computed with the code under test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from okr_targets.config import ConfigError
from okr_targets.models import Deal, Rep, Ticket
from okr_targets.periods import Calendar, Period, add_months
from okr_targets.store import Store, upsert_records
from transforms.catalog import BUILT_IN
from transforms.catalog import load as load_okr_file

UTC_CAL = Calendar()
NEW_YORK = Calendar(timezone="America/New_York")
BERLIN = Calendar(timezone="Europe/Berlin")
LOS_ANGELES = Calendar(timezone="America/Los_Angeles")
HOUR = timedelta(hours=1)


def hours(period: Period) -> float:
    return (period.end_at - period.start_at).total_seconds() / 3600


# --- the last second of a quarter -----------------------------------------------------------


def test_last_second_of_a_quarter_in_new_york() -> None:
    q4, q1 = NEW_YORK.period("2026-Q4"), NEW_YORK.period("2027-Q1")
    # Local midnight of 1 January in New York (UTC-5) is 05:00 UTC.
    assert q4.end_at == q1.start_at == datetime(2027, 1, 1, 5, 0, tzinfo=UTC)
    last = datetime(2026, 12, 31, 23, 59, 59, tzinfo=ZoneInfo("America/New_York"))
    first = datetime(2027, 1, 1, 0, 0, 0, tzinfo=ZoneInfo("America/New_York"))
    assert last == datetime(2027, 1, 1, 4, 59, 59, tzinfo=UTC)
    assert q4.contains(last)
    assert not q1.contains(last)
    assert q1.contains(first)
    assert not q4.contains(first)
    # The same instants in a UTC calendar: New York's last second of Q4 is already Q1 there.
    utc_q4, utc_q1 = UTC_CAL.period("2026-Q4"), UTC_CAL.period("2027-Q1")
    assert utc_q1.contains(last)
    assert not utc_q4.contains(last)
    assert utc_q1.contains(first)
    # ...and UTC's own last second of Q4 (18:59:59 in New York) is Q4 in both.
    utc_last = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert utc_q4.contains(utc_last)
    assert q4.contains(utc_last)
    utc_new_year = datetime(2027, 1, 1, tzinfo=UTC)  # 19:00 on 31 December in New York
    assert utc_q1.contains(utc_new_year)
    assert q4.contains(utc_new_year)
    # Q4 starts 00:00 EDT (04:00 UTC) and gains an hour on 2026-11-01: 92 days + 1 hour.
    assert q4.start_at == datetime(2026, 10, 1, 4, 0, tzinfo=UTC)
    assert hours(q4) == 92 * 24 + 1
    assert q4.elapsed_fraction(last) == pytest.approx(1 - 1 / (2209 * 3600), rel=1e-15)
    assert q4.elapsed_fraction(first) == 1.0
    assert NEW_YORK.local_date(last) == date(2026, 12, 31)
    assert UTC_CAL.local_date(last) == date(2027, 1, 1)


def test_the_default_calendar_is_utc_and_january() -> None:
    q4 = Period.parse("2026-Q4")
    assert q4.calendar == Calendar(timezone="UTC", fiscal_year_start_month=1)
    assert q4.start_at == datetime(2026, 10, 1, tzinfo=UTC)
    assert q4.end_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert q4 == UTC_CAL.period("2026-Q4")
    assert q4 != NEW_YORK.period("2026-Q4")  # same label and days, other instants


# --- daylight-saving changes ----------------------------------------------------------------


def test_a_quarter_with_spring_forward_is_an_hour_short() -> None:
    q1 = BERLIN.period("2026-Q1")  # clocks go 02:00 -> 03:00 on Sunday 2026-03-29
    assert q1.start_at == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)  # 00:00 CET
    assert q1.end_at == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # 00:00 CEST
    assert hours(q1) == 90 * 24 - 1 == 2159
    # At noon (CEST, 10:00 UTC) on the switch day: 87 days + 1 h + 10 h of real time = 2099 h.
    noon = datetime(2026, 3, 29, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert noon == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    assert q1.elapsed_fraction(noon) == pytest.approx(2099 / 2159, rel=1e-12)
    assert q1.elapsed_fraction(noon.astimezone(UTC)) == pytest.approx(2099 / 2159, rel=1e-12)
    assert q1.elapsed_fraction(noon) != pytest.approx(87.5 / 90, rel=1e-9)  # wall-clock days


def test_months_around_the_switches_have_743_and_745_hours() -> None:
    march, october = BERLIN.period("2026-03"), BERLIN.period("2026-10")
    assert hours(march) == 31 * 24 - 1
    assert hours(october) == 31 * 24 + 1  # clocks go 03:00 -> 02:00 on 2026-10-25
    assert hours(BERLIN.period("2026-Q4")) == 92 * 24 + 1
    # Mid-March 12:00 CET (11:00 UTC): 15 days 12 hours since 2026-02-28 23:00 UTC = 372 h.
    mid = datetime(2026, 3, 16, 11, 0, tzinfo=UTC)
    assert march.elapsed_fraction(mid) == pytest.approx(372 / 743, rel=1e-12)


def test_a_midnight_skipped_by_daylight_saving_starts_the_day_at_the_jump() -> None:
    # Sao Paulo went from 00:00 -03 straight to 01:00 -02 on 2018-11-04.
    sao_paulo = Calendar(timezone="America/Sao_Paulo")
    assert sao_paulo.midnight(date(2018, 11, 4)) == datetime(2018, 11, 4, 3, 0, tzinfo=UTC)
    assert sao_paulo.midnight(date(2018, 11, 5)) == datetime(2018, 11, 5, 2, 0, tzinfo=UTC)


def test_elapsed_fraction_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        BERLIN.period("2026-Q1").elapsed_fraction(datetime(2026, 2, 1))  # noqa: DTZ001


# --- a leap day -----------------------------------------------------------------------------


def test_the_leap_day_in_calendar_and_fiscal_periods() -> None:
    leap = date(2028, 2, 29)
    q1 = UTC_CAL.period("2028-Q1")
    assert q1.start <= leap < q1.end
    february = UTC_CAL.period("2028-02")
    assert (february.start, february.end) == (date(2028, 2, 1), date(2028, 3, 1))
    assert (february.end - february.start).days == 29
    assert hours(february) == 29 * 24
    march_fy = Calendar(fiscal_year_start_month=3)
    fy_q4 = march_fy.period("FY2028-Q4")  # FY2028 = 2027-03-01 .. 2028-03-01
    assert (fy_q4.start, fy_q4.end) == (date(2027, 12, 1), date(2028, 3, 1))
    assert fy_q4.start <= leap < fy_q4.end
    assert march_fy.period("FY2029-Q1").start == date(2028, 3, 1)


@pytest.mark.parametrize(
    ("start", "months", "deadline"),
    [
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2028, 2, 29), 48, date(2032, 2, 29)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2027, 1, 31), 1, date(2027, 2, 28)),
        (date(2026, 1, 31), 4, date(2026, 5, 31)),
        (date(2026, 10, 31), 1, date(2026, 11, 30)),
        (date(2026, 11, 15), 3, date(2027, 2, 15)),
    ],
)
def test_month_windows_clamp_to_the_months_end(start: date, months: int, deadline: date) -> None:
    assert add_months(start, months) == deadline


# --- fiscal years ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_month", "label", "start", "end", "previous"),
    [
        (2, "FY2027", date(2026, 2, 1), date(2027, 2, 1), "FY2026"),
        (2, "FY2027-Q1", date(2026, 2, 1), date(2026, 5, 1), "FY2026-Q4"),
        (2, "FY2027-Q2", date(2026, 5, 1), date(2026, 8, 1), "FY2027-Q1"),
        (2, "FY2027-Q4", date(2026, 11, 1), date(2027, 2, 1), "FY2027-Q3"),
        (2, "FY2027-H1", date(2026, 2, 1), date(2026, 8, 1), "FY2026-H2"),
        (2, "FY2027-H2", date(2026, 8, 1), date(2027, 2, 1), "FY2027-H1"),
        (12, "FY2027-Q1", date(2026, 12, 1), date(2027, 3, 1), "FY2026-Q4"),
        (12, "FY2026-Q4", date(2026, 9, 1), date(2026, 12, 1), "FY2026-Q3"),
        (7, "FY2027", date(2026, 7, 1), date(2027, 7, 1), "FY2026"),
        (1, "FY2026", date(2026, 1, 1), date(2027, 1, 1), "FY2025"),
        (1, "FY2026-Q1", date(2026, 1, 1), date(2026, 4, 1), "FY2025-Q4"),
        # Calendar labels keep their style in a fiscal calendar.
        (2, "2026-Q1", date(2026, 1, 1), date(2026, 4, 1), "2025-Q4"),
        (2, "2026-01", date(2026, 1, 1), date(2026, 2, 1), "2025-12"),
        (2, "2026", date(2026, 1, 1), date(2027, 1, 1), "2025"),
    ],
)
def test_fiscal_labels_and_previous(
    start_month: int, label: str, start: date, end: date, previous: str
) -> None:
    calendar = Calendar(timezone="Europe/Berlin", fiscal_year_start_month=start_month)
    period = calendar.period(label)
    assert (period.start, period.end, period.label) == (start, end, label)
    before = period.previous()
    assert before.label == previous
    assert before.calendar == calendar
    assert before.end == period.start


def test_fy_with_a_january_start_is_the_calendar_year() -> None:
    fy, year = UTC_CAL.period("FY2026"), UTC_CAL.period("2026")
    assert (fy.start, fy.end, fy.start_at, fy.end_at) == (
        year.start,
        year.end,
        year.start_at,
        year.end_at,
    )


def test_fiscal_periods_start_at_local_midnight() -> None:
    fy = Calendar(timezone="Europe/Berlin", fiscal_year_start_month=2).period("FY2027-Q1")
    assert fy.start_at == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)  # 1 Feb 00:00 CET
    assert fy.end_at == datetime(2026, 4, 30, 22, 0, tzinfo=UTC)  # 1 May 00:00 CEST
    assert hours(fy) == (28 + 31 + 30) * 24 - 1


@pytest.mark.parametrize("label", ["FY2027-05", "FY27", "fy2027", "FY2027-Q5", "2026-FY"])
def test_bad_fiscal_labels_are_refused(label: str) -> None:
    with pytest.raises(ValueError, match="period"):
        Calendar(fiscal_year_start_month=2).period(label)


# --- calendar values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"timezone": "Europe/Berln"}, "Europe/Berln"),
        ({"timezone": ""}, "''"),
        ({"timezone": "../etc/passwd"}, "../etc/passwd"),
        ({"fiscal_year_start_month": 0}, "fiscal_year_start_month"),
        ({"fiscal_year_start_month": 13}, "fiscal_year_start_month"),
    ],
)
def test_bad_calendar_values_are_refused(values: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Calendar(**values)


OKRS = """\
company: Acme
calendar:
  timezone: Europe/Berlin
  fiscal_year_start_month: 2
objectives:
  - id: top
    title: Grow
    owner: ceo@acme.example
    period: FY2027
    key_results:
      - id: kr-1
        title: Sell to 10 new customers
        metric: new_customers_won
        period: FY2027-Q1
        target: 10
"""


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "okrs.yaml"
    path.write_text(text)
    return load_okr_file(path)[0]


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def test_the_okr_file_sets_the_calendar(tmp_path: Path) -> None:
    config = load(tmp_path, OKRS)
    assert config.calendar == Calendar(timezone="Europe/Berlin", fiscal_year_start_month=2)
    objective, key_result, _where = next(config.key_results())
    period = config.calendar.period(config.resolved(objective, key_result)[1])
    assert (period.start, period.end) == (date(2026, 2, 1), date(2026, 5, 1))
    assert period.calendar.timezone == "Europe/Berlin"
    default = load(tmp_path, OKRS.replace(OKRS[OKRS.index("calendar:") : OKRS.index("objec")], ""))
    assert default.calendar == Calendar()


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "named"),
    [
        ("Europe/Berlin", "Europe/Berln", 3, "calendar.timezone", "'Europe/Berln'"),
        ("Europe/Berlin", "Mars/Olympus", 3, "calendar.timezone", "'Mars/Olympus'"),
        ("start_month: 2", "start_month: 13", 4, "calendar.fiscal_year_start_month", "13"),
        ("start_month: 2", "start_month: February", 4, "calendar.fiscal_year_start_month", ""),
        ("  timezone:", "  time_zone:", 3, "calendar.time_zone", "spelling"),
        ("period: FY2027-Q1", "period: FY2027-02", 14, "key_results[0].period", "YYYY-MM"),
    ],
)
def test_bad_calendar_in_the_file_names_field_and_line(
    tmp_path: Path, old: str, new: str, line: int, field: str, named: str
) -> None:
    message = error_for(tmp_path, OKRS.replace(old, new))
    assert message.startswith(f"{tmp_path / 'okrs.yaml'}:{line}: ")
    assert field in message
    assert named in message
    assert "fix:" in message


# --- metrics in a calendar ------------------------------------------------------------------

MODIFIED = datetime(2027, 6, 1, tzinfo=UTC)  # after every period: no cutoff inside one


def common(source_id: str) -> dict[str, Any]:
    return {
        "source": "zendesk",
        "source_id": source_id,
        "source_modified_at": MODIFIED,
        "deleted_at": None,
        "run_id": "r",
    }


def ticket(source_id: str, created_at: datetime) -> dict[str, Any]:
    return common(source_id) | {
        "customer_id": None,
        "status": "open",
        "priority": "normal",
        "channel": "email",
        "created_at": created_at,
        "first_response_at": None,
        "solved_at": None,
    }


def deal(
    source_id: str, close_on: date, created_at: datetime, amount: str = "150"
) -> dict[str, Any]:
    return common(source_id) | {
        "source": "salesforce",
        "name": source_id,
        "customer_id": None,
        "owner_id": "rep-1",
        "amount": Decimal(amount),
        "currency": "USD",
        "stage": "Closed Won",
        "outcome": "won",
        "pipeline": None,
        "deal_type": None,
        "created_at": created_at,
        "close_on": close_on,
    }


@pytest.fixture
def store(sqlite_url: str) -> Any:
    opened = Store.open(sqlite_url)
    yield opened
    opened.dispose()


def run(store: Store, name: str, period: Period, **params: Any) -> Any:
    with store.session() as session:
        return BUILT_IN.find(name).run(session, period, params)


def test_a_time_zone_shifts_which_tickets_count(store: Store) -> None:
    # 2026-12-31 23:30 in Los Angeles (UTC-8) is 2027-01-01 07:30 UTC.
    new_years_eve = datetime(2027, 1, 1, 7, 30, tzinfo=UTC)
    with store.session() as session, session.begin():
        upsert_records(
            session,
            Ticket,
            [
                ticket("eve", new_years_eve),
                ticket("feb-1", datetime(2027, 2, 1, 12, 0, tzinfo=UTC)),
                ticket("feb-2", datetime(2027, 2, 2, 12, 0, tzinfo=UTC)),
            ],
        )
    assert run(store, "ticket_volume", LOS_ANGELES.period("2026-Q4")).value == 1
    assert run(store, "ticket_volume", UTC_CAL.period("2026-Q4")).value == 0
    assert run(store, "ticket_volume", LOS_ANGELES.period("2027-Q1")).value == 2
    assert run(store, "ticket_volume", UTC_CAL.period("2027-Q1")).value == 3
    # pct_change reads its baseline label in the period's calendar: 1 -> 2 tickets in LA.
    change = run(
        store,
        "pct_change",
        LOS_ANGELES.period("2027-Q1"),
        metric="ticket_volume",
        baseline_period="2026-Q4",
    )
    assert (change.value, change.details["baseline"]) == (100.0, 1)
    utc_change = run(store, "pct_change", UTC_CAL.period("2027-Q1"), metric="ticket_volume")
    assert utc_change.value is None
    assert utc_change.details["baseline"] == 0


def test_tickets_per_day_count_the_real_hours_of_a_dst_quarter(store: Store) -> None:
    with store.session() as session, session.begin():
        upsert_records(session, Ticket, [ticket("t", datetime(2026, 2, 1, 12, 0, tzinfo=UTC))])
    result = run(store, "ticket_volume", BERLIN.period("2026-Q1"), per_day=True)
    assert result.details["days"] == pytest.approx(2159 / 24, rel=1e-12)
    assert result.value == pytest.approx(24 / 2159, rel=1e-12)


def test_sales_cycle_days_count_local_creation_days(store: Store) -> None:
    # Created 2026-12-01 06:00 UTC = 2026-11-30 22:00 in Los Angeles; closed 2026-12-10.
    with store.session() as session, session.begin():
        upsert_records(
            session,
            Deal,
            [deal("d", date(2026, 12, 10), datetime(2026, 12, 1, 6, 0, tzinfo=UTC))],
        )
    assert run(store, "median_sales_cycle_days", LOS_ANGELES.period("2026-Q4")).value == 10
    assert run(store, "median_sales_cycle_days", UTC_CAL.period("2026-Q4")).value == 9


def rep(started_on: date) -> dict[str, Any]:
    return common("rep-1") | {
        "source": "salesforce",
        "name": "New Rep",
        "email": "new.rep@acme.example",
        "team": "Sales",
        "started_on": started_on,
        "monthly_quota": Decimal(100),
        "quota_currency": "USD",
        "active": True,
    }


@pytest.mark.parametrize(
    ("started_on", "closed_on", "deadline_period", "reached"),
    [
        (date(2026, 1, 31), date(2026, 5, 30), "2026-05", True),  # deadline 2026-05-31
        (date(2026, 1, 31), date(2026, 5, 31), "2026-05", False),  # on the deadline: too late
        (date(2028, 2, 29), date(2029, 2, 27), "2029-02", True),  # 12 months: 2029-02-28
        (date(2028, 2, 29), date(2029, 2, 28), "2029-02", False),
    ],
)
def test_ramp_deadline_is_calendar_months_clamped(
    store: Store, started_on: date, closed_on: date, deadline_period: str, reached: bool
) -> None:
    months = 4 if started_on.year == 2026 else 12
    created = datetime(closed_on.year, closed_on.month, 1, tzinfo=UTC)
    with store.session() as session, session.begin():
        upsert_records(session, Rep, [rep(started_on)])
        upsert_records(session, Deal, [deal("d", closed_on, created)])
    result = run(store, "new_rep_quota_attainment", BERLIN.period(deadline_period), months=months)
    assert result.details["cohort"] == 1
    assert result.value == (100.0 if reached else 0.0)
    following = BERLIN.period(f"{add_months(started_on, months + 1):%Y-%m}")
    assert run(store, "new_rep_quota_attainment", following, months=months).value is None
