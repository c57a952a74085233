"""Real HubSpot records (recorded by dlt's verified sources, see tests/recordings/hubspot)
replayed through the emulator, which serves them verbatim, to the real reader.

Every record must map without loss: each value the recording holds is in its row as the
canonical type, and what it lacks is empty, never invented. Expected values are read
straight from the recorded JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr

from connectors.canonical import Customer, Deal, Ticket
from connectors.hubspot import HubSpotReader, HubSpotSettings, connector
from connectors.hubspot.sandbox.data import HubSpotPortal
from connectors.hubspot.sandbox.emulator import SANDBOX_ACCESS_TOKEN, create_app
from connectors.sandbox.server import RunningServer, serve_tls

RECORDINGS = Path(__file__).parent / "recordings" / "hubspot" / "dlt-verified-sources"
STREAMS = {stream.name: stream for stream in connector.streams}
OBJECTS = ("companies", "deals", "tickets")


def recorded(object_type: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads(
        (RECORDINGS / f"{object_type}.json").read_text(encoding="utf-8")
    )["results"]
    return results


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(scope="module")
def replayed() -> dict[str, tuple[list[Any], list[Any]]]:
    """Each object's rows and rejections, read from a portal holding only the recordings
    (HubSpot's default pipelines and an account in USD, as the recorded portal had)."""
    portal = HubSpotPortal()
    for object_type in OBJECTS:
        for record in recorded(object_type):
            portal.add(object_type, record)
    with serve_tls(create_app(portal, search_requests_per_second=1000)) as server:
        return {name: _read(server, name) for name in OBJECTS}


def _read(server: RunningServer, stream: str) -> tuple[list[Any], list[Any]]:
    settings = HubSpotSettings(
        base_url=server.base_url,
        access_token=SecretStr(SANDBOX_ACCESS_TOKEN),
        ca_bundle=server.ca_file,
        search_requests_per_second=1000,
    )
    reader = HubSpotReader(settings)
    try:
        pages = list(reader.read(STREAMS[stream], None))
    finally:
        reader.close()
    return [r for p in pages for r in p.rows], [r for p in pages for r in p.rejected]


def _common(row: Any, record: dict[str, Any]) -> None:
    props = record["properties"]
    assert row["source"] == "hubspot"
    assert row["source_id"] == record["id"]
    assert row["source_modified_at"] == instant(props["hs_lastmodifieddate"])
    assert row["created_at"] == instant(props["createdate"])
    assert row["deleted_at"] is None


def test_recorded_companies_map_without_loss(
    replayed: dict[str, tuple[list[Any], list[Any]]],
) -> None:
    rows, rejected = replayed["companies"]
    assert rejected == []
    records = {r["id"]: r for r in recorded("companies")}
    assert sorted(row["source_id"] for row in rows) == sorted(records)
    for row in cast(list[Customer], rows):
        record = records[row["source_id"]]
        _common(row, record)
        assert (row["name"], row["domain"]) == (
            record["properties"]["name"],
            record["properties"]["domain"],
        )
        assert row["became_customer_on"] is None
        assert row["churned_on"] is None


def test_recorded_deals_map_without_loss(
    replayed: dict[str, tuple[list[Any], list[Any]]],
) -> None:
    rows, rejected = replayed["deals"]
    assert rejected == []
    records = {r["id"]: r for r in recorded("deals")}
    assert sorted(row["source_id"] for row in rows) == sorted(records)
    for row in cast(list[Deal], rows):
        props = records[row["source_id"]]["properties"]
        _common(row, records[row["source_id"]])
        assert row["name"] == props["dealname"]
        assert row["amount"] == Decimal(props["amount"])
        # no deal_currency_code recorded: the portal's company currency (account-info)
        assert (row["currency"], row["home_currency"]) == ("USD", "USD")
        assert (row["stage"], row["outcome"], row["pipeline"]) == (
            "Qualified to buy",
            "open",
            "Sales Pipeline",
        )
        assert row["close_on"] is None  # an open deal without a close date


def test_recorded_tickets_map_without_loss(
    replayed: dict[str, tuple[list[Any], list[Any]]],
) -> None:
    rows, rejected = replayed["tickets"]
    assert rejected == []
    records = {r["id"]: r for r in recorded("tickets")}
    assert sorted(row["source_id"] for row in rows) == sorted(records)
    status = {"1": "open", "4": "solved"}  # HubSpot's default ticket pipeline: New, Closed
    for row in cast(list[Ticket], rows):
        props = records[row["source_id"]]["properties"]
        _common(row, records[row["source_id"]])
        assert row["status"] == status[props["hs_pipeline_stage"]]
        assert row["priority"] == props["hs_ticket_priority"].lower()
        assert row["channel"] is None
        assert row["solved_at"] is None
