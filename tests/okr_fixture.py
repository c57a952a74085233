"""A small OKR store written row by row, with every status the dashboard must show.

At ``NOW`` (2026-11-27 12:00 UTC, 62.5% into 2026-Q4):

- company ``grow`` → team ``sales`` → person ``alice``, and team ``support`` under ``grow``;
- ``revenue`` (grow): 200k, 300k, 400k, 500k, 600k USD on five days over the quarter,
  target 1M → on track, with a forecast from those five daily values and three
  contributing deals;
- ``win-rate`` (sales): 26% against 25 → 35% → off track;
- ``new-customers`` (sales): 4.5 of 10 → at risk;
- ``first-response`` (support): computed from Zendesk tickets last read 3 days ago → stale;
- ``alice-deals`` (alice): never measured → no data.

Owners are ``{objective}@example.com``. The company is "Grow Co"; the CRM's reps name
alice (Alice Adams, Enterprise) and sales (Sam Seller, Enterprise), and the OKR file's
``people:`` map renames sales (Samantha Seller) and names support (Sue Porter, Support);
grow is known to neither and stays an e-mail (``NAMES``, ``TEAMS``).

In the week up to ``NOW`` (``changes_of``): revenue moved 500k → 600k USD (its 500k of
November 15th has no lineage, so the three deals are added; each was edited at the source
in between), win-rate, new-customers and first-response were first measured, alice-deals
not at all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import update

from okr_targets.changes import WINDOW_DAYS, Changes, recent_changes
from okr_targets.dashboard import render_html
from okr_targets.models import (
    DailyValue,
    Deal,
    KeyResult,
    Measurement,
    MeasurementRecord,
    Objective,
    Organisation,
    Rep,
    SourceRead,
    SyncRun,
    Ticket,
)
from okr_targets.store import Store
from okr_targets.summary import build_summary

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PERIOD = "2026-Q4"
STATUSES = {
    "revenue": "on_track",
    "win-rate": "off_track",
    "new-customers": "at_risk",
    "first-response": "stale",
    "alice-deals": "no_data",
}
TREE = {"grow": None, "sales": "grow", "alice": "sales", "support": "grow"}
COMPANY = "Grow Co"
NAMES = {  # owner e-mail -> the name shown
    "grow@example.com": "grow@example.com",
    "sales@example.com": "Samantha Seller",
    "alice@example.com": "Alice Adams",
    "support@example.com": "Sue Porter",
}
TEAMS = {"sales@example.com": "Enterprise", "alice@example.com": "Enterprise"} | {
    "support@example.com": "Support"
}


def key_result(id: str, objective: str, title: str, **fields: object) -> KeyResult:
    """A key result of the fixture's tree, its owner the objective's address."""
    defaults: dict[str, object] = {
        "owner": f"{objective}@example.com",
        "period": PERIOD,
        "params": {},
        "baseline": 0.0,
        "direction": "increase",
        "kind": "increase_to",
    }
    return KeyResult(id=id, objective_id=objective, title=title, **(defaults | fields))


def fill_store(url: str) -> None:
    """Write the objectives, key results, runs, measurements and their records."""
    store = Store.open(url)
    with store.session() as session:
        for id, parent in TREE.items():
            session.add(
                Objective(
                    id=id,
                    title=f"{id.title()} objective",
                    owner=f"{id}@example.com",
                    period=PERIOD,
                    parent_id=parent,
                )
            )
        session.flush()
        session.add_all(
            [
                key_result(
                    "revenue",
                    "grow",
                    "Book 1M in won revenue",
                    metric="won_revenue",
                    target=1_000_000,
                    unit="USD",
                ),
                key_result(
                    "win-rate",
                    "sales",
                    "Raise the win rate from 25% to 35%",
                    metric="win_rate",
                    baseline=25,
                    target=35,
                    unit="%",
                ),
                key_result(
                    "new-customers",
                    "sales",
                    "Win 10 new customers",
                    metric="new_customers_won",
                    target=10,
                    unit="customers",
                ),
                key_result(
                    "first-response",
                    "support",
                    "Answer within 4 hours",
                    metric="median_first_response_hours",
                    baseline=8,
                    target=4,
                    direction="decrease",
                    kind="decrease_to",
                    unit="hours",
                ),
                key_result(
                    "alice-deals",
                    "alice",
                    "Alice closes 5 deals",
                    metric="won_deals",
                    target=5,
                    unit="deals",
                ),
            ]
        )
        run_at = NOW - timedelta(hours=1)
        session.add(
            SyncRun(
                id="run-1",
                flow_run_id="flow-run-1",
                started_at=run_at,
                finished_at=run_at + timedelta(minutes=1),
                status="complete",
                code_version="0.1.0",
            )
        )
        session.flush()  # the run first: no relationship orders these inserts
        session.add(
            Organisation(
                id=1,
                company=COMPANY,
                people={
                    "sales@example.com": {"name": "Samantha Seller", "team": "Enterprise"},
                    "support@example.com": {"name": "Sue Porter", "team": "Support"},
                },
                updated_at=run_at,
            )
        )
        for n, (name, email) in enumerate(
            (("Alice Adams", "Alice@Example.com"), ("Sam Seller", "sales@example.com"))
        ):
            session.add(
                Rep(
                    source="salesforce",
                    source_id=f"005-{n + 1}",
                    source_modified_at=run_at,
                    run_id="run-1",
                    name=name,
                    email=email,
                    team="Enterprise",
                    started_on=date(2025, 1, 6),
                    monthly_quota=Decimal("50000"),
                    quota_currency="USD",
                    active=True,
                )
            )
        session.add(SourceRead(source="salesforce", read_at=run_at, run_id="run-1"))
        session.add(SourceRead(source="zendesk", read_at=NOW - timedelta(days=3), run_id="run-1"))
        session.flush()
        for n, amount in enumerate((Decimal("250000.00"), Decimal("150000.00"), Decimal("200000"))):
            session.add(
                Deal(
                    source="salesforce",
                    source_id=f"006-{n}",
                    source_modified_at=run_at - timedelta(days=n + 1),
                    run_id="run-1",
                    name=f"Deal {n}",
                    customer_id=f"001-{n}",
                    owner_id="005-1",
                    amount=amount,
                    currency="USD",
                    stage="Closed Won",
                    outcome="won",
                    pipeline=None,
                    deal_type=None,
                    created_at=datetime(2026, 9, 1, tzinfo=UTC),
                    close_on=date(2026, 11, 1 + n),
                )
            )
        session.add(
            Ticket(
                source="zendesk",
                source_id="t-1",
                source_modified_at=NOW - timedelta(days=4),
                run_id="run-1",
                customer_id="org-1",
                status="solved",
                priority="normal",
                channel="email",
                created_at=NOW - timedelta(days=5),
                first_response_at=NOW - timedelta(days=5) + timedelta(hours=5),
                solved_at=NOW - timedelta(days=4),
            )
        )
        series = {
            "revenue": [
                (datetime(2026, 10, 15, tzinfo=UTC), 200_000.0),
                (datetime(2026, 10, 25, tzinfo=UTC), 300_000.0),
                (datetime(2026, 11, 1, tzinfo=UTC), 400_000.0),
                (datetime(2026, 11, 15, tzinfo=UTC), 500_000.0),
                (run_at, 600_000.0),
            ],
            "win-rate": [(run_at, 26.0)],
            "new-customers": [(run_at, 4.5)],
            "first-response": [(NOW - timedelta(days=3), 5.0)],
        }
        records = {
            "revenue": [("deal", "salesforce", f"006-{n}") for n in range(3)],
            "win-rate": [("deal", "salesforce", f"006-{n}") for n in range(3)],
            "new-customers": [("deal", "salesforce", "006-0")],
            "first-response": [("ticket", "zendesk", "t-1")],
        }
        for kr_id, points in series.items():
            unit = session.get(KeyResult, kr_id).unit  # type: ignore[union-attr]
            for measured_at, value in points:
                measurement = Measurement(
                    key_result_id=kr_id,
                    run_id="run-1",
                    measured_at=measured_at,
                    value=value,
                    unit=unit,
                    progress=None,
                    progress_raw=None,
                    expected_progress=0.0,
                    status="on_track",  # the report scores again at read time
                    metric=session.get(KeyResult, kr_id).metric,  # type: ignore[union-attr]
                    params={},
                    details={},
                    record_count=len(records.get(kr_id, [])),
                    code_version="0.1.0",
                    data_cutoff=measured_at - timedelta(minutes=1),
                )
                session.add(measurement)
                session.add(
                    DailyValue(
                        key_result_id=kr_id,
                        day=measured_at.date(),
                        value=value,
                        checked_at=measured_at,
                        data_cutoff=measurement.data_cutoff,
                        run_id="run-1",
                    )
                )
                session.flush()
            for entity, source, source_id in records.get(kr_id, []):
                session.add(
                    MeasurementRecord(
                        measurement_id=measurement.id,
                        entity=entity,
                        source=source,
                        source_id=source_id,
                    )
                )
        session.commit()
    store.dispose()


def summary_of(url: str, now: datetime = NOW) -> dict[str, Any]:
    """The dashboard's summary of the store at ``url``, as of ``now``."""
    store = Store.open(url)
    with store.session() as session:
        found = build_summary(session, now, store.display_url)
    store.dispose()
    return found


def changes_of(url: str, now: datetime = NOW, days: int = WINDOW_DAYS) -> Changes:
    """The dashboard's "what changed": the ``days`` up to ``now``."""
    store = Store.open(url)
    with store.session() as session:
        found = recent_changes(session, now, days)
    store.dispose()
    return found


def page_of(url: str, now: datetime = NOW) -> str:
    """The dashboard page of the store as ``okr-sync report --format html`` writes it."""
    return render_html(summary_of(url, now), changes=changes_of(url, now))


def land_value(url: str, kr_id: str, at: datetime, value: float, *, changed: bool = True) -> None:
    """A measuring pass at ``at`` as a sync writes it: a finished run, the day's point, and a
    measurement when the value ``changed`` (a confirmation of an unchanged value has none)."""
    store = Store.open(url)
    with store.session() as session:
        run_id = f"run-{at:%Y%m%d%H%M%S}"
        session.add(
            SyncRun(
                id=run_id,
                started_at=at - timedelta(seconds=30),
                finished_at=at,
                status="complete",
                code_version="0.1.0",
            )
        )
        session.flush()
        kr = session.get(KeyResult, kr_id)
        assert kr is not None
        if changed:
            session.add(
                Measurement(
                    key_result_id=kr_id,
                    run_id=run_id,
                    measured_at=at,
                    value=value,
                    unit=kr.unit,
                    progress=None,
                    progress_raw=None,
                    expected_progress=0.0,
                    status="on_track",
                    metric=kr.metric,
                    params={},
                    details={},
                    record_count=0,
                    code_version="0.1.0",
                    data_cutoff=at,
                )
            )
        point = session.get(DailyValue, (kr_id, at.date())) or DailyValue(
            key_result_id=kr_id, day=at.date()
        )
        point.value, point.checked_at, point.data_cutoff, point.run_id = value, at, at, run_id
        session.add(point)
        kr.checked_at = at
        session.commit()
    store.dispose()


def edited_at(url: str, at: datetime) -> None:
    """Stamp every objective and key result as last edited at ``at`` (the fixture writes them
    on the real clock, which may be later than ``NOW``)."""
    store = Store.open(url)
    with store.session() as session:
        for model in (KeyResult, Objective):
            session.execute(update(model).values(updated_at=at))
        session.commit()
    store.dispose()
