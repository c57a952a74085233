"""Deletes are exactly-once under retries and kills: a source's deletion channel is never
skipped because the main cursor moved on before it was read.

Each test syncs a small sandbox, deletes and changes records at the source, syncs again
under a fault (or a kill) that makes the run resume from a committed cursor, and compares
the mirror and the key results with one fault-free sync of the changed source.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connectors.hubspot.sandbox import sandbox_env as hubspot_env_vars
from connectors.hubspot.sandbox.data import HubSpotPortal, generate_portal
from connectors.hubspot.sandbox.emulator import create_app as create_portal_app
from connectors.salesforce.sandbox.data import customer_seeds, generate_org
from connectors.salesforce.sandbox.emulator import create_app as create_org_app
from connectors.sandbox.server import RunningServer, parse_faults, serve_tls
from connectors.zendesk.sandbox import sandbox_env as zendesk_env_vars
from connectors.zendesk.sandbox.data import generate_helpdesk
from connectors.zendesk.sandbox.emulator import create_app as create_helpdesk_app
from flows.plan import SyncRequest
from flows.settings import Settings
from flows.sync import sync_store
from okr_sync.cli import DEMO_OKRS
from okr_sync.demo import write_finance_export
from okr_targets.models import Deal, Ticket
from okr_targets.store import Store
from tests.conftest import AS_OF, salesforce_env_vars
from tests.test_exactly_once import differences, measured, mirror_state

pytestmark = pytest.mark.usefixtures("prefect_harness")

LAX = 1000  # searches a second: limits are not under test
OBJECTS = ("deals", "tickets")

HUBSPOT_OKRS = """\
company: Test Co
sources:
  hubspot: [customer, deal, rep, ticket]
money: {currency: USD}
objectives:
  - id: deletes
    title: Count only what still exists
    owner: olivia.hart@acme-demo.example
    period: 2026-Q4
    key_results:
      - {id: won-revenue, title: Won revenue, metric: won_revenue, params: {}, target: 1000000}
      - {id: win-rate, title: Win rate, metric: win_rate, params: {}, target: 50}
      - {id: tickets, title: Ticket volume, metric: ticket_volume, params: {}, target: 100}
"""


def sync(okr_file: Path, store_url: str) -> dict[str, Any]:
    """The flow's body without a flow run (as the CLI's sync runs it)."""
    store = Store.open(store_url)
    report = sync_store(store, SyncRequest(str(okr_file), full_refresh=False), Settings())
    store.dispose()
    return report.to_dict()


def state(store_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return mirror_state(store_url), measured(store_url)


# --- HubSpot: the archived listing ------------------------------------------------------------


@pytest.fixture
def portal() -> HubSpotPortal:
    """A portal this test changes (deals are archived and edited between syncs)."""
    return generate_portal(seed=31, as_of=AS_OF, companies=40, deals=300, tickets=120)


@pytest.fixture
def portal_app(portal: HubSpotPortal) -> Any:
    return create_portal_app(portal, search_requests_per_second=LAX)


@pytest.fixture
def hubspot(portal_app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    with serve_tls(portal_app) as server:
        for name, value in hubspot_env_vars(server, search_requests_per_second=LAX).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OKR_SYNC_RETRY_INITIAL_SECONDS", "0.02")
        monkeypatch.setenv("OKR_SYNC_RETRY_MAX_SECONDS", "0.1")
        yield server


@pytest.fixture
def okr_file(tmp_path: Path) -> Path:
    path = tmp_path / "okrs.yaml"
    path.write_text(HUBSPOT_OKRS, encoding="utf-8")
    return path


def won_q4_deal(store_url: str) -> str:
    """A deal the won-revenue key result counts now (so losing its delete shows)."""
    store = Store.open(store_url)
    with store.session() as session:
        found = session.scalars(
            select(Deal.source_id)
            .where(Deal.outcome == "won", Deal.deleted_at.is_(None))
            .where(func.coalesce(Deal.amount_home, Deal.amount) > 0)  # Salesforce: no home
            .where(Deal.close_on >= AS_OF.date().replace(month=10, day=1))
            .order_by(Deal.source_id)
        ).first()
    store.dispose()
    assert found is not None
    return found


def live_ticket(store_url: str) -> str:
    store = Store.open(store_url)
    with store.session() as session:
        found = session.scalars(
            select(Ticket.source_id).where(Ticket.deleted_at.is_(None)).order_by(Ticket.source_id)
        ).first()
    store.dispose()
    assert found is not None
    return found


def test_a_full_refresh_tombstones_what_a_portal_in_another_time_zone_no_longer_lists(
    hubspot: RunningServer, portal: HubSpotPortal, okr_file: Path, store_url: str
) -> None:
    """The portal keeps US/Eastern, the OKR calendar UTC: the reader advises setting the
    calendar's zone. That advice leaves no record out, so a full refresh still takes a deal
    it no longer sees (purged from the archive too) for deleted; a note that did (a list
    unreadable) would not."""
    first = sync(okr_file, store_url)
    assert first["status"] == "complete"
    deal = won_q4_deal(store_url)
    portal.purge("deals", deal)
    store = Store.open(store_url)
    report = sync_store(store, SyncRequest(str(okr_file), full_refresh=True), Settings())
    store.dispose()
    deals = report.streams["hubspot.deals"]
    assert deals.notes == ()
    assert any("US/Eastern" in advice for advice in deals.advice)
    assert deals.whole
    assert tombstoned(store_url, Deal, ("hubspot", deal))


def archive_then_edit(
    portal: HubSpotPortal, clock: time_machine.Traveller, deal: str, ticket: str
) -> None:
    """An hour on: one deal and one ticket archived, then 50 other deals and 50 other
    tickets edited after them, so a cursor past the edits is past the archives too."""
    clock.shift(timedelta(hours=1))
    now = datetime.now(UTC)
    portal.archive("deals", deal, at=now - timedelta(minutes=5))
    portal.archive("tickets", ticket, at=now - timedelta(minutes=5))
    for object_type, kept in (("deals", deal), ("tickets", ticket)):
        others = [r["id"] for r in portal.records(object_type) if r["id"] != kept][:50]
        for number, record_id in enumerate(others):
            edit = {"hs_ticket_priority": "HIGH"} if object_type == "tickets" else {"dealname": "x"}
            at = now - timedelta(minutes=2) + timedelta(milliseconds=number)
            portal.update(object_type, record_id, edit, at=at)


@pytest.mark.parametrize(
    "spec",
    [
        "slow:0.1@/crm/v3/objects/deals,503@/crm/v3/objects/deals",  # the schedule
        # the same for tickets: the second request is their archived listing
        "slow:0.01@/crm/v3/objects/tickets,503@/crm/v3/objects/tickets",
    ],
)
def test_a_hubspot_archive_survives_a_retry_after_the_search_committed(
    spec: str,
    portal: HubSpotPortal,
    portal_app: Any,
    hubspot: RunningServer,
    okr_file: Path,
    tmp_path: Path,
    clock: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The search commits batches past the archive's time, then a 503 makes the stream
    retry from that cursor: the archived listing must still be read from before it."""
    store_url = f"sqlite:///{tmp_path / 'okr.db'}"
    assert sync(okr_file, store_url)["status"] == "complete"
    deal, ticket = won_q4_deal(store_url), live_ticket(store_url)
    archive_then_edit(portal, clock, deal, ticket)

    monkeypatch.setenv("OKR_SYNC_BATCH_SIZE", "20")  # batches commit before the listing
    portal_app.state.faults.extend(parse_faults(spec))
    try:
        report = sync(okr_file, store_url)
    finally:
        left = [portal_app.state.faults.take(f"/crm/v3/objects/{kind}") for kind in OBJECTS]
        portal_app.state.faults.clear()
    served = left == [None, None]
    assert served, "the fault schedule was not reached"
    assert report["status"] == "complete", report["reason"]
    assert sum(stream["retries"] for stream in report["streams"].values()) >= 1

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.delenv("OKR_SYNC_BATCH_SIZE")
    assert sync(okr_file, fresh)["status"] == "complete"
    assert not differences(state(store_url), state(fresh))
    store = Store.open(store_url)
    with store.session() as session:
        assert session.get(Deal, ("hubspot", deal)).deleted_at is not None  # type: ignore[union-attr]
        assert session.get(Ticket, ("hubspot", ticket)).deleted_at is not None  # type: ignore[union-attr]
    store.dispose()


HUBSPOT_FAULTS = ["429:0.05", "500", "502", "503", "slow:1.5", "drop", "truncate"]
HUBSPOT_PATHS = ["/crm/v3/objects/deals", "/crm/v3/objects/tickets", "/crm/v3/objects/companies"]


@settings(
    max_examples=3,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    schedule=st.lists(
        st.tuples(
            st.sampled_from(HUBSPOT_FAULTS), st.sampled_from(HUBSPOT_PATHS), st.integers(0, 1)
        ),
        min_size=1,
        max_size=2,  # at most two pass-throughs: each object makes 2 requests and more
    )
)
@example(schedule=[("503", "/crm/v3/objects/deals", 1)])  # the listing, after commits
def test_hubspot_archives_between_runs_survive_any_fault_schedule(
    schedule: list[tuple[str, str, int]],
    okr_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
    clock: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An incremental sync faulted at random (after a deal and a ticket were archived and
    others edited) ends where a fault-free sync of the changed portal does, and every
    drawn fault was served. Each fault lands on the object's first or second request
    (passed through slowly before it): the search, or the archived listing after the
    search committed."""
    monkeypatch.setenv("OKR_SYNC_HUBSPOT_TIMEOUT", "1")
    monkeypatch.setenv("OKR_SYNC_RETRY_INITIAL_SECONDS", "0.02")
    monkeypatch.setenv("OKR_SYNC_RETRY_MAX_SECONDS", "0.1")
    monkeypatch.setenv("OKR_SYNC_BATCH_SIZE", "20")
    portal = generate_portal(seed=31, as_of=AS_OF, companies=40, deals=300, tickets=120)
    app = create_portal_app(portal, search_requests_per_second=LAX)
    directory = tmp_path_factory.mktemp("random")
    with serve_tls(app) as server:
        for name, value in hubspot_env_vars(server, search_requests_per_second=LAX).items():
            monkeypatch.setenv(name, value)
        store_url = f"sqlite:///{directory / 'okr.db'}"
        assert sync(okr_file, store_url)["status"] == "complete"
        archive_then_edit(portal, clock, won_q4_deal(store_url), live_ticket(store_url))
        spec = ",".join(
            (f"slow:0.01x{skip}@{path}," if skip else "") + f"{fault}@{path}"
            for fault, path, skip in schedule
        )
        for fault, path, skip in schedule:
            event(f"{fault} at request {skip + 1} of {path.rsplit('/', 1)[-1]}")
        app.state.faults.extend(parse_faults(spec))
        try:
            report = sync(okr_file, store_url)
        finally:
            left = [app.state.faults.take(path) for path in HUBSPOT_PATHS]
            app.state.faults.clear()
        assert left == [None] * len(HUBSPOT_PATHS), f"{spec}: not every fault was served"
        assert report["status"] == "complete", (spec, report["reason"])
        fresh = f"sqlite:///{directory / 'fresh.db'}"
        assert sync(okr_file, fresh)["status"] == "complete"
    assert not differences(state(store_url), state(fresh)), spec


# --- Salesforce and Zendesk: deletes ride in the change stream ----------------------------------
#
# Salesforce reads deletes through queryAll (IsDeleted rows in the same SystemModstamp, Id
# order as every change) and Zendesk through the ticket export (status "deleted", in the
# same after_cursor order): one channel, one cursor, so a retry or a killed run resumes
# after what it committed and cannot pass a delete unread. These tests hold them to it.

QUERY_ALL = "/services/data/v59.0/queryAll"
TICKET_EXPORT = "/api/v2/incremental/tickets/cursor"


@pytest.fixture
def crm_and_helpdesk(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any, Any, Any]]:
    """A small Salesforce org and Zendesk helpdesk this test changes, with small pages (so
    batches commit before a fault), and the demo's finance export of the org (unchanged):
    (org, org app, helpdesk, helpdesk app)."""
    org = generate_org(seed=41, as_of=AS_OF, accounts=40, opportunities=300)
    helpdesk = generate_helpdesk(seed=41, as_of=AS_OF, companies=customer_seeds(org))
    org_app = create_org_app(org, page_size=20)
    helpdesk_app = create_helpdesk_app(
        helpdesk, export_page_size=20, export_rate_limit=LAX, rate_limit=LAX * 10
    )
    with serve_tls(org_app) as crm, serve_tls(helpdesk_app) as desk:
        env = salesforce_env_vars(crm) | zendesk_env_vars(
            desk, export_rate_limit=LAX, rate_limit=LAX * 10
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OKR_SYNC_RETRY_INITIAL_SECONDS", "0.02")
        monkeypatch.setenv("OKR_SYNC_RETRY_MAX_SECONDS", "0.1")
        finance = tmp_path_factory.mktemp("finance")
        write_finance_export(org, 41, finance)
        monkeypatch.setenv("OKR_SYNC_FILES_DIRECTORY", str(finance))
        yield org, org_app, helpdesk, helpdesk_app


def test_salesforce_and_zendesk_deletes_survive_retries_after_commits(
    crm_and_helpdesk: tuple[Any, Any, Any, Any],
    tmp_path: Path,
    clock: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org, org_app, helpdesk, helpdesk_app = crm_and_helpdesk
    store_url = f"sqlite:///{tmp_path / 'okr.db'}"
    assert sync(DEMO_OKRS, store_url)["status"] == "complete"
    store = Store.open(store_url)
    with store.session() as session:
        deal = session.scalars(
            select(Deal.source_id)
            .where(Deal.source == "salesforce", Deal.outcome == "won", Deal.amount > 0)
            .where(Deal.close_on >= AS_OF.date().replace(month=10, day=1))
            .order_by(Deal.source_id)
        ).first()
    store.dispose()
    assert deal is not None
    ticket = min(t["id"] for t in helpdesk.tickets.values() if t.get("status") != "deleted")

    clock.shift(timedelta(hours=1))
    now = AS_OF + timedelta(hours=2)
    org.delete("Opportunity", deal, now=now - timedelta(minutes=5))
    helpdesk.delete_ticket(ticket, now=now - timedelta(minutes=5))
    others = [o["Id"] for o in org.records("Opportunity") if o["Id"] != deal][:50]
    for number, record_id in enumerate(others):
        at = now - timedelta(minutes=2) + timedelta(milliseconds=number)
        org.upsert("Opportunity", {"Id": record_id, "Name": "x"}, now=at)
    for number, ticket_id in enumerate(sorted(helpdesk.tickets)[1:51]):
        at = now - timedelta(minutes=2) + timedelta(seconds=number)
        helpdesk.upsert_ticket({"id": ticket_id, "priority": "high"}, now=at)

    monkeypatch.setenv("OKR_SYNC_BATCH_SIZE", "20")
    spec = f"slow:0.01@{QUERY_ALL}/,drop@{QUERY_ALL}/,slow:0.01@{TICKET_EXPORT},503@{TICKET_EXPORT}"
    queues = (org_app.state.faults, helpdesk_app.state.faults)
    for queue in queues:
        queue.extend(parse_faults(spec))
    try:
        report = sync(DEMO_OKRS, store_url)
    finally:
        left = [
            org_app.state.faults.take(f"{QUERY_ALL}/"),
            helpdesk_app.state.faults.take(TICKET_EXPORT),
        ]
        for queue in queues:
            queue.clear()
    assert left == [None, None], "the fault schedule was not reached"
    assert report["status"] == "complete", report["reason"]
    assert sum(stream["retries"] for stream in report["streams"].values()) >= 2

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.delenv("OKR_SYNC_BATCH_SIZE")
    assert sync(DEMO_OKRS, fresh)["status"] == "complete"
    assert not differences(state(store_url), state(fresh))


# --- HubSpot: a sync killed between the search's commits and the archived listing --------------


def cursor_run(database: Path, source: str, stream: str) -> str | None:
    """The run that last moved a stream's cursor, read without joining the writer's
    transactions (None: not written yet, or the store is mid-migration)."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.1) as connection:
            row = connection.execute(
                "SELECT run_id FROM cursors WHERE source = ? AND stream = ?", (source, stream)
            ).fetchone()
            return str(row[0]) if row else None
    except sqlite3.Error:
        return None


def killed_once_committed(
    database: Path, okr_file: Path, source: str, stream: str, first: str | None, settle: float
) -> None:
    """``okr-sync sync`` in a child process, SIGKILLed ``settle`` seconds after ``source``'s
    ``stream`` has committed a batch (its cursor names another run than ``first``). The
    caller's faults hold one of the stream's next requests back until then."""
    from prefect.settings import PREFECT_API_URL

    command = [sys.executable, "-m", "okr_sync.cli", "sync", "--store", f"sqlite:///{database}"]
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "OKR_SYNC_OKR_FILE": str(okr_file),
        "OKR_SYNC_BATCH_SIZE": "20",
        "OKR_SYNC_HUBSPOT_TIMEOUT": "30",
    }
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while cursor_run(database, source, stream) == first:
            assert child.poll() is None, child.communicate()[1][-2000:]
            assert time.monotonic() < deadline, f"{source}.{stream} never committed"
            time.sleep(0.05)
        time.sleep(settle)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()


def resync_matches_a_fresh_sync(okr_file: Path, tmp_path: Path, database: Path) -> None:
    """The next sync completes and leaves the mirror and key results a fault-free sync of
    the changed source gives."""
    store_url = f"sqlite:///{database}"
    assert sync(okr_file, store_url)["status"] == "complete"
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert sync(okr_file, fresh)["status"] == "complete"
    assert not differences(state(store_url), state(fresh))


def tombstoned(store_url: str, model: type[Deal] | type[Ticket], key: tuple[str, str]) -> bool:
    store = Store.open(store_url)
    with store.session() as session:
        record = session.get(model, key)
        gone = record is not None and record.deleted_at is not None
    store.dispose()
    return gone


KILLED_STREAMS = {"salesforce": "Opportunity", "zendesk": "tickets", "hubspot": "deals"}


def wait_until(instant: datetime) -> None:
    """Until ``instant`` is past on the real clock the child process reads."""
    time.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))


def delete_behind_edits(
    source: str, store_url: str, sandboxes: tuple[Any, Any, Any], passed: int
) -> tuple[type[Deal] | type[Ticket], str, str]:
    """At ``source``, one record deleted (a won deal counted now, or a ticket) and 50 others
    edited so that a cursor past the edits has not yet read the delete: Salesforce and
    Zendesk delete after the edits (the delete rides on the change stream's last page);
    HubSpot archives before them (its archived listing is read after the search). Returns
    the model, the deleted id and the fault spec for the source's sandbox: ``passed`` more
    of the stream's requests let through, then the next held back 8 s for the kill."""
    portal, org, helpdesk = sandboxes
    # every change after the last sync ended (the child process runs on the real clock),
    # in whole seconds (Zendesk's resolution), the delete one second after the edits
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    edited_at = [base + timedelta(milliseconds=10 * n) for n in range(50)]
    deleted_at = base + timedelta(seconds=1)
    changed_by = base + timedelta(seconds=1.5)  # after the last change: awaited before the kill
    if source == "hubspot":
        deal = won_q4_deal(store_url)
        portal.archive("deals", deal, at=base)  # before the edits: a cursor past them
        others = [r["id"] for r in portal.records("deals") if r["id"] != deal][:50]
        for record_id, at in zip(others, edited_at, strict=True):  # is past the archive
            portal.update("deals", record_id, {"dealname": "x"}, at=at + timedelta(seconds=1))
        # the search's first request answers; then the archived listing
        held, skip = "/crm/v3/objects/deals", passed + 1
        wait_until(changed_by)
        return Deal, deal, f"slow:0.01x{skip}@{held},slow:8@{held}"
    if source == "salesforce":
        deal = won_q4_deal(store_url)
        others = [o["Id"] for o in org.records("Opportunity") if o["Id"] != deal][:50]
        for record, at in zip(others, edited_at, strict=True):
            org.upsert("Opportunity", {"Id": record, "Name": "x"}, now=at)
        org.delete("Opportunity", deal, now=deleted_at)
        held, skip = f"{QUERY_ALL}/01g", passed  # the query's next pages (only Opportunity's)
        wait_until(changed_by)
        return Deal, deal, (f"slow:0.01x{skip}@{held}," if skip else "") + f"slow:8@{held}"
    ticket = min(t["id"] for t in helpdesk.tickets.values() if t.get("status") != "deleted")
    others = sorted(t for t in helpdesk.tickets if t != ticket)[:50]
    for ticket_id, at in zip(others, edited_at, strict=True):
        helpdesk.upsert_ticket({"id": ticket_id, "priority": "high"}, now=at)
    helpdesk.delete_ticket(ticket, now=deleted_at)
    held, skip = TICKET_EXPORT, passed + 1  # its first page answers
    wait_until(changed_by)
    return Ticket, str(ticket), f"slow:0.01x{skip}@{held},slow:8@{held}"


@settings(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from(sorted(KILLED_STREAMS)),
    passed=st.integers(0, 1),
    settle=st.sampled_from([0.0, 0.05, 0.2]),
)
@example(source="hubspot", passed=0, settle=0.0)  # killed between the search and the listing
@example(source="salesforce", passed=0, settle=0.0)  # killed after the first committed page
@example(source="zendesk", passed=0, settle=0.0)
def test_a_sync_killed_while_its_change_stream_pages_loses_no_delete(
    source: str,
    passed: int,
    settle: float,
    portal: HubSpotPortal,
    portal_app: Any,
    hubspot: RunningServer,
    okr_file: Path,
    crm_and_helpdesk: tuple[Any, Any, Any, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``okr-sync sync`` is SIGKILLed ``settle`` seconds after the change stream of
    ``source`` committed its first batch, with ``passed`` more of its requests let through
    before the next is held back: a kill point between the first committed page and the
    delete's. Records were edited and one deleted at the source since the last sync; the
    next sync must still tombstone it, and end where a fault-free sync does. Real time: the
    child process cannot share a pinned clock."""
    org, org_app, helpdesk, helpdesk_app = crm_and_helpdesk
    apps = {"hubspot": portal_app, "salesforce": org_app, "zendesk": helpdesk_app}
    event(f"{source}, {passed} request(s) let through, killed {settle}s after the commit")
    okrs = okr_file if source == "hubspot" else DEMO_OKRS
    directory = tmp_path_factory.mktemp(source)
    database = directory / "okr.db"
    store_url = f"sqlite:///{database}"
    assert sync(okrs, store_url)["status"] == "complete"
    stream = KILLED_STREAMS[source]
    first = cursor_run(database, source, stream)
    model, record_id, spec = delete_behind_edits(source, store_url, (portal, org, helpdesk), passed)
    app = apps[source]
    app.state.faults.extend(parse_faults(spec))
    try:
        killed_once_committed(database, okrs, source, stream, first, settle)
    finally:
        app.state.faults.clear()
    if not passed:
        assert not tombstoned(store_url, model, (source, record_id))  # killed before it

    resync_matches_a_fresh_sync(okrs, directory, database)
    assert tombstoned(store_url, model, (source, record_id))
