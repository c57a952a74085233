"""Extract: read each planned stream from its saved cursor, batch by batch, into the mirror.

Retries live here, inside a stream, not in Prefect: retriable source errors (429, 5xx,
timeouts, dropped connections) are retried under retry.py's policy (jittered backoff
that honours Retry-After, within ``retry_budget_seconds`` in all); each attempt resumes
from the cursor the committed batches left. The Prefect tasks have no retries of their
own. When the budget runs out the stream stops where its written data ends and says why
(``stopped``); a fatal error (refused credentials, a rejected query) ends the stream and
is returned as the exception itself, which the flow raises: one line in the logs, no
traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.base import Bookmark, Gap, Page, Rejected, StreamInfo, get_connector, open_reader
from connectors.canonical import CanonicalRow
from connectors.errors import (
    FatalSourceError,
    MissingObjectError,
    QuotaGuardError,
    RetriableSourceError,
)
from expectations import Validator
from flows.load import BatchLoaded, Destination, validate_and_load
from flows.logs import run_logger
from flows.plan import Plan
from flows.progress import advance
from flows.report import StreamReport
from flows.retry import gave_up, retrying
from flows.settings import Settings
from flows.steps import step
from okr_targets.store import Store, read_cursor


class SyncStoppedError(Exception):
    """A source gave nothing before its streams stopped: the run fails."""


@dataclass
class Batch:
    rows: list[CanonicalRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    bookmark: Bookmark | None = None
    total: int | None = None
    notes: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    gaps: tuple[Gap, ...] = ()

    def add(self, page: Page) -> None:
        self.rows += page.rows
        self.rejected += page.rejected
        self.notes += page.notes
        self.advice += page.advice
        self.gaps += page.gaps
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
    if len(batch) or batch.total == 0 or batch.notes or batch.advice:
        yield batch


@dataclass(frozen=True)
class StreamRead:
    """One stream's read in one run: where it loads to, in what batches, over what window."""

    to: Destination
    batch_size: int
    window: tuple[datetime, datetime] | None = None  # a backfill's [start, end)
    calendar_timezone: str = "UTC"  # the OKR calendar's zone: sources cut days in it

    @property
    def label(self) -> str:
        return f"{self.to.source}.{self.to.stream.name}"


@cache
def shared_validator() -> Validator:
    """One Great Expectations context per process: building it costs seconds, so a
    long-lived worker (``okr-sync worker``) builds it once, at start."""
    return Validator()


def extract_and_load(
    store: Store, plan: Plan, run_id: str, settings: Settings, streams: dict[str, StreamReport]
) -> set[str]:
    """Every planned stream into the mirror, each report added to ``streams`` as it ends.

    Returns the sources that stopped early. A stream of a source that already stopped is
    skipped (the same wall again: no second retry budget); a fatal error is raised as it
    came; a source whose streams stopped having read nothing at all fails the run.
    """
    validator = shared_validator()
    lookback = timedelta(seconds=settings.lookback_seconds)
    stopped: dict[str, str] = {}
    for source, stream in plan.streams:
        if source in stopped:
            report = StreamReport(entity=stream.entity, stopped=f"skipped: {stopped[source]}")
        else:
            report = step(sync_stream)(
                store,
                source,
                stream,
                run_id,
                validator,
                settings.batch_size,
                full_refresh=plan.request.full_refresh,
                started_at=plan.started_at,
                lookback=lookback,
                settings=settings,
                window=plan.window,
                calendar_timezone=plan.config.calendar.timezone,
            )
            if report.stopped:
                stopped[source] = f"{source}.{stream.name} stopped early"
        streams[f"{source}.{stream.name}"] = report  # kept on the run, failed or not
        if report.error is not None:
            raise report.error
    for source in stopped:
        mine = [report for name, report in streams.items() if name.startswith(f"{source}.")]
        if not any(report.read for report in mine):
            raise SyncStoppedError(next(report.stopped for report in mine if report.stopped))
    return set(stopped)


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
    calendar_timezone: str = "UTC",
) -> StreamReport:
    """Read one stream from its cursor into the mirror, one committed batch at a time.

    Cursor rules: the lower bound is inclusive and reaches ``lookback`` further back (late
    index updates at the source); the saved position never passes ``started_at`` (the
    run's start), so anything changed during the run is read again next time; the cursor
    commits with the rows it covers. Re-read, unchanged records write nothing.

    A full refresh reads everything and takes the source's copy of every record, whatever
    the mirror held (for a source that was restored, re-seeded or had its clock reset).
    A backfill ``window`` reads the records changed in ``[start, end)`` and leaves the
    cursor where it is: the incremental sync carries on from it unchanged.
    ``calendar_timezone`` (the OKR calendar's zone) is where sources cut instants into days.
    """
    with store.session() as session:
        saved = read_cursor(session, source, stream.name)
    destination = Destination(
        run_id,
        source,
        stream,
        validator,
        full_refresh,
        started_at,
        moves_cursor=window is None,
        # a full refresh validates every row again; otherwise rows up to the saved cursor
        # that equal the mirror's copy are re-reads, loaded without validating them again
        rereads_until=saved.at if saved and not full_refresh else None,
    )
    read = StreamRead(destination, batch_size, window, calendar_timezone)
    settings = settings or Settings()
    logger = run_logger()
    at = saved.at.isoformat() if saved else None
    tally = _Tally(StreamReport(entity=stream.entity, cursor_before=at, cursor_after=at))
    try:
        for attempt in retrying(settings, read.label, logger):
            with attempt:
                number = attempt.retry_state.attempt_number
                tally.update(attempts=number, retries=number - 1)
                # a retry resumes exactly where this run's committed data ends
                _read_into_mirror(store, read, lookback if number == 1 else None, tally)
    except RetriableSourceError as exc:
        tally.update(stopped=gave_up(exc, tally.report.attempts))
        logger.error("%s: stopped early: %s", read.label, tally.report.stopped)
    except QuotaGuardError as exc:
        tally.update(stopped=str(exc))
        logger.error("%s: stopped early: %s", read.label, tally.report.stopped)
    except MissingObjectError as exc:  # the source lacks the object: nothing to read, not a failure
        tally.update(skipped=str(exc))
        logger.warning("%s: %s", read.label, exc)
    except FatalSourceError as exc:  # returned, not raised: one line in the logs, no traceback
        tally.update(failed=str(exc), error=exc)
    return tally.report


class _Tally:
    """A stream's report as it grows: an error mid-read keeps what the batches committed."""

    def __init__(self, report: StreamReport) -> None:
        self.report = report

    def update(self, **changes: Any) -> None:
        self.report = replace(self.report, **changes)

    def add(self, read: int, loaded: BatchLoaded) -> None:
        now = self.report
        self.update(
            read=now.read + read,
            loaded=now.loaded + loaded.good,
            duplicates=now.duplicates + loaded.duplicates,
            written=now.written + loaded.written,
            deleted=now.deleted + loaded.deleted,
            quarantined=now.quarantined + loaded.quarantined,
            batches=now.batches + 1,
            cursor_after=loaded.cursor.at.isoformat() if loaded.cursor else now.cursor_after,
        )


def _read_into_mirror(
    store: Store, read: StreamRead, lookback: timedelta | None, tally: _Tally
) -> None:
    """One attempt: from the committed cursor to the end of the stream, batch by batch.

    With a ``lookback`` the read starts that much before the cursor, inclusive; without
    one (a retry) it resumes exactly after the cursor's (time, id). A full refresh starts
    from the beginning, and its retry from the cursor its own batches committed: a
    connection dropped at the millionth record does not re-read the first million.
    """
    logger = run_logger()
    to = read.to
    reader = open_reader(get_connector(to.source), calendar_timezone=read.calendar_timezone)
    try:
        since, until = _read_from(store, read, lookback)
        logger.info(
            "%s: reading %s",
            read.label,
            f"changes since {since.at.isoformat()}" if since else "everything",
        )
        if until is not None:
            logger.info(
                "%s: backfill up to %s; the cursor stays put", read.label, until.isoformat()
            )
        for batch in batches(reader.read(to.stream, since, until), read.batch_size):
            loaded = validate_and_load(store, to, batch.rows, batch.rejected, batch.bookmark)
            tally.add(len(batch), loaded)
            for note in batch.notes:
                if note not in tally.report.notes:  # a retry says it again
                    logger.warning("%s: %s", read.label, note)
                    tally.update(notes=(*tally.report.notes, note))
            for note in batch.advice:
                if note not in tally.report.advice:
                    logger.warning("%s: %s", read.label, note)
                    tally.update(advice=(*tally.report.advice, note))
            for gap in batch.gaps:
                if gap not in tally.report.gaps:
                    logger.warning("%s: lacks %s: %s", read.label, gap.need, gap.reason)
                    tally.update(gaps=(*tally.report.gaps, gap))
            advance(read.label, len(batch), batch.total)
            logger.info(
                "%s: %d/%s records (%d quarantined)",
                read.label,
                tally.report.read,
                batch.total if batch.total is not None else "?",
                tally.report.quarantined,
            )
            # Let this batch's rows go now: the loop would hold them while the next batch
            # is gathered, two batches in memory instead of one.
            del batch, loaded
    finally:
        tally.update(
            requests=tally.report.requests + reader.usage.requests,
            quota=reader.usage.quota or tally.report.quota,
        )
        reader.close()


def _read_from(
    store: Store, read: StreamRead, lookback: timedelta | None
) -> tuple[Bookmark | None, datetime | None]:
    """Where this attempt starts reading, and where a backfill stops."""
    to = read.to
    if read.window is not None:
        return Bookmark(read.window[0]), read.window[1]
    with store.session() as session:
        saved = read_cursor(session, to.source, to.stream.name)
        if saved is not None and not to.replace:
            return (Bookmark(saved.at - lookback, saved.token) if lookback else saved), None
        if lookback is None:  # a full refresh's retry
            return read_cursor(session, to.source, to.stream.name, written_by=to.run_id), None
    return None, None
