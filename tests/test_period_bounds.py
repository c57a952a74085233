"""A period's edges, one record on each, on SQLite and PostgreSQL (issue 22).

A period is the half-open range of local days ``[start, end)``, its instants the local
midnights. Every instant and day below is written out by hand from the zone rules (Berlin
is UTC+2 until the last Sunday of October; New York UTC-4 until the first Sunday of
November; Los Angeles UTC-7 until then), never computed with the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from okr_targets.models import Customer, Deal, Rating, Rep, Ticket
from okr_targets.periods import Calendar
from okr_targets.store import Store, upsert_records
from tests.test_periods import common, deal, rep, ticket
from transforms.catalog import BUILT_IN

BERLIN = Calendar(timezone="Europe/Berlin")
NEW_YORK = Calendar(timezone="America/New_York")
LOS_ANGELES = Calendar(timezone="America/Los_Angeles")
Q3_END_IN_NEW_YORK = datetime(2026, 10, 1, 4, 0, tzinfo=UTC)  # Oct 1, 00:00 EDT
Q3_END_IN_LOS_ANGELES = datetime(2026, 10, 1, 7, 0, tzinfo=UTC)  # Oct 1, 00:00 PDT


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    opened.dispose()


def put(store: Store, model: Any, rows: list[dict[str, Any]]) -> None:
    with store.session() as session, session.begin():
        upsert_records(session, model, rows)


def measure(store: Store, name: str, calendar: Calendar, label: str) -> Any:
    with store.session() as session:
        return BUILT_IN.find(name).run(session, calendar.period(label), {})


def customer(source_id: str, since: date, churned: date | None) -> dict[str, Any]:
    return common(source_id) | {
        "source": "salesforce",
        "name": source_id,
        "owner_id": None,
        "segment": None,
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
        "became_customer_on": since,
        "churned_on": churned,
    }


def rating(source_id: str, rated_at: datetime) -> dict[str, Any]:
    return common(source_id) | {
        "ticket_id": None,
        "customer_id": None,
        "score": Decimal(5),
        "scale_max": 5,
        "good": True,
        "rated_at": rated_at,
    }


def test_a_customer_churning_on_a_periods_first_day_churns_in_it(store: Store) -> None:
    """Churned on 2026-10-01, Q4's first local day: a customer at Q4's start who churns
    in Q4, and one Q3 kept to its end. Its neighbour churned on Q3's last day; a third
    became a customer on Q4's first day, so is not one at its start."""
    put(
        store,
        Customer,
        [
            customer("first-day", date(2026, 1, 15), date(2026, 10, 1)),
            customer("last-day", date(2026, 1, 15), date(2026, 9, 30)),
            customer("new-on-first-day", date(2026, 10, 1), None),
        ],
    )
    q4 = measure(store, "churn_rate", BERLIN, "2026-Q4")
    assert (q4.details, q4.value) == ({"at_start": 1, "churned": 1}, 100.0)
    q3 = measure(store, "retention_rate", BERLIN, "2026-Q3")
    assert (q3.details, q3.value) == ({"at_start": 2, "retained": 1}, 50.0)
    q1_2027 = measure(store, "retention_rate", BERLIN, "2027-Q1")
    assert q1_2027.details == {"at_start": 1, "retained": 1}  # the one new on Oct 1


def test_a_ticket_created_at_a_periods_exact_end_counts_in_the_next_only(store: Store) -> None:
    """Created at New York's Q3 end (Oct 1, 00:00 EDT = 04:00 UTC): Q4's, not Q3's. One
    microsecond before it is Q3's, though it is already October 1 in UTC. The same for
    a satisfaction rating given at each of those instants."""
    before = Q3_END_IN_NEW_YORK - timedelta(microseconds=1)
    put(store, Ticket, [ticket("at-end", Q3_END_IN_NEW_YORK), ticket("before-end", before)])
    put(store, Rating, [rating("at-end", Q3_END_IN_NEW_YORK), rating("before-end", before)])
    for name, unit_count in (("ticket_volume", "value"), ("csat", "record_count")):
        q3 = measure(store, name, NEW_YORK, "2026-Q3")
        q4 = measure(store, name, NEW_YORK, "2026-Q4")
        assert (getattr(q3, unit_count), getattr(q4, unit_count)) == (1, 1), name
        with store.session() as session:
            ids = {
                period: {row.source_id for row in session.execute(result.records)}
                for period, result in (("Q3", q3), ("Q4", q4))
            }
        assert ids == {"Q3": {"before-end"}, "Q4": {"at-end"}}, name


def test_a_deal_closed_at_local_midnight_counts_in_the_period_it_opens(store: Store) -> None:
    """Closed at Los Angeles' midnight starting Q4 (07:00 UTC): its close date in the
    calendar's zone is 2026-10-01, Q4's first day, so Q4 counts it and Q3 does not. In
    Berlin, whose Q4 starts at 22:00 UTC on Sep 30, a deal closed on Sep 30 is Q3's."""
    first_day = date(2026, 10, 1)  # Q3_END_IN_LOS_ANGELES in Los Angeles
    created = datetime(2026, 8, 3, 17, 0, tzinfo=UTC)
    put(
        store,
        Deal,
        [deal("midnight", first_day, created, "100"), deal("eve", date(2026, 9, 30), created, "7")],
    )
    for name, q3_value, q4_value in (("won_revenue", 7.0, 100.0), ("win_rate", 100.0, 100.0)):
        q3 = measure(store, name, LOS_ANGELES, "2026-Q3")
        q4 = measure(store, name, LOS_ANGELES, "2026-Q4")
        assert (q3.value, q3.record_count, q4.value, q4.record_count) == (
            q3_value,
            1,
            q4_value,
            1,
        ), name
        berlin_q4 = measure(store, name, BERLIN, "2026-Q4")
        assert (berlin_q4.value, berlin_q4.record_count) == (q4_value, 1), name


def test_a_ramp_deadline_on_a_periods_first_day_is_in_that_periods_cohort(store: Store) -> None:
    """Started 2026-06-01 with 4 months to hit quota: the deadline is 2026-10-01, Q4's
    first day, so the rep is in Q4's cohort and not Q3's."""
    put(store, Rep, [rep(date(2026, 6, 1))])
    q4 = measure(store, "new_rep_quota_attainment", BERLIN, "2026-Q4")
    assert q4.details == {"cohort": 1, "reached_quota": []}
    q3 = measure(store, "new_rep_quota_attainment", BERLIN, "2026-Q3")
    assert q3.details == {"cohort": 0, "reached_quota": []}


def test_a_deal_created_at_a_midnight_clock_change_has_the_day_before(store: Store) -> None:
    """Santiago's clocks go back at midnight: on 2026-04-05 at 03:00 UTC, 00:00 -03 is
    23:00 -04 on Apr 4. A deal created at that instant was created on Apr 4 (closed Apr 14:
    10 days); one created on Mar 10 (09:00 -03) and closed Apr 14 took 35. The median of
    10 and 35 is 22.5 (a creation day of Apr 5 would make it 22)."""
    santiago = Calendar(timezone="America/Santiago")
    closed = date(2026, 4, 14)
    put(
        store,
        Deal,
        [
            deal("at-the-change", closed, datetime(2026, 4, 5, 3, 0, tzinfo=UTC)),
            deal("before-it", closed, datetime(2026, 3, 10, 12, 0, tzinfo=UTC)),
        ],
    )
    assert measure(store, "median_sales_cycle_days", santiago, "2026-Q2").value == 22.5
