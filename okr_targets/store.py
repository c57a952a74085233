"""Opening the OKR store and the few writes every sync makes.

A store is a SQLAlchemy engine whose schema Alembic keeps at head: ``okr-sync db upgrade``
runs the migrations, and so does the first use of a store. Sessions belong to the caller,
so a batch of mirror rows, its quarantined rows and the stream's cursor commit together.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

from filelock import FileLock, Timeout
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Bookmark, Rejected
from okr_targets.freshness import held_select
from okr_targets.models import (
    METRIC_TABLES,
    MIRROR,
    Cursor,
    MirrorRecord,
    QuarantinedRow,
    SourceRead,
    SyncRun,
    storable,
    supplied_columns,
    utcnow,
)
from okr_targets.status import RunStatus

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_STORE_URL = "sqlite:///okr-sync.db"
METRICS_ROLE = "okr_sync_metrics"
"""The PostgreSQL role custom metrics run as (``SET LOCAL ROLE``): it logs in nowhere and
may read :data:`~okr_targets.models.METRIC_TABLES`, nothing else (docs/custom-metrics.md)."""


class StoreError(Exception):
    """The store cannot be opened or written; the message is safe to show."""


class StoreBusyError(StoreError):
    """Another sync holds the store's writer lock."""


WRITER_LOCK_KEY = 0x6F6B7273  # "okrs": the PostgreSQL advisory lock key of okr-sync writers
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout ends a wait
LOCK_POLL_SECONDS = 0.25  # how often a SQLite sync waiting for the writer lock looks again
Log = logging.Logger | logging.LoggerAdapter[logging.Logger]

MirrorRow = Mapping[str, object]
"""A row for a mirror table: a validated canonical row (``connectors.canonical``), with the
``run_id`` that wrote it when a sync run writes it."""


SECRET_QUERY_WORDS = ("password", "passwd", "pwd", "secret", "token")
SECRET_QUERY_KEY = re.compile("|".join(SECRET_QUERY_WORDS), re.IGNORECASE)
"""Query keys that carry a secret: libpq and its drivers take ``password`` and
``sslpassword`` there as well as in the user info. Paths (``sslkey``, ``passfile``) are
not secrets: a URL naming them may still be a flow parameter."""


def _secret_keys(url: URL) -> list[str]:
    return [key for key in url.query if SECRET_QUERY_KEY.search(key)]


def redact(url: str) -> str:
    """The URL with its passwords masked (user info and query), for logs, reports and
    errors."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<unparseable store URL>"
    masked = parsed.update_query_dict(dict.fromkeys(_secret_keys(parsed), "***"))
    # the query's "***" comes back percent-encoded; shown as the user info's is
    return masked.render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")


def has_password(url: str) -> bool:
    """A password anywhere in the URL: the user info's or a secret query value."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    return parsed.password is not None or bool(_secret_keys(parsed))


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for a bare ``postgresql://`` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _reason(exc: DatabaseError) -> str:
    """The driver's own first line (no SQL, no parameters: they may hold record text)."""
    return (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]


def alembic_config(engine: Engine) -> Config:
    """Alembic's configuration for this project's migrations, on ``engine``."""
    from alembic.config import Config  # Alembic loads when a store opens, not for --help

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


class Store:
    """An engine on the OKR store plus a session factory; one per process is plenty."""

    def __init__(self, url: str) -> None:
        self.display_url = redact(url)
        try:
            self.engine = create_engine(normalize_url(url), pool_pre_ping=True)
        except (ArgumentError, ImportError) as exc:
            raise StoreError(f"store URL {self.display_url} is not usable: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Store:
        """Open the store and bring its schema to the newest migration."""
        store = cls(url)
        store.upgrade()
        return store

    def upgrade(self) -> None:
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        try:
            with self.engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
                torn = current is None and inspect(connection).has_table("customer_links")
            if torn:  # only a first migration from before they were atomic leaves this
                raise StoreError(
                    f"store {self.display_url} holds okr-sync tables but no schema revision: "
                    "its first migration was interrupted, so it holds no synced data; "
                    "remove it (or drop its tables) and run `okr-sync db upgrade`"
                )
            head = ScriptDirectory.from_config(alembic_config(self.engine)).get_current_head()
            if current != head:
                command.upgrade(alembic_config(self.engine), "head")
        except DatabaseError as exc:  # unreachable, refused, or a file that is no database
            raise StoreError(f"cannot open store {self.display_url}: {_reason(exc)}") from None
        if self.engine.dialect.name == "postgresql":
            grant_metrics_role(self.engine)

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def session(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def writer_lock(self, wait_seconds: float = 0.0, log: Log | None = None) -> Iterator[None]:
        """Only one sync writes to a store at a time; a second one queues behind it.

        It waits up to ``wait_seconds`` for the writer to finish (0: it fails at once), and
        says so in ``log``: one line when it starts waiting (naming the newest unfinished
        run, the likely writer), one when it has the lock; after the wait it raises
        :class:`StoreBusyError`. PostgreSQL: a session advisory lock on a connection held
        for the run, waited for with ``lock_timeout`` (the server wakes the waiter, no
        polling). SQLite: a file lock beside the database, polled four times a second. The
        server or the OS releases either when the process dies, so a killed sync never
        leaves the store locked.
        """
        queue = _Queue(self, wait_seconds, log)
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                _advisory_lock(connection, queue)
                try:
                    yield
                finally:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": WRITER_LOCK_KEY}
                    )
                    connection.commit()
            return
        database = sqlite_file(self.engine.url)
        if database is None:
            yield
            return
        lock = FileLock(f"{database}.writer.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            queue.waiting()
            try:
                lock.acquire(timeout=wait_seconds, poll_interval=LOCK_POLL_SECONDS)
            except Timeout:
                raise queue.refused() from None
            queue.taken()
        try:
            yield
        finally:
            lock.release()


METRICS_ROLE_READY = """
SELECT CASE WHEN to_regrole(:role) IS NULL THEN false ELSE
  has_schema_privilege(:role, current_schema(), 'USAGE')
  AND (SELECT bool_and(has_table_privilege(:role, quote_ident(t), 'SELECT'))
       FROM unnest(CAST(:tables AS text[])) AS t)
  AND (pg_has_role(current_user, :role, 'MEMBER')
       OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
END"""


def grant_metrics_role(engine: Engine) -> None:
    """Let :data:`METRICS_ROLE` read the metric tables, creating it if need be, and let the
    store's user switch to it. Checked on every open, so a new mirror table or a role an
    administrator created since is taken care of. Each step needs a right of its own
    (CREATEROLE; owning the tables; granting the role): one the store's user lacks is left
    undone, and custom metrics then fail with the way out (docs/custom-metrics.md)."""
    params = {"role": METRICS_ROLE, "tables": list(METRIC_TABLES)}
    with engine.connect() as connection:
        if connection.scalar(text(METRICS_ROLE_READY), params):
            return
    role = f'"{METRICS_ROLE}"'
    tables = ", ".join(f'"{table}"' for table in METRIC_TABLES)
    steps = [
        f"""DO $$ BEGIN
              IF to_regrole('{METRICS_ROLE}') IS NULL THEN CREATE ROLE {role} NOLOGIN; END IF;
            END $$""",
        f"GRANT SELECT ON {tables} TO {role}",
        f"""DO $$ BEGIN
              EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema()) || ' TO {role}';
            END $$""",
        f"""DO $$ BEGIN
              IF NOT pg_has_role(current_user, '{METRICS_ROLE}', 'MEMBER')
                 AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
              THEN GRANT {role} TO CURRENT_USER; END IF;
            END $$""",
    ]
    for step in steps:
        try:
            with engine.begin() as connection:
                connection.execute(text(step))
        except DatabaseError as exc:  # a right the user lacks, or another process's grant
            logging.getLogger("okr_sync").debug("%s: %s", METRICS_ROLE, _reason(exc))


def sqlite_file(url: URL) -> Path | None:
    """The real file behind a SQLite URL (None: in memory), for the writer lock.

    Keyed on the resolved path, not the URL's spelling: through a symlink, a relative path or
    the ``file:…?uri=true`` form, every URL naming one database takes one lock.
    """
    database = url.database
    if database and url.query.get("uri") == "true" and database.startswith("file:"):
        parsed = urlsplit(database)
        if "mode=memory" in parsed.query or url.query.get("mode") == "memory":
            return None
        database = unquote(parsed.path)
    if not database or database == ":memory:":
        return None
    return Path(database).resolve()


class _Queue:
    """A sync waiting for the writer lock: what it says when it starts and stops waiting."""

    def __init__(self, store: Store, wait_seconds: float, log: Log | None) -> None:
        self.store, self.wait_seconds, self.log = store, wait_seconds, log
        self.since = time.monotonic()

    def waiting(self) -> None:
        """Start waiting, saying for whom; with no wait at all, refuse at once."""
        if self.wait_seconds <= 0:
            raise self.refused()
        self.since = time.monotonic()
        if self.log is not None:
            self.log.warning(
                "another sync is writing to %s%s; waiting up to %gs for it to finish",
                self.store.display_url,
                _writer(self.store),
                self.wait_seconds,
            )

    def taken(self) -> None:
        if self.log is not None:
            self.log.info(
                "%s: the writer lock is ours after %.1fs of waiting; this sync starts",
                self.store.display_url,
                time.monotonic() - self.since,
            )

    def refused(self) -> StoreBusyError:
        waited = f"waited {self.wait_seconds:g}s for it and " if self.wait_seconds > 0 else ""
        return StoreBusyError(
            f"another sync is writing to {self.store.display_url}{_writer(self.store)}; "
            f"this one {waited}did not start"
        )


def _advisory_lock(connection: Connection, queue: _Queue) -> None:
    """Take okr-sync's advisory lock on ``connection``, waiting as ``queue`` allows."""
    key = {"key": WRITER_LOCK_KEY}
    held = connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), key)
    connection.commit()
    if held:
        return
    queue.waiting()
    timeout = f"{max(1, round(queue.wait_seconds * 1000))}ms"
    try:  # lock_timeout for this transaction only: the wait, not the run's statements
        connection.execute(
            text("SELECT set_config('lock_timeout', :timeout, true)"), {"timeout": timeout}
        )
        connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        connection.commit()
    except OperationalError as exc:
        connection.rollback()
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise queue.refused() from None
    queue.taken()


def _writer(store: Store) -> str:
    """The newest unfinished run, in words: most likely the one holding the writer lock."""
    try:
        with store.session() as session:
            run = session.scalars(
                select(SyncRun)
                .where(SyncRun.status == RunStatus.RUNNING)
                .order_by(SyncRun.started_at.desc())
                .limit(1)
            ).first()
    except OperationalError:  # the store is busy or gone: the lock still says enough
        return ""
    if run is None:
        return " (no unfinished run recorded)"
    flow_run = f", flow run {run.flow_run_id}" if run.flow_run_id else ""
    started = run.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f" (run {run.id}{flow_run}, running since {started})"


@dataclass(frozen=True)
class Loaded:
    """What loading one batch into the mirror did."""

    written: set[str]  # ids of the rows that were new or differed from the mirror's copy
    read_before: int  # rows this run had read already: twice in the batch, or stored by it


def upsert_records(
    session: Session,
    model: type[MirrorRecord],
    rows: Sequence[MirrorRow],
    *,
    replace: bool = False,
) -> set[str]:
    """Insert or update mirror rows; returns the ids of the rows written (see load_rows)."""
    return load_rows(session, model, rows, replace=replace).written


def load_rows(
    session: Session,
    model: type[MirrorRecord],
    rows: Sequence[MirrorRow],
    *,
    run_id: str | None = None,
    replace: bool = False,
) -> Loaded:
    """Insert or update mirror rows in bulk, in the session's transaction.

    A row is written only when it is new or differs from the mirror's copy, so re-reading
    unchanged records (the inclusive lower bound, a lookback) writes nothing; an older copy
    never overwrites a newer one. A full refresh (``replace``) writes every row, taking the
    source's copy whatever its timestamp. With ``run_id`` the rows are stamped as that
    run's (their own ``run_id`` is not read: no copy of each row is made to stamp it), and
    ``read_before`` counts the rows it had already read: a source can hand a record over
    twice (it changed while the sync paged); the mirror keeps it once, and the run report
    says how many were read again.

    The rows go to a temporary staging table in one bulk statement (``executemany`` on
    SQLite, ``COPY`` on PostgreSQL), then into the mirror with one ``INSERT … SELECT … ON
    CONFLICT``: the database does the per-row work, not SQLAlchemy's per-value binding.
    """
    if not rows:
        return Loaded(set(), 0)
    # A record can arrive twice in one batch (it changed while the source paged and moved
    # to a later page); one statement may not touch a row twice, so keep its newest copy.
    newest: dict[tuple[object, object], MirrorRow] = {}
    for row in rows:
        key = (row["source"], row["source_id"])
        if key not in newest or _modified_at(newest[key]) <= _modified_at(row):
            newest[key] = row
    table = cast(Table, model.__table__)
    staging = _stage(session, model, newest.values(), run_id)
    read_before = len(rows) - len(newest)
    if run_id is not None:
        same_record = and_(
            table.c.source == staging.c.source, table.c.source_id == staging.c.source_id
        )
        stored_by_run = (
            select(func.count())
            .select_from(staging)
            .join(table, same_record)
            .where(table.c.run_id == run_id)
        )
        read_before += int(session.scalar(stored_by_run) or 0)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    names = [column.name for column in supplied_columns(model)]
    # SQLite parses "INSERT … SELECT … ON CONFLICT" only when the SELECT has a WHERE.
    statement = insert(table).from_select(names, select(staging).where(true()))
    keys = {column.name for column in table.primary_key.columns}
    values = [column for column in supplied_columns(model) if column.name not in keys]
    differs = or_(
        *(
            column.is_distinct_from(statement.excluded[column.name])
            for column in values
            if column.name != "run_id"
        )
    )
    newer = table.c.source_modified_at <= statement.excluded.source_modified_at
    upsert = statement.on_conflict_do_update(
        index_elements=sorted(keys),
        set_={column.name: statement.excluded[column.name] for column in values},
        # a full refresh stamps every row it saw with its run: tombstone_unseen relies on it
        where=None if replace else and_(newer, differs),
    ).returning(table.c.source_id)
    return Loaded(set(session.scalars(upsert)), read_before)


def unchanged_rows(
    session: Session,
    model: type[MirrorRecord],
    rows: Sequence[MirrorRow],
    run_id: str | None = None,
) -> set[str]:
    """The ids of ``rows`` the mirror holds exactly as they are (every column but run_id):
    loading them would write nothing, and their copy passed validation when it was written.

    Compared in the database, through the staging table, with the test :func:`load_rows`
    uses to skip a write, so "unchanged" here and "not written" there never disagree.
    Each id should occur once in ``rows``; ``run_id`` stamps them as :func:`load_rows` does.
    """
    if not rows:
        return set()
    table = cast(Table, model.__table__)
    staging = _stage(session, model, rows, run_id)
    keys = {column.name for column in table.primary_key.columns}
    same = [
        table.c[column.name].is_not_distinct_from(staging.c[column.name])
        for column in supplied_columns(model)
        if column.name not in keys and column.name != "run_id"
    ]
    query = select(staging.c.source_id).join(
        table,
        and_(table.c.source == staging.c.source, table.c.source_id == staging.c.source_id, *same),
    )
    return {str(source_id) for source_id in session.scalars(query)}


def _modified_at(row: MirrorRow) -> datetime:
    return cast(datetime, row["source_modified_at"])  # validated: an aware timestamp


def _stage(
    session: Session,
    model: type[MirrorRecord],
    rows: Iterable[MirrorRow],
    run_id: str | None = None,
) -> Table:
    """Fill this connection's temporary copy of ``table`` with ``rows``; returns it.

    Values pass through the columns' own bind processing (aware UTC timestamps, SQLite's
    text dates), so the mirror stores exactly what a plain insert would. A ``run_id``
    fills that column for every row. The rows stream into the database one by one (COPY,
    or SQLite's ``executemany`` over an iterator): no list of a batch's values is built.
    """
    connection = session.connection()
    dialect = connection.dialect
    table, supplied = cast(Table, model.__table__), supplied_columns(model)
    name = f"staging_{table.name}"
    staging = Table(name, MetaData(), *(Column(c.name, c.type) for c in supplied))
    names = [column.name for column in supplied]
    columns = ", ".join(f'"{name}"' for name in names)
    processors = [
        (index, process)
        for index, column in enumerate(supplied)
        if (process := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]
    stamp = names.index("run_id") if run_id is not None and "run_id" in names else None
    taken = [name for index, name in enumerate(names) if index != stamp]
    every_column = itemgetter(*taken)

    def values(row: MirrorRow) -> tuple[object, ...]:
        try:
            found = list(every_column(row))
        except KeyError:  # a column the connector leaves to its default
            found = [row.get(name) for name in taken]
        if stamp is not None:
            found.insert(stamp, run_id)
        for index, process in processors:
            if found[index] is not None:
                found[index] = process(found[index])
        return tuple(found)

    tuples = map(values, rows)
    if dialect.name == "postgresql":
        connection.exec_driver_sql(
            f'CREATE TEMPORARY TABLE IF NOT EXISTS "{name}" (LIKE "{table.name}")'
        )
        connection.exec_driver_sql(f'TRUNCATE "{name}"')
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor().copy(f'COPY "{name}" ({columns}) FROM STDIN') as copy:
            for row_values in tuples:
                copy.write_row(row_values)
    else:
        connection.exec_driver_sql(
            f'CREATE TEMPORARY TABLE IF NOT EXISTS "{name}" AS SELECT * FROM "{table.name}" WHERE 0'
        )
        connection.exec_driver_sql(f'DELETE FROM "{name}"')
        marks = ", ".join("?" for _ in names)
        driver = connection.connection.driver_connection  # sqlite3's: it takes an iterator
        assert driver is not None
        driver.executemany(f'INSERT INTO "{name}" ({columns}) VALUES ({marks})', tuples)
    return staging


def tombstone_unseen(
    session: Session, model: type[MirrorRecord], source: str, run_id: str, now: datetime
) -> int:
    """After a full refresh: records of ``source`` this run did not see are gone there."""
    table = cast(Table, model.__table__)
    result = session.execute(
        update(table)
        .where(table.c.source == source, table.c.run_id != run_id, table.c.deleted_at.is_(None))
        .values(deleted_at=now, run_id=run_id)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def tombstone_missing(
    session: Session,
    model: type[MirrorRecord],
    source: str,
    live_ids: set[str],
    run_id: str,
    now: datetime,
) -> int:
    """After a reconcile: live mirror records of ``source`` the source no longer lists."""
    table = cast(Table, model.__table__)
    mirrored = session.scalars(
        select(table.c.source_id).where(table.c.source == source, table.c.deleted_at.is_(None))
    )
    gone = sorted(set(mirrored) - live_ids)
    for start in range(0, len(gone), 500):
        session.execute(
            update(table)
            .where(table.c.source == source, table.c.source_id.in_(gone[start : start + 500]))
            .values(deleted_at=now, run_id=run_id)
        )
    return len(gone)


def record_source_reads(
    session: Session, sources: Iterable[str], read_at: datetime, run_id: str
) -> None:
    """These sources were read in full, with data as of ``read_at``: their freshness."""
    for source in sources:
        read = session.get(SourceRead, source) or SourceRead(source=source)
        read.read_at, read.run_id = read_at, run_id
        session.add(read)


def read_cursor(
    session: Session, source: str, stream: str, *, written_by: str | None = None
) -> Bookmark | None:
    """The stream's saved position; with ``written_by``, only if that run saved it."""
    cursor = session.get(Cursor, (source, stream))
    if cursor is None or (written_by is not None and cursor.run_id != written_by):
        return None
    return Bookmark(cursor.value, cursor.token, cursor.last_id)


def write_cursor(
    session: Session,
    source: str,
    stream: str,
    bookmark: Bookmark,
    run_id: str,
    *,
    replace: bool = False,
) -> None:
    """Advance a stream's cursor (never backwards, except when a full refresh replaces it)."""
    cursor = session.get(Cursor, (source, stream))
    if cursor is None:
        cursor = Cursor(source=source, stream=stream, value=bookmark.at, run_id=run_id)
        session.add(cursor)
    elif not replace and bookmark.at < cursor.value:
        return
    cursor.value, cursor.token, cursor.run_id = bookmark.at, bookmark.token, run_id
    cursor.last_id = bookmark.last_id


def readmit(session: Session, entity: str, source: str, ids: Collection[str], run_id: str) -> int:
    """Stamp with this run the mirror rows of records read good again after a quarantine.

    A record validation held back is held while the mirror's copy is older than its
    quarantined one; a good copy read since re-admits it. When that good copy equals the
    mirror's (a bad edit undone), loading writes nothing, so the row is stamped here: the
    record leaves the held list on the next incremental sync that reads it.
    """
    if not ids:
        return 0
    model = MIRROR[entity]
    held = session.scalars(
        held_select(entity, QuarantinedRow.source_id).where(
            QuarantinedRow.source == source, QuarantinedRow.source_id.in_(list(ids))
        )
    ).all()
    if not held:
        return 0
    session.execute(
        update(model)
        .where(model.source == source, model.source_id.in_(set(held)))
        .values(run_id=run_id)
    )
    return len(set(held))


def quarantine(session: Session, run_id: str, entity: str, rejected: Iterable[Rejected]) -> int:
    """Keep failing records, each with the reasons it failed; returns how many."""
    count = 0
    for item in rejected:
        session.add(
            QuarantinedRow(
                run_id=run_id,
                entity=entity,
                source=item.source,
                source_id=None if item.source_id is None else storable(item.source_id)[:64],
                expectations=[storable(reason) for reason in item.reasons],
                record=_jsonable(item.record),
            )
        )
        count += 1
    return count


def _jsonable(value: Any) -> Any:
    """Plain JSON for the quarantine: dates as ISO text, Decimal as exact text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


ANALYZE_MIN_ROWS = 1000  # rows a run writes before an analyzed table is analyzed again
ANALYZE_FRACTION = 0.1  # ... or this share of the rows it held when last analyzed


def refresh_statistics(session: Session, written: Mapping[str, int]) -> list[str]:
    """ANALYZE the tables (name → rows this run wrote) whose planner statistics the run's
    writes made stale; returns their names.

    A first sync measures key results over tables PostgreSQL has never analyzed, and
    autovacuum gets there only later: the planner then picks nested loops that take
    seconds per key result. Stale means never analyzed (``reltuples`` -1), or written at
    least max(ANALYZE_MIN_ROWS, ANALYZE_FRACTION of the rows held when last analyzed),
    autovacuum's rule with a floor: a no-change sync analyzes nothing. ANALYZE runs in
    the caller's transaction and sees its rows. SQLite: nothing (its planner did not
    need it, as measured: see issue 25).
    """
    if session.get_bind().dialect.name != "postgresql":
        return []
    wrote = {name: count for name, count in written.items() if count > 0}
    if not wrote:
        return []
    held = session.execute(
        text(
            "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names)"
            " AND relkind = 'r' AND relnamespace = current_schema()::regnamespace"
        ),
        {"names": sorted(wrote)},
    )
    stale = sorted(
        name
        for name, tuples in held
        if tuples < 0 or wrote[name] >= max(ANALYZE_MIN_ROWS, ANALYZE_FRACTION * tuples)
    )
    if stale:
        session.execute(text("ANALYZE " + ", ".join(f'"{name}"' for name in stale)))
    return stale


def abandon_unfinished_runs(store: Store) -> int:
    """Runs still "running" while we hold the writer lock died (killed, machine lost).

    Their committed batches and cursors stand; the next sync resumes from them. Marking
    the runs keeps `okr-sync runs` honest. Call only under :meth:`Store.writer_lock`. It is
    a sync's first write, so a store that refuses writes (a read-only file) fails here, in
    one :class:`StoreError` line, before the run begins.
    """
    table = cast(Table, SyncRun.__table__)
    try:
        with store.session() as session, session.begin():
            result = session.execute(
                update(table)
                .where(table.c.status == RunStatus.RUNNING)
                .values(
                    status=RunStatus.FAILED,
                    finished_at=utcnow(),
                    reason="interrupted: the process ended before the run finished; "
                    "the next sync resumed from its committed data",
                )
            )
    except DatabaseError as exc:
        raise StoreError(f"cannot write to store {store.display_url}: {_reason(exc)}") from None
    return int(getattr(result, "rowcount", 0) or 0)


def begin_run(store: Store, code_version: str, flow_run_id: str | None = None) -> str:
    """Record a sync run as running, in its own transaction, and return its id."""
    run_id = str(uuid.uuid4())
    with store.session() as session, session.begin():
        session.add(
            SyncRun(
                id=run_id,
                flow_run_id=flow_run_id,
                started_at=utcnow(),
                status=RunStatus.RUNNING,
                code_version=code_version,
            )
        )
    return run_id


def latest_stream_counts(store: Store, runs: int = 20) -> dict[str, dict[str, Any]]:
    """Each stream's counts (``source.stream`` → counts) from the latest finished run that
    read it, among the last ``runs``: what a stream was last found to lack or skip."""
    with store.session() as session:
        finished = session.scalars(
            select(SyncRun)
            .where(SyncRun.finished_at.is_not(None))
            .order_by(SyncRun.started_at.desc())
            .limit(runs)
        ).all()
    latest: dict[str, dict[str, Any]] = {}
    for run in finished:
        for name, counts in (run.stream_counts or {}).items():
            latest.setdefault(name, counts)
    return latest


def finish_run(
    store: Store,
    run_id: str,
    status: RunStatus,
    reason: str | None,
    stream_counts: dict[str, Any],
    details: dict[str, Any] | None = None,
) -> None:
    with store.session() as session, session.begin():
        run = session.get(SyncRun, run_id)
        assert run is not None, f"run {run_id} was begun"
        run.status, run.reason, run.finished_at = status, reason, utcnow()
        run.stream_counts = stream_counts
        run.details = details or {}
