"""The warm path: a webhook becomes one background sync of its source, coalesced while
queued, run by a task worker, and skipped when a later sync already read the change."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.futures import PrefectDistributedFuture
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Running, State
from prefect.task_worker import TaskWorker
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from connectors.sandbox.server import RunningServer
from flows.background import (
    RUNNING_POLL_SECONDS,
    PastRun,
    covering_run,
    sync_changed_source,
    wait_until_running,
)
from okr_sync.cli import DEMO_OKRS, app
from okr_sync.webhooks import Receiver, SyncQueue, create_app, submit_sync, task_run_state
from okr_targets.models import SourceRead, SyncRun
from okr_targets.store import Store
from tests.test_webhooks import SALESFORCE_BODY, SECRETS, salesforce

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def past(minutes: float, status: str = "complete", streams: tuple[str, ...] = ()) -> PastRun:
    started = T0 + timedelta(minutes=minutes)
    return PastRun(f"run{minutes:+}", started, status, streams or ("salesforce.Opportunity",))


def test_only_a_complete_run_that_read_the_streams_after_the_change_covers_it() -> None:
    opportunity = ["salesforce.Opportunity"]
    assert covering_run([], opportunity, T0) is None
    assert covering_run([past(-1)], opportunity, T0) is None  # began before the change
    assert covering_run([past(1, "running")], opportunity, T0) is None  # may not have read yet
    assert covering_run([past(1, "partial")], opportunity, T0) is None  # stopped early
    assert covering_run([past(1, streams=("zendesk.tickets",))], opportunity, T0) is None
    later = past(2)
    assert covering_run([past(-1), past(1, "failed"), later], opportunity, T0) == later
    # a run of other streams of the source did not read this change
    account = past(1, streams=("salesforce.Account",))
    assert covering_run([account], opportunity, T0) is None
    # a change to every stream is covered only by a run that read them all
    every = ["salesforce.Account", "salesforce.Opportunity"]
    assert covering_run([past(1), account], every, T0) is None
    whole = past(3, streams=("salesforce.Account", "salesforce.Opportunity", "salesforce.User"))
    assert covering_run([past(1), account, whole], every, T0) == whole
    assert covering_run([whole], opportunity, T0) == whole


def sync_runs(store_url: str) -> list[SyncRun]:
    store = Store.open(store_url)
    with store.session() as session:
        found = list(session.scalars(select(SyncRun).order_by(SyncRun.started_at)))
    store.dispose()
    return found


@pytest.mark.usefixtures("prefect_harness")
def test_the_task_syncs_its_source_and_skips_a_change_a_later_run_read(
    sqlite_url: str, salesforce_env: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    monkeypatch.setenv("OKR_SYNC_OKR_FILE", str(DEMO_OKRS))
    received = datetime.now(UTC)
    first = sync_changed_source.fn("salesforce", received)
    [run] = sync_runs(sqlite_url)
    assert first == run.id
    assert run.status == "complete"
    assert {name.split(".")[0] for name in run.stream_counts} == {"salesforce"}
    # a change received before that run started was read by it: nothing runs again
    assert sync_changed_source.fn("salesforce", received) == run.id
    assert sync_changed_source.fn("salesforce", received, ["salesforce.Opportunity"]) == run.id
    assert len(sync_runs(sqlite_url)) == 1
    assert source_reads(sqlite_url)["salesforce"][1] == run.id  # read whole: it is fresh


@pytest.mark.usefixtures("prefect_harness")
def test_a_change_to_one_stream_re_reads_only_it_and_leaves_freshness_alone(
    sqlite_url: str, salesforce_env: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    monkeypatch.setenv("OKR_SYNC_OKR_FILE", str(DEMO_OKRS))
    whole_id = sync_changed_source.fn("salesforce", datetime.now(UTC))
    fresh = source_reads(sqlite_url)
    opportunity_id = sync_changed_source.fn(
        "salesforce", datetime.now(UTC), ["salesforce.Opportunity"]
    )
    whole, opportunity = sync_runs(sqlite_url)
    assert (whole.id, opportunity.id) == (whole_id, opportunity_id)
    assert opportunity.status == "complete"
    assert set(opportunity.stream_counts) == {"salesforce.Opportunity"}
    # the other streams were not read: the source is as fresh as the whole read, no more
    assert fresh["salesforce"][1] == whole.id
    assert source_reads(sqlite_url) == fresh
    # a change to a stream the OKR file does not read (the demo reads no Cases) needs no sync
    nothing = sync_changed_source.fn("salesforce", datetime.now(UTC), ["salesforce.Case"])
    assert isinstance(nothing, State)
    assert nothing.is_completed()
    assert len(sync_runs(sqlite_url)) == 2


def source_reads(store_url: str) -> dict[str, tuple[datetime, str]]:
    store = Store.open(store_url)
    with store.session() as session:
        found = {r.source: (r.read_at, r.run_id) for r in session.scalars(select(SourceRead))}
    store.dispose()
    return found


async def state_name(task_run_id: UUID) -> str:
    async with get_client() as client:
        found = await client.read_task_run(task_run_id)
    assert found.state is not None
    return found.state.type.value


@pytest.mark.usefixtures("prefect_harness")
def test_one_queued_sync_per_source_and_a_new_one_behind_a_running_one() -> None:
    seconds = [0.0]

    async def scenario() -> None:
        queue = SyncQueue(submit_sync, task_run_state, max_wait=60, clock=lambda: seconds[0])
        now = datetime.now(UTC)
        queued, coalesced = await queue.request("zendesk", now)
        assert not coalesced
        assert await state_name(queued) == "SCHEDULED"  # no task worker has taken it
        again, coalesced = await queue.request("zendesk", now + timedelta(seconds=1))
        assert (again, coalesced) == (queued, True)
        other, coalesced = await queue.request("hubspot", now)  # each source its own queue
        assert not coalesced
        assert other != queued
        # once it runs, it may have read before the next change: a new one is queued
        async with get_client() as client:
            await client.set_task_run_state(queued, Running(), force=True)
        behind, coalesced = await queue.request("zendesk", now + timedelta(seconds=2))
        assert not coalesced
        assert behind != queued
        # a sync queued over a minute ago that nobody took may never run: queue another
        seconds[0] = 61.0
        fresh, coalesced = await queue.request("zendesk", now + timedelta(seconds=3))
        assert not coalesced
        assert fresh != behind
        assert await state_name(behind) == "SCHEDULED"

    asyncio.run(scenario())


@pytest.mark.usefixtures("prefect_harness")
def test_a_queued_sync_covers_a_change_only_if_it_reads_its_streams() -> None:
    tickets = ("zendesk.tickets", "zendesk.satisfaction_ratings")
    organizations = ("zendesk.organizations",)

    async def scenario() -> None:
        queue = SyncQueue(submit_sync, task_run_state)
        now = datetime.now(UTC)
        queued, coalesced = await queue.request("zendesk", now, tickets)
        assert not coalesced
        # a queued sync of the tickets does not read an organization's change
        other, coalesced = await queue.request("zendesk", now, organizations)
        assert not coalesced
        assert other != queued
        again, coalesced = await queue.request("zendesk", now, tickets)
        assert (again, coalesced) == (queued, True)
        # a sync of every stream is queued beside them, and later changes of any stream
        # ride on it (or on their own streams' queued sync)
        every, coalesced = await queue.request("zendesk", now, None)
        assert not coalesced
        assert every not in (queued, other)
        async with get_client() as client:
            await client.set_task_run_state(queued, Running(), force=True)
        assert await queue.request("zendesk", now, tickets) == (every, True)
        assert await queue.request("zendesk", now, organizations) == (other, True)

    asyncio.run(scenario())


@pytest.mark.usefixtures("prefect_harness")
def test_a_sync_reads_only_once_the_server_knows_it_is_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The receiver coalesces into a sync the server still calls Scheduled: the sync must
    not read before the server calls it Running. The server's answers are real; the wait's
    clock and sleep are stand-ins, the sleep delivering the run's Running state."""
    polls: list[float] = []

    def submitted() -> UUID:
        async def submit() -> UUID:
            return await submit_sync("salesforce", None, datetime.now(UTC))

        return asyncio.run(submit())

    def running_on_second_poll(task_run_id: UUID) -> Any:
        def sleep(seconds: float) -> None:  # the Running event arrives meanwhile
            polls.append(seconds)
            with get_client(sync_client=True) as client:
                client.set_task_run_state(task_run_id, Running(), force=True)

        return sleep

    started = submitted()
    assert wait_until_running(started, sleep=running_on_second_poll(started))
    assert polls == [RUNNING_POLL_SECONDS]  # it waited for Running, then went on
    assert asyncio.run(state_name(started)) == "RUNNING"

    # the server never says Running within the bound: a warning, and the read goes on
    never = submitted()
    seconds = [0.0]

    def tick(interval: float) -> None:
        seconds[0] += interval

    with caplog.at_level("WARNING"):
        assert not wait_until_running(never, bound=1.0, clock=lambda: seconds[0], sleep=tick)
    assert seconds[0] >= 1.0
    assert "did not report this run Running within 1s" in caplog.text
    assert asyncio.run(state_name(never)) == "SCHEDULED"


def run_on_a_task_worker(task_run_id: UUID) -> str:
    """What ``okr-sync worker`` does with one submitted run (its subscription aside); the
    server records the final state from the run's events, so wait for it."""

    async def execute() -> None:
        async with get_client() as client:
            task_run = await client.read_task_run(task_run_id)
        await TaskWorker(sync_changed_source, limit=1).execute_task_run(task_run)

    asyncio.run(execute())
    future: PrefectDistributedFuture[Any] = PrefectDistributedFuture(task_run_id)
    future.wait(timeout=60)
    return future.state.type.value


@pytest.mark.usefixtures("prefect_harness")
def test_a_webhook_is_synced_by_the_task_worker_and_a_burst_rides_on_it(
    sqlite_url: str, salesforce_env: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    monkeypatch.setenv("OKR_SYNC_OKR_FILE", str(DEMO_OKRS))
    first = sync_changed_source.fn("salesforce", datetime.now(UTC))  # rates, accounts, users
    with TestClient(create_app(Receiver(dict(SECRETS)))) as client:
        answers = []
        for number in range(3):
            body = json.dumps(json.loads(SALESFORCE_BODY) | {"n": number}).encode()
            answer = client.post("/webhooks/salesforce", content=body, headers=salesforce(body))
            assert answer.status_code == 202, answer.text
            answers.append(answer.json())
        assert [a["coalesced"] for a in answers] == [False, True, True]
        assert len({a["sync"] for a in answers}) == 1
        sync_id = UUID(answers[0]["sync"])
        assert run_on_a_task_worker(sync_id) == "COMPLETED"
        assert [a["streams"] for a in answers] == [["salesforce.Opportunity"]] * 3
        [earlier, run] = sync_runs(sqlite_url)
        assert earlier.id == first
        assert run.status == "complete"
        # the webhook names one Opportunity: the sync read that stream and no other
        assert set(run.stream_counts) == {"salesforce.Opportunity"}
        # that sync is over: the next change gets a sync of its own
        body = json.dumps(json.loads(SALESFORCE_BODY) | {"n": 3}).encode()
        after: Any = client.post("/webhooks/salesforce", content=body, headers=salesforce(body))
        assert after.status_code == 202
        assert after.json()["coalesced"] is False
        assert after.json()["sync"] != str(sync_id)


@pytest.mark.usefixtures("prefect_harness")
def test_a_sync_that_began_before_a_queued_one_ran_does_not_cover_it(
    sqlite_url: str, salesforce_env: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes ride on a queued sync until it runs: one received after an earlier sync
    began may have come after that sync's read, so that sync covers none of them."""
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    monkeypatch.setenv("OKR_SYNC_OKR_FILE", str(DEMO_OKRS))
    first_change = datetime.now(UTC)
    earlier = sync_changed_source.fn("salesforce", first_change)

    async def submit() -> UUID:
        return await submit_sync("salesforce", ("salesforce.Opportunity",), first_change)

    queued = asyncio.run(submit())  # later changes coalesced into it while it waited
    assert run_on_a_task_worker(queued) == "COMPLETED"
    [covered_first, ran] = sync_runs(sqlite_url)
    assert covered_first.id == earlier
    assert covered_first.started_at > first_change  # it read the first change, not the later
    assert set(ran.stream_counts) == {"salesforce.Opportunity"}


@pytest.mark.usefixtures("prefect_harness")  # the event still goes to Prefect first
def test_a_sync_prefect_did_not_take_is_a_503_and_the_retry_is_accepted() -> None:
    async def refuse(source: str, streams: Any, received_at: datetime) -> UUID:
        raise ConnectionError("the Prefect API is unreachable")

    taken: list[str] = []

    async def take(source: str, streams: Any, received_at: datetime) -> UUID:
        taken.append(source)
        return UUID(int=len(taken))

    async def never_started(task_run_id: UUID) -> Any:
        return None

    receiver = Receiver(dict(SECRETS), syncs=SyncQueue(refuse, never_started))
    headers = salesforce(SALESFORCE_BODY)
    with TestClient(create_app(receiver)) as client:
        refused = client.post("/webhooks/salesforce", content=SALESFORCE_BODY, headers=headers)
        assert refused.status_code == 503
        assert refused.json() == {"error": "the sync could not be submitted to Prefect"}
        receiver.syncs = SyncQueue(take, never_started)
        accepted = client.post("/webhooks/salesforce", content=SALESFORCE_BODY, headers=headers)
        assert accepted.status_code == 202
    assert taken == ["salesforce"]


def test_the_worker_without_a_prefect_server_is_a_clear_error() -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 1
    assert "PREFECT_API_URL is not set" in result.stderr


def test_the_worker_refuses_a_broken_okr_file_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "okrs.yaml"
    broken.write_text("objectives: [{id: x, title: X, key_results: [{id: k, metric: nope}]}]\n")
    monkeypatch.setenv("OKR_SYNC_OKR_FILE", str(broken))
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {broken}:1: ")
    assert "Traceback" not in result.stderr
