"""The warm path: one source's change synced in seconds by a long-lived task worker.

``okr-sync webhooks serve`` submits :func:`sync_changed_source` as a Prefect background
task (a deferred task run, as ``Task.apply_async`` makes) for each verified webhook, at
most one queued per source
(okr_sync/webhooks.py coalesces the rest into it); ``okr-sync worker`` serves it
(``prefect.task_worker.serve``) in one process that imported and warmed everything at
start, so a run pays only for the change. The store URL and the OKR file come from the
worker's environment, never from task parameters: Prefect records parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import task
from prefect.states import Failed, State
from sqlalchemy import select

from flows.logs import run_logger
from flows.plan import SyncRequest
from flows.settings import Settings
from flows.sync import SyncRefusedError, run_sync
from okr_targets.models import SyncRun
from okr_targets.status import RunStatus
from okr_targets.store import Store, StoreError


@dataclass(frozen=True)
class PastRun:
    """What the skip decision needs of a recorded run."""

    run_id: str
    started_at: datetime
    status: str
    streams: Iterable[str]  # "source.stream" names the run read


def covering_run(runs: Iterable[PastRun], source: str, received_at: datetime) -> PastRun | None:
    """A complete run that read ``source`` and started after the change was received.

    Such a run read the change already, so syncing again would only repeat it. A run
    still going, or one that stopped early, may have read the source before the change
    arrived (or not at all): it covers nothing.
    """
    for run in runs:
        if (
            run.started_at > received_at
            and run.status == RunStatus.COMPLETE
            and any(name.split(".")[0] == source for name in run.streams)
        ):
            return run
    return None


def runs_since(store: Store, since: datetime) -> list[PastRun]:
    with store.session() as session:
        found = session.scalars(select(SyncRun).where(SyncRun.started_at > since)).all()
        return [PastRun(r.id, r.started_at, r.status, list(r.stream_counts)) for r in found]


@task(name="sync-changed-source", task_run_name="sync {source}")
def sync_changed_source(source: str, received_at: datetime) -> str | State[Any]:
    """Sync one source that reported a change at ``received_at``; returns the sync run's id.

    Skipped, with a log line, when a sync of that source started after the change was
    received (several receivers may queue the same change; a cron run may be first).
    """
    logger = run_logger()
    settings = Settings()
    try:
        store = Store.open(settings.store_url)
    except StoreError as exc:
        return _failed(str(exc))
    try:
        covering = covering_run(runs_since(store, received_at), source, received_at)
    finally:
        store.dispose()
    if covering is not None:
        logger.info(
            "skipped: sync run %s of %s started at %s, after this change was received at %s",
            covering.run_id,
            source,
            covering.started_at.isoformat(),
            received_at.isoformat(),
        )
        return covering.run_id
    request = SyncRequest(okr_file=str(settings.okr_file), sources=(source,))
    try:
        report = run_sync(request, settings.store_url, settings)
    except SyncRefusedError as exc:
        return _failed(f"{exc.what}: {exc}")
    if report.status == RunStatus.FAILED:
        return _failed(f"sync run {report.run_id} failed: {report.reason}")
    logger.info("sync run %s of %s: %s", report.run_id, source, report.status)
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
