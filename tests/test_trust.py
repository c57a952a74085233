"""Numbers leaders can trust, end to end: kinds, weights, stale, forecast, frozen baselines.

Each test syncs a small generated Salesforce org through the flow's body and reads the
report as a leader would, with hand-computed expectations: values from the org's records in
plain Python (the metrics' oracle), never from the report under test. The clock is pinned
(``tests.conftest.NOW``, 62.5 % into 2026-Q4), so the answers do not change with the date.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.salesforce.sandbox.data import SalesforceOrg, generate_org
from flows.plan import SyncRequest
from flows.settings import Settings
from flows.sync import sync_store
from okr_targets.models import Baseline, KeyResult, Measurement, utcnow
from okr_targets.periods import Period
from okr_targets.report import KeyResultLine, ObjectiveLine, build_report, walk
from okr_targets.store import Store
from tests.conftest import AS_OF, serve_org
from tests.test_metrics_correctness import Oracle

pytestmark = pytest.mark.usefixtures("prefect_harness", "clock")

HEAD = """\
company: Trust Test Inc.
sources:
  salesforce: [customer, deal, rep, fx_rate]
money: {currency: USD}
"""

OKRS = (
    HEAD
    + """\
freshness: {salesforce: 30m}
objectives:
  - id: company
    title: Grow
    owner: ceo@example.com
    period: 2026-Q4
    key_results:
      - id: win-rate-floor
        title: Keep the win rate at or above 10%
        kind: at_least
        metric: win_rate
        target: 10
        unit: "%"
        weight: 3
      - id: crm-launch
        title: Launch the new CRM
        kind: milestone
        done: false
  - id: sales
    title: Sell more
    parent: company
    owner: vp@example.com
    period: 2026-Q4
    weight: 2
    key_results:
      - id: deal-value
        title: Raise average deal value by 20% on Q3
        metric: pct_change
        params: {metric: avg_won_deal_value, baseline_period: previous}
        target: 20
        unit: "%"
      - id: q3-new-customers
        title: Win 40 new customers in Q3
        period: 2026-Q3
        metric: new_customers_won
        target: 40
        unit: customers
"""
)


@pytest.fixture
def org() -> SalesforceOrg:
    return generate_org(seed=12, as_of=AS_OF, accounts=80, opportunities=600)


@pytest.fixture
def okr_file(org: SalesforceOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with serve_org(org, monkeypatch):
        path = tmp_path / "okrs.yaml"
        path.write_text(OKRS, encoding="utf-8")
        yield path


def sync(store_url: str, okr_file: Path, full_refresh: bool = False) -> dict[str, Any]:
    store = Store.open(store_url)
    report = sync_store(store, SyncRequest(str(okr_file), full_refresh=full_refresh), Settings())
    store.dispose()
    assert report.status == "complete", report.reason
    return {"run_id": report.run_id, "key_results": report.key_results}


def report_at(store_url: str, when: Any) -> dict[str, Any]:
    store = Store.open(store_url)
    with store.session() as session:
        roots = build_report(session, when)
    store.dispose()
    lines: dict[str, Any] = {}
    for _depth, line in walk(roots):
        lines[line.id] = line
        for kr in line.key_results:
            lines[kr.id] = kr
    return lines


def clamp(ratio: float) -> float:
    return min(1.0, max(0.0, ratio))


def test_kinds_weights_and_period_close_scores_reach_the_report(
    store_url: str, okr_file: Path, org: SalesforceOrg
) -> None:
    # The key results' values, computed from the org's records by hand.
    oracle = Oracle(org)
    win_rate = oracle.win_rate("2026-Q4", {}).value
    q3_customers = oracle.new_customers("2026-Q3", {}).value
    deal_change = oracle.pct_change(
        "2026-Q4", {"metric": "avg_won_deal_value", "baseline_period": "previous"}
    ).value
    assert win_rate is not None
    assert q3_customers
    assert deal_change is not None
    floor_progress = 1.0 if win_rate >= 10 else 0.0  # a threshold kind: exactly 1 or 0
    q3_progress = clamp(q3_customers / 40)
    deal_progress = clamp(deal_change / 20)  # a percent change against its target
    sales_progress = (deal_progress + q3_progress) / 2  # equal weights: a plain mean

    sync(store_url, okr_file)
    lines = report_at(store_url, utcnow())
    floor, launch = lines["win-rate-floor"], lines["crm-launch"]
    assert isinstance(floor, KeyResultLine)
    assert floor.kind == "at_least"
    assert floor.value == pytest.approx(win_rate)
    assert floor.progress == floor_progress
    assert (launch.kind, launch.value, launch.progress) == ("milestone", 0.0, 0.0)
    assert launch.status == "on_track"  # not done, but less than 75 % of Q4 has passed

    q3 = lines["q3-new-customers"]
    assert q3.value == q3_customers
    assert q3.final_score == pytest.approx(q3_progress)  # Q3 has closed
    deal_value = lines["deal-value"]
    assert deal_value.value == pytest.approx(deal_change)
    assert deal_value.progress == pytest.approx(deal_progress)
    # sales = equal-weight mean of its key results (one closed Q3 KR, one Q4 KR)
    sales = lines["sales"]
    assert isinstance(sales, ObjectiveLine)
    assert sales.progress == pytest.approx(sales_progress)
    # company = (3 × floor + 1 × launch + 2 × sales) / 6: the weights from the file
    company = lines["company"]
    assert company.progress == pytest.approx((3 * floor_progress + 0 + 2 * sales_progress) / 6)


def test_stale_when_the_source_is_older_than_its_limit_or_records_are_held_back(
    store_url: str, okr_file: Path, org: SalesforceOrg
) -> None:
    sync(store_url, okr_file)
    now = utcnow()
    fresh = report_at(store_url, now)["win-rate-floor"]
    assert fresh.status != "stale"
    late = report_at(store_url, now + timedelta(minutes=45))["win-rate-floor"]
    assert late.status == "stale"
    assert late.underlying_status == fresh.status
    assert "salesforce data is 45 min old (limit 30 min)" in late.stale_reason

    # A won deal of the key result's quarter (2026-Q4) has a newest copy that fails
    # validation: the mirror keeps an older copy of it.
    store = Store.open(store_url)
    with store.session() as session:
        won = session.scalars(select(KeyResult).where(KeyResult.id == "win-rate-floor")).one()
        assert won.kind == "at_least"
    store.dispose()
    deal = next(o for o in org.records("Opportunity") if o["IsWon"] and o["CloseDate"] >= "2026-10")
    org.upsert("Opportunity", {"Id": deal["Id"], "Amount": -5.0})
    sync(store_url, okr_file)
    held = report_at(store_url, utcnow())["win-rate-floor"]
    assert held.status == "stale"
    assert "1 salesforce deal record(s) held back by validation" in held.stale_reason
    org.upsert("Opportunity", {"Id": deal["Id"], "Amount": 100.0})  # fixed at the source
    sync(store_url, okr_file)
    assert report_at(store_url, utcnow())["win-rate-floor"].status != "stale"


def test_a_frozen_baseline_is_never_recomputed_silently(
    store_url: str, okr_file: Path, org: SalesforceOrg
) -> None:
    sync(store_url, okr_file)
    store = Store.open(store_url)
    with store.session() as session:
        frozen = session.scalars(
            select(Baseline).where(Baseline.metric == "avg_won_deal_value")
        ).one()
        first = session.scalars(
            select(Measurement).where(Measurement.key_result_id == "deal-value")
        ).one()
    assert frozen.period == "2026-Q3"
    assert frozen.query["period"] == "2026-Q3"
    assert first.details["baseline"] == frozen.value

    # A Q3 deal worth far more than the average is marked won late: Q3's data changes.
    late = next(
        o
        for o in org.records("Opportunity")
        if not o["IsClosed"] and o["CreatedDate"] < "2026-09-01"
    )
    org.upsert(
        "Opportunity",
        {
            "Id": late["Id"],
            "StageName": "Closed Won",
            "IsClosed": True,
            "IsWon": True,
            "CloseDate": "2026-09-20",
            "Amount": 9_000_000.0,
            "CurrencyIsoCode": "USD",
        },
    )
    sync(store_url, okr_file)
    with store.session() as session:
        again = session.get(Baseline, frozen.key)
        latest = session.scalars(
            select(Measurement)
            .where(Measurement.key_result_id == "deal-value")
            .order_by(Measurement.id.desc())
        ).first()
    store.dispose()
    assert again is not None
    assert (again.value, again.computed_at) == (frozen.value, frozen.computed_at)
    assert latest is not None
    assert latest.value == first.value  # the current quarter did not change
    if latest.id != first.id:  # the status may have moved; the baseline did not
        assert latest.details["baseline"] == frozen.value
    lines = report_at(store_url, utcnow())
    assert lines["deal-value"].value == first.value

    # An operator's full refresh re-reads the world: it re-freezes the baseline, and says so.
    sync(store_url, okr_file, full_refresh=True)
    store = Store.open(store_url)
    with store.session() as session:
        refrozen = session.get(Baseline, frozen.key)
        newest = session.scalars(
            select(Measurement)
            .where(Measurement.key_result_id == "deal-value")
            .order_by(Measurement.id.desc())
        ).first()
    store.dispose()
    assert refrozen is not None
    assert refrozen.value is not None
    assert frozen.value is not None
    assert refrozen.value > frozen.value  # the 9M deal is in Q3's average now
    assert newest is not None
    assert newest.details["baseline_refrozen_from"] == frozen.value


def test_the_forecast_fits_one_value_a_day_and_stays_a_rate(
    store_url: str, okr_file: Path, org: SalesforceOrg, clock: Any
) -> None:
    sync(store_url, okr_file)
    single = report_at(store_url, utcnow())["win-rate-floor"]
    assert single.forecast is None
    assert single.forecast_note == (
        "not enough history: 1 day of values; a forecast needs 5 days over at least 7"
    )
    lost = [
        o
        for o in org.records("Opportunity")
        if o["IsClosed"] and not o["IsWon"] and "2026-10-01" <= o["CloseDate"] < "2027-01-01"
    ]
    assert len(lost) >= 8
    start = Period.parse("2026-Q4").start_at
    points = [((utcnow() - start).total_seconds() / 86_400, Oracle(org).win_rate("2026-Q4", {}))]
    for day in range(4):  # every other day two lost deals turn out won: the win rate rises
        clock.shift(timedelta(days=2))
        for opportunity in lost[2 * day : 2 * day + 2]:
            org.upsert(
                "Opportunity", {"Id": opportunity["Id"], "StageName": "Closed Won", "IsWon": True}
            )
        sync(store_url, okr_file)
        points.append(
            ((utcnow() - start).total_seconds() / 86_400, Oracle(org).win_rate("2026-Q4", {}))
        )
    projected = report_at(store_url, utcnow())["win-rate-floor"]
    xs = [x for x, _ in points]
    ys = [float(expected.value or 0.0) for _, expected in points]
    assert all(expected.value is not None for _, expected in points)
    x_mean, y_mean = sum(xs) / 5, sum(ys) / 5
    sxx = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
    assert slope > 0  # rising
    assert projected.forecast_method == "ols_daily_trend"
    assert projected.forecast == pytest.approx(min(100.0, y_mean + slope * (92 - x_mean)), rel=1e-3)
    assert 0 <= projected.forecast_low <= projected.forecast <= projected.forecast_high <= 100
