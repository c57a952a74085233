"""The HubSpot connector and its emulator, through the real hubspot-api-client over real
HTTPS on loopback (one lax server for the module; strict ones where limits are the point)."""

from __future__ import annotations

import math
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
import pytest
from hubspot import HubSpot
from hubspot.crm.objects import PublicObjectSearchRequest
from hubspot.crm.objects.exceptions import ApiException
from pydantic import SecretStr
from starlette.applications import Starlette

from connectors.base import Bookmark, Page, Rejected
from connectors.canonical import CanonicalRow, Customer, Deal, Rep, Ticket
from connectors.contract import run_contract
from connectors.errors import FatalSourceError, RetriableSourceError
from connectors.hubspot import HubSpotReader, HubSpotSettings, connector
from connectors.hubspot.client import request_limiter
from connectors.hubspot.sandbox import sandbox_env
from connectors.hubspot.sandbox.data import (
    CURRENCY_RATES,
    HubSpotPortal,
    customer_seeds,
    generate_portal,
    iso_ms,
    load_portal,
    to_ms,
    write_portal,
)
from connectors.hubspot.sandbox.emulator import SANDBOX_ACCESS_TOKEN, create_app, run_search
from connectors.sandbox.server import RunningServer, parse_faults, serve_tls

AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
Row = TypeVar("Row", Customer, Deal, Rep, Ticket)


def small_portal(seed: int = 11) -> HubSpotPortal:
    """Big enough for several search pages per stream, small enough to stay fast."""
    return generate_portal(seed, AS_OF, companies=120, deals=900, tickets=600)


LAX = 1000  # search requests per second where the limit is not under test
LAX_BURST = 100_000  # requests per ten seconds, likewise

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
        "requests_per_ten_seconds": LAX_BURST,
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


def lax_app(portal: HubSpotPortal) -> Starlette:
    """An emulator whose rate limits stay out of the way."""
    return create_app(portal, search_requests_per_second=LAX, requests_per_ten_seconds=LAX_BURST)


@pytest.fixture(scope="module")
def portal() -> HubSpotPortal:
    return small_portal()


@pytest.fixture(scope="module")
def app(portal: HubSpotPortal) -> Starlette:
    return lax_app(portal)


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


def rows_as(entity: type[Row], rows: list[CanonicalRow]) -> list[Row]:
    """One stream's rows as its entity (a reader's rows may be of any entity)."""
    return cast(list[Row], rows)


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
    rows = rows_as(Rep, full["owners"][0])
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
    rows = rows_as(Deal, full["deals"][0])
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
    rows = rows_as(Deal, full["deals"][0])
    outcomes = {(row["stage"], row["outcome"]) for row in rows}
    assert ("Won back", "open") in outcomes  # an open stage whose label says "won"
    assert ("Signed", "won") in outcomes  # a won stage whose label does not
    assert ("Churned", "lost") in outcomes
    assert not {o for o in outcomes if o[0] == "Won back" and o[1] != "open"}


def test_empty_strings_become_none(
    portal: HubSpotPortal, full: dict[str, tuple[list[CanonicalRow], list[Page]]]
) -> None:
    deals = {row["source_id"]: row for row in rows_as(Deal, full["deals"][0])}
    blank = [r["id"] for r in portal.records("deals") if r["properties"]["amount"] == ""]
    assert blank, "the generator leaves some open deals without an amount"
    assert all(deals[i]["amount"] is None and deals[i]["amount_home"] is None for i in blank)
    companies = {row["source_id"]: row for row in rows_as(Customer, full["companies"][0])}
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
    for customer in rows_as(Customer, full["companies"][0]):
        props = companies[customer["source_id"]]["properties"]
        since = props["hs_lifecyclestage_customer_date"]
        assert customer["became_customer_on"] == (ts(since).date() if since else None)
        churned = props["churned_date"]
        assert customer["churned_on"] == (date.fromisoformat(churned) if churned else None)
        assert (customer["domain"], customer["external_id"]) == (props["domain"], None)
    assert any(row["churned_on"] for row in rows_as(Customer, full["companies"][0]))
    tickets = _live_and_archived(portal, "tickets")
    stages = _stage_facts(portal, "tickets")
    for row in rows_as(Ticket, full["tickets"][0]):
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
    assert {row["status"] for row in rows_as(Ticket, full["tickets"][0])} == {"open", "solved"}


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
    with serve_tls(lax_app(small)) as running:
        rows, rejected, pages = read(settings_for(running), "deals")
    reasons = {r.source_id: r.reasons for r in rejected}
    expected = {  # each reason starts with what is wrong (a parser's detail may follow)
        deals[0]["id"]: "mapping: amount '12,5OO' is not a number",
        deals[1]["id"]: "mapping: closedate 'next tuesday' is not a date",
        deals[2]["id"]: "mapping: dealstage 'no-such-stage' is not a stage of any pipeline",
    }
    assert set(reasons) == set(expected)
    for source_id, reason in expected.items():
        assert len(reasons[source_id]) == 1
        assert reasons[source_id][0].startswith(reason)
    assert all(r.source == "hubspot" and r.record["id"] == r.source_id for r in rejected)
    assert len(rows) + len(rejected) == 30
    # the rejected records were modified last: the bookmark still moves past them
    assert pages[-1].bookmark is not None
    newest = max(to_ms(r["properties"]["hs_lastmodifieddate"]) for r in small.records("deals"))
    assert pages[-1].bookmark.at == datetime.fromtimestamp(newest / 1000, UTC)


# --- the 10,000-result cap, the limiter and errors ---------------------------------------


def test_search_cap_is_never_met_by_keyset_pages() -> None:
    big = generate_portal(seed=3, as_of=AS_OF, companies=40, deals=10_500, tickets=0)
    live = sorted(
        big.records("deals"), key=lambda r: (to_ms(r["properties"]["hs_lastmodifieddate"]), r["id"])
    )
    tie = live[9990]["properties"]["hs_lastmodifieddate"]
    for record in live[9990:10011]:  # 21 records share one instant across the 10,000 line
        big.update("deals", record["id"], {"hs_lastmodifieddate": tie})
    app = lax_app(big)
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
        # One search per page: each is a fresh keyset query, none pages near the cap.
        assert searches == -(-len(live) // 200)


# --- ties past the cap, resume inside a tie, changes mid-read --------------------------

TIED = 10_300  # more live deals in one millisecond than one search can page


@pytest.fixture(scope="module")
def tied() -> Iterator[tuple[HubSpotPortal, RunningServer, Starlette]]:
    """A portal where 10,300 live deals share one hs_lastmodifieddate millisecond."""
    big = generate_portal(
        seed=4, as_of=AS_OF, companies=30, deals=TIED + 150, tickets=0, tied_deals=TIED
    )
    app = lax_app(big)
    with serve_tls(app) as running:
        yield big, running, app


def _key(record: dict[str, Any]) -> tuple[int, int]:
    return to_ms(record["properties"]["hs_lastmodifieddate"]), int(record["id"])


def _assert_bookmarks_follow_the_rows(pages: list[Page]) -> None:
    """Each live page's bookmark is the greatest (modified, numeric id) read so far."""
    newest: tuple[datetime, int] | None = None
    for page in pages:
        for row in page.rows:
            if row["deleted_at"] is None:
                key = (row["source_modified_at"], int(row["source_id"]))
                newest = key if newest is None else max(newest, key)
        if newest is not None and page.bookmark is not None and page.bookmark.last_id:
            assert (page.bookmark.at, int(page.bookmark.last_id)) == newest


def test_more_than_ten_thousand_records_in_one_millisecond_are_read_once(
    tied: tuple[HubSpotPortal, RunningServer, Starlette], monkeypatch: pytest.MonkeyPatch
) -> None:
    big, running, app = tied
    stamps = Counter(r["properties"]["hs_lastmodifieddate"] for r in big.records("deals"))
    assert max(stamps.values()) == TIED
    for name, value in sandbox_env(running).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OKR_SYNC_HUBSPOT_SEARCH_REQUESTS_PER_SECOND", str(LAX))
    monkeypatch.setenv("OKR_SYNC_HUBSPOT_REQUESTS_PER_TEN_SECONDS", str(LAX_BURST))
    refused = app.state.emulator.rate_limited
    rows, rejected, pages = read(HubSpotSettings(), "deals")
    assert rejected == []
    counts = Counter(row["source_id"] for row in rows)
    assert set(counts) == {r["id"] for r in big.records("deals", archived=None)}
    assert set(counts.values()) == {1}
    assert app.state.emulator.rate_limited == refused
    _assert_bookmarks_follow_the_rows(pages)
    newest = max(_key(r) for r in big.records("deals"))
    last = next(p.bookmark for p in reversed(pages) if p.bookmark and p.bookmark.last_id)
    assert last is not None
    assert (to_ms(last.at.isoformat()), int(str(last.last_id))) == newest


def test_resume_inside_a_tie_reads_exactly_the_rest(
    tied: tuple[HubSpotPortal, RunningServer, Starlette],
) -> None:
    big, running, _ = tied
    live = sorted(big.records("deals"), key=_key)
    at_ms = Counter(_key(r)[0] for r in live).most_common(1)[0][0]
    block = [r for r in live if _key(r)[0] == at_ms]
    middle = block[len(block) // 2]
    since = Bookmark(datetime.fromtimestamp(at_ms / 1000, UTC), last_id=middle["id"])
    rows, rejected, pages = read(settings_for(running), "deals", since)
    assert rejected == []
    live_rows = Counter(row["source_id"] for row in rows if row["deleted_at"] is None)
    assert live_rows == Counter(r["id"] for r in live if _key(r) > _key(middle))
    tombstones = {row["source_id"] for row in rows if row["deleted_at"] is not None}
    assert tombstones == {
        r["id"] for r in big.records("deals", archived=True) if ts(r["archivedAt"]) >= since.at
    }
    _assert_bookmarks_follow_the_rows(pages)
    # Without last_id the bookmark is inclusive: the whole tie block comes again.
    rows, _, _ = read(settings_for(running), "deals", Bookmark(since.at))
    assert {r["id"] for r in block} <= {row["source_id"] for row in rows}


def test_records_changed_mid_read_are_caught_up_from_the_bookmark() -> None:
    # More than one association batch (1,000 deals): searches are left after the first page.
    small = generate_portal(seed=8, as_of=AS_OF, companies=40, deals=2000, tickets=0)
    before = {r["id"]: r["properties"]["amount"] for r in small.records("deals")}
    app = lax_app(small)
    with serve_tls(app) as running:
        settings = settings_for(running)
        reader = HubSpotReader(settings)
        try:
            pages = reader.read(STREAMS["deals"], None)
            first = [next(pages)]
            app.state.faults.extend(parse_faults("mutate:5@/crm/v3/objects/deals/search"))
            first += list(pages)
        finally:
            reader.close()
        changed = {
            r["id"] for r in small.records("deals") if r["properties"]["amount"] != before[r["id"]]
        }
        assert len(changed) == 5
        last = next(p.bookmark for p in reversed(first) if p.bookmark is not None)
        _, rejected, again = read(settings, "deals", last)
    assert rejected == []
    latest: dict[str, Deal] = {}
    for page in [*first, *again]:
        for row in rows_as(Deal, page.rows):
            latest[row["source_id"]] = row
    final = {r["id"]: r for r in small.records("deals", archived=None)}
    assert set(latest) == set(final)
    for source_id, record in final.items():
        row = latest[source_id]
        if record["archived"]:
            assert row["deleted_at"] == ts(record["archivedAt"])
            continue
        props = record["properties"]
        assert row["source_modified_at"] == ts(props["hs_lastmodifieddate"])
        assert row["amount"] == (Decimal(props["amount"]) if props["amount"] else None)


# --- usage, quota, the burst limiter and ids ---------------------------------------------


def test_usage_counts_every_request_and_keeps_the_quota(
    server: RunningServer, app: Starlette
) -> None:
    state = app.state.emulator
    received = state.requests
    reader = HubSpotReader(settings_for(server))
    try:
        for stream in ("deals", "owners"):  # search, associations, pipelines, account, lists
            list(reader.read(STREAMS[stream], None))
        listed = list(reader.ids(STREAMS["companies"]))
        app.state.faults.inject(503)  # a refused request is still a request
        with pytest.raises(RetriableSourceError):
            list(reader.ids(STREAMS["tickets"]))
    finally:
        reader.close()
    assert listed
    assert reader.usage.requests == state.requests - received
    assert reader.usage.requests >= 10
    remaining = state.daily_limit - state.requests
    assert reader.usage.quota == f"{remaining}/{state.daily_limit} daily API calls remaining"


def test_a_full_read_makes_the_fewest_requests_the_page_sizes_allow() -> None:
    """Companies for five search pages come in one association batch read (its maximum is
    1,000 inputs), not one a page: a full read costs what the page sizes allow."""
    big = generate_portal(seed=9, as_of=AS_OF, companies=60, deals=2600, tickets=0)
    live, archived = len(big.records("deals")), len(big.records("deals", archived=True))
    assert archived > 0
    app = lax_app(big)
    with serve_tls(app) as running:
        reader = HubSpotReader(settings_for(running))
        try:
            pages = list(reader.read(STREAMS["deals"], None))
        finally:
            reader.close()
    expected = (
        math.ceil(live / 200)  # searches
        # association batch reads: the archived deals share the last live ones' (the
        # listing's first pages join the search's last group, up to 1,000 records)
        + math.ceil((live + archived) / 1000)
        + math.ceil(archived / 100)  # the archived listing
        + 3  # the deal pipelines, the properties (schema) and the account (currency)
    )
    assert reader.usage.requests == app.state.emulator.requests == expected
    assert sum(len(page.rows) for page in pages) == live + archived
    assert all(page.rejected == [] for page in pages)


def test_ids_lists_exactly_the_live_records(portal: HubSpotPortal, server: RunningServer) -> None:
    reader = HubSpotReader(settings_for(server))
    try:
        listed = {name: list(reader.ids(STREAMS[name])) for name in STREAMS}
    finally:
        reader.close()
    for name in ("companies", "deals", "tickets"):
        ids = [i for page in listed[name] for i in page]
        assert Counter(ids) == Counter(r["id"] for r in portal.records(name))
        assert all(0 < len(page) <= 100 for page in listed[name])
    # Deactivated owners stay reps (active = false): both listings are live.
    assert sorted(i for page in listed["owners"] for i in page) == sorted(
        o["id"] for o in portal.owners
    )


def test_burst_limiter_admits_what_the_portal_allows_and_holds_back_the_rest() -> None:
    small = generate_portal(seed=6, as_of=AS_OF, companies=20, deals=450, tickets=0)
    with serve_tls(lax_app(small)) as running:  # how many calls a deals read makes
        reader = HubSpotReader(settings_for(running))
        try:
            list(reader.read(STREAMS["deals"], None))
        finally:
            reader.close()
    calls = reader.usage.requests
    assert calls >= 8  # searches, association batches, pipelines, account, archived list
    # A portal that allows exactly that many per ten seconds, and a limiter set to it.
    strict_app = create_app(small, search_requests_per_second=LAX, requests_per_ten_seconds=calls)
    with serve_tls(strict_app) as running:
        settings = settings_for(running, requests_per_ten_seconds=calls)
        rows, _, _ = read(settings, "deals")
        assert rows
        assert strict_app.state.emulator.rate_limited == 0
        limiter = request_limiter(settings, SANDBOX_ACCESS_TOKEN)
        assert limiter is request_limiter(settings, SANDBOX_ACCESS_TOKEN)  # one per token
        assert [b.count() for b in limiter.buckets()] == [calls]  # every call took a permit
        assert limiter.try_acquire("request", blocking=False) is False  # the next one waits
        # ...which is right: the portal refuses a reader that does not wait.
        lax = settings_for(running, requests_per_ten_seconds=calls + 1)
        with pytest.raises(RetriableSourceError) as caught:
            read(lax, "owners")
        assert (caught.value.status, caught.value.retry_after) == (429, 10.0)
        assert "RATE_LIMIT" in str(caught.value)
        assert strict_app.state.emulator.rate_limited == 1


def test_emulator_compares_and_sorts_object_ids_as_numbers() -> None:
    tiny = HubSpotPortal()
    stamp = iso_ms(to_ms("2026-01-05T10:00:00Z"))
    for record_id in ("9", "10", "100", "11"):
        props = {"hs_lastmodifieddate": stamp, "createdate": stamp, "amount": "1"}
        tiny.add("deals", {"id": record_id, "properties": props})

    def ids(filters: list[dict[str, str]], sort: str = "hs_object_id") -> list[str]:
        body = {"filterGroups": [{"filters": filters}], "sorts": [sort], "limit": 10}
        return [r["id"] for r in run_search(tiny, "deals", body)["results"]]

    def on(op: str, value: str) -> dict[str, str]:
        return {"propertyName": "hs_object_id", "operator": op, "value": value}

    same = {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": stamp}
    assert ids([]) == ["9", "10", "11", "100"]
    assert ids([same, on("GT", "10")]) == ["11", "100"]
    assert ids([same, on("GTE", "10")]) == ["10", "11", "100"]
    assert ids([on("LT", "11")]) == ["9", "10"]
    assert ids([on("EQ", "100")]) == ["100"]
    assert ids([same, on("GT", "9")], "hs_lastmodifieddate") == ["10", "11", "100"]
    assert ids([on("GT", "9")], "-hs_object_id") == ["100", "11", "10"]


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
    assert "wrong or revoked, check OKR_SYNC_HUBSPOT_ACCESS_TOKEN" in str(caught.value)
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
            "properties": portal.properties,
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
        "properties.json",
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


def test_the_tie_fault_makes_deals_share_one_modified_time() -> None:
    """``okr-sync sandbox --source hubspot --faults tie:N`` acts it out before answering."""
    portal = generate_portal(seed=4, as_of=AS_OF, companies=10, deals=120, tickets=0)
    app = create_app(portal, search_requests_per_second=LAX, requests_per_ten_seconds=LAX_BURST)
    app.state.faults.extend(parse_faults("tie:80@/crm/v3/objects/deals"))
    with serve_tls(app) as running:
        rows, rejected, _ = read(settings_for(running), "deals")
    stamps = Counter(row["source_modified_at"] for row in rows if row["deleted_at"] is None)
    assert max(stamps.values()) == 80
    assert (len(rows), rejected) == (len(portal.records("deals", archived=None)), [])
