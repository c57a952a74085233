"""The sync flow: plan -> extract -> validate and load -> measure -> publish.

Each step is a module of flows/: plan.py (the OKR file and what the run covers),
extract.py (each stream from its cursor, with the retries), load.py (validated batches
into the mirror, deletes found), measure.py (key-result values), artifacts.py (events and
artifacts for the key results that changed). run.py records the run from start to end.
Expected failures (bad OKR file, unknown metric, unreachable source, refused credentials,
rejected query) end the run as failed with a one-line reason recorded on the run, never
as a traceback. Retries: within a stream only (tenacity, in extract.py); the Prefect tasks
have none of their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any, ParamSpec, TypeVar

from prefect import Flow
from prefect.states import Failed, State
from pydantic import SecretStr, WithJsonSchema

from connectors.base import UnknownConnectorError
from connectors.errors import SourceError
from connectors.secrets import MissingSecretError
from flows.artifacts import publish_changes
from flows.extract import SyncStoppedError, extract_and_load
from flows.load import reconcile_source, record_reads
from flows.logs import run_logger
from flows.measure import measure
from flows.plan import SyncRequest, plan
from flows.report import RunReport, StreamReport, latest_gaps, source_gaps
from flows.run import recorded_run
from flows.settings import Settings
from flows.steps import step
from okr_targets.config import ConfigError
from okr_targets.models import utcnow
from okr_targets.status import RunStatus
from okr_targets.store import (
    SECRET_QUERY_WORDS,
    Store,
    StoreError,
    abandon_unfinished_runs,
    has_password,
    redact,
)
from transforms.metric import MetricError

EXPECTED_ERRORS = (
    SyncStoppedError,
    ConfigError,
    SourceError,
    MetricError,
    StoreError,
    UnknownConnectorError,
    MissingSecretError,
)


def sync_store(store: Store, request: SyncRequest, settings: Settings) -> RunReport:
    """One sync under the store's writer lock: recorded as a run from start to end."""
    with recorded_run(store, EXPECTED_ERRORS) as run:
        planned = plan(store, request)
        stopped = extract_and_load(store, planned, run.run_id, settings, run.streams)
        read_in_full = [source for source in planned.sources if source not in stopped]
        now = utcnow()
        record_reads(store, planned, read_in_full, run.run_id)
        if request.reconcile:
            for source in sorted(read_in_full):
                listed = [stream for name, stream in planned.streams if name == source]
                reconciled = step(reconcile_source)(
                    store, source, listed, run.run_id, now, settings
                )
                run.tombstoned |= reconciled.tombstoned
                if reconciled.stopped:
                    run.unreconciled[source] = reconciled.stopped
        gaps = source_gaps(run.streams, latest_gaps(store))
        partly_read = {name for name, report in run.streams.items() if not report.whole}
        measured = measure(
            store,
            planned,
            run.run_id,
            now,
            read_in_full=not stopped,
            gaps=gaps,
            partly_read=partly_read,
            changed={r.entity for r in run.streams.values() if r.entity and r.written + r.deleted},
            written=_written(run.streams.values()),
        )
        run.add(measured)
        publish_changes(planned.config, list(measured.outcomes), run.run_id, store, now)
    assert run.report is not None, "a recorded run is finished on the way out"
    return run.report


def _written(streams: Iterable[StreamReport]) -> Counter[str]:
    """Rows written (tombstones included) per entity, over the run's streams."""
    written: Counter[str] = Counter()
    for report in streams:
        if report.entity:
            written[report.entity] += report.written + report.deleted
    return written


class StorePasswordError(ValueError):
    """A store URL with a password, refused before Prefect records the run's parameters."""


def _no_password(words: Iterable[str]) -> str:
    """A JSON Schema pattern (ECMA and Python regex alike, no flags) matching a store URL
    with no password: none in the user info (SQLAlchemy's ``name://user:password@``) and
    no query key holding one of ``words`` in any case (``?password=``)."""
    keys = "|".join("".join(f"[{c.upper()}{c.lower()}]" for c in word) for word in words)
    return rf"^(?![\w+]+://[^:/]*:[^@]*@)(?!.*\?(?:.*&)?[^=&]*(?:{keys}))"


NO_PASSWORD = _no_password(SECRET_QUERY_WORDS)

StoreUrl = Annotated[
    str | SecretStr | None,
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": NO_PASSWORD}, {"type": "null"}]}),
]
"""The ``store_url`` parameter: a SecretStr in-process (``okr-sync sync``: Prefect records it
masked); a deployment's runs (UI, ``prefect deployment run -p``, automations) take only a
URL without a password, refused by the Prefect server before it creates the run."""


P = ParamSpec("P")
R = TypeVar("R")


class SyncFlow(Flow[P, R]):
    """The sync flow: Prefect records a flow run's parameters in its database, so a plain
    ``store_url`` with a password is refused before the run is created (an in-process call
    passes each flow run's parameters through here first)."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        url = parameters.get("store_url")
        if isinstance(url, str) and has_password(url):
            raise StorePasswordError(
                f"store_url {redact(url)} carries a password, and Prefect stores flow "
                "parameters: set it in OKR_SYNC_STORE_URL on the worker, or pass it as a "
                "pydantic SecretStr (recorded masked)"
            )
        return super().serialize_parameters(parameters)


def _sync_okrs(
    okr_file: str | None = None,
    store_url: StoreUrl = None,
    full_refresh: bool = False,
    reconcile: bool = False,
    sources: list[str] | None = None,
    backfill_from: str | None = None,
    backfill_to: str | None = None,
    refreeze_baselines: bool | None = None,
) -> RunReport | State[Any]:
    """Sync the sources named in the OKR file and measure every key result.

    Prefect keeps flow parameters in its database, so a plain ``store_url`` carrying a
    password is refused before a run is created (``SyncFlow``; for a deployment, its
    parameter schema): credentials belong in ``$OKR_SYNC_STORE_URL`` on the worker, or in a
    ``SecretStr``, which Prefect records masked (the CLI passes one).

    Args:
        okr_file: The OKRs-as-code file; null means the worker's $OKR_SYNC_OKR_FILE.
        store_url: SQLAlchemy URL of the store, without a password (or a SecretStr);
            null means the worker's $OKR_SYNC_STORE_URL.
        full_refresh: Ignore the saved cursors, re-read everything and tombstone what the
            sources no longer have.
        reconcile: After the sync, list every live id at each source and tombstone the
            records it no longer has (deletes it stopped reporting).
        sources: Sync only these sources (e.g. ["hubspot"]); null means every source in
            the OKR file. Every key result is measured either way.
        backfill_from: Backfill: re-read the records changed from the start of this period
            (e.g. 2026-Q3, in the OKR file's calendar), leaving the cursors where they are.
        backfill_to: Backfill: up to the end of this period (default: backfill_from).
        refreeze_baselines: Recompute frozen baselines from the data; null means only on
            a full refresh.
    """
    settings = Settings()
    if isinstance(store_url, str) and has_password(store_url):  # a run made some other way
        return _refused(
            f"store_url {redact(store_url)} carries a password, and Prefect stores flow "
            "parameters; set it in OKR_SYNC_STORE_URL instead"
        )
    if isinstance(store_url, SecretStr):  # Prefect recorded it masked
        store_url = store_url.get_secret_value()
    if backfill_to and not backfill_from:
        return _refused("backfill_to needs backfill_from, the first period to re-read")
    request = SyncRequest(
        okr_file=str(okr_file or settings.okr_file),
        full_refresh=full_refresh,
        reconcile=reconcile,
        sources=tuple(sources) if sources else None,
        backfill=(backfill_from, backfill_to or backfill_from) if backfill_from else None,
        refreeze_baselines=refreeze_baselines,
    )
    try:
        report = run_sync(request, store_url or settings.store_url, settings)
    except SyncRefusedError as exc:
        return _refused(str(exc), exc.what)
    if report.status == RunStatus.FAILED:
        return Failed(message=report.reason)
    return report


sync_okrs = SyncFlow(_sync_okrs, name="sync-okrs", log_prints=True)


class SyncRefusedError(Exception):
    """The sync could not begin: the store would not open, or another sync holds it."""

    def __init__(self, message: str, what: str = "sync failed") -> None:
        super().__init__(message)
        self.what = what


def run_sync(request: SyncRequest, store_url: str, settings: Settings) -> RunReport:
    """Open the store, take its writer lock and sync: the one way in for the flow, the
    CLI and the background task, with or without a Prefect run around it."""
    try:
        store = Store.open(store_url)
    except StoreError as exc:
        raise SyncRefusedError(str(exc)) from None
    try:
        with store.writer_lock(settings.lock_wait_seconds, run_logger()):
            if abandoned := abandon_unfinished_runs(store):
                run_logger().warning("%d earlier run(s) never finished; marked failed", abandoned)
            return sync_store(store, request, settings)
    except StoreError as exc:  # busy past OKR_SYNC_LOCK_WAIT_SECONDS, or refusing writes
        raise SyncRefusedError(str(exc), "sync did not start") from None
    finally:
        store.dispose()


def _refused(message: str, what: str = "sync failed") -> State[Any]:
    run_logger().error("%s: %s", what, message)
    return Failed(message=message)
