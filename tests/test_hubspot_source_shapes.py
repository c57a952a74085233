"""HubSpot as real portals answer: search pages with nothing to return yet, properties a
portal lacks, a token without the schema scope."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from pydantic import SecretStr

from connectors.canonical import Customer
from connectors.hubspot import HubSpotReader, HubSpotSettings, connector
from connectors.hubspot.sandbox.data import generate_portal, to_ms
from connectors.hubspot.sandbox.emulator import SANDBOX_ACCESS_TOKEN, create_app
from connectors.sandbox.server import RunningServer, parse_faults, serve_tls
from tests.conftest import AS_OF

LAX = 1000
STREAMS = {stream.name: stream for stream in connector.streams}


def settings_for(server: RunningServer, **overrides: Any) -> HubSpotSettings:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "access_token": SecretStr(SANDBOX_ACCESS_TOKEN),
        "ca_bundle": server.ca_file,
        "search_requests_per_second": LAX,
        "requests_per_ten_seconds": 100_000,
    }
    return HubSpotSettings(**(values | overrides))


def read_stream(settings: HubSpotSettings, stream: str) -> tuple[list[Any], list[Any], list[str]]:
    reader = HubSpotReader(settings)
    try:
        pages = list(reader.read(STREAMS[stream], None))
    finally:
        reader.close()
    rows = [row for page in pages for row in page.rows]
    rejected = [r for page in pages for r in page.rejected]
    gaps = [f"lacks {gap.need}: {gap.reason}" for page in pages for gap in page.gaps]
    # what HubSpot's reader tells leaves no record out: advice, never a note (a stream with
    # notes is not read whole, and a full refresh would tombstone nothing it did not see)
    assert [note for page in pages for note in page.notes] == []
    return rows, rejected, [note for page in pages for note in page.advice] + gaps


def test_a_search_page_with_nothing_to_return_but_a_next_page_is_followed() -> None:
    """The 250 oldest changes are counted by the search index but not returned yet: the
    first page is empty with a ``paging.next``, the second holds 50 records. The read goes
    on at HubSpot's ``after`` and then by keyset, and misses nothing it could read."""
    portal = generate_portal(seed=6, as_of=AS_OF, companies=20, deals=700, tickets=0)
    live = sorted(
        portal.records("deals"),
        key=lambda r: (to_ms(r["properties"]["hs_lastmodifieddate"]), int(r["id"])),
    )
    unreturned = {r["id"] for r in live[:250]}
    app = create_app(portal, search_requests_per_second=LAX)
    app.state.emulator.unreturned.update(unreturned)
    with serve_tls(app) as server:
        rows, rejected, _ = read_stream(settings_for(server), "deals")
    assert rejected == []
    archived = {r["id"] for r in portal.records("deals", archived=True)}
    assert archived
    assert sorted(row["source_id"] for row in rows) == sorted(
        ({r["id"] for r in live} - unreturned) | archived
    )


def test_a_portal_without_a_property_reads_on_and_says_so() -> None:
    """The us-pacific portal has no churned_date property: the companies are read whole,
    churned_on stays empty, and the first page's note names the property and the field."""
    portal = generate_portal(
        seed=6, as_of=AS_OF, companies=30, deals=40, tickets=0, profile="us-pacific"
    )
    with serve_tls(create_app(portal, search_requests_per_second=LAX)) as server:
        rows, rejected, notes = read_stream(
            settings_for(server, calendar_timezone="America/Los_Angeles"), "companies"
        )
    assert rejected == []
    assert len(rows) == len(portal.records("companies", archived=None))
    assert all(row["churned_on"] is None for row in cast(list[Customer], rows))
    assert notes == [
        "lacks customer.churned_on: HubSpot companies property 'churned_date' does not exist "
        "in this portal; set OKR_SYNC_HUBSPOT_CHURN_DATE_PROPERTY to the property that holds it"
    ]


def test_a_token_without_the_schema_scope_reads_on_and_says_what_it_costs() -> None:
    """A 403 on the properties API: every property is asked for unchecked, a date property's
    midnight-UTC value is then taken for an instant (one day early in Los Angeles), and the
    note says so; account details still come."""
    portal = generate_portal(seed=6, as_of=AS_OF, companies=12, deals=20, tickets=0)
    company = sorted(portal.records("companies"), key=lambda r: r["id"])[0]
    portal.update(
        "companies", company["id"], {"churned_date": "2025-11-30T00:00:00.000Z"}, at=AS_OF
    )
    app = create_app(portal, search_requests_per_second=LAX)
    app.state.faults.extend(parse_faults("403@/crm/v3/properties/companies"))
    with serve_tls(app) as server:
        rows, rejected, notes = read_stream(
            settings_for(server, calendar_timezone="America/Los_Angeles"), "companies"
        )
    assert rejected == []
    churned = {row["source_id"]: row["churned_on"] for row in cast(list[Customer], rows)}
    assert churned[company["id"]] == date(2025, 11, 29)
    assert len(notes) == 2
    assert notes[0].startswith("hubspot: read companies properties failed (403 MISSING_SCOPES")
    assert notes[0].endswith(
        "every property is asked for unchecked and date properties are read as instants "
        "(grant the scope to fix both)"
    )
    assert "US/Eastern" in notes[1]  # the account was still read
