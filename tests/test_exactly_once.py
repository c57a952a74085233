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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connectors.base import get_connector
from connectors.salesforce.sandbox.data import SalesforceOrg, generate_org
from connectors.salesforce.sandbox.emulator import create_app
from connectors.sandbox.server import RunningServer, parse_faults, serve_tls
from expectations import Validator
from flows.extract import sync_stream
from flows.load import reconcile_source
from flows.plan import SyncRequest
from flows.report import StreamReport
from flows.settings import Settings
from flows.sync import sync_store
from okr_sync.cli import DEMO_OKRS
from okr_targets.models import MIRROR, Deal, Measurement, MeasurementRecord, SyncRun, utcnow
from okr_targets.store import Store, begin_run
from tests.conftest import AS_OF, salesforce_env_vars, sync_sources

QUERY_MORE = "/services/data/v59.0/queryAll/"  # the next pages of a deletable object


def mirror_state(store_url: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every mirror table's rows, without the run that wrote them (nor when the OKR file's
    own exchange rates were first read: that is the run's time, not source data)."""
    store = Store.open(store_url)
    content = {}
    with store.session() as session:
        for entity, model in MIRROR.items():
            columns = [c for c in model.__table__.columns if c.name != "run_id"]
            rows = session.execute(select(*columns)).mappings()
            content[entity] = {
                tuple(
                    None if row["source"] == "config" and name == "source_modified_at" else value
                    for name, value in row.items()
                )
                for row in rows
            }
    store.dispose()
    return content


def measured(store_url: str) -> dict[str, tuple[float | None, int]]:
    """Each key result's latest value and how many records it was computed from."""
    store = Store.open(store_url)
    latest: dict[str, tuple[float | None, int]] = {}
    with store.session() as session:
        rows = session.execute(
            select(Measurement.key_result_id, Measurement.value, func.count())
            .outerjoin(MeasurementRecord)
            .group_by(Measurement.id)
            .order_by(Measurement.id)
        )
        for key_result_id, value, records in rows:
            latest[key_result_id] = (value, records)
    store.dispose()
    return latest


def differences(
    actual: tuple[dict[str, Any], dict[str, Any]], expected: tuple[dict[str, Any], dict[str, Any]]
) -> list[str]:
    """What differs between two (mirror, measurements) states, readably."""
    found = []
    for name in sorted(set(actual[0]) | set(expected[0])):
        extra = actual[0].get(name, set()) - expected[0].get(name, set())
        missing = expected[0].get(name, set()) - actual[0].get(name, set())
        if extra or missing:
            found.append(f"{name}: {len(extra)} unexpected e.g. {sorted(extra, key=repr)[:2]}")
            found.append(f"{name}: {len(missing)} missing e.g. {sorted(missing, key=repr)[:2]}")
    for key in sorted(set(actual[1]) | set(expected[1])):
        if actual[1].get(key) != expected[1].get(key):
            found.append(f"{key}: {actual[1].get(key)} != {expected[1].get(key)}")
    return found


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


# --- randomized fault schedules over the whole sync -----------------------------------------

FAULTS = ["429", "429:0.05", "500", "503", "503:0.05", "slow:1.5", "drop", "truncate", "expire"]
PATHS = ["/services/data", "/services/oauth2/token", "/api/v2"]


def run_sync(store_url: str) -> dict[str, Any]:
    store = Store.open(store_url)
    report = sync_store(store, SyncRequest(str(DEMO_OKRS), full_refresh=False), Settings())
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


@pytest.mark.usefixtures("prefect_harness")
@settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    schedule=st.lists(
        st.tuples(st.sampled_from(FAULTS), st.sampled_from(PATHS), st.integers(1, 3)),
        min_size=1,
        max_size=6,
    )
)
def test_any_fault_schedule_leaves_the_same_mirror_and_measurements(
    schedule: list[tuple[str, str, int]],
    fault_free: tuple[dict[str, Any], dict[str, Any]],
    sandbox_app: Any,
    helpdesk_app: Any,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_TIMEOUT", "1")
    monkeypatch.setenv("OKR_SYNC_ZENDESK_TIMEOUT", "1")
    monkeypatch.setenv("OKR_SYNC_RETRY_INITIAL_SECONDS", "0.02")
    monkeypatch.setenv("OKR_SYNC_RETRY_MAX_SECONDS", "0.1")
    monkeypatch.setenv("OKR_SYNC_RETRY_BUDGET_SECONDS", "60")
    # One lapsed session a run: a new session that is refused at once means a bad credential
    # (fatal, rightly). Zendesk API tokens do not expire: the helpdesk has no session to end.
    expiring = [item for item in schedule if item[0] == "expire" and item[1] != "/api/v2"]
    schedule = [item for item in schedule if item[0] != "expire"] + [
        (fault, path, 1) for fault, path, _ in expiring[:1]
    ]
    spec = ",".join(f"{fault}x{times}@{path}" for fault, path, times in schedule)
    url = f"sqlite:///{tmp_path_factory.mktemp('faulty') / f'{uuid.uuid4().hex}.db'}"
    queues = (sandbox_app.state.faults, helpdesk_app.state.faults)
    for queue in queues:
        queue.clear()
        queue.extend(parse_faults(spec) if spec else [])
    try:
        report = run_sync(url)
    finally:
        for queue in queues:
            queue.clear()
    assert report["status"] == "complete", (spec, report["reason"])
    assert not differences((mirror_state(url), measured(url)), fault_free), spec


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
