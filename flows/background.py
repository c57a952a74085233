"""The warm path: one source's change synced in seconds by a long-lived task worker.

``okr-sync webhooks serve`` submits :func:`sync_changed_source` as a Prefect background
task (a deferred task run, as ``Task.apply_async`` makes) for each verified webhook: a
sync of the streams the changed objects touch (each connector's ``CHANGES`` table), at
most one queued per source and streams (okr_sync/webhooks.py coalesces the rest into
it); ``okr-sync worker`` serves it
(``prefect.task_worker.serve``) in one process that imported and warmed everything at
start, so a run pays only for the change. The store URL and the OKR file come from the
worker's environment, never from task parameters: Prefect records parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect import get_client, task
from prefect.client.schemas.objects import StateType
from prefect.context import TaskRunContext
from prefect.states import Completed, Failed, State
from sqlalchemy import select

from flows.logs import run_logger
from flows.plan import SyncRequest
from flows.settings import Settings
from flows.sync import SyncRefusedError, run_sync
from okr_targets.config import ConfigError, OkrConfig, load_okrs
from okr_targets.models import SyncRun, utcnow
from okr_targets.status import RunStatus
from okr_targets.store import Store, StoreError

RUNNING_WAIT_SECONDS = 5.0  # how long a run waits for the server to know it is Running
RUNNING_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class PastRun:
    """What the skip decision needs of a recorded run."""

    run_id: str
    started_at: datetime
    status: str
    streams: Iterable[str]  # "source.stream" names the run read


def covering_run(
    runs: Iterable[PastRun], needed: Collection[str], received_at: datetime
) -> PastRun | None:
    """A complete run that read every ``needed`` stream and started after the change was
    received.

    Such a run read the change already, so syncing again would only repeat it. A run
    still going, or one that stopped early, may have read the source before the change
    arrived (or not at all): it covers nothing; nor does one that read other streams.
    """
    for run in runs:
        if (
            run.started_at > received_at
            and run.status == RunStatus.COMPLETE
            and set(needed) <= set(run.streams)
        ):
            return run
    return None


def runs_since(store: Store, since: datetime) -> list[PastRun]:
    with store.session() as session:
        found = session.scalars(select(SyncRun).where(SyncRun.started_at > since)).all()
        return [PastRun(r.id, r.started_at, r.status, list(r.stream_counts)) for r in found]


def source_streams(config: OkrConfig, source: str) -> list[str]:
    """The OKR file's streams of ``source``, as ``source.stream``."""
    found = [f"{name}.{stream.name}" for name, stream in config.streams() if name == source]
    if not found:
        raise ConfigError(f"source {source!r} is not among {config.path}'s sources")
    return found


def wait_until_running(
    task_run_id: UUID,
    bound: float = RUNNING_WAIT_SECONDS,
    interval: float = RUNNING_POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait (at most ``bound`` seconds) until the Prefect server says this task run is
    Running, before it reads anything; whether it did.

    The receiver coalesces a change into a sync the server reports Scheduled or Pending,
    trusting it to read the source later. But the server learns a task run's Running
    state from the run's events, milliseconds (more under load) after the run began, so
    without this wait a receiver could see Scheduled for a sync already reading, coalesce
    into it, and the change would be missed. Once the server says Running, every receiver
    check that saw Scheduled was answered before that, so after the change arrived: this
    run's read, which starts now, sees it. Prefect sets a task run's state only through
    events, so the run polls its state. Past the bound (a slow server) it logs a warning and
    goes on: the source's next change or the scheduled sync reads a change missed then.
    """
    with get_client(sync_client=True) as client:
        deadline = clock() + bound
        while True:
            try:
                run = client.read_task_run(task_run_id)
            except Exception:  # any failure to answer (down, timed out, 5xx): the bound decides
                run = None
            if run is not None and run.state is not None and run.state.type == StateType.RUNNING:
                return True
            if clock() >= deadline:
                run_logger().warning(
                    "the Prefect server did not report this run Running within %.0fs; reading "
                    "anyway (a change coalesced into it meanwhile may wait for the next sync)",
                    bound,
                )
                return False
            sleep(interval)


@task(name="sync-changed-source", task_run_name="sync {source}")
def sync_changed_source(
    source: str, received_at: datetime, streams: list[str] | None = None
) -> str | State[Any]:
    """Sync the ``streams`` (``source.stream``; None: all) of one source that reported a
    change at ``received_at``; returns the sync run's id.

    Skipped, with a log line, when a sync that read those streams started after the last
    change this one is for (several receivers may queue the same change; a cron run may be
    first), or when the OKR file reads none of them. Under a task worker the last change
    is the last one coalesced into this run: any until the server knew it was Running.
    """
    logger = run_logger()
    settings = Settings()
    last_change = received_at
    if (context := TaskRunContext.get()) is not None:
        wait_until_running(context.task_run.id)
        # Later changes were coalesced into this run until the server knew it Running,
        # that is until now: a run that began before now may have missed them.
        last_change = max(received_at, utcnow())
    try:
        every = source_streams(load_okrs(settings.okr_file), source)
    except ConfigError as exc:
        return _failed(str(exc))
    needed = every if streams is None else [name for name in every if name in streams]
    if not needed:
        logger.info("skipped: %s reads none of %s", settings.okr_file, ", ".join(streams or ()))
        return Completed(message="nothing to sync: the OKR file reads none of these streams")
    try:
        store = Store.open(settings.store_url)
    except StoreError as exc:
        return _failed(str(exc))
    try:
        covering = covering_run(runs_since(store, last_change), needed, last_change)
    finally:
        store.dispose()
    if covering is not None:
        logger.info(
            "skipped: sync run %s read %s and started at %s, after the changes this sync "
            "was for (the last by %s)",
            covering.run_id,
            ", ".join(needed),
            covering.started_at.isoformat(),
            last_change.isoformat(),
        )
        return covering.run_id
    subset = None if needed == every else tuple(needed)  # a whole read advances freshness
    request = SyncRequest(okr_file=str(settings.okr_file), sources=(source,), streams=subset)
    try:
        report = run_sync(request, settings.store_url, settings)
    except SyncRefusedError as exc:
        return _failed(f"{exc.what}: {exc}")
    if report.status == RunStatus.FAILED:
        return _failed(f"sync run {report.run_id} failed: {report.reason}")
    logger.info("sync run %s of %s: %s", report.run_id, ", ".join(needed), report.status)
    return report.run_id


def _failed(message: str) -> State[Any]:
    run_logger().error("%s", message)
    return Failed(message=message)


def warm_up(settings: Settings) -> None:
    """Pay the fixed costs once per worker process: Great Expectations and the OKR file's
    metric catalog, so a change's sync spends its time on the change."""
    from flows.extract import shared_validator
    from flows.plan import load_and_lint

    shared_validator().warm()
    if settings.okr_file.exists():
        load_and_lint(str(settings.okr_file))
