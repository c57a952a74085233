"""HubSpot days in the OKR calendar's time zone, on each sandbox portal profile.

A HubSpot ``datetime`` property (closedate, the lifecycle-stage dates) is an instant: its
day is the one it falls on in the OKR calendar's zone. A ``date`` property is midnight UTC
standing for a calendar day and stays that day (HubSpot's timestamp FAQ). Expected days
here come from plain ``zoneinfo`` arithmetic on the raw records, never from the mapping.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from connectors.canonical import Customer, Deal
from connectors.hubspot import HubSpotSettings
from connectors.hubspot.sandbox import sandbox_env
from connectors.hubspot.sandbox.data import PROFILES, HubSpotPortal, generate_portal
from connectors.hubspot.sandbox.emulator import SANDBOX_ACCESS_TOKEN, create_app
from connectors.sandbox.server import RunningServer, serve_tls
from flows.report import RunReport
from flows.sync import sync_okrs
from okr_targets.models import Customer as MirrorCustomer
from okr_targets.store import Store
from tests.conftest import AS_OF
from tests.test_hubspot_source_shapes import read_stream

LA = ZoneInfo("America/Los_Angeles")
LAX = 1000
PROFILE_ZONES = {"default": "UTC", "us-pacific": "America/Los_Angeles"}

QUARTER_END_DEAL = "14999000001"  # won at 17:30 on Sep 30 2026 in Los Angeles
NOVEMBER_CUSTOMER = "9999000001"  # became a customer at 23:30 on Nov 30 2025 in Los Angeles


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local_day(text: str, zone: ZoneInfo) -> date:
    return instant(text).astimezone(zone).date()


def la_time(year: int, month: int, day: int, hour: int, minute: int) -> str:
    """HubSpot's rendering (UTC, ``Z``) of a Los Angeles wall time."""
    moment = datetime(year, month, day, hour, minute, tzinfo=LA).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def pacific_portal() -> HubSpotPortal:
    """The us-pacific profile, plus a won deal at a quarter's last evening and a customer
    who became one on a month's last evening (both are the next day in UTC)."""
    portal = generate_portal(
        seed=17, as_of=AS_OF, companies=40, deals=300, tickets=0, profile="us-pacific"
    )
    company = {
        "name": "Evening Outfitters",
        "domain": "evening-outfitters.example",
        "industry": "RETAIL",
        "country": "United States",
        "lifecyclestage": "customer",
        "createdate": la_time(2025, 6, 2, 9, 0),
        "hs_lastmodifieddate": la_time(2025, 11, 30, 23, 31),
        "hubspot_owner_id": portal.owners[1]["id"],
        "hs_lifecyclestage_customer_date": la_time(2025, 11, 30, 23, 30),
        "hs_object_id": NOVEMBER_CUSTOMER,
    }
    portal.add("companies", _record(NOVEMBER_CUSTOMER, company))
    deal = {
        "dealname": "Evening Outfitters - New license",
        "amount": "12345.5",
        "deal_currency_code": "USD",
        "amount_in_home_currency": "12345.5",
        "dealstage": "closedwon",
        "pipeline": "default",
        "closedate": la_time(2026, 9, 30, 17, 30),
        "createdate": la_time(2026, 8, 3, 10, 0),
        "hs_lastmodifieddate": la_time(2026, 9, 30, 17, 31),
        "hubspot_owner_id": portal.owners[1]["id"],
        "dealtype": "newbusiness",
        "hs_object_id": QUARTER_END_DEAL,
    }
    record = _record(QUARTER_END_DEAL, deal)
    record["associations"] = {
        "companies": {"results": [{"id": NOVEMBER_CUSTOMER, "type": "deal_to_company"}]}
    }
    portal.add("deals", record)
    return portal


def _record(record_id: str, properties: dict[str, str]) -> dict[str, Any]:
    return {
        "id": record_id,
        "properties": properties,
        "createdAt": properties["createdate"],
        "updatedAt": properties["hs_lastmodifieddate"],
        "archived": False,
    }


def settings_for(server: RunningServer, zone: str) -> HubSpotSettings:
    return HubSpotSettings(
        base_url=server.base_url,
        access_token=SecretStr(SANDBOX_ACCESS_TOKEN),
        ca_bundle=server.ca_file,
        search_requests_per_second=LAX,
        requests_per_ten_seconds=100_000,
        calendar_timezone=zone,
    )


@pytest.fixture(scope="module")
def pacific() -> Iterator[tuple[HubSpotPortal, RunningServer]]:
    portal = pacific_portal()
    with serve_tls(create_app(portal, search_requests_per_second=LAX)) as server:
        yield portal, server


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_reads_whole_with_days_in_the_calendar_zone(profile: str) -> None:
    portal = generate_portal(
        seed=4, as_of=AS_OF, companies=30, deals=200, tickets=0, profile=profile
    )
    zone_name = PROFILE_ZONES[profile]
    zone = ZoneInfo(zone_name)
    with serve_tls(create_app(portal, search_requests_per_second=LAX)) as server:
        settings = settings_for(server, zone_name)
        deals, rejected_deals, deal_notes = read_stream(settings, "deals")
        companies, rejected_companies, company_notes = read_stream(settings, "companies")
    assert rejected_deals == rejected_companies == []
    records = {r["id"]: r for r in portal.records("deals", archived=None)}
    assert len(deals) == len(records)
    for row in cast(list[Deal], deals):
        assert row["close_on"] == local_day(
            records[row["source_id"]]["properties"]["closedate"], zone
        )
    # the sandbox's boundary deal (issue 22): won at the local midnight 2026-Q4 starts at
    midnight = datetime(2026, 10, 1, tzinfo=zone)
    at_midnight = {
        row["source_id"]: row["close_on"]
        for row in cast(list[Deal], deals)
        if instant(records[row["source_id"]]["properties"]["closedate"]) == midnight
    }
    assert list(at_midnight.values()) == [date(2026, 10, 1)]
    companies_by_id = {r["id"]: r for r in portal.records("companies", archived=None)}
    assert len(companies) == len(companies_by_id)
    for customer in cast(list[Customer], companies):
        props = companies_by_id[customer["source_id"]]["properties"]
        since = props["hs_lifecyclestage_customer_date"]
        assert customer["became_customer_on"] == (local_day(since, zone) if since else None)
        churned = props.get("churned_date")
        assert customer["churned_on"] == (date.fromisoformat(churned) if churned else None)
    if profile == "us-pacific":
        # evening close times: most deals close on a day that is already the next in UTC
        later_in_utc = [
            r
            for r in records.values()
            if local_day(r["properties"]["closedate"], LA)
            != local_day(r["properties"]["closedate"], ZoneInfo("UTC"))
        ]
        assert len(later_in_utc) > len(records) // 2
        # no custom churn property in this portal: said once, the read goes on
        assert company_notes == [
            "lacks customer.churned_on: HubSpot companies property 'churned_date' does not "
            "exist in this portal; set OKR_SYNC_HUBSPOT_CHURN_DATE_PROPERTY to the property "
            "that holds it"
        ]
        assert deal_notes == []  # the portal and the calendar share a zone
    else:
        # the portal keeps US/Eastern, the calendar UTC: the reader says whose days count
        assert len(deal_notes) == 1
        assert "US/Eastern" in deal_notes[0]
        assert company_notes == deal_notes


def test_a_date_property_stays_its_day_whatever_the_calendar_zone() -> None:
    """A date property is midnight UTC for its day: in Los Angeles that instant is the
    evening before, but the day is the one the user picked."""
    portal = generate_portal(seed=4, as_of=AS_OF, companies=8, deals=10, tickets=0)
    company = sorted(portal.records("companies"), key=lambda r: r["id"])[0]
    portal.update(
        "companies", company["id"], {"churned_date": "2025-11-30T00:00:00.000Z"}, at=AS_OF
    )
    with serve_tls(create_app(portal, search_requests_per_second=LAX)) as server:
        rows, rejected, _ = read_stream(settings_for(server, "America/Los_Angeles"), "companies")
    assert rejected == []
    churned = {r["source_id"]: r["churned_on"] for r in cast(list[Customer], rows)}
    assert churned[company["id"]] == date(2025, 11, 30)


def test_the_calendar_zone_moves_evening_instants_to_their_local_day(
    pacific: tuple[HubSpotPortal, RunningServer],
) -> None:
    _, server = pacific
    deals = {
        zone: {r["source_id"]: r for r in read_stream(settings_for(server, zone), "deals")[0]}
        for zone in ("UTC", "America/Los_Angeles")
    }
    assert deals["America/Los_Angeles"][QUARTER_END_DEAL]["close_on"] == date(2026, 9, 30)
    assert deals["UTC"][QUARTER_END_DEAL]["close_on"] == date(2026, 10, 1)  # the old cut


OKR_FILE = """\
company: Evening Co
calendar: {timezone: America/Los_Angeles}
sources:
  hubspot: [customer, deal, rep]
money: {currency: USD}
objectives:
  - id: q3
    title: Close the quarter
    owner: olivia.hart@acme-demo.example
    period: 2026-Q3
    key_results:
      - {id: won-q3, title: Won revenue, metric: won_revenue, params: {}, target: 1000000}
  - id: december
    parent: q3
    title: Keep December's customers
    owner: olivia.hart@acme-demo.example
    period: 2025-12
    key_results:
      - {id: retention-dec, title: Retention, metric: retention_rate, params: {}, target: 95}
"""


@pytest.mark.usefixtures("prefect_harness")
def test_a_los_angeles_calendar_counts_local_quarter_ends_and_month_ends(
    store_url: str,
    pacific: tuple[HubSpotPortal, RunningServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the flow: the deal won at 17:30 on Sep 30 (Oct 1 in UTC) is Q3 revenue, and
    the customer since 23:30 on Nov 30 (Dec 1 in UTC) became one on Nov 30; retention, which
    needs the churn date this portal lacks, shows that finding instead of a number."""
    portal, server = pacific
    for name, value in sandbox_env(server, search_requests_per_second=LAX).items():
        monkeypatch.setenv(name, value)
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(OKR_FILE, encoding="utf-8")
    state = sync_okrs(okr_file=str(okr_file), store_url=store_url, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, RunReport)
    report = result.to_dict()
    outcomes = {kr["key_result_id"]: kr for kr in report["key_results"]}

    # The oracle: Los Angeles days of the raw instants, USD as the portal converted them.
    won_stages = {
        stage["id"]
        for pipeline in portal.pipelines["deals"]
        for stage in pipeline["stages"]
        if stage["metadata"]["isClosed"] == "true"
        and Decimal(stage["metadata"]["probability"]) >= 1
    }
    won_q3 = [
        props
        for record in portal.records("deals")
        if (props := record["properties"])["dealstage"] in won_stages
        and date(2026, 7, 1) <= local_day(props["closedate"], LA) < date(2026, 10, 1)
        and props["amount_in_home_currency"]
    ]
    assert QUARTER_END_DEAL in {props["hs_object_id"] for props in won_q3}
    expected = sum(Decimal(props["amount_in_home_currency"]) for props in won_q3)
    assert outcomes["won-q3"]["value"] == pytest.approx(float(expected), rel=1e-12)
    assert outcomes["won-q3"]["records"] == len(won_q3)

    # Customer-since days are Los Angeles days of the raw instants, in the mirror.
    expected_since = {
        record["id"]: local_day(since, LA)
        for record in portal.records("companies")
        if (since := record["properties"]["hs_lifecyclestage_customer_date"])
    }
    assert expected_since[NOVEMBER_CUSTOMER] == date(2025, 11, 30)
    with Store(store_url).session() as session:
        mirrored = session.execute(
            select(MirrorCustomer.source_id, MirrorCustomer.became_customer_on).where(
                MirrorCustomer.source == "hubspot", MirrorCustomer.became_customer_on.is_not(None)
            )
        ).tuples()
        assert {row[0]: row[1] for row in mirrored} == expected_since
    # This portal keeps no churn date: retention cannot be measured, and says why.
    assert outcomes["retention-dec"]["status"] == "error"
    assert outcomes["retention-dec"]["value"] is None
    assert (
        "needs customer.churned_on: HubSpot companies property 'churned_date'"
        in (outcomes["retention-dec"]["error"])
    )
