"""Migrated deals: closed before they were created, and counted.

A CRM loaded from another tool stamps its records with the load time (Salesforce, unless
"Set Audit Fields upon Record Creation" is on; HubSpot's createdate at the import), so a
won deal of last year can be "created" today. Such deals load, count in won revenue and
win rate, and are left out of the sales cycle alone, which says how many and why (shown
by ``okr-sync explain``). Expected values come from plain Python over the raw records
(the Salesforce oracle of test_metrics_correctness, a small one for HubSpot).
"""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import get_connector
from connectors.hubspot.sandbox import sandbox_env as hubspot_env
from connectors.hubspot.sandbox.data import HubSpotPortal, generate_portal
from connectors.hubspot.sandbox.emulator import create_app as create_portal_app
from connectors.salesforce.sandbox import sandbox_env as salesforce_env
from connectors.salesforce.sandbox.data import SalesforceOrg, generate_org, sf_id
from connectors.salesforce.sandbox.emulator import create_app as create_org_app
from connectors.sandbox.server import serve_tls
from expectations import Validator
from flows.extract import sync_stream
from okr_sync.cli.explain import _explanation_lines
from okr_targets.lineage import Explanation
from okr_targets.status import RunStatus
from okr_targets.store import Store, begin_run, finish_run
from tests.conftest import AS_OF
from tests.test_metrics_correctness import Oracle, differences, measure
from transforms.metrics.sales import CLOSED_BEFORE_CREATED

Q4 = (date(2026, 10, 1), date(2027, 1, 1))
LEFT_OUT = {"what": "won deals", "why": CLOSED_BEFORE_CREATED}


def sync_all(store_url: str, source: str, validator: Validator) -> dict[str, Any]:
    """Every stream of ``source`` into the store through the task logic; their reports."""
    store = Store.open(store_url)
    try:
        run_id = begin_run(store, "test")
        reports = {
            stream.name: sync_stream.fn(store, source, stream, run_id, validator, 500)
            for stream in get_connector(source).streams
        }
        finish_run(store, run_id, RunStatus.COMPLETE, None, {})
        return reports
    finally:
        store.dispose()


# --- Salesforce ------------------------------------------------------------------------------


def migrated_org() -> tuple[SalesforceOrg, list[str]]:
    """A small org plus two won opportunities of Q4 loaded by a migration in late November."""
    org = generate_org(seed=41, as_of=AS_OF, accounts=30, opportunities=220)
    template = next(o for o in org.records("Opportunity") if o["IsWon"])
    ids = []
    for n, (amount, currency, closed) in enumerate(
        ((48_000.0, "USD", "2026-10-20"), (21_500.0, "EUR", "2026-11-02"))
    ):
        record = {k: v for k, v in template.items() if k != "attributes"}
        record |= {
            "Id": sf_id("006", 8_000_000 + n),
            "Amount": amount,
            "CurrencyIsoCode": currency,
            "CloseDate": closed,
            "CreatedDate": "2026-11-25T09:00:00.000+0000",  # the migration's load
            "LastModifiedDate": "2026-11-25T09:00:00.000+0000",
            "SystemModstamp": "2026-11-25T09:00:00.000+0000",
        }
        org.add("Opportunity", record)
        ids.append(record["Id"])
    return org, ids


@pytest.fixture
def migrated_salesforce(
    store_url: str, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, SalesforceOrg, list[str], dict[str, Any]]:
    org, ids = migrated_org()
    with serve_tls(create_org_app(org)) as server:
        for name, value in salesforce_env(server).items():
            monkeypatch.setenv(name, value)
        reports = sync_all(store_url, "salesforce", validator)
    return store_url, org, ids, reports


def test_salesforce_migrated_deals_count_in_revenue_not_in_the_cycle(
    migrated_salesforce: tuple[str, SalesforceOrg, list[str], dict[str, Any]],
) -> None:
    store_url, org, ids, reports = migrated_salesforce
    assert reports["Opportunity"].quarantined == 0
    oracle = Oracle(org)
    assert set(ids) <= {d["Id"] for d in oracle.won_in("2026-Q4", {})}
    checks: list[tuple[str, str, dict[str, Any]]] = [
        ("won_revenue", "2026-Q4", {}),
        ("win_rate", "2026-Q4", {}),
        ("median_sales_cycle_days", "2026-Q4", {}),
    ]
    results = measure(store_url, checks)
    for (name, label, params), result in zip(checks, results, strict=True):
        assert differences(result, oracle.expect(name, label, params)) == [], name
    (_, revenue_records), _, (cycle, cycle_records) = results
    assert set(ids) <= {ref.source_id for ref in revenue_records}
    assert not set(ids) & {ref.source_id for ref in cycle_records}
    assert cycle.details["left_out"] == [{"count": 2, **LEFT_OUT}]


# --- HubSpot ---------------------------------------------------------------------------------


def migrated_portal() -> tuple[HubSpotPortal, list[str]]:
    """A small portal plus two won deals of Q4 imported (created) in late November."""
    portal = generate_portal(seed=41, as_of=AS_OF, companies=30, deals=260, tickets=0)
    template = next(
        r for r in portal.records("deals") if r["properties"]["dealstage"] == "closedwon"
    )
    ids = []
    for n, (amount, closed) in enumerate(
        (("48000", "2026-10-20T18:00:00.000Z"), ("21500.5", "2026-11-02T15:30:00.000Z"))
    ):
        record_id = str(15_000_000_001 + n)
        properties = {
            **template["properties"],
            "amount": amount,
            "deal_currency_code": "USD",
            "amount_in_home_currency": amount,
            "closedate": closed,
            "createdate": "2026-11-25T09:00:00.000Z",  # the import
            "hs_lastmodifieddate": "2026-11-25T09:00:00.000Z",
            "hs_object_id": record_id,
        }
        portal.add(
            "deals",
            {
                **template,
                "id": record_id,
                "properties": properties,
                "createdAt": properties["createdate"],
                "updatedAt": properties["hs_lastmodifieddate"],
            },
        )
        ids.append(record_id)
    return portal, ids


def utc_day(text: str) -> date:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).date()


def hubspot_won_in_q4(portal: HubSpotPortal) -> list[dict[str, str]]:
    won_stages = {
        stage["id"]
        for pipeline in portal.pipelines["deals"]
        for stage in pipeline["stages"]
        if stage["metadata"]["isClosed"] == "true"
        and Decimal(stage["metadata"]["probability"]) >= 1
    }
    return [
        props
        for record in portal.records("deals")
        if (props := record["properties"])["dealstage"] in won_stages
        and Q4[0] <= utc_day(props["closedate"]) < Q4[1]
    ]


@pytest.fixture
def migrated_hubspot(
    store_url: str, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, HubSpotPortal, list[str], dict[str, Any]]:
    portal, ids = migrated_portal()
    app = create_portal_app(portal, search_requests_per_second=1000)
    with serve_tls(app) as server:
        for name, value in hubspot_env(server, search_requests_per_second=1000).items():
            monkeypatch.setenv(name, value)
        reports = sync_all(store_url, "hubspot", validator)
    return store_url, portal, ids, reports


def test_hubspot_migrated_deals_count_in_revenue_not_in_the_cycle(
    migrated_hubspot: tuple[str, HubSpotPortal, list[str], dict[str, Any]],
) -> None:
    store_url, portal, ids, reports = migrated_hubspot
    assert reports["deals"].quarantined == 0
    won = hubspot_won_in_q4(portal)
    assert set(ids) <= {props["hs_object_id"] for props in won}
    revenue = sum(
        Decimal(p["amount_in_home_currency"]) for p in won if p["amount_in_home_currency"]
    )
    cycles = {
        p["hs_object_id"]: (utc_day(p["closedate"]) - utc_day(p["createdate"])).days for p in won
    }
    kept = [days for days in cycles.values() if days >= 0]
    assert len(cycles) - len(kept) == len(ids)  # only the migrated deals are negative

    (won_revenue, revenue_records), (cycle, cycle_records) = measure(
        store_url,
        [
            ("won_revenue", "2026-Q4", {"currency": "USD"}),
            ("median_sales_cycle_days", "2026-Q4", {}),
        ],
    )
    assert won_revenue.value == pytest.approx(float(revenue), rel=1e-12)
    assert set(ids) <= {ref.source_id for ref in revenue_records}
    assert cycle.value == float(statistics.median(kept))
    assert {ref.source_id for ref in cycle_records} == {i for i, d in cycles.items() if d >= 0}
    assert cycle.details["left_out"] == [{"count": len(ids), **LEFT_OUT}]


def test_explain_says_how_many_deals_the_cycle_left_out_and_why() -> None:
    found = Explanation(
        key_result_id="cycle",
        title="Shorter sales cycle",
        kind="decrease_to",
        period="2026-Q4",
        measurement_id=1,
        value=31.0,
        unit="days",
        status="on_track",
        progress=0.5,
        target=30.0,
        baseline=40.0,
        metric="median_sales_cycle_days",
        params={},
        details={"left_out": [{"count": 1204, **LEFT_OUT}]},
        measured_at="2026-11-27T13:00:00+00:00",
        data_cutoff=None,
        run_id="run-1",
        run_status="complete",
        flow_run_id=None,
        code_version="test",
        record_count=310,
        records_by_kind={"deal": 310},
        sources_read_at={},
    )
    lines = _explanation_lines(found)
    assert lines[4] == "  from 310 records: deal 310"
    assert lines[5] == (
        "  left out: 1,204 won deals, closed before they were created (imported or migrated: "
        "the CRM stamped them at the import), so they have no sales cycle; they count in "
        "revenue and win rate"
    )
