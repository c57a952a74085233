"""The Zendesk connector against its emulator over real HTTPS on loopback.

The module's sandbox mirrors the customers of the small Salesforce sandbox org, so the
cross-system identities (CRM id as external id, e-mail domain) are checked end to end.
Tests that edit the helpdesk get a small sandbox of their own. The connector's rate
limiters are set generous through the environment (an autouse fixture) wherever a test does
not set them to the emulator's own limits.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import certifi
import pytest
from pydantic import SecretStr

from connectors.base import Bookmark, Page, StreamInfo
from connectors.canonical import CanonicalRow, Customer, Rating, Ticket
from connectors.errors import FatalSourceError, RetriableSourceError
from connectors.http import TrustedSession
from connectors.salesforce.sandbox.data import customer_seeds, generate_org
from connectors.sandbox.server import RunningServer, parse_faults, serve_tls
from connectors.sandbox.world import CompanySeed
from connectors.zendesk import ZendeskReader, ZendeskSettings, connector
from connectors.zendesk.mapping import MappingError, parse_time, rating_to_rating, ticket_to_ticket
from connectors.zendesk.sandbox.data import (
    FILES,
    Helpdesk,
    generate_helpdesk,
    load_helpdesk,
    write_helpdesk,
)
from connectors.zendesk.sandbox.emulator import (
    SANDBOX_API_TOKEN,
    SANDBOX_EMAIL,
    SANDBOX_OAUTH_TOKEN,
    create_app,
)
from connectors.zendesk.streams import ORGANIZATIONS, SATISFACTION_RATINGS, TICKETS

AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
COMMON = {"source", "source_id", "source_modified_at", "deleted_at"}
KEYS = {
    "organizations": COMMON
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
    "tickets": COMMON
    | {
        "customer_id",
        "status",
        "priority",
        "channel",
        "created_at",
        "first_response_at",
        "solved_at",
    },
    "satisfaction_ratings": COMMON
    | {"ticket_id", "customer_id", "score", "scale_max", "good", "rated_at"},
}
RECORDS = {
    "organizations": "organizations",
    "tickets": "tickets",
    "satisfaction_ratings": "ratings",
}
EXPORT_URL = "/api/v2/incremental/tickets/cursor.json"
GENEROUS = 1_000_000
"""Calls a minute for limits that must never slow or refuse a test."""

Row = TypeVar("Row", Customer, Ticket, Rating)


@pytest.fixture(autouse=True)
def generous_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zendesk's real 10 exports a minute would make this module wait minutes."""
    monkeypatch.setenv("OKR_SYNC_ZENDESK_EXPORT_REQUESTS_PER_MINUTE", str(GENEROUS))
    monkeypatch.setenv("OKR_SYNC_ZENDESK_REQUESTS_PER_MINUTE", str(GENEROUS))


@pytest.fixture(scope="module")
def companies() -> list[CompanySeed]:
    org = generate_org(seed=11, as_of=AS_OF, accounts=150, opportunities=900)
    return customer_seeds(org)


@pytest.fixture(scope="module")
def helpdesk(companies: list[CompanySeed]) -> Helpdesk:
    """The module's helpdesk; never edited (editing tests use :func:`small_sandbox`)."""
    return generate_helpdesk(seed=5, as_of=AS_OF, companies=companies)


@pytest.fixture(scope="module")
def server(helpdesk: Helpdesk) -> Iterator[RunningServer]:
    app = create_app(
        helpdesk, export_page_size=400, export_rate_limit=GENEROUS, rate_limit=GENEROUS
    )
    with serve_tls(app) as running:
        yield running


def small_helpdesk(companies: list[CompanySeed]) -> Helpdesk:
    return generate_helpdesk(seed=5, as_of=AS_OF, companies=companies[:12])


def small_app(desk: Helpdesk, **options: Any) -> Any:
    """An emulator of a small helpdesk, in pages of 20, with limits no test meets by default."""
    defaults = {"export_page_size": 20, "export_rate_limit": GENEROUS, "rate_limit": GENEROUS}
    return create_app(desk, **{**defaults, **options})


@contextmanager
def small_sandbox(
    companies: list[CompanySeed], **options: Any
) -> Iterator[tuple[Helpdesk, RunningServer]]:
    desk = small_helpdesk(companies)
    with serve_tls(small_app(desk, **options)) as running:
        yield desk, running


def settings(server: RunningServer, **overrides: Any) -> ZendeskSettings:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "email": SANDBOX_EMAIL,
        "api_token": SecretStr(SANDBOX_API_TOKEN),
        "ca_bundle": server.ca_file,
        **overrides,
    }
    return ZendeskSettings(**values)


def read(
    server: RunningServer,
    stream: StreamInfo,
    since: Bookmark | None = None,
    until: datetime | None = None,
    **overrides: Any,
) -> list[Page]:
    reader = ZendeskReader(settings(server, **overrides))
    try:
        return list(reader.read(stream, since, until))
    finally:
        reader.close()


def rows_of(pages: list[Page]) -> list[CanonicalRow]:
    return [row for page in pages for row in page.rows]


def rows_as(entity: type[Row], pages: list[Page]) -> list[Row]:
    """The rows of a stream's pages as its entity (a reader's rows may be any entity)."""
    return cast(list[Row], rows_of(pages))


def last_bookmark(pages: list[Page]) -> Bookmark:
    marks = [page.bookmark for page in pages if page.bookmark is not None]
    assert marks
    return marks[-1]


def raw_session(server: RunningServer) -> TrustedSession:
    session = TrustedSession(str(server.ca_file))
    session.auth = (f"{SANDBOX_EMAIL}/token", SANDBOX_API_TOKEN)
    return session


# --- full reads ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [ORGANIZATIONS, TICKETS, SATISFACTION_RATINGS])
def test_every_record_is_read_exactly_once_with_canonical_keys(
    server: RunningServer, helpdesk: Helpdesk, stream: StreamInfo
) -> None:
    pages = read(server, stream)
    rows = rows_of(pages)
    records: dict[int, dict[str, Any]] = getattr(helpdesk, RECORDS[stream.name])
    assert sorted(int(row["source_id"]) for row in rows) == sorted(records)
    assert not any(page.rejected for page in pages)
    for row in rows:
        assert set(row) == KEYS[stream.name]
        record = records[int(row["source_id"])]
        assert row["source"] == "zendesk"
        assert row["source_modified_at"] == parse_time(record["updated_at"])
        assert row["source_modified_at"].tzinfo is not None
    bookmark = last_bookmark(pages)
    assert bookmark.at == max(row["source_modified_at"] for row in rows)


def test_tickets_map_status_channel_priority_and_tombstones(
    server: RunningServer, helpdesk: Helpdesk
) -> None:
    rows = rows_as(Ticket, read(server, TICKETS))
    statuses = {"new", "open", "pending", "solved", "closed"}
    for row in rows:
        ticket = helpdesk.tickets[int(row["source_id"])]
        assert row["customer_id"] == str(ticket["organization_id"])
        assert row["channel"] == ticket["via"]["channel"]
        assert row["priority"] == ticket["priority"]
        assert row["created_at"] == parse_time(ticket["created_at"])
        if ticket["status"] == "deleted":
            assert row["deleted_at"] == row["source_modified_at"]
            assert row["status"] is None
        else:
            assert row["deleted_at"] is None
            assert row["status"] in statuses
            expected = "pending" if ticket["status"] == "hold" else ticket["status"]
            assert row["status"] == expected
    assert any(row["deleted_at"] for row in rows)
    assert any(helpdesk.tickets[int(r["source_id"])]["status"] == "hold" for r in rows)


def test_organizations_carry_the_crm_identity(
    server: RunningServer, companies: list[CompanySeed]
) -> None:
    rows = rows_as(Customer, read(server, ORGANIZATIONS))
    by_crm_id = {row["external_id"]: row for row in rows}
    assert len(by_crm_id) == len(rows) == len(companies)
    for company in companies:
        row = by_crm_id[company.crm_id]
        assert (row["name"], row["domain"]) == (company.name, company.domain)
        assert row["owner_id"] is None
        assert row["became_customer_on"] is None


def test_first_response_and_solved_come_from_metric_sets(
    server: RunningServer, helpdesk: Helpdesk
) -> None:
    rows = rows_as(Ticket, read(server, TICKETS))
    answered = unanswered = 0
    for row in rows:
        metrics = helpdesk.metric_sets[int(row["source_id"])]
        minutes = metrics["reply_time_in_minutes"]["calendar"]
        if minutes is None:
            unanswered += 1
            assert row["first_response_at"] is None
        else:
            answered += 1
            assert row["first_response_at"] == row["created_at"] + timedelta(minutes=minutes)
        solved = metrics.get("solved_at")  # left out while unsolved, as Zendesk does
        assert row["solved_at"] == (None if solved is None else parse_time(solved))
    assert answered > 10 * unanswered > 0


def test_ratings_name_their_ticket_whose_row_gives_the_organization(
    server: RunningServer, helpdesk: Helpdesk
) -> None:
    """The mirror joins ratings to tickets on ticket_id for the customer; no extra call."""
    rows = rows_as(Rating, read(server, SATISFACTION_RATINGS))
    tickets = {row["source_id"]: row for row in rows_as(Ticket, read(server, TICKETS))}
    for row in rows:
        assert row["customer_id"] is None
        assert row["ticket_id"] is not None
        ticket = helpdesk.tickets[int(row["ticket_id"])]
        assert tickets[row["ticket_id"]]["customer_id"] == str(ticket["organization_id"])
    kinds = collections.Counter((row["scale_max"], row["good"]) for row in rows)
    assert kinds[(1, True)] > kinds[(1, False)] > 0
    assert kinds[(5, True)] > 0
    assert kinds[(5, False)] > 0
    assert kinds[(None, None)] > 0


# --- the wire format -----------------------------------------------------------------------


def test_export_pages_follow_after_cursor_to_end_of_stream(
    server: RunningServer, helpdesk: Helpdesk
) -> None:
    with raw_session(server) as session:
        url = f"{server.base_url}{EXPORT_URL}"
        params: dict[str, Any] = {"start_time": 0, "include": "metric_sets"}
        seen: list[int] = []
        while True:
            body = session.get(url, params=params).json()
            assert set(body) == {
                "tickets",
                "metric_sets",
                "after_url",
                "after_cursor",
                "before_url",
                "before_cursor",
                "end_of_stream",
            }
            assert len(body["tickets"]) <= 400
            assert {m["ticket_id"] for m in body["metric_sets"]} == {
                t["id"] for t in body["tickets"]
            }
            seen += [t["id"] for t in body["tickets"]]
            if body["end_of_stream"]:
                break
            assert body["after_url"].endswith("include=metric_sets")
            params = {"cursor": body["after_cursor"], "include": "metric_sets"}
        plain = session.get(url, params={"start_time": 0}).json()
        missing = session.get(url).json()
        unknown = session.get(f"{server.base_url}/api/v2/nothing.json")
    assert len(seen) > 1000
    assert sorted(seen) == sorted(helpdesk.tickets)
    stamps = [helpdesk.tickets[i]["generated_timestamp"] for i in seen]
    assert stamps == sorted(stamps)
    assert "metric_sets" not in plain
    assert len(plain["tickets"]) == 400
    assert missing["error"] == "InvalidValue"
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "InvalidEndpoint", "description": "Not found"}


def test_lists_use_cursor_pagination(server: RunningServer, helpdesk: Helpdesk) -> None:
    with raw_session(server) as session:
        url = f"{server.base_url}/api/v2/organizations.json"
        first = session.get(url, params={"page[size]": 100}).json()
        assert first["meta"]["has_more"] is True
        assert len(first["organizations"]) == 100
        second = session.get(first["links"]["next"]).json()
        assert second["meta"]["has_more"] is False
        assert second["links"]["next"] is None
        ids = [o["id"] for o in first["organizations"] + second["organizations"]]
        assert ids == sorted(helpdesk.organizations)
        too_big = session.get(url, params={"page[size]": 101})
        assert too_big.status_code == 400
        start = datetime(2026, 6, 1, tzinfo=UTC)
        ratings = session.get(
            f"{server.base_url}/api/v2/satisfaction_ratings.json",
            params={"start_time": int(start.timestamp()), "page[size]": 100},
        ).json()
    assert "start_time=" in ratings["links"]["next"]
    assert all(parse_time(r["created_at"]) >= start for r in ratings["satisfaction_ratings"])


# --- incremental reads and bookmarks ----------------------------------------------------------


def test_resuming_a_saved_bookmark_returns_only_later_changes(
    companies: list[CompanySeed],
) -> None:
    with small_sandbox(companies) as (desk, server):
        first = read(server, TICKETS)
        assert len(first) > 3
        bookmark = last_bookmark(first)
        assert bookmark.token
        live = sorted(i for i, t in desk.tickets.items() if t["status"] != "deleted")
        changed = desk.upsert_ticket({"id": live[0], "status": "hold", "priority": "urgent"})
        gone = desk.delete_ticket(live[1])
        org_id = next(iter(desk.organizations))
        new = desk.upsert_ticket({"subject": "Broken export", "organization_id": org_id})
        later = read(server, TICKETS, since=bookmark)
        rows = rows_as(Ticket, later)
        assert [r["source_id"] for r in rows] == [str(t["id"]) for t in (changed, gone, new)]
        assert rows[0]["status"] == "pending"
        assert rows[0]["priority"] == "urgent"
        assert rows[1]["deleted_at"] == rows[1]["source_modified_at"] > bookmark.at
        assert rows[2]["customer_id"] == str(org_id)
        assert rows[2]["status"] == "new"
        resumed = last_bookmark(later)
        assert resumed.at == rows[2]["source_modified_at"] > bookmark.at
        assert resumed.token != bookmark.token
        assert rows_of(read(server, TICKETS, since=resumed)) == []

        orgs = read(server, ORGANIZATIONS)
        org_mark = last_bookmark(orgs)
        renamed = desk.upsert_organization({"id": org_id, "name": "Renamed Inc"})
        org_rows = rows_of(read(server, ORGANIZATIONS, since=org_mark))
        assert str(renamed["id"]) in {r["source_id"] for r in org_rows}
        assert all(r["source_modified_at"] >= org_mark.at for r in org_rows)  # inclusive


def test_resuming_mid_export_neither_skips_nor_repeats(server: RunningServer) -> None:
    pages = read(server, TICKETS)
    assert len(pages) >= 4
    assert all(page.bookmark for page in pages)
    everything = [r["source_id"] for r in rows_of(pages)]
    for cut in (1, len(pages) - 1):
        resumed = read(server, TICKETS, since=pages[cut - 1].bookmark)
        head = [r["source_id"] for r in rows_of(pages[:cut])]
        assert head + [r["source_id"] for r in rows_of(resumed)] == everything
    marks = [page.bookmark.at for page in pages if page.bookmark]
    assert marks == sorted(marks)


def test_a_bounded_read_stops_at_until_and_resumes_without_a_gap(
    server: RunningServer, helpdesk: Helpdesk
) -> None:
    until = datetime(2026, 3, 1, tzinfo=UTC)
    pages = read(server, TICKETS, until=until)
    rows = rows_of(pages)
    assert rows
    assert all(r["source_modified_at"] < until for r in rows)
    bookmark = last_bookmark(pages)
    assert bookmark.token is None
    rest = rows_of(read(server, TICKETS, since=bookmark))
    ids = {r["source_id"] for r in rows} | {r["source_id"] for r in rest}
    assert ids == {str(i) for i in helpdesk.tickets}
    repeated = {r["source_id"] for r in rows} & {r["source_id"] for r in rest}
    assert all(parse_time(helpdesk.tickets[int(i)]["updated_at"]) == bookmark.at for i in repeated)


def test_a_start_time_within_the_last_minute_is_refused_and_means_nothing_new(
    server: RunningServer,
) -> None:
    future = datetime.now(UTC) + timedelta(days=2)
    with raw_session(server) as session:
        response = session.get(
            f"{server.base_url}{EXPORT_URL}", params={"start_time": int(future.timestamp())}
        )
    assert response.status_code == 400
    assert response.json()["description"].startswith("Too recent start_time")
    assert rows_of(read(server, TICKETS, since=Bookmark(future))) == []


# --- ratings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        ("good", (Decimal(1), 1, True)),
        ("bad", (Decimal(0), 1, False)),
        ("offered", (None, None, None)),
        ("unoffered", (None, None, None)),
        (5, (Decimal(5), 5, True)),
        (4, (Decimal(4), 5, True)),
        (3, (Decimal(3), 5, False)),
        ("1", (Decimal(1), 5, False)),
    ],
)
def test_rating_scores_map_to_score_scale_and_good(score: Any, expected: tuple[Any, ...]) -> None:
    record = {
        "id": 7,
        "ticket_id": 3,
        "score": score,
        "created_at": "2026-01-05T10:00:00Z",
        "updated_at": "2026-01-05T11:00:00Z",
    }
    row = rating_to_rating(record, 42)
    assert (row["score"], row["scale_max"], row["good"]) == expected
    assert row["customer_id"] == "42"
    assert row["ticket_id"] == "3"
    assert row["rated_at"] == datetime(2026, 1, 5, 10, tzinfo=UTC)


@pytest.mark.parametrize("score", ["meh", 0, 6, True, None])
def test_unknown_rating_scores_are_mapping_errors(score: Any) -> None:
    record = {"id": 7, "ticket_id": 3, "score": score, "created_at": "2026-01-05T10:00:00Z"}
    with pytest.raises(MappingError, match="score"):
        rating_to_rating({**record, "updated_at": "2026-01-05T10:00:00Z"}, None)


def test_late_survey_answers_and_numeric_scores_are_read_incrementally(
    companies: list[CompanySeed],
) -> None:
    with small_sandbox(companies) as (desk, server):
        ticket = next(t for t in desk.tickets.values() if t["status"] == "closed")
        offered = desk.upsert_rating({"ticket_id": ticket["id"], "score": "offered"})
        bad = desk.upsert_rating({"ticket_id": ticket["id"], "score": "bad"})
        bookmark = last_bookmark(read(server, SATISFACTION_RATINGS))
        assert bookmark.at == parse_time(bad["updated_at"]) > parse_time(offered["created_at"])
        answered = desk.upsert_rating({"id": offered["id"], "score": "good"})
        numeric = desk.upsert_rating({"ticket_id": ticket["id"], "score": 4})
        ratings = rows_as(Rating, read(server, SATISFACTION_RATINGS, bookmark))
        rows = {r["source_id"]: r for r in ratings}
        # the bad rating sits on the (inclusive) bookmark; everything older stays out
        assert set(rows) == {str(bad["id"]), str(answered["id"]), str(numeric["id"])}
        assert rows[str(answered["id"])]["good"] is True
        assert rows[str(answered["id"])]["rated_at"] == parse_time(offered["created_at"])
        assert rows[str(numeric["id"])]["score"] == Decimal(4)
        assert rows[str(numeric["id"])]["ticket_id"] == str(ticket["id"])
        # Without a look-back the answer to an older survey would be missed: the emulator
        # compares start_time with created_at, as the connector README explains.
        blind = rows_of(read(server, SATISFACTION_RATINGS, bookmark, rating_lookback_days=0))
        assert {r["source_id"] for r in blind} == {str(bad["id"]), str(numeric["id"])}


# --- rejects and errors -------------------------------------------------------------------


def test_malformed_values_are_rejected_with_reasons(companies: list[CompanySeed]) -> None:
    with small_sandbox(companies) as (desk, server):
        marks = {s.name: last_bookmark(read(server, s)) for s in connector.streams}
        ids = sorted(desk.tickets)
        desk.upsert_ticket({"id": ids[0], "created_at": "yesterday"})
        desk.upsert_metric_set(ids[1], {"reply_time_in_minutes": {"calendar": "soon"}})
        desk.upsert_ticket({"id": ids[2], "status": "escalated"})
        fine = desk.upsert_ticket({"id": ids[3], "status": "open"})
        desk.upsert_rating({"ticket_id": ids[3], "score": "meh"})
        desk.upsert_organization({"id": next(iter(desk.organizations)), "domain_names": "x"})
        reasons: dict[str, list[str]] = {}
        for stream in connector.streams:
            pages = read(server, stream, since=marks[stream.name])
            for rejected in (r for page in pages for r in page.rejected):
                assert rejected.source == "zendesk"
                assert rejected.record["id"]
                reasons[f"{stream.name}:{rejected.source_id}"] = rejected.reasons
            if stream is TICKETS:
                assert [r["source_id"] for r in rows_of(pages)] == [str(fine["id"])]
    assert len(reasons) == 5
    text = " | ".join(" ".join(r) for r in reasons.values())
    for expected in (
        "created_at 'yesterday' is not an ISO 8601 timestamp",
        "reply_time_in_minutes.calendar 'soon' is not a number of minutes",
        "status 'escalated' is not a Zendesk ticket status",
        "score 'meh' is not good, bad",
        "domain_names 'x' is not a list",
    ):
        assert expected in text


def test_refused_credentials_are_fatal_and_never_echo_the_token(server: RunningServer) -> None:
    with pytest.raises(FatalSourceError) as info:
        read(server, TICKETS, api_token=SecretStr("wrong-secret-token"))
    assert info.value.status == 401
    assert "Couldn't authenticate you" in str(info.value)
    assert "wrong-secret-token" not in str(info.value)
    with raw_session(server) as session:
        bad = session.get(f"{server.base_url}{EXPORT_URL}", auth=("x/token", "y"))
    assert bad.status_code == 401
    assert bad.json() == {"error": "Couldn't authenticate you"}


def test_injected_faults_map_to_retriable_and_fatal(companies: list[CompanySeed]) -> None:
    app = create_app(generate_helpdesk(seed=1, as_of=AS_OF, companies=companies[:3]))
    with serve_tls(app) as running:
        app.state.faults.inject(429, headers={"Retry-After": "7"})
        with pytest.raises(RetriableSourceError) as retriable:
            read(running, TICKETS)
        assert retriable.value.retry_after == 7.0
        assert retriable.value.status == 429
        app.state.faults.inject(503)
        with pytest.raises(RetriableSourceError):
            read(running, ORGANIZATIONS)
        app.state.faults.inject(403)  # ratings would read a 403 as CSAT off: a note
        with pytest.raises(FatalSourceError) as fatal:
            read(running, TICKETS)
        assert fatal.value.status == 403
        assert "Forbidden" in str(fatal.value)
        assert rows_of(read(running, TICKETS))  # served normally once the faults are used


def test_the_export_rate_limit_answers_429_with_retry_after(
    companies: list[CompanySeed],
) -> None:
    with small_sandbox(companies, export_rate_limit=2) as (_, server):
        pages: list[Page] = []
        reader = ZendeskReader(settings(server))
        with pytest.raises(RetriableSourceError) as info:
            pages.extend(reader.read(TICKETS, None))
        reader.close()
    assert len(pages) == 2
    assert info.value.status == 429
    assert info.value.retry_after is not None
    assert 1 <= info.value.retry_after <= 60
    assert "APIRateLimitExceeded" in str(info.value)


def test_the_export_limiter_keeps_a_long_read_under_the_export_limit(
    companies: list[CompanySeed],
) -> None:
    # Both sides count over a 1 s window instead of Zendesk's minute: the same limiter,
    # fifteen export pages in about two seconds instead of two minutes.
    desk = small_helpdesk(companies)
    per_page = math.ceil(len(desk.tickets) / 15)
    app = small_app(desk, export_page_size=per_page, export_rate_limit=5, rate_window=1.0)
    with serve_tls(app) as server:
        limited = settings(server, export_requests_per_minute=5, rate_window_seconds=1.0)
        reader = ZendeskReader(limited)
        try:
            pages = list(reader.read(TICKETS, None))  # a 429 would raise
        finally:
            reader.close()
        assert reader.usage.requests == app.state.emulator.requests_received == 15
        # Unthrottled, the same emulator refuses the read within the window.
        with pytest.raises(RetriableSourceError) as refused:
            read(server, TICKETS, rate_window_seconds=1.0)
    assert len(pages) == 15
    assert sorted(int(r["source_id"]) for r in rows_of(pages)) == sorted(desk.tickets)
    assert refused.value.status == 429


def test_usage_counts_every_request_the_emulator_received(companies: list[CompanySeed]) -> None:
    app = small_app(small_helpdesk(companies), rate_limit=1000)
    with serve_tls(app) as server:
        reader = ZendeskReader(settings(server))
        try:
            for stream in connector.streams:
                assert rows_of(list(reader.read(stream, None)))
                assert list(reader.ids(stream))
            app.state.faults.inject(503)  # refused requests are requests too
            with pytest.raises(RetriableSourceError):
                list(reader.read(ORGANIZATIONS, None))
        finally:
            reader.close()
        received = app.state.emulator.requests_received
    assert reader.usage.requests == received > 10
    assert reader.usage.quota == f"{1000 - received}/1000 requests left this minute"


def test_the_account_limit_is_reported_and_enforced(companies: list[CompanySeed]) -> None:
    with small_sandbox(companies, rate_limit=2) as (_, server), raw_session(server) as session:
        url = f"{server.base_url}/api/v2/organizations.json"
        answers = [session.get(url) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-Rate-Limit"] for a in answers] == ["2", "2", "2"]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    assert answers[2].json()["error"] == "APIRateLimitExceeded"


# --- ids for the reconcile --------------------------------------------------------------------


def test_ids_list_exactly_the_live_records(server: RunningServer, helpdesk: Helpdesk) -> None:
    reader = ZendeskReader(settings(server))
    try:
        pages = {stream.name: list(reader.ids(stream)) for stream in connector.streams}
    finally:
        reader.close()
    deleted = {i for i, t in helpdesk.tickets.items() if t["status"] == "deleted"}
    assert deleted
    expected = {
        "tickets": sorted(str(i) for i in helpdesk.tickets if i not in deleted),
        "organizations": sorted(str(i) for i in helpdesk.organizations),
        "satisfaction_ratings": sorted(str(i) for i in helpdesk.ratings),
    }
    for name, listed in pages.items():
        assert len(listed) > 1, name  # more than one page
        assert sorted(i for page in listed for i in page) == expected[name], name
    assert all(len(page) <= 100 for page in pages["organizations"])


def test_ids_leave_out_records_deleted_since_and_list_new_ones(
    companies: list[CompanySeed],
) -> None:
    with small_sandbox(companies) as (desk, server):
        live = sorted(i for i, t in desk.tickets.items() if t["status"] != "deleted")
        desk.delete_ticket(live[0])
        org_id, other_org = list(desk.organizations)[:2]
        desk.delete_organization(org_id)
        new = desk.upsert_ticket({"subject": "New", "organization_id": other_org})
        reader = ZendeskReader(settings(server))
        try:
            tickets = {i for page in reader.ids(TICKETS) for i in page}
            orgs = {i for page in reader.ids(ORGANIZATIONS) for i in page}
        finally:
            reader.close()
        with raw_session(server) as session:
            params: dict[str, Any] = {"start_time": 0, "exclude_deleted": "true"}
            body = session.get(f"{server.base_url}{EXPORT_URL}", params=params).json()
    assert tickets == {str(i) for i in live[1:]} | {str(new["id"])}
    assert orgs == {str(i) for i in desk.organizations}
    assert str(org_id) not in orgs
    assert "exclude_deleted=true" in body["after_url"]
    assert all(t["status"] != "deleted" for t in body["tickets"])


# --- records changing while a sync pages -------------------------------------------------------


def test_tickets_changed_mid_read_end_at_the_sources_final_state(
    companies: list[CompanySeed],
) -> None:
    desk = small_helpdesk(companies)
    before = dict(desk.tickets)  # records are replaced on edit, never changed in place
    app = small_app(desk)
    with serve_tls(app) as server:
        reader = ZendeskReader(settings(server))
        pages: list[Page] = []
        try:
            for page in reader.read(TICKETS, None):
                pages.append(page)
                if len(pages) == 1:  # agents change five tickets while the sync pages
                    app.state.faults.extend(parse_faults(f"mutate:5@{EXPORT_URL}"))
        finally:
            reader.close()
        later = read(server, TICKETS, since=last_bookmark(pages))
    changed = {str(i) for i, t in desk.tickets.items() if t is not before[i]}
    assert len(changed) == 5
    assert len(pages) > 3
    latest: dict[str, Ticket] = {}
    for row in rows_as(Ticket, pages + later):  # the store keeps the newer source_modified_at
        kept = latest.get(row["source_id"])
        if kept is None or row["source_modified_at"] >= kept["source_modified_at"]:
            latest[row["source_id"]] = row
    final = {str(i): ticket_to_ticket(t, desk.metric_sets.get(i)) for i, t in desk.tickets.items()}
    assert latest == final
    # the first read already met the changes (they moved to the end of its export)
    first = [r for r in rows_of(pages) if r["source_id"] in changed]
    assert {r["source_id"] for r in first if r == final[r["source_id"]]} == changed
    assert rows_of(later) == []


def test_a_bearer_token_refused_mid_read_is_fatal_and_says_what_to_check(
    companies: list[CompanySeed],
) -> None:
    app = small_app(small_helpdesk(companies))
    with serve_tls(app) as server:
        bearer = settings(server, email="", api_token=SecretStr(SANDBOX_OAUTH_TOKEN))
        reader = ZendeskReader(bearer)
        pages: list[Page] = []

        def read_while_revoking() -> None:
            for page in reader.read(TICKETS, None):
                pages.append(page)
                app.state.faults.inject(401)  # the token is revoked mid-run

        try:
            with pytest.raises(FatalSourceError) as info:
                read_while_revoking()
        finally:
            reader.close()
    assert len(pages) == 1
    assert info.value.status == 401
    assert "OAuth token" in str(info.value)
    assert "revoked" in str(info.value)
    assert SANDBOX_OAUTH_TOKEN not in str(info.value)


# --- TLS, settings and registration --------------------------------------------------------


def test_the_sandbox_ca_is_trusted_even_with_requests_ca_bundle_set(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    assert rows_of(read(server, ORGANIZATIONS))
    with pytest.raises(FatalSourceError, match="not trusted"):
        read(server, ORGANIZATIONS, ca_bundle=None)


def test_the_connector_reads_its_settings_from_the_environment(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert connector.name == "zendesk"
    assert [(s.name, s.entity) for s in connector.streams] == [
        ("organizations", "customer"),
        ("tickets", "ticket"),
        ("satisfaction_ratings", "rating"),
    ]
    for name in ("EMAIL", "API_TOKEN", "API_TOKEN_BLOCK"):
        monkeypatch.delenv(f"OKR_SYNC_ZENDESK_{name}", raising=False)
    monkeypatch.setenv("OKR_SYNC_ZENDESK_BASE_URL", server.base_url)
    monkeypatch.setenv("OKR_SYNC_ZENDESK_CA_BUNDLE", str(server.ca_file))
    with pytest.raises(FatalSourceError, match="API token"):
        connector.open(connector.settings())
    monkeypatch.setenv("OKR_SYNC_ZENDESK_API_TOKEN", SANDBOX_OAUTH_TOKEN)  # no e-mail: OAuth
    reader = connector.open(connector.settings())
    try:
        assert rows_of(list(reader.read(ORGANIZATIONS, None)))
    finally:
        reader.close()


# --- the generator and seed files -----------------------------------------------------------


def test_generated_tickets_stay_within_customer_lifetimes(
    helpdesk: Helpdesk, companies: list[CompanySeed]
) -> None:
    seeds = {c.crm_id: c for c in companies}
    org_seed = {o["id"]: seeds[o["external_id"]] for o in helpdesk.organizations.values()}
    stamps = ("created_at", "updated_at")
    for ticket in helpdesk.tickets.values():
        company = org_seed[ticket["organization_id"]]
        created = parse_time(ticket["created_at"])
        assert company.customer_since is not None
        assert company.customer_since <= created.date()
        assert company.churned_on is None or created.date() <= company.churned_on
        assert all(parse_time(ticket[name]) <= AS_OF for name in stamps)
        assert ticket["generated_timestamp"] == int(parse_time(ticket["updated_at"]).timestamp())
    for rating in helpdesk.ratings.values():
        assert parse_time(rating["updated_at"]) <= AS_OF
    assert helpdesk.latest_change() <= int(AS_OF.timestamp())


def test_the_generated_helpdesk_looks_like_a_real_one(helpdesk: Helpdesk) -> None:
    statuses = collections.Counter(t["status"] for t in helpdesk.tickets.values())
    assert {"open", "pending", "hold", "solved", "closed", "deleted"} <= set(statuses)
    assert set(statuses) <= {"new", "open", "pending", "hold", "solved", "closed", "deleted"}
    assert statuses["closed"] > 0.8 * len(helpdesk.tickets)  # solved ones close after 4 days
    assert 0 < statuses["deleted"] < 0.02 * len(helpdesk.tickets)
    solved = statuses["solved"] + statuses["closed"]
    scores = collections.Counter(str(r["score"]) for r in helpdesk.ratings.values())
    answered = sum(n for score, n in scores.items() if score not in ("offered", "unoffered"))
    assert 0.28 < answered / solved < 0.42
    channels = {t["via"]["channel"] for t in helpdesk.tickets.values()}
    assert {"email", "web", "chat"} <= channels
    replies = [
        m["reply_time_in_minutes"]["calendar"]
        for m in helpdesk.metric_sets.values()
        if m["reply_time_in_minutes"]["calendar"] is not None
    ]
    assert min(replies) < 15
    assert max(replies) > 2 * 1440


def test_the_generator_is_deterministic(companies: list[CompanySeed]) -> None:
    def snapshot(seed: int) -> tuple[Any, ...]:
        desk = generate_helpdesk(seed=seed, as_of=AS_OF, companies=companies[:20])
        return desk.organizations, desk.tickets, desk.metric_sets, desk.ratings

    assert snapshot(3) == snapshot(3)
    assert snapshot(3) != snapshot(4)


def test_seed_files_round_trip_and_bad_lines_name_file_and_line(
    companies: list[CompanySeed], tmp_path: Path
) -> None:
    desk = generate_helpdesk(seed=2, as_of=AS_OF, companies=companies[:10])
    written = write_helpdesk(desk, tmp_path / "seed")
    assert sorted(p.name for p in written) == sorted(FILES.values())
    loaded = load_helpdesk(tmp_path / "seed")
    for name in ("organizations", "tickets", "metric_sets", "ratings"):
        assert getattr(loaded, name) == getattr(desk, name)
    assert loaded.ticket_page((0, 0), 5) == desk.ticket_page((0, 0), 5)

    tickets = tmp_path / "seed" / "tickets.jsonl"
    lines = tickets.read_text().splitlines()
    stamp = '"2026-01-05T10:00:00Z"'
    bad = f'{{"id": "seven", "created_at": {stamp}, "updated_at": {stamp}}}'
    tickets.write_text("\n".join([lines[0], bad, *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"tickets\.jsonl:2: record has no integer 'id'"):
        load_helpdesk(tmp_path / "seed")
    tickets.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(ValueError, match=r"tickets\.jsonl:2: "):
        load_helpdesk(tmp_path / "seed")
    with pytest.raises(FileNotFoundError):
        load_helpdesk(tmp_path / "missing")


# --- the organization export ----------------------------------------------------------------


def reader_requests(server: RunningServer, since: Bookmark | None = None) -> tuple[int, list[Page]]:
    """Requests one organizations read sends (the reader's own count) and its pages."""
    reader = ZendeskReader(settings(server))
    try:
        pages = list(reader.read(ORGANIZATIONS, since))
        return reader.usage.requests, pages
    finally:
        reader.close()


def add_organizations(desk: Helpdesk, count: int, updated_at: str) -> list[int]:
    first = max(desk.organizations) + 1
    ids = list(range(first, first + count))
    template = next(iter(desk.organizations.values()))
    for org_id in ids:
        desk.add_organization(
            {**template, "id": org_id, "external_id": None, "updated_at": updated_at}
        )
    return ids


def test_a_full_organizations_read_takes_one_request_per_thousand(
    companies: list[CompanySeed],
) -> None:
    with small_sandbox(companies, export_page_size=1000) as (desk, server):
        add_organizations(desk, 2488, "2026-01-01T00:00:00Z")
        assert len(desk.organizations) == 2500
        requests, pages = reader_requests(server)
    assert len({row["source_id"] for row in rows_of(pages)}) == 2500
    assert requests == 3


def test_an_incremental_organizations_read_reads_only_the_changes(
    companies: list[CompanySeed],
) -> None:
    with small_sandbox(companies, export_page_size=1000) as (desk, server):
        add_organizations(desk, 2000, "2026-01-01T00:00:00Z")
        bookmark = last_bookmark(reader_requests(server)[1])
        on_bookmark = {  # the lower bound is inclusive: these are read again
            str(i)
            for i, org in desk.organizations.items()
            if parse_time(org["updated_at"]) == bookmark.at
        }
        renamed = desk.upsert_organization({"id": max(desk.organizations), "name": "Renamed"})
        requests, pages = reader_requests(server, bookmark)
    rows = {row["source_id"]: row for row in rows_as(Customer, pages)}
    assert set(rows) == on_bookmark | {str(renamed["id"])}
    assert rows[str(renamed["id"])]["name"] == "Renamed"
    assert requests == 1


def test_organizations_tied_at_a_page_boundary_second_are_not_skipped(
    companies: list[CompanySeed],
) -> None:
    with small_sandbox(companies, export_page_size=20) as (desk, server):
        tied = add_organizations(desk, 30, "2026-01-01T00:00:00Z")
        later = add_organizations(desk, 5, "2026-01-02T00:00:00Z")
        pages = read(server, ORGANIZATIONS)
        read_ids = {int(row["source_id"]) for row in rows_of(pages)}
        resumed = read(server, ORGANIZATIONS, Bookmark(parse_time("2026-01-01T00:00:00Z")))
    assert read_ids == set(desk.organizations)
    assert set(tied + later) <= {int(row["source_id"]) for row in rows_of(resumed)}


def test_the_organization_export_is_zendesk_shaped(companies: list[CompanySeed]) -> None:
    with small_sandbox(companies, export_page_size=5) as (desk, server), raw_session(server) as s:
        url = f"{server.base_url}/api/v2/incremental/organizations.json"
        body = s.get(url, params={"start_time": 0}).json()
        assert set(body) == {"organizations", "count", "end_time", "next_page", "end_of_stream"}
        assert body["count"] == len(body["organizations"]) == 5
        stamps = [parse_time(o["updated_at"]) for o in body["organizations"]]
        assert stamps == sorted(stamps)
        assert body["end_time"] == int(stamps[-1].timestamp())
        assert body["next_page"].endswith(f"start_time={body['end_time']}")
        assert body["end_of_stream"] is False
        seen: set[int] = set()
        while True:
            seen |= {o["id"] for o in body["organizations"]}
            if body["end_of_stream"]:
                break
            body = s.get(body["next_page"]).json()
        assert seen == set(desk.organizations)
        too_recent = s.get(url, params={"start_time": 2**40})
    assert too_recent.status_code == 400
    assert "Too recent start_time" in too_recent.json()["description"]
