"""Runs that meet: a reconcile rides out a rate-limited id listing, and a sync that finds the
store's writer busy queues behind the writer instead of failing (issue 21).

A small Zendesk helpdesk served over real HTTPS; faults are injected on the reconcile's
organizations listing only (``/api/v2/organizations.json``: the sync itself reads the
organizations export). Ordering between the two syncs is by events, never by sleeps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.base import get_connector
from connectors.sandbox.server import parse_faults, serve_tls
from connectors.sandbox.world import sample_companies
from connectors.zendesk.sandbox import sandbox_env
from connectors.zendesk.sandbox.data import Helpdesk, generate_helpdesk
from connectors.zendesk.sandbox.emulator import create_app
from connectors.zendesk.streams import ORGANIZATIONS_PATH
from expectations import Validator
from flows.extract import sync_stream
from flows.load import reconcile_source
from flows.plan import SyncRequest
from flows.report import RunReport
from flows.settings import Settings
from flows.sync import SyncRefusedError, run_sync
from okr_sync.cli import app as cli
from okr_targets.models import Customer, SyncRun, utcnow
from okr_targets.status import RunStatus
from okr_targets.store import Store, begin_run, finish_run, redact

AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GENEROUS = 1_000_000
OKRS = """\
company: Test Co
sources:
  zendesk: [customer, ticket, rating]
objectives:
  - id: happy
    title: Keep customers happy
    owner: olivia.hart@acme-demo.example
    period: 2026-Q4
    key_results:
      - {id: csat, title: CSAT, metric: csat, params: {}, target: 90}
"""
WAITING = "waiting up to"  # the line a sync logs when it starts queueing for the writer lock


@pytest.fixture
def desk() -> Helpdesk:
    companies = sample_companies(seed=5, as_of=AS_OF.date(), count=12)
    return generate_helpdesk(seed=5, as_of=AS_OF, companies=companies)


@pytest.fixture
def zendesk(desk: Helpdesk, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The helpdesk served, the connector pointed at it; yields the app (its fault queue)."""
    app = create_app(
        desk,
        export_page_size=20,
        export_rate_limit=GENEROUS,
        rate_limit=GENEROUS,
    )
    with serve_tls(app) as server:
        env = sandbox_env(server, export_rate_limit=GENEROUS, rate_limit=GENEROUS)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OKR_SYNC_RETRY_INITIAL_SECONDS", "0.05")
        yield app


@pytest.fixture
def okr_file(tmp_path: Path) -> str:
    path = tmp_path / "okrs.yaml"
    path.write_text(OKRS, encoding="utf-8")
    return str(path)


def live_customers(store_url: str) -> set[str]:
    store = Store.open(store_url)
    with store.session() as session:
        found = session.scalars(
            select(Customer.source_id).where(
                Customer.source == "zendesk", Customer.deleted_at.is_(None)
            )
        )
        live = set(found)
    store.dispose()
    return live


def vanish(desk: Helpdesk) -> str:
    """An organization removed at the source: Zendesk reports no delete, only a reconcile
    finds it gone. Returns its id."""
    org_id = sorted(desk.organizations)[0]
    desk.delete_organization(org_id)
    return str(org_id)


def sync(okr_file: str, store_url: str, *, reconcile: bool = False) -> RunReport:
    request = SyncRequest(okr_file, reconcile=reconcile)
    return run_sync(request, store_url, Settings())


@pytest.mark.usefixtures("clock")
def test_a_rate_limited_id_listing_is_retried_and_the_reconcile_completes(
    zendesk: Any,
    desk: Helpdesk,
    sqlite_url: str,
    validator: Validator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store.open(sqlite_url)
    run_id = begin_run(store, "test")
    streams = list(get_connector("zendesk").streams)
    for stream in streams:
        sync_stream.fn(store, "zendesk", stream, run_id, validator, 500)
    before = live_customers(sqlite_url)
    gone = vanish(desk)
    assert gone in before
    zendesk.state.faults.extend(parse_faults(f"429:0.05x2@{ORGANIZATIONS_PATH}"))

    with caplog.at_level(logging.INFO):
        reconciled = reconcile_source.fn(store, "zendesk", streams, run_id, utcnow(), Settings())
    finish_run(store, run_id, RunStatus.COMPLETE, None, {})
    store.dispose()

    assert reconciled.stopped is None
    assert reconciled.retries == 2
    assert reconciled.tombstoned["zendesk.customer"] == 1
    assert live_customers(sqlite_url) == before - {gone}
    assert zendesk.state.faults.take(ORGANIZATIONS_PATH) is None  # both 429s were met
    retried = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
    assert len(retried) == 2
    assert all(line.startswith("zendesk.organizations ids: zendesk: ") for line in retried)
    assert all("429" in line for line in retried)


@pytest.mark.usefixtures("prefect_harness", "clock")
def test_a_listing_that_outlasts_the_budget_leaves_the_mirror_and_the_run_is_partial(
    zendesk: Any,
    desk: Helpdesk,
    okr_file: str,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert sync(okr_file, sqlite_url).status == RunStatus.COMPLETE
    before = live_customers(sqlite_url)
    vanish(desk)
    monkeypatch.setenv("OKR_SYNC_RETRY_BUDGET_SECONDS", "0")  # the first 429 spends it
    zendesk.state.faults.extend(parse_faults(f"429@{ORGANIZATIONS_PATH}"))

    report = sync(okr_file, sqlite_url, reconcile=True)

    assert report.status == RunStatus.PARTIAL
    assert report.reason is not None
    assert report.reason.startswith("1 source(s) not reconciled: zendesk: zendesk: ")
    assert "429" in report.reason
    assert "gave up after 1 attempts" in report.reason
    assert report.unreconciled.keys() == {"zendesk"}
    assert report.tombstoned == {}  # no entity of the source was tombstoned, not even tickets
    assert live_customers(sqlite_url) == before  # the vanished one too: nothing was proved
    assert report.key_results  # the run went on to measure
    shown = CliRunner().invoke(cli, ["runs", "show", report.run_id, "--store", sqlite_url])
    assert shown.exit_code == 0, shown.output
    assert "zendesk: not reconciled, nothing tombstoned: zendesk: " in " ".join(
        shown.output.split()
    )


@pytest.mark.usefixtures("prefect_harness", "clock")
def test_a_reconcile_that_meets_a_running_sync_waits_for_it_then_completes(
    zendesk: Any,
    desk: Helpdesk,
    okr_file: str,
    store_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert sync(okr_file, store_url).status == RunStatus.COMPLETE
    gone = vanish(desk)
    queued = threading.Event()  # the reconcile logged that it is waiting for the lock
    held = threading.Event()
    writer: dict[str, str] = {}

    def another_sync() -> None:
        store = Store.open(store_url)
        with store.writer_lock():
            writer["run"] = begin_run(store, "test")
            held.set()
            assert queued.wait(timeout=60), "the reconcile never queued"
            finish_run(store, writer["run"], RunStatus.COMPLETE, None, {})
        store.dispose()

    class Announce(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if WAITING in record.getMessage():
                queued.set()

    announce = Announce()
    logging.getLogger("okr_sync").addHandler(announce)
    first = threading.Thread(target=another_sync)
    first.start()
    try:
        assert held.wait(timeout=60)
        with caplog.at_level(logging.INFO, logger="okr_sync"):
            report = sync(okr_file, store_url, reconcile=True)
    finally:
        queued.set()  # never leave the holder hanging
        first.join(timeout=60)
        logging.getLogger("okr_sync").removeHandler(announce)

    assert report.status == RunStatus.COMPLETE, report.reason
    assert report.tombstoned["zendesk.customer"] == 1
    assert gone not in live_customers(store_url)
    lines = [r.getMessage() for r in caplog.records if r.name == "okr_sync"]
    [waiting] = [line for line in lines if WAITING in line]
    assert waiting.startswith(f"another sync is writing to {redact(store_url)} ")
    assert f"(run {writer['run']}, running since " in waiting
    assert "waiting up to 600s for it to finish" in waiting
    assert any("the writer lock is ours after" in line for line in lines)
    store = Store.open(store_url)
    with store.session() as session:
        holder = session.get(SyncRun, writer["run"])
        reconcile = session.get(SyncRun, report.run_id)
        assert holder is not None
        assert reconcile is not None
        assert holder.status == RunStatus.COMPLETE  # not taken for an abandoned run
        assert holder.finished_at is not None
        assert holder.finished_at <= reconcile.started_at  # it ran after, not beside
    store.dispose()


@pytest.mark.usefixtures("prefect_harness")
def test_a_wait_that_runs_out_refuses_the_run_and_says_so(
    okr_file: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_LOCK_WAIT_SECONDS", "0.2")
    holder = Store.open(sqlite_url)
    with holder.writer_lock():
        writing = begin_run(holder, "test")
        with pytest.raises(SyncRefusedError) as refused:
            sync(okr_file, sqlite_url)
    holder.dispose()
    assert refused.value.what == "sync did not start"
    message = str(refused.value)
    assert message.startswith(f"another sync is writing to {holder.display_url} (run {writing}")
    assert message.endswith("; this one waited 0.2s for it and did not start")


def test_the_lock_wait_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().lock_wait_seconds == 600
    for bad in ("-1", "soon", "1e9"):
        monkeypatch.setenv("OKR_SYNC_LOCK_WAIT_SECONDS", bad)
        with pytest.raises(ValueError, match="OKR_SYNC_LOCK_WAIT_SECONDS"):
            Settings()
