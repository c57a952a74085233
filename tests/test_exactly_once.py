"""Exactly once under faults: ties, resumes, lapsed sessions, changing records, reconcile, kills.

Every test compares against the source itself or against a fault-free run: a record lost
or counted twice shows up as a difference in the mirror or in a measurement.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connectors.base import get_connector
from connectors.salesforce.sandbox.data import SalesforceOrg, customer_seeds, generate_org
from connectors.salesforce.sandbox.emulator import create_app
from connectors.sandbox.server import RunningServer, parse_faults, serve_tls
from connectors.zendesk.sandbox import sandbox_env as zendesk_env_vars
from connectors.zendesk.sandbox.data import generate_helpdesk
from connectors.zendesk.sandbox.emulator import create_app as create_helpdesk_app
from expectations import Validator
from flows.extract import sync_stream
from flows.load import reconcile_source
from flows.plan import SyncRequest
from flows.report import StreamReport
from flows.settings import Settings
from flows.sync import sync_store
from okr_sync.cli import DEMO_OKRS
from okr_sync.demo import write_finance_export
from okr_targets.models import Deal, SyncRun, utcnow
from okr_targets.store import Store, begin_run
from tests.conftest import AS_OF, salesforce_env_vars, sync_sources
from tests.fault_schedules import (
    Changes,
    Drawn,
    Schedule,
    change_helpdesk,
    change_org,
    changes,
    differences,
    faulted_history,
    measured,
    mirror_state,
    schedules,
)

QUERY_MORE = "/services/data/v59.0/queryAll/"  # the next pages of a deletable object


@pytest.fixture
def live_org() -> SalesforceOrg:
    """An org this test may change (the session's sandbox org must stay as generated)."""
    return generate_org(seed=21, as_of=AS_OF, accounts=60, opportunities=1200)


@pytest.fixture
def live_app(live_org: SalesforceOrg) -> Any:
    return create_app(live_org, page_size=200)


@pytest.fixture
def live_sandbox(live_app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    with serve_tls(live_app) as server:
        for name, value in salesforce_env_vars(server).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OKR_SYNC_RETRY_INITIAL_SECONDS", "0.02")
        monkeypatch.setenv("OKR_SYNC_RETRY_MAX_SECONDS", "0.1")
        yield server


def sync_opportunities(store_url: str, validator: Validator) -> StreamReport:
    """The Opportunity stream alone, in batches of one page, through the task logic."""
    store = Store.open(store_url)
    run_id = begin_run(store, "test")
    stream = next(s for s in get_connector("salesforce").streams if s.name == "Opportunity")
    counts: StreamReport = sync_stream.fn(store, "salesforce", stream, run_id, validator, 200)
    store.dispose()
    return counts


@pytest.mark.usefixtures("live_sandbox")
def test_a_retry_resumes_inside_a_block_of_equal_timestamps(
    sqlite_url: str, live_app: Any, live_org: SalesforceOrg, validator: Validator
) -> None:
    """1,000 of 1,200 opportunities share one SystemModstamp; a connection drops on every
    other page. Each retry resumes after the last (SystemModstamp, Id) committed, so every
    record is read exactly once: restarting at the shared timestamp would read hundreds
    twice, and skipping past it would lose them."""
    live_app.state.tie(1000)
    stamps = [o["SystemModstamp"] for o in live_org.records("Opportunity", include_deleted=True)]
    assert max(stamps.count(stamp) for stamp in set(stamps)) == 1000
    live_app.state.faults.extend(parse_faults(f"dropx3@{QUERY_MORE}"))

    counts = sync_opportunities(sqlite_url, validator)

    assert (counts.read, counts.retries, counts.stopped) == (1200, 3, None)
    store = Store.open(sqlite_url)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Deal)) == 1200
    store.dispose()


@pytest.mark.usefixtures("live_sandbox")
def test_a_full_refresh_retry_resumes_after_its_own_batches(
    sqlite_url: str, live_app: Any, validator: Validator
) -> None:
    """A full refresh whose connection drops at the second page resumes from the cursor
    its first batch committed, not from the start (nor from an earlier run's cursor):
    every record is read once and stamped with the refresh's run, which tombstoning the
    unseen relies on."""
    sync_opportunities(sqlite_url, validator)  # an earlier run's cursor, at the end
    # the first page is served (slowly), the second one's connection drops
    live_app.state.faults.extend(parse_faults(f"slow:0.01@{QUERY_MORE},drop@{QUERY_MORE}"))
    store = Store.open(sqlite_url)
    run_id = begin_run(store, "test")
    stream = next(s for s in get_connector("salesforce").streams if s.name == "Opportunity")

    counts = sync_stream.fn(store, "salesforce", stream, run_id, validator, 200, full_refresh=True)

    assert (counts.read, counts.retries, counts.duplicates, counts.stopped) == (1200, 1, 0, None)
    with store.session() as session:
        stamped = session.execute(select(Deal.run_id, func.count()).group_by(Deal.run_id)).all()
    assert stamped == [(run_id, 1200)]
    store.dispose()


@pytest.mark.usefixtures("live_sandbox")
def test_a_session_that_expires_mid_run_is_renewed_without_a_retry(
    sqlite_url: str, live_app: Any, validator: Validator
) -> None:
    used_before = live_app.state.emulator.api_usage
    live_app.state.faults.extend(parse_faults(f"expire@{QUERY_MORE}"))

    counts = sync_opportunities(sqlite_url, validator)

    assert (counts.read, counts.attempts, counts.stopped, counts.failed) == (1200, 1, None, None)
    used = live_app.state.emulator.api_usage - used_before
    # 6 pages and the 2 describes (the org's objects, Opportunity's fields) billed, plus the
    # two logins and the one call refused for the lapsed session
    assert (used, counts.requests) == (8, used + 3)
    assert counts.quota == f"{live_app.state.emulator.api_usage}/15000 daily API calls used"


@pytest.mark.usefixtures("live_sandbox")
def test_records_that_change_while_a_sync_pages_are_caught_by_the_next_sync(
    sqlite_url: str, live_app: Any, tmp_path: Path, validator: Validator
) -> None:
    live_app.state.faults.extend(parse_faults(f"mutate:7x3@{QUERY_MORE}"))
    sync_sources(sqlite_url, validator, batch_size=200)
    assert live_app.state.emulator.touched == 21

    sync_sources(sqlite_url, validator, batch_size=200)  # the changes are newer than its cursor
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    sync_sources(fresh, validator)
    assert mirror_state(sqlite_url) == mirror_state(fresh)


@pytest.mark.usefixtures("live_sandbox")
def test_reconcile_tombstones_records_the_source_no_longer_lists(
    store_url: str, live_org: SalesforceOrg
) -> None:
    validator = Validator()
    sync_sources(store_url, validator)
    purged = [o["Id"] for o in live_org.records("Opportunity")[:3]]
    for record_id in purged:  # past the recycle bin: queryAll no longer shows them
        live_org.purge("Opportunity", record_id)
    run_id = sync_sources(store_url, validator)  # an incremental sync cannot see them go
    store = Store.open(store_url)

    def live_deals() -> set[str]:
        with store.session() as session:
            return set(session.scalars(select(Deal.source_id).where(Deal.deleted_at.is_(None))))

    assert set(purged) <= live_deals()
    streams = list(get_connector("salesforce").streams)
    tombstoned = reconcile_source.fn(store, "salesforce", streams, run_id, utcnow()).tombstoned

    assert tombstoned["salesforce.deal"] == 3
    assert sum(tombstoned.values()) == 3
    assert live_deals() == {o["Id"] for o in live_org.records("Opportunity")}
    again = reconcile_source.fn(store, "salesforce", streams, run_id, utcnow())
    assert again.tombstoned["salesforce.deal"] == 0
    store.dispose()


# --- randomized fault schedules over two syncs, the sources changing between them -----------

CRM_FAULTS = ["429", "429:0.05", "500", "503", "503:0.05", "slow:1.5", "drop", "truncate", "expire"]
HELPDESK_FAULTS = [fault for fault in CRM_FAULTS if fault != "expire"]  # API tokens never lapse
# Each prefix every run requests, and how many requests may pass before its faults: fewer
# than an incremental run with no change makes there (measured: 15 and 4), less one for a
# lapsed session, which is served too; deeper, a fault might never be met.
CRM_DEPTHS = {"/services/data": 12, "/services/oauth2/token": 0}
HELPDESK_DEPTHS = {"/api/v2": 3}
LAX = 1000  # Zendesk exports a minute: limits are not under test


def run_sync(store_url: str, reconcile: bool = False) -> dict[str, Any]:
    store = Store.open(store_url)
    request = SyncRequest(str(DEMO_OKRS), full_refresh=False, reconcile=reconcile)
    report = sync_store(store, request, Settings())
    store.dispose()
    return report.to_dict()


@pytest.fixture
def fault_free(
    prefect_harness: None,
    sources_env: dict[str, RunningServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mirror and measurements of the demo OKRs synced once, with no fault at all."""
    url = f"sqlite:///{tmp_path_factory.mktemp('clean') / 'okr.db'}"
    report = run_sync(url)
    assert report["status"] == "complete", report["reason"]
    return mirror_state(url), measured(url)


def one_lapse(schedule: Schedule) -> Schedule:
    """At most one lapsed session a run: a new session refused at once means a bad
    credential (fatal, rightly)."""
    lapses = [(kind, path, 1, skip) for kind, path, _, skip in schedule if kind == "expire"]
    return [item for item in schedule if item[0] != "expire"] + lapses[:1]


@pytest.mark.usefixtures("prefect_harness")
@settings(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    crm=schedules(CRM_FAULTS, CRM_DEPTHS, min_size=1, max_size=3).map(one_lapse),
    helpdesk=schedules(HELPDESK_FAULTS, HELPDESK_DEPTHS, min_size=1, max_size=3),
    first_faulted=st.booleans(),
    org_changes=changes(),
    helpdesk_changes=changes(),
    drop_organization=st.booleans(),
)
def test_any_fault_schedule_leaves_the_same_mirror_and_measurements(
    crm: Schedule,
    helpdesk: Schedule,
    first_faulted: bool,
    org_changes: Changes,
    helpdesk_changes: Changes,
    drop_organization: bool,
    tmp_path_factory: pytest.TempPathFactory,
    clock: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Salesforce and Zendesk synced (under faults, or not), then changed at the source
    (opportunities and tickets edited, added and deleted; perhaps an organization deleted),
    then synced incrementally under random faults, every one of them served: the store
    equals a store that went through the same history without faults, and its mirror
    equals one fault-free sync of the changed sources. Zendesk keeps no trace of a deleted
    organization (its incremental export, like its list, just stops showing it; the API
    reference documents no deleted flag for organizations), so that run reconciles."""
    for name, value in {
        "OKR_SYNC_SALESFORCE_TIMEOUT": "1",
        "OKR_SYNC_ZENDESK_TIMEOUT": "1",
        "OKR_SYNC_RETRY_INITIAL_SECONDS": "0.02",
        "OKR_SYNC_RETRY_MAX_SECONDS": "0.1",
        "OKR_SYNC_RETRY_BUDGET_SECONDS": "60",
        "OKR_SYNC_BATCH_SIZE": "20",  # batches commit before most faults
    }.items():
        monkeypatch.setenv(name, value)
    org = generate_org(seed=41, as_of=AS_OF, accounts=20, opportunities=150)
    desk = generate_helpdesk(seed=41, as_of=AS_OF, companies=customer_seeds(org))
    org_app = create_app(org, page_size=20)
    desk_app = create_helpdesk_app(
        desk, export_page_size=20, export_rate_limit=LAX, rate_limit=LAX * 10
    )
    finance = tmp_path_factory.mktemp("finance")  # the demo OKRs' third source, unchanged
    write_finance_export(org, 41, finance)
    monkeypatch.setenv("OKR_SYNC_FILES_DIRECTORY", str(finance))
    sources = [
        Drawn("salesforce", org_app.state.faults, crm, CRM_DEPTHS),
        Drawn("zendesk", desk_app.state.faults, helpdesk, HELPDESK_DEPTHS),
    ]

    def change(now: datetime) -> list[int]:
        change_org(org, org_changes, now)
        return change_helpdesk(desk, helpdesk_changes, now, drop_organization)

    with serve_tls(org_app) as org_server, serve_tls(desk_app) as desk_server:
        env = salesforce_env_vars(org_server) | zendesk_env_vars(
            desk_server, export_rate_limit=LAX, rate_limit=LAX * 10
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        faulted_history(
            sources,
            first_faulted,
            tmp_path_factory.mktemp("incremental"),
            lambda store_url, reconcile: run_sync(store_url, reconcile=reconcile),
            change,
            clock,
            monkeypatch,
        )


# --- kill -9 at random points ---------------------------------------------------------------


def running_runs(database: Path) -> int:
    """Runs marked running, read without taking part in the writer's transactions."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.1) as connection:
            row = connection.execute("SELECT count(*) FROM sync_runs WHERE status = 'running'")
            return int(row.fetchone()[0])
    except sqlite3.Error:  # not created yet, or mid-migration
        return 0


def test_a_sync_killed_at_random_points_then_rerun_converges(
    fault_free: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    """``okr-sync sync`` is SIGKILLed three times at random moments of its run; a last
    run then finishes, and the store equals a run that was never interrupted."""
    from prefect.settings import PREFECT_API_URL

    database = tmp_path / "okr.db"
    command = [sys.executable, "-m", "okr_sync.cli", "sync", "--store", f"sqlite:///{database}"]
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # the session's server, not a new one
        "OKR_SYNC_OKR_FILE": str(DEMO_OKRS),
        "OKR_SYNC_BATCH_SIZE": "100",  # many commits: many places to be killed between
    }
    rng = random.Random(20261127)
    for attempt in range(3):
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while running_runs(database) <= attempt and child.poll() is None:
            assert time.monotonic() < deadline, "the sync never started"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.5))
        child.send_signal(signal.SIGKILL)
        child.wait()

    final = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )

    assert final.returncode == 0, final.stderr[-3000:]
    state = (mirror_state(f"sqlite:///{database}"), measured(f"sqlite:///{database}"))
    assert not differences(state, fault_free)
    store = Store.open(f"sqlite:///{database}")
    with store.session() as session:
        statuses = [run.status for run in session.scalars(select(SyncRun))]
        reasons = {run.reason for run in session.scalars(select(SyncRun)) if run.status == "failed"}
    store.dispose()
    assert "running" not in statuses
    assert statuses.count("failed") >= 1  # at least one kill landed mid-run (most do)
    assert statuses.count("complete") >= 1
    assert all(reason and reason.startswith("interrupted") for reason in reasons)
