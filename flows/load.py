"""Validate and load: each batch of a stream into the mirror, with its cursor, at once.

A batch's good rows, its quarantined rows and the advanced cursor commit in one
transaction, so a crash or a retry resumes exactly where the written data ends. Deletes
a source stopped reporting are found by listing its live ids (:func:`reconcile_source`)
or, after a full refresh, by what the run did not see (:func:`tombstone_unseen_records`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from connectors.base import Bookmark, Rejected, StreamInfo, get_connector, open_reader
from connectors.canonical import CanonicalRow
from connectors.errors import QuotaGuardError, RetriableSourceError
from expectations import Validator, column_findings
from flows.logs import run_logger
from flows.plan import Plan
from flows.progress import advance
from flows.retry import gave_up, retrying
from flows.settings import Settings
from okr_targets.models import MIRROR
from okr_targets.store import (
    Store,
    load_rows,
    quarantine,
    readmit,
    record_source_reads,
    tombstone_missing,
    tombstone_unseen,
    unchanged_rows,
    write_cursor,
)


@dataclass(frozen=True)
class Destination:
    """Where one stream's batches go in this run, and how its cursor moves."""

    run_id: str
    source: str
    stream: StreamInfo
    validator: Validator
    replace: bool = False  # a full refresh: the source's copy wins, the cursor is rewritten
    cursor_cap: datetime | None = None  # the run's start: anything later is read again
    moves_cursor: bool = True  # a backfill leaves the cursor where it is
    rereads_until: datetime | None = None  # the saved cursor: rows up to it may be re-reads


@dataclass(frozen=True)
class BatchLoaded:
    """What one committed batch did."""

    good: int  # passed validation
    written: int  # new or changed in the mirror
    duplicates: int  # read before in this run: stored once
    deleted: int  # tombstones written
    quarantined: int
    cursor: Bookmark | None  # where the stream's cursor now stands, if it moved


def validate_and_load(
    store: Store,
    to: Destination,
    rows: Sequence[CanonicalRow],
    rejected: Sequence[Rejected],
    bookmark: Bookmark | None,
) -> BatchLoaded:
    """Validate a batch; commit its good rows, its rejects and its cursor together.

    Re-read rows the mirror holds exactly (the lookback, a backfill) are not validated
    again: their copy passed when it was written. They still load (written: none;
    duplicates and readmits counted as for any good row).
    """
    unchanged = _unchanged(store, to, rows)
    skip = {id(row) for row in unchanged}
    verdict = to.validator.validate(to.stream.entity, [row for row in rows if id(row) not in skip])
    good = [*verdict.good, *unchanged]
    with store.session() as session, session.begin():
        loaded = load_rows(
            session, MIRROR[to.stream.entity], good, run_id=to.run_id, replace=to.replace
        )
        unwritten = {str(row["source_id"]) for row in good} - loaded.written
        readmit(session, to.stream.entity, to.source, unwritten, to.run_id)
        quarantined = quarantine(
            session, to.run_id, to.stream.entity, [*rejected, *verdict.rejected]
        )
        cursor = bookmark if to.moves_cursor else None
        if cursor is not None and to.cursor_cap is not None and cursor.at > to.cursor_cap:
            cursor = Bookmark(to.cursor_cap, cursor.token)
        if cursor is not None:
            write_cursor(session, to.source, to.stream.name, cursor, to.run_id, replace=to.replace)
    deleted = sum(
        1
        for row in good
        if row.get("deleted_at") is not None and row["source_id"] in loaded.written
    )
    return BatchLoaded(
        good=len(good),
        written=len(loaded.written),
        duplicates=loaded.read_before,
        deleted=deleted,
        quarantined=quarantined,
        cursor=cursor,
    )


def _unchanged(store: Store, to: Destination, rows: Sequence[CanonicalRow]) -> list[CanonicalRow]:
    """The batch's re-read rows that equal the mirror's copy.

    Candidates: rows changed no later than the saved cursor (later ones are changes),
    whose record the batch holds once, and whose columns the mirror can hold (staging
    them must not fail: such rows are for validation to reject).
    """
    until = to.rereads_until
    if until is None:
        return []
    seen = Counter(str(row.get("source_id")) for row in rows)
    candidates = [
        row
        for row in rows
        if isinstance(modified := row.get("source_modified_at"), datetime)
        and modified.utcoffset() is not None
        and modified <= until
        and seen[str(row.get("source_id"))] == 1
        and not column_findings(to.stream.entity, row)
    ]
    if not candidates:
        return []
    with store.session() as session, session.begin():
        same = unchanged_rows(session, MIRROR[to.stream.entity], candidates, to.run_id)
    return [row for row in candidates if row["source_id"] in same]


@dataclass(frozen=True)
class Reconciled:
    """What one source's reconcile did: the tombstones per entity, or why it wrote none."""

    tombstoned: dict[str, int] = field(default_factory=dict)  # ``source.entity`` -> count
    retries: int = 0  # listing calls retried (429, 5xx, timeouts), the same policy as reads
    stopped: str | None = None  # a listing gave up: nothing of this source was tombstoned


@task(name="reconcile", cache_policy=NO_CACHE)
def reconcile_source(
    store: Store,
    source: str,
    streams: list[StreamInfo],
    run_id: str,
    now: datetime,
    settings: Settings | None = None,
) -> Reconciled:
    """List the ids of every live record and tombstone the mirror's others.

    Sources report deletes for a limited time (Salesforce's recycle bin, Zendesk's 30
    days); a record deleted longer ago, or purged, is found here. Only ids travel. Each
    stream's listing retries under the streams' policy (retry.py); a listing that still
    fails, or meets the quota guard, stops the reconcile of this source, which then
    changes nothing (a cut-short listing would tombstone live records) and says why.
    """
    settings = settings or Settings()
    logger = run_logger()
    reader = open_reader(get_connector(source))
    live: dict[str, set[str]] = {}
    retries = attempts = 0
    stopped: str | None = None
    try:
        for stream in streams:  # entities read from several streams need all their ids
            label = f"{source}.{stream.name} ids"
            for attempt in retrying(settings, label, logger):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    listed = _list_ids(reader.ids(stream), label)
            retries += attempts - 1
            live.setdefault(stream.entity, set()).update(listed)
    except RetriableSourceError as exc:
        retries += attempts - 1
        stopped = gave_up(exc, attempts)
    except QuotaGuardError as exc:
        stopped = str(exc)
    finally:
        reader.close()
    if stopped is not None:
        logger.error("%s: reconcile stopped, nothing tombstoned: %s", source, stopped)
        return Reconciled(retries=retries, stopped=stopped)
    tombstoned = {}
    with store.session() as session, session.begin():
        for entity, ids in sorted(live.items()):
            gone = tombstone_missing(session, MIRROR[entity], source, ids, run_id, now)
            tombstoned[f"{source}.{entity}"] = gone
            logger.info(
                "%s.%s: %d live at the source, %d tombstoned", source, entity, len(ids), gone
            )
    return Reconciled(tombstoned, retries)


def _list_ids(pages: Iterator[list[str]], label: str) -> set[str]:
    """One whole listing of a stream's ids; a retry starts it again from the first page."""
    ids: set[str] = set()
    for page in pages:
        ids.update(page)
        advance(label, len(page), None)
    return ids


def tombstone_unseen_records(
    session: Session,
    streams: list[tuple[str, StreamInfo]],
    run_id: str,
    now: datetime,
    partly_read: Collection[str] = (),
) -> dict[str, int]:
    """A full refresh saw every live record: the mirror's others were deleted at the source.

    Not for an entity that a stream in ``partly_read`` (``source.stream``) delivers: that
    stream left records unread (an object missing, a list the token may not read), so
    unseen is not deleted.
    """
    doubtful = {(src, st.entity) for src, st in streams if f"{src}.{st.name}" in partly_read}
    counts = {}
    entities = {(source, stream.entity) for source, stream in streams} - doubtful
    for source, entity in sorted(entities):
        counts[f"{source}.{entity}"] = tombstone_unseen(
            session, MIRROR[entity], source, run_id, now
        )
    return counts


def record_reads(store: Store, plan: Plan, read_in_full: list[str], run_id: str) -> None:
    """The sources read to their end, with data as of the run's start: their freshness.

    A backfill's window is not a read up to now: it leaves freshness as it was. Nor does
    a read of some of a source's streams (a webhook's change): freshness is per source,
    and the streams not read are only as fresh as the source's last whole read.
    """
    if plan.window is None and plan.request.streams is None:
        with store.session() as session, session.begin():
            record_source_reads(session, set(read_in_full), plan.started_at, run_id)
