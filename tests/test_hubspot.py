"""The HubSpot connector and its emulator, through the real hubspot-api-client over real
HTTPS on loopback (one lax server for the module; strict ones where limits are the point)."""

from __future__ import annotations

import ssl
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hubspot import HubSpot
from hubspot.crm.objects import PublicObjectSearchRequest
from hubspot.crm.objects.exceptions import ApiException
from pydantic import SecretStr
from starlette.applications import Starlette

from connectors.base import Bookmark, CanonicalRow, Page, Rejected
from connectors.contract import run_contract
from connectors.errors import FatalSourceError, RetriableSourceError
from connectors.hubspot import HubSpotReader, HubSpotSettings, connector
from connectors.hubspot.emulator import SANDBOX_ACCESS_TOKEN, create_app
from connectors.hubspot.sandbox_data import (
    CURRENCY_RATES,
    HubSpotPortal,
    customer_seeds,
    generate_portal,
    iso_ms,
    load_portal,
    to_ms,
    write_portal,
)
from okr_sync.sandbox import RunningServer, serve_tls

AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def small_portal(seed: int = 11) -> HubSpotPortal:
    """Big enough for several search pages per stream, small enough to stay fast."""
    return generate_portal(seed, AS_OF, companies=120, deals=900, tickets=600)


LAX = 1000  # search requests per second where the limit is not under test

COMMON = {"source", "source_id", "source_modified_at", "deleted_at"}
KEYS = {
    "customer": COMMON
    | {
        "name",
        "owner_id",
        "segment",
        "created_at",
        "became_customer_on",
        "churned_on",
        "domain",
        "external_id",
    },
    "deal": COMMON
    | {
        "name",
        "customer_id",
        "owner_id",
        "amount",
        "currency",
        "amount_home",
        "home_currency",
        "stage",
        "outcome",
        "pipeline",
        "deal_type",
        "created_at",
        "close_on",
    },
    "rep": COMMON
    | {"name", "email", "team", "started_on", "monthly_quota", "quota_currency", "active"},
    "ticket": COMMON
    | {
        "customer_id",
        "status",
        "priority",
        "channel",
        "created_at",
        "first_response_at",
        "solved_at",
    },
}
STREAMS = {stream.name: stream for stream in connector.streams}


def ts(value: str) -> datetime:
    return datetime.fromtimestamp(to_ms(value) / 1000, UTC)


def settings_for(server: RunningServer, **overrides: Any) -> HubSpotSettings:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "access_token": SecretStr(SANDBOX_ACCESS_TOKEN),
        "ca_bundle": server.ca_file,
        "search_requests_per_second": LAX,
        "timeout": 10.0,
    }
    return HubSpotSettings(**(values | overrides))


def read(
    settings: HubSpotSettings,
    stream: str,
    since: Bookmark | None = None,
    until: datetime | None = None,
) -> tuple[list[CanonicalRow], list[Rejected], list[Page]]:
    reader = HubSpotReader(settings)
    try:
        pages = list(reader.read(STREAMS[stream], since, until))
    finally:
        reader.close()
    rows = [row for page in pages for row in page.rows]
    return rows, [r for page in pages for r in page.rejected], pages


@pytest.fixture(scope="module")
def portal() -> HubSpotPortal:
    return small_portal()


@pytest.fixture(scope="module")
def app(portal: HubSpotPortal) -> Starlette:
    return create_app(portal, search_requests_per_second=LAX)


@pytest.fixture(scope="module")
def server(app: Starlette) -> Iterator[RunningServer]:
    with serve_tls(app) as running:
        yield running


@pytest.fixture(scope="module")
def full(server: RunningServer) -> dict[str, tuple[list[CanonicalRow], list[Page]]]:
    """Every stream read once from the start (shared: reads are what is under test)."""
    settings = settings_for(server)
    result = {}
    for name in STREAMS:
        rows, rejected, pages = read(settings, name)
        assert rejected == []
        result[name] = (rows, pages)
    return result


def _live_and_archived(portal: HubSpotPortal, object_type: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in portal.records(object_type, archived=None)}


# --- the connector -----------------------------------------------------------------------


def test_connector_streams() -> None:
    assert [(s.name, s.entity, s.cursor_field) for s in connector.streams] == [
        ("owners", "rep", "updatedAt"),
        ("companies", "customer", "hs_lastmodifieddate"),
        ("deals", "deal", "hs_lastmodifieddate"),
        ("tickets", "ticket", "hs_lastmodifieddate"),
    ]


@pytest.mark.parametrize(
    ("stream", "object_type"),
    [("companies", "companies"), ("deals", "deals"), ("tickets", "tickets")],
)
def test_full_read_has_every_record_once_with_tombstones(
    stream: str,
    object_type: str,
    portal: HubSpotPortal,
    full: dict[str, tuple[list[CanonicalRow], list[Page]]],
) -> None:
    rows, pages = full[stream]
    records = _live_and_archived(portal, object_type)
    counts = Counter(row["source_id"] for row in rows)
    assert set(counts) == set(records)
    assert set(counts.values()) == {1}
    assert all(set(row) == KEYS[STREAMS[stream].entity] for row in rows)
    archived = 0
    for row in rows:
        record = records[row["source_id"]]
        if record["archived"]:
            archived += 1
            assert row["deleted_at"] == ts(record["archivedAt"])
        else:
            assert row["deleted_at"] is None
            assert row["source_modified_at"] == ts(record["properties"]["hs_lastmodifieddate"])
    assert archived >= 1
    # Oldest change first; each page's bookmark is its newest change; it never goes back.
    live = [row for row in rows if row["deleted_at"] is None]
    assert [r["source_modified_at"] for r in live] == sorted(r["source_modified_at"] for r in live)
    marks = [page.bookmark.at for page in pages if page.bookmark is not None]
    assert marks == sorted(marks)
    first = pages[0]
    assert first.bookmark is not None
    assert first.bookmark.at == max(r["source_modified_at"] for r in first.rows)
    assert first.total == len(portal.records(object_type))


def test_owners_become_reps(
    portal: HubSpotPortal, full: dict[str, tuple[list[CanonicalRow], list[Page]]]
) -> None:
    rows, _ = full["owners"]
    assert sorted(r["source_id"] for r in rows) == sorted(o["id"] for o in portal.owners)
    assert all(set(row) == KEYS["rep"] for row in rows)
    by_id = {o["id"]: o for o in portal.owners}
    for row in rows:
        owner = by_id[row["source_id"]]
        assert row["name"] == f"{owner['firstName']} {owner['lastName']}"
        assert row["email"] == owner["email"]
        assert row["team"] == owner["teams"][0]["name"]
        assert row["active"] is not owner["archived"]
        assert row["deleted_at"] is None  # deactivated, never deleted
    assert any(not row["active"] for row in rows)


def _stage_facts(portal: HubSpotPortal, object_type: str) -> dict[str, tuple[str, str, Any]]:
    """Stage id -> (label, pipeline label, metadata), straight from the portal's pipelines."""
    return {
        stage["id"]: (stage["label"], pipeline["label"], stage["metadata"])
        for pipeline in portal.pipelines[object_type]
        for stage in pipeline["stages"]
    }


def test_deal_values_follow_the_portal(
    portal: HubSpotPortal, full: dict[str, tuple[list[CanonicalRow], list[Page]]]
) -> None:
    rows, _ = full["deals"]
    records = _live_and_archived(portal, "deals")
    stages = _stage_facts(portal, "deals")
    for row in rows:
        record = records[row["source_id"]]
        props = record["properties"]
        label, pipeline, meta = stages[props["dealstage"]]
        closed = meta["isClosed"] == "true"
        won = closed and Decimal(meta["probability"]) == 1
        expected_outcome = "won" if won else "lost" if closed else "open"
        assert (row["stage"], row["pipeline"], row["outcome"]) == (
            label,
            pipeline,
            expected_outcome,
        )
        assert row["amount"] == (Decimal(props["amount"]) if props["amount"] else None)
        assert row["amount_home"] == (
            Decimal(props["amount_in_home_currency"]) if props["amount_in_home_currency"] else None
        )
        assert (row["currency"], row["home_currency"]) == (props["deal_currency_code"], "USD")
        assert row["customer_id"] == portal.company_of("deals", record["id"])[0]
        assert row["owner_id"] == props["hubspot_owner_id"]
        assert row["close_on"] == ts(props["closedate"]).date()
        assert row["created_at"] == ts(props["createdate"])
        assert row["deal_type"] == (props["dealtype"] or None)
    assert {row["currency"] for row in rows} == set(CURRENCY_RATES)


def test_outcome_comes_from_stage_metadata_not_labels(
    full: dict[str, tuple[list[CanonicalRow], list[Page]]],
) -> None:
    rows, _ = full["deals"]
    outcomes = {(row["stage"], row["outcome"]) for row in rows}
    assert ("Won back", "open") in outcomes  # an open stage whose label says "won"
    assert ("Signed", "won") in outcomes  # a won stage whose label does not
    assert ("Churned", "lost") in outcomes
    assert not {o for o in outcomes if o[0] == "Won back" and o[1] != "open"}


def test_empty_strings_become_none(
    portal: HubSpotPortal, full: dict[str, tuple[list[CanonicalRow], list[Page]]]
) -> None:
    deals = {row["source_id"]: row for row in full["deals"][0]}
    blank = [r["id"] for r in portal.records("deals") if r["properties"]["amount"] == ""]
    assert blank, "the generator leaves some open deals without an amount"
    assert all(deals[i]["amount"] is None and deals[i]["amount_home"] is None for i in blank)
    companies = {row["source_id"]: row for row in full["companies"][0]}
    no_industry = [r["id"] for r in portal.records("companies") if not r["properties"]["industry"]]
    assert no_industry
    assert all(companies[i]["segment"] is None for i in no_industry)
    prospects = [
        r["id"]
        for r in portal.records("companies")
        if not r["properties"]["hs_lifecyclestage_customer_date"]
    ]
    assert prospects
    assert all(companies[i]["became_customer_on"] is None for i in prospects)


def test_companies_and_tickets_values(
    portal: HubSpotPortal, full: dict[str, tuple[list[CanonicalRow], list[Page]]]
) -> None:
    companies = _live_and_archived(portal, "companies")
    for row in full["companies"][0]:
        props = companies[row["source_id"]]["properties"]
        since = props["hs_lifecyclestage_customer_date"]
        assert row["became_customer_on"] == (ts(since).date() if since else None)
        churned = props["churned_date"]
        assert row["churned_on"] == (date.fromisoformat(churned) if churned else None)
        assert (row["domain"], row["external_id"]) == (props["domain"], None)
    assert any(row["churned_on"] for row in full["companies"][0])
    tickets = _live_and_archived(portal, "tickets")
    stages = _stage_facts(portal, "tickets")
    for row in full["tickets"][0]:
        record = tickets[row["source_id"]]
        props = record["properties"]
        state = stages[props["hs_pipeline_stage"]][2]["ticketState"]
        assert row["status"] == ("solved" if state == "CLOSED" else "open")
        assert row["solved_at"] == (ts(props["closed_date"]) if props["closed_date"] else None)
        reply = props["first_agent_reply_date"]
        assert row["first_response_at"] == (ts(reply) if reply else None)
        assert row["priority"] == (props["hs_ticket_priority"].lower() or None)
        assert row["channel"] == props["source_type"].lower()
        assert row["customer_id"] == portal.company_of("tickets", record["id"])[0]
    assert {row["status"] for row in full["tickets"][0]} == {"open", "solved"}


def test_incremental_read_returns_only_newer_changes(
    portal: HubSpotPortal, server: RunningServer
) -> None:
    live = sorted(
        portal.records("deals"), key=lambda r: to_ms(r["properties"]["hs_lastmodifieddate"])
    )
    since = ts(live[len(live) * 2 // 3]["properties"]["hs_lastmodifieddate"])
    until = since + timedelta(days=20)
    rows, rejected, pages = read(settings_for(server), "deals", Bookmark(since), until)
    expected_live = {
        r["id"] for r in live if since <= ts(r["properties"]["hs_lastmodifieddate"]) < until
    }
    expected_archived = {
        r["id"]
        for r in portal.records("deals", archived=True)
        if since <= ts(r["archivedAt"]) < until
    }
    assert rejected == []
    assert Counter(row["source_id"] for row in rows) == Counter(expected_live | expected_archived)
    assert all(row["source_modified_at"] >= since for row in rows)
    assert pages[0].bookmark is not None
    assert pages[0].bookmark.at >= since
    # owners are listed whole and filtered by updatedAt
    owner_since = ts(sorted(o["updatedAt"] for o in portal.owners)[5])
    owners, _, _ = read(settings_for(server), "owners", Bookmark(owner_since))
    assert {r["source_id"] for r in owners} == {
        o["id"] for o in portal.owners if ts(o["updatedAt"]) >= owner_since
    }


def test_bad_values_are_rejected_with_the_reason() -> None:
    small = generate_portal(seed=5, as_of=AS_OF, companies=10, deals=30, tickets=0)
    deals = sorted(small.records("deals"), key=lambda r: r["id"])
    small.update("deals", deals[0]["id"], {"amount": "12,5OO"})
    small.update("deals", deals[1]["id"], {"closedate": "next tuesday"})
    small.update("deals", deals[2]["id"], {"dealstage": "no-such-stage"})
    with serve_tls(create_app(small, search_requests_per_second=LAX)) as running:
        rows, rejected, pages = read(settings_for(running), "deals")
    reasons = {r.source_id: r.reasons for r in rejected}
    assert reasons == {
        deals[0]["id"]: ["mapping: amount '12,5OO' is not a number"],
        deals[1]["id"]: ["mapping: closedate 'next tuesday' is not a date"],
        deals[2]["id"]: ["mapping: dealstage 'no-such-stage' is not a stage of any pipeline"],
    }
    assert all(r.source == "hubspot" and r.record["id"] == r.source_id for r in rejected)
    assert len(rows) + len(rejected) == 30
    # the rejected records were modified last: the bookmark still moves past them
    assert pages[-1].bookmark is not None
    newest = max(to_ms(r["properties"]["hs_lastmodifieddate"]) for r in small.records("deals"))
    assert pages[-1].bookmark.at == datetime.fromtimestamp(newest / 1000, UTC)


# --- the 10,000-result cap, the limiter and errors ---------------------------------------


def test_search_cap_is_passed_by_restarting_the_query() -> None:
    big = generate_portal(seed=3, as_of=AS_OF, companies=40, deals=10_500, tickets=0)
    live = sorted(
        big.records("deals"), key=lambda r: (to_ms(r["properties"]["hs_lastmodifieddate"]), r["id"])
    )
    tie = live[9990]["properties"]["hs_lastmodifieddate"]
    for record in live[9990:10011]:  # 21 records share one instant across the 10,000 line
        big.update("deals", record["id"], {"hs_lastmodifieddate": tie})
    app = create_app(big, search_requests_per_second=LAX)
    with serve_tls(app) as running:
        client = HubSpot(
            access_token=SANDBOX_ACCESS_TOKEN,
            host=running.base_url,
            ssl_ca_cert=str(running.ca_file),
        )
        search = client.crm.objects.search_api
        ok = search.do_search("deals", PublicObjectSearchRequest(limit=200, after="9800"))
        assert len(ok.results) == 200
        assert ok.total == len(live)
        for after, limit in (("10000", 200), ("9900", 200), ("0", 201)):
            with pytest.raises(ApiException) as refused:
                search.do_search("deals", PublicObjectSearchRequest(limit=limit, after=after))
            assert refused.value.status == 400
            assert orjson.loads(refused.value.body)["category"] == "VALIDATION_ERROR"

        before = len(app.state.emulator.search_log)
        rows, rejected, _ = read(settings_for(running), "deals")
        searches = len(app.state.emulator.search_log) - before
        expected = {r["id"] for r in big.records("deals", archived=None)}
        assert rejected == []
        counts = Counter(row["source_id"] for row in rows)
        assert set(counts) == expected
        assert set(counts.values()) == {1}
        assert searches == 53  # 50 pages, then a second query from the tie: 3 more

        # More than 10,000 changes in one millisecond cannot be paged: refused, not looped.
        for record in live:
            big.update("deals", record["id"], {"hs_lastmodifieddate": tie})
        with pytest.raises(FatalSourceError, match="cannot page past them"):
            read(settings_for(running), "deals")


@pytest.fixture(scope="module")
def strict() -> Iterator[tuple[RunningServer, Any]]:
    """A server that allows two searches per second per token, like a real portal's limit."""
    app = create_app(
        generate_portal(seed=2, as_of=AS_OF, companies=20, deals=1000, tickets=0),
        search_requests_per_second=2,
    )
    with serve_tls(app) as running:
        yield running, app.state.emulator


def test_limiter_keeps_searches_under_the_setting(strict: tuple[RunningServer, Any]) -> None:
    running, state = strict
    rows, _, _ = read(settings_for(running, search_requests_per_second=2), "deals")
    assert len(rows) == 1000
    log = state.search_log
    assert len(log) == 5
    assert state.rate_limited == 0
    busiest = max(sum(1 for t in log if start <= t < start + 1.0) for start in log)
    assert busiest <= 2


def test_rate_limit_429_is_retriable_with_retry_after(strict: tuple[RunningServer, Any]) -> None:
    running, state = strict
    with pytest.raises(RetriableSourceError) as caught:
        read(settings_for(running, search_requests_per_second=50), "deals")
    assert caught.value.status == 429
    assert caught.value.retry_after == 1.0  # HubSpot's SECONDLY policy
    assert "RATE_LIMIT" in str(caught.value)
    assert state.rate_limited >= 1


def test_injected_faults_map_to_the_error_taxonomy(server: RunningServer, app: Starlette) -> None:
    faults = app.state.faults  # each fault answers the next request, then it serves normally
    for stream in ("companies", "owners"):  # a search (POST) and a list (GET)
        faults.inject(429, headers={"Retry-After": "7"})
        started = time.monotonic()
        with pytest.raises(RetriableSourceError) as limited:
            read(settings_for(server), stream)
        assert (limited.value.status, limited.value.retry_after) == (429, 7.0)
        assert time.monotonic() - started < 5  # surfaced to the flow, not slept through
    faults.inject(503)
    with pytest.raises(RetriableSourceError, match="503"):
        read(settings_for(server), "companies")
    faults.inject(401)
    with pytest.raises(FatalSourceError, match="INVALID_AUTHENTICATION"):
        read(settings_for(server), "companies")
    rows, _, _ = read(settings_for(server), "companies")  # and then it serves normally
    assert rows


def test_passes_the_shared_connector_contract() -> None:
    counts = run_contract(connector)
    assert set(counts) == set(STREAMS)
    assert all(count > 0 for count in counts.values())


def test_wrong_token_is_fatal_and_never_shown(server: RunningServer) -> None:
    token = "pat-na1-11111111-2222-3333-4444-555555555555"
    with pytest.raises(FatalSourceError) as caught:
        read(settings_for(server, access_token=SecretStr(token)), "deals")
    assert caught.value.status == 401
    assert "INVALID_AUTHENTICATION" in str(caught.value)
    assert token not in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(FatalSourceError, match="OKR_SYNC_HUBSPOT_ACCESS_TOKEN"):
        HubSpotReader(settings_for(server, access_token=None))


def test_tls_trusts_only_the_configured_ca(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_bundle = ssl.get_default_verify_paths().openssl_cafile
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", system_bundle)
    monkeypatch.setenv("CURL_CA_BUNDLE", system_bundle)
    rows, _, _ = read(settings_for(server), "companies")  # the CA in settings still wins
    assert rows
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))  # ...and is the only way in
    with pytest.raises(FatalSourceError, match="OKR_SYNC_HUBSPOT_CA_BUNDLE"):
        read(settings_for(server, ca_bundle=None), "companies")


# --- the generator and seed files --------------------------------------------------------


def _dump(portal: HubSpotPortal) -> bytes:
    return orjson.dumps(
        {
            "records": {
                t: portal.records(t, archived=None) for t in ("companies", "deals", "tickets")
            },
            "owners": portal.owners,
            "pipelines": portal.pipelines,
            "account": portal.account,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def test_generator_is_deterministic_and_consistent(portal: HubSpotPortal) -> None:
    again = small_portal()
    assert _dump(again) == _dump(portal)
    assert _dump(small_portal(seed=12)) != _dump(portal)
    window_start = datetime(2025, 7, 1, tzinfo=UTC) - timedelta(days=75)
    first_won: dict[str, int] = {}
    for deal in portal.records("deals"):
        props = deal["properties"]
        for name in ("amount", "amount_in_home_currency"):
            assert isinstance(props[name], str)
        assert window_start <= ts(props["createdate"]) <= AS_OF
        assert ts(props["createdate"]) <= ts(props["hs_lastmodifieddate"]) <= AS_OF
        if props["dealstage"] in ("closedwon", "19800996"):
            company_id = portal.company_of("deals", deal["id"])[0]
            close = to_ms(props["closedate"])
            first_won[company_id] = min(first_won.get(company_id, close), close)
    seeds = {seed.crm_id: seed for seed in customer_seeds(portal)}
    assert seeds
    assert set(seeds) == set(first_won)
    for company_id, seed in seeds.items():
        company = portal.get("companies", company_id)
        assert company is not None
        props = company["properties"]
        assert props["hs_lifecyclestage_customer_date"] == iso_ms(first_won[company_id])
        assert seed.domain == props["domain"]
        assert seed.name == props["name"]
    for ticket in portal.records("tickets", archived=None):
        seed = seeds[portal.company_of("tickets", ticket["id"])[0]]
        created = ts(ticket["properties"]["createdate"]).date()
        assert seed.customer_since is not None
        assert seed.customer_since <= created
        assert seed.churned_on is None or created <= seed.churned_on
    assert any(seed.churned_on for seed in seeds.values())


def test_write_and_load_round_trip(portal: HubSpotPortal, tmp_path: Path) -> None:
    files = write_portal(portal, tmp_path)
    assert sorted(f.name for f in files) == [
        "account.json",
        "companies.jsonl",
        "deals.jsonl",
        "owners.jsonl",
        "pipelines.json",
        "tickets.jsonl",
    ]
    assert _dump(load_portal(tmp_path)) == _dump(portal)


def test_load_names_the_bad_file_and_line(portal: HubSpotPortal, tmp_path: Path) -> None:
    write_portal(portal, tmp_path)
    path = tmp_path / "deals.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:2], b'{"id": "1", "properties": [\n', *lines[2:]]))
    with pytest.raises(ValueError, match=r"deals\.jsonl:3: "):
        load_portal(tmp_path)
    path.write_bytes(b"".join([lines[0], b'{"properties": {}}\n']))
    with pytest.raises(ValueError, match=r"deals\.jsonl:2: record has no string 'id'"):
        load_portal(tmp_path)
