"""The sync flow: extract → validate → load → compute → write measurements.

The flow is thin: each stream is one task (retried on retriable source errors) that reads
pages from the stream's saved cursor, validates them in large batches, and commits the
mirror rows, the quarantined rows and the advanced cursor in one transaction per batch,
so a crash or retry resumes where the written data ends. Expected failures (bad OKR file,
unknown metric, unreachable source, refused credentials, rejected query) end the run as
failed with a one-line reason recorded on the run, never as a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from prefect.states import Failed, State
from sqlalchemy.exc import SQLAlchemyError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    wait_exponential_jitter,
)

from connectors.base import (
    Bookmark,
    Page,
    Rejected,
    StreamInfo,
    UnknownConnectorError,
    get_connector,
    open_reader,
)
from connectors.errors import (
    FatalSourceError,
    QuotaGuardError,
    RetriableSourceError,
    SourceError,
    is_retriable,
)
from connectors.secrets import MissingSecretError
from expectations import Validator
from flows.artifacts import publish_changes
from okr_sync import __version__
from okr_sync.progress import advance
from okr_sync.settings import Settings
from okr_targets.config import ConfigError, OkrConfig, lint, load_okrs
from okr_targets.measurements import KeyResultOutcome, measure_key_results, save_money, save_okrs
from okr_targets.models import MIRROR, utcnow
from okr_targets.store import (
    Store,
    StoreBusyError,
    StoreError,
    abandon_unfinished_runs,
    begin_run,
    finish_run,
    has_password,
    load_rows,
    quarantine,
    read_cursor,
    record_source_reads,
    redact,
    tombstone_missing,
    tombstone_unseen,
    write_cursor,
)
from transforms.matching import match_customers
from transforms.metrics import MetricError, unconvertible_currencies


class SyncStoppedError(Exception):
    """A source refused (fatal error) or gave nothing before giving up: the run fails."""


EXPECTED_ERRORS = (
    SyncStoppedError,
    ConfigError,
    SourceError,
    MetricError,
    StoreError,
    UnknownConnectorError,
    MissingSecretError,
)


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Prefect's run logger inside a run; a plain logger when a task is called via ``.fn()``."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("okr_sync")


@dataclass
class StreamCounts:
    """What one stream did in one run; every record read is in exactly one bucket."""

    read: int = 0
    loaded: int = 0  # passed validation (new, changed or unchanged)
    duplicates: int = 0  # loaded, but read before in this run: stored once
    written: int = 0  # new or changed in the mirror
    deleted: int = 0  # tombstones written
    quarantined: int = 0
    batches: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    attempts: int = 0
    retries: int = 0
    requests: int = 0  # HTTP requests sent to the source, retries and logins included
    quota: str | None = None  # the source's own account of its quota, when it gives one
    stopped: str | None = None  # why the stream ended before its end, if it did
    failed: str | None = None  # a fatal source error (bad credentials, rejected query)


@dataclass
class Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    bookmark: Bookmark | None = None
    total: int | None = None

    def add(self, page: Page) -> None:
        self.rows += page.rows
        self.rejected += page.rejected
        self.bookmark = page.bookmark or self.bookmark
        self.total = page.total if page.total is not None else self.total

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejected)


def batches(pages: Iterator[Page], size: int) -> Iterator[Batch]:
    """Group pages into batches of at least ``size`` records (the last may be smaller)."""
    batch = Batch()
    for page in pages:
        batch.add(page)
        if len(batch) >= size:
            yield batch
            batch = Batch(total=batch.total)
    if len(batch) or batch.total == 0:
        yield batch


def _wait_for(settings: Settings) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter, but never sooner than the source's Retry-After."""
    backoff = wait_exponential_jitter(
        initial=settings.retry_initial_seconds,
        max=settings.retry_max_seconds,
        jitter=settings.retry_initial_seconds,
    )

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return max(float(getattr(error, "retry_after", None) or 0.0), backoff(state))

    return wait


@task(name="sync-stream", cache_policy=NO_CACHE)
def sync_stream(
    store: Store,
    source: str,
    stream: StreamInfo,
    run_id: str,
    validator: Validator,
    batch_size: int,
    full_refresh: bool = False,
    started_at: datetime | None = None,
    lookback: timedelta = timedelta(0),
    settings: Settings | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> StreamCounts:
    """Read one stream from its cursor into the mirror, one committed batch at a time.

    Cursor rules: the lower bound is inclusive and reaches ``lookback`` further back (late
    index updates at the source); the saved position never passes ``started_at`` (the
    run's start), so anything changed during the run is read again next time; the cursor
    commits with the rows it covers. Re-read, unchanged records write nothing.

    Retriable errors (429, 5xx, timeouts, dropped connections) are retried here, each
    attempt resuming from the committed cursor, with jittered exponential backoff that
    honours Retry-After, within a bounded total time. When that budget runs out the stream
    stops where its written data ends and says why (``stopped``); the run is then partial.

    A full refresh reads everything and takes the source's copy of every record, whatever
    the mirror held (for a source that was restored, re-seeded or had its clock reset).
    A backfill ``window`` reads the records changed in ``[start, end)`` and leaves the
    cursor where it is: the incremental sync carries on from it unchanged.
    """
    settings = settings or Settings()
    logger = run_logger()
    counts = StreamCounts()
    label = f"{source}.{stream.name}"
    with store.session() as session:
        saved = read_cursor(session, source, stream.name)
    counts.cursor_before = counts.cursor_after = saved.at.isoformat() if saved else None
    retrying = Retrying(
        retry=retry_if_exception(is_retriable),
        wait=_wait_for(settings),
        stop=stop_before_delay(settings.retry_budget_seconds),
        before_sleep=lambda state: logger.warning(
            "%s: %s; retry %d in %.1fs",
            label,
            state.outcome.exception() if state.outcome else "?",
            state.attempt_number,
            state.upcoming_sleep,
        ),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                counts.attempts = attempt.retry_state.attempt_number
                counts.retries = counts.attempts - 1
                _read_into_mirror(
                    store,
                    source,
                    stream,
                    run_id,
                    validator,
                    batch_size,
                    full_refresh,
                    started_at,
                    # a retry resumes exactly where this run's committed data ends
                    lookback if counts.attempts == 1 else None,
                    counts,
                    window,
                )
    except RetriableSourceError as exc:
        counts.stopped = f"{exc} (gave up after {counts.attempts} attempts)"
        logger.error("%s: stopped early: %s", label, counts.stopped)
    except QuotaGuardError as exc:
        counts.stopped = str(exc)
        logger.error("%s: stopped early: %s", label, counts.stopped)
    except FatalSourceError as exc:  # returned, not raised: one line in the logs, no traceback
        counts.failed = str(exc)
    return counts


def _read_into_mirror(
    store: Store,
    source: str,
    stream: StreamInfo,
    run_id: str,
    validator: Validator,
    batch_size: int,
    full_refresh: bool,
    started_at: datetime | None,
    lookback: timedelta | None,
    counts: StreamCounts,
    window: tuple[datetime, datetime] | None = None,
) -> None:
    """One attempt: from the committed cursor to the end of the stream, batch by batch.

    With a ``lookback`` the read starts that much before the cursor, inclusive; without
    one (a retry) it resumes exactly after the cursor's (time, id). A full refresh starts
    from the beginning, and its retry from the cursor its own batches committed: a
    connection dropped at the millionth record does not re-read the first million.
    """
    logger = run_logger()
    label = f"{source}.{stream.name}"
    reader = open_reader(get_connector(source))
    try:
        with store.session() as session:
            saved = read_cursor(session, source, stream.name)
            saved_by_this_run = read_cursor(session, source, stream.name, written_by=run_id)
        since, until = None, None
        if window is not None:
            since, until = Bookmark(window[0]), window[1]
        elif saved is not None and not full_refresh:
            since = Bookmark(saved.at - lookback, saved.token) if lookback else saved
        elif lookback is None:  # a full refresh's retry
            since = saved_by_this_run
        logger.info(
            "%s: reading %s",
            label,
            f"changes since {since.at.isoformat()}" if since else "everything",
        )
        if until is not None:
            logger.info("%s: backfill up to %s; the cursor stays put", label, until.isoformat())
        model = MIRROR[stream.entity]
        for batch in batches(reader.read(stream, since, until), batch_size):
            verdict = validator.validate(stream.entity, batch.rows)
            with store.session() as session, session.begin():
                rows = [{**row, "run_id": run_id} for row in verdict.good]
                loaded = load_rows(session, model, rows, run_id=run_id, replace=full_refresh)
                written = loaded.written
                counts.duplicates += loaded.read_before
                quarantined = quarantine(
                    session, run_id, stream.entity, [*batch.rejected, *verdict.rejected]
                )
                bookmark = None if window is not None else batch.bookmark
                if bookmark is not None and started_at is not None and bookmark.at > started_at:
                    bookmark = Bookmark(started_at, bookmark.token)
                if bookmark is not None:
                    write_cursor(
                        session, source, stream.name, bookmark, run_id, replace=full_refresh
                    )
            counts.read += len(batch)
            counts.loaded += len(verdict.good)
            counts.written += len(written)
            counts.deleted += sum(
                1
                for row in verdict.good
                if row.get("deleted_at") is not None and row["source_id"] in written
            )
            counts.quarantined += quarantined
            counts.batches += 1
            if bookmark is not None:
                counts.cursor_after = bookmark.at.isoformat()
            advance(label, len(batch), batch.total)
            logger.info(
                "%s: %d/%s records (%d quarantined)",
                label,
                counts.read,
                batch.total if batch.total is not None else "?",
                counts.quarantined,
            )
    finally:
        counts.requests += reader.usage.requests
        counts.quota = reader.usage.quota or counts.quota
        reader.close()


@task(name="reconcile", cache_policy=NO_CACHE)
def reconcile_source(
    store: Store, source: str, streams: list[StreamInfo], run_id: str, now: datetime
) -> dict[str, int]:
    """List the ids of every live record and tombstone the mirror's others.

    Sources report deletes for a limited time (Salesforce's recycle bin, Zendesk's 30
    days); a record deleted longer ago, or purged, is found here. Only ids travel; a
    listing cut short changes nothing. Returns tombstones per entity.
    """
    logger = run_logger()
    reader = open_reader(get_connector(source))
    live: dict[str, set[str]] = {}
    try:
        for stream in streams:  # entities read from several streams need all their ids
            ids = live.setdefault(stream.entity, set())
            for page in reader.ids(stream):
                ids.update(page)
                advance(f"{source}.{stream.name} ids", len(page), None)
    finally:
        reader.close()
    tombstoned = {}
    with store.session() as session, session.begin():
        for entity, ids in sorted(live.items()):
            gone = tombstone_missing(session, MIRROR[entity], source, ids, run_id, now)
            tombstoned[f"{source}.{entity}"] = gone
            logger.info(
                "%s.%s: %d live at the source, %d tombstoned", source, entity, len(ids), gone
            )
    return tombstoned


@dataclass
class RunReport:
    run_id: str
    status: str
    reason: str | None
    store: str
    started_at: str
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    tombstoned: dict[str, int] = field(default_factory=dict)
    key_results: list[dict[str, Any]] = field(default_factory=list)


def _load_and_lint(okr_file: str) -> OkrConfig:
    config = load_okrs(okr_file)
    findings = lint(config)
    if findings:
        more = f" (and {len(findings) - 1} more; run `okr-sync lint`)" if len(findings) > 1 else ""
        raise ConfigError(f"{findings[0]}{more}")
    return config


@flow(name="sync-okrs", log_prints=True)
def sync_okrs(
    okr_file: str | None = None,
    store_url: str | None = None,
    full_refresh: bool = False,
    reconcile: bool = False,
    sources: list[str] | None = None,
    backfill_from: str | None = None,
    backfill_to: str | None = None,
    refreeze_baselines: bool | None = None,
) -> dict[str, Any] | State[Any]:
    """Sync the sources named in the OKR file and measure every key result.

    Prefect keeps flow parameters in its database, so a ``store_url`` carrying a password
    is refused: credentials belong in ``$OKR_SYNC_STORE_URL`` on the worker.

    Args:
        okr_file: The OKRs-as-code file; null means the worker's $OKR_SYNC_OKR_FILE.
        store_url: SQLAlchemy URL of the store, without a password; null means the
            worker's $OKR_SYNC_STORE_URL.
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
    logger = run_logger()
    if store_url and has_password(store_url):
        message = (
            f"store_url {redact(store_url)} carries a password, and Prefect stores flow "
            "parameters; set it in OKR_SYNC_STORE_URL instead"
        )
        logger.error("sync failed: %s", message)
        return Failed(message=message)
    if backfill_to and not backfill_from:
        message = "backfill_to needs backfill_from, the first period to re-read"
        logger.error("sync failed: %s", message)
        return Failed(message=message)
    try:
        store = Store.open(store_url or settings.store_url)
    except StoreError as exc:
        logger.error("sync failed: %s", exc)
        return Failed(message=str(exc))
    scope = Scope(
        sources=sources or None,
        backfill=(backfill_from, backfill_to or backfill_from) if backfill_from else None,
        refreeze_baselines=refreeze_baselines,
    )
    try:
        with store.writer_lock():
            if abandoned := abandon_unfinished_runs(store):
                logger.warning("%d earlier run(s) never finished; marked failed", abandoned)
            report = _sync(
                store,
                settings,
                str(okr_file or settings.okr_file),
                full_refresh,
                reconcile,
                scope,
            )
    except StoreBusyError as exc:
        logger.error("sync did not start: %s", exc)
        return Failed(message=str(exc))
    finally:
        store.dispose()
    if report.status == "failed":
        return Failed(message=report.reason)
    return asdict(report)


@dataclass(frozen=True)
class Scope:
    """What one run covers beyond the defaults: some sources, a backfill window."""

    sources: list[str] | None = None
    backfill: tuple[str, str] | None = None  # first and last period label
    refreeze_baselines: bool | None = None

    def streams(self, config: OkrConfig) -> list[tuple[str, StreamInfo]]:
        """The OKR file's streams of the chosen sources; an unknown source is an error."""
        streams = config.streams()
        if self.sources is None:
            return streams
        named = list(dict.fromkeys(source for source, _ in streams))
        unknown = [source for source in self.sources if source not in named]
        if unknown:
            raise ConfigError(
                f"source {unknown[0]!r} is not among {config.path}'s sources ({', '.join(named)})"
            )
        return [(source, stream) for source, stream in streams if source in self.sources]

    def window(self, config: OkrConfig) -> tuple[datetime, datetime] | None:
        """A backfill's ``[start, end)`` in UTC, from its periods in the file's calendar."""
        if self.backfill is None:
            return None
        first, last = self.backfill
        try:
            start, end = config.calendar.period(first).start_at, config.calendar.period(last).end_at
        except ValueError as exc:
            raise ConfigError(f"backfill: {exc}") from None
        if end <= start:
            raise ConfigError(f"backfill: {last} ends before {first} starts")
        return start, end


def _sync(
    store: Store,
    settings: Settings,
    okr_file: str,
    full_refresh: bool,
    reconcile: bool = False,
    scope: Scope = Scope(),
) -> RunReport:
    """One sync under the store's writer lock: recorded as a run from start to end."""
    logger = run_logger()
    flow_context = FlowRunContext.get()
    flow_run_id = str(flow_context.flow_run.id) if flow_context and flow_context.flow_run else None
    run_id = begin_run(store, __version__, flow_run_id)
    report = RunReport(run_id, "running", None, store.display_url, utcnow().isoformat())
    try:
        config = _load_and_lint(okr_file)
        with store.session() as session, session.begin():
            save_okrs(session, config, utcnow())
        chosen, window = scope.streams(config), scope.window(config)
        if window is not None and full_refresh:
            raise ConfigError("a backfill re-reads a window; it cannot also be a full refresh")
        synced = list(dict.fromkeys(source for source, _ in chosen))
        validator = Validator()
        started_at = utcnow()
        lookback = timedelta(seconds=settings.lookback_seconds)
        stopped_sources: dict[str, str] = {}
        for source, stream in chosen:
            if source in stopped_sources:  # the same wall again: do not spend another budget
                counts = StreamCounts(stopped=f"skipped: {stopped_sources[source]}")
            else:
                counts = sync_stream(
                    store,
                    source,
                    stream,
                    run_id,
                    validator,
                    settings.batch_size,
                    full_refresh,
                    started_at,
                    lookback,
                    settings,
                    window,
                )
                if counts.failed:
                    raise SyncStoppedError(counts.failed)
                if counts.stopped:
                    stopped_sources[source] = f"{source}.{stream.name} stopped early"
            report.streams[f"{source}.{stream.name}"] = asdict(counts)
        for source in stopped_sources:  # a source that gave nothing at all fails the run
            streams = [c for name, c in report.streams.items() if name.startswith(f"{source}.")]
            if not any(c["read"] for c in streams):
                raise SyncStoppedError(next(c["stopped"] for c in streams if c["stopped"]))
        now = utcnow()
        if window is None:  # a backfill's window is not a read up to now: freshness unchanged
            with store.session() as session, session.begin():
                read_in_full = set(synced) - set(stopped_sources)
                record_source_reads(session, read_in_full, started_at, run_id)
        if reconcile:
            for source in sorted(set(synced) - set(stopped_sources)):
                listed = [stream for name, stream in chosen if name == source]
                report.tombstoned |= reconcile_source(store, source, listed, run_id, now)
        with store.session() as session, session.begin():
            if full_refresh and not stopped_sources:
                report.tombstoned = _tombstone_unseen(session, chosen, run_id, now)
            save_money(session, config, run_id, now)
            primary = config.primary_customer_source()
            if primary is not None:
                matches = match_customers(session, primary, config.spec.customers.match_by, run_id)
                report.customers = asdict(matches)
                if matches.unmatched:
                    logger.warning(
                        "%d customer(s) match no %s customer by %s, e.g. %s",
                        matches.unmatched_count,
                        primary,
                        matches.match_by,
                        matches.unmatched[0],
                    )
            report.findings = unconvertible_currencies(session)
            for finding in report.findings:
                logger.warning("%s", finding)
            outcomes = measure_key_results(
                session,
                config,
                run_id,
                now,
                __version__,
                data_cutoff=started_at,
                refreeze_baselines=(
                    full_refresh if scope.refreeze_baselines is None else scope.refreeze_baselines
                )
                and not stopped_sources,
            )
        report.key_results = [asdict(outcome) for outcome in outcomes]
        _log_outcomes(logger, outcomes)
        publish_changes(config, outcomes, run_id, store, now)
        stopped = [f"{name}: {c['stopped']}" for name, c in report.streams.items() if c["stopped"]]
        errors = [o for o in outcomes if o.error]
        report.status = "partial" if stopped or errors else "complete"
        if stopped:
            report.reason = f"{len(stopped)} stream(s) stopped early: {stopped[0]}"
        elif errors:
            report.reason = f"{len(errors)} key result(s) could not be computed: {errors[0].error}"
    except EXPECTED_ERRORS as exc:
        report.status, report.reason = "failed", str(exc)
        logger.error("sync failed: %s", exc)
    except SQLAlchemyError as exc:
        # The store refused a write: say which statement class failed, never the bound values.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        report.status, report.reason = (
            "failed",
            f"store write failed: {type(exc).__name__}: {reason}",
        )
        logger.error("sync failed: %s", report.reason)
        logger.debug("store error details", exc_info=True)
    finally:
        if report.status == "running":  # an unexpected exception is on its way up
            report.status, report.reason = "failed", "unexpected error; see the flow run's logs"
        details = {
            "customers": report.customers,
            "findings": report.findings,
            "tombstoned": report.tombstoned,
        }
        finish_run(store, run_id, report.status, report.reason, report.streams, details)
    return report


def _tombstone_unseen(
    session: Any, streams: list[tuple[str, StreamInfo]], run_id: str, now: datetime
) -> dict[str, int]:
    """A full refresh saw every live record: the mirror's others were deleted at the source."""
    counts = {}
    for source, entity in sorted({(source, stream.entity) for source, stream in streams}):
        counts[f"{source}.{entity}"] = tombstone_unseen(
            session, MIRROR[entity], source, run_id, now
        )
    return counts


def _log_outcomes(logger: Any, outcomes: list[KeyResultOutcome]) -> None:
    for outcome in outcomes:
        value = "no data" if outcome.value is None else f"{outcome.value:,.2f} {outcome.unit}"
        logger.info(
            "%s: %s, %s (%d records)%s",
            outcome.key_result_id,
            value,
            outcome.status,
            outcome.records,
            "" if outcome.changed else ", unchanged",
        )
