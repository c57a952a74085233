"""Reading canonical tables from any SQLAlchemy database, keyset-paged on (updated_at, id).

Each page is ``WHERE (updated_at, id) > (bookmark) ORDER BY updated_at, id LIMIT n``, built
with SQLAlchemy Core (never string formatting), so a block of records sharing one
timestamp is neither skipped nor read twice, whatever the page size. The connection is
read-only where the database allows it (SQLite ``mode=ro``, PostgreSQL
``default_transaction_read_only``): the source is never written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, Table, and_, create_engine, inspect, or_, select
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    NoSuchTableError,
    OperationalError,
)

from connectors.base import ApiUsage, Bookmark, Page, Rejected, StreamInfo
from connectors.errors import FatalSourceError, RetriableSourceError
from connectors.sql.settings import SqlSettings
from connectors.tabular import MappingError

SOURCE = "sql"

PERMANENT_SQLSTATE_CLASSES = {
    "28": "access refused",  # invalid authorization: a wrong password, an unknown role
    "3D": "no such database",  # invalid_catalog_name
    "3F": "no such schema",  # invalid_schema_name
    "42": "the database refused",  # syntax, an undefined object, no privilege
}
"""SQLSTATE classes (PostgreSQL's and the standard's) that no retry can change. Others in an
OperationalError (08 connection, 53 resources, 57 a server shutting down or starting up, 40
a deadlock) may pass by themselves."""

PERMANENT_PHRASES = {
    "password": "access refused",
    "authentication": "access refused",
    "permission denied": "access refused",
    "access denied": "access refused",
    "no pg_hba.conf entry": "access refused",
    'role "': "access refused",  # PostgreSQL: role "x" does not exist
    "does not exist": "no such database",  # PostgreSQL: database "x" does not exist
    "unknown database": "no such database",  # SQLite (a schema), MySQL
    "unable to open database file": "no such database file",  # SQLite opens read-only
}
"""The same, read from the driver's message where it gives no SQLSTATE (psycopg gives none
for a failed connection; SQLite never does). Anything else is taken as transient: a
refused or dropped connection, a timeout, a locked SQLite file."""


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write where the dialect can say so; other dialects as given."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise FatalSourceError(SOURCE, "OKR_SYNC_SQL_URL is not a SQLAlchemy URL") from None
    connect_args: dict[str, Any] = {}
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        connect_args["options"] = "-c default_transaction_read_only=on"
    elif parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = _sqlite_read_only(parsed)
    try:
        return create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    except NoSuchModuleError:
        raise FatalSourceError(
            SOURCE, f"no SQLAlchemy dialect {parsed.drivername!r}: install its driver"
        ) from None


def _sqlite_read_only(url: URL) -> URL:
    """Open the file read-only; a missing file is an error, not a new empty database."""
    return url.set(
        database=f"file:{url.database}", query={**url.query, "mode": "ro", "uri": "true"}
    )


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Database failures as the two error classes; messages never carry the URL."""
    try:
        yield
    except NoSuchTableError as exc:
        raise FatalSourceError(
            SOURCE,
            f"{action}: no table or view {exc}; create it or map the stream to one "
            "with OKR_SYNC_SQL_TABLES",
        ) from None
    except OperationalError as exc:
        reason = _first_line(exc)
        permanent = _permanent(exc, reason)
        if permanent is None:
            raise RetriableSourceError(SOURCE, f"{action}: {reason}") from None
        raise FatalSourceError(
            SOURCE, f"{action}: {permanent}: {reason}; check OKR_SYNC_SQL_URL"
        ) from None
    except DBAPIError as exc:
        raise FatalSourceError(
            SOURCE, f"{action}: the database refused: {_first_line(exc)}"
        ) from None


def _permanent(exc: DBAPIError, reason: str) -> str | None:
    """What an OperationalError says that no retry can change, or None when it may pass."""
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(state, str) and state:
        return PERMANENT_SQLSTATE_CLASSES.get(state[:2])
    lowered = reason.lower()
    return next((kind for phrase, kind in PERMANENT_PHRASES.items() if phrase in lowered), None)


def _first_line(exc: DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else type(exc).__name__
    return (text.strip().splitlines() or [type(exc).__name__])[0]


class SqlReader:
    """An open connection pool to the source database."""

    def __init__(self, settings: SqlSettings) -> None:
        self.settings = settings
        self.usage = ApiUsage()
        self.layout = settings.layout(SOURCE)
        self.engine = read_only_engine(settings.database_url())
        self._tables: dict[str, Table] = {}

    def table(self, stream: StreamInfo) -> Table:
        """The stream's table, reflected once; one missing canonical column is fatal."""
        if stream.name not in self._tables:
            name = self.settings.tables.get(stream.name, stream.name)
            try:
                with translate_errors(f"reading {stream.name}"):
                    self.usage.requests += 1
                    table = Table(
                        name, MetaData(), autoload_with=self.engine, schema=self.settings.db_schema
                    )
            except FatalSourceError:
                self._check_schema(stream)
                raise
            missing = self.layout.check(stream, set(table.columns.keys()))
            if missing:
                raise FatalSourceError(
                    SOURCE,
                    f"table {name!r} ({stream.name}) lacks column(s) {missing}; "
                    "name them in a view over it",
                )
            self._tables[stream.name] = table
        return self._tables[stream.name]

    def _check_schema(self, stream: StreamInfo) -> None:
        """A table not found may be a schema misspelt: say that, naming its setting."""
        schema = self.settings.db_schema
        if schema is None:
            return
        with translate_errors(f"reading {stream.name}"):
            self.usage.requests += 1
            known = inspect(self.engine).get_schema_names()
        if schema not in known:
            shown = ", ".join(sorted(known)[:10]) + (", …" if len(known) > 10 else "")
            raise FatalSourceError(
                SOURCE,
                f"reading {stream.name}: no schema {schema!r} in the database (it has {shown}); "
                "check OKR_SYNC_SQL_DB_SCHEMA",
            )

    def _bind(self, column: Column[Any], moment: datetime) -> datetime:
        """A bookmark as the column stores it: aware, or naive wall time in the zone."""
        if getattr(column.type, "timezone", False):
            return moment
        return moment.astimezone(self.layout.zone).replace(tzinfo=None)

    def _id_value(self, column: Column[Any], text: str) -> Any:
        try:
            return column.type.python_type(text)
        except (NotImplementedError, TypeError, ValueError):
            return text

    def read(
        self, stream: StreamInfo, since: Bookmark | None, until: datetime | None = None
    ) -> Iterator[Page]:
        table = self.table(stream)
        updated = table.c[self.settings.updated_at_column]
        ident = table.c[self.settings.id_column]
        if since is None:  # a full read also reports the rows it can never read incrementally
            yield from self._without_timestamp(stream, table)
        conditions: list[Any] = [updated.is_not(None)]
        if until is not None:
            conditions.append(updated < self._bind(updated, until))
        after: tuple[Any, Any] | None = None
        if since is not None:
            at = self._bind(updated, since.at)
            if since.last_id is None:
                conditions.append(updated >= at)
            else:
                after = (at, self._id_value(ident, since.last_id))
        while True:
            where = list(conditions)
            if after is not None:
                where.append(or_(updated > after[0], and_(updated == after[0], ident > after[1])))
            statement = (
                select(table).where(*where).order_by(updated, ident).limit(self.settings.page_size)
            )
            with translate_errors(f"reading {stream.name}"), self.engine.connect() as connection:
                self.usage.requests += 1
                records = [dict(row) for row in connection.execute(statement).mappings()]
            if not records:
                return
            yield self._page(stream, records)
            if len(records) < self.settings.page_size:
                return
            last = records[-1]
            after = (last[updated.name], last[ident.name])

    def _without_timestamp(self, stream: StreamInfo, table: Table) -> Iterator[Page]:
        updated = table.c[self.settings.updated_at_column]
        statement = select(table).where(updated.is_(None))
        with translate_errors(f"reading {stream.name}"), self.engine.connect() as connection:
            self.usage.requests += 1
            records = [dict(row) for row in connection.execute(statement).mappings()]
        if records:
            yield self._page(stream, records)

    def _page(self, stream: StreamInfo, records: list[dict[str, Any]]) -> Page:
        rows, rejected = [], []
        bookmark = None
        for record in records:
            try:
                rows.append(self.layout.to_canonical(stream.entity, record))
            except MappingError as exc:
                source_id = record.get(self.settings.id_column)
                identity = None if source_id is None else str(source_id)
                rejected.append(Rejected(SOURCE, identity, record, [str(exc)]))
            with suppress(MappingError):  # a record without a usable time or id moves no cursor
                bookmark = Bookmark(
                    self.layout.updated_at(record), last_id=self.layout.record_id(record)
                )
        return Page(rows, bookmark, rejected)

    def ids(self, stream: StreamInfo) -> Iterator[list[str]]:
        table = self.table(stream)
        ident = table.c[self.settings.id_column]
        deleted = table.c.get(self.settings.deleted_at_column)
        after: Any = None
        while True:
            statement = select(ident).order_by(ident).limit(self.settings.page_size)
            if deleted is not None:
                statement = statement.where(deleted.is_(None))
            if after is not None:
                statement = statement.where(ident > after)
            with translate_errors(f"listing {stream.name}"), self.engine.connect() as connection:
                self.usage.requests += 1
                values = list(connection.execute(statement).scalars())
            if not values:
                return
            yield [str(value) for value in values]
            if len(values) < self.settings.page_size:
                return
            after = values[-1]

    def close(self) -> None:
        self.engine.dispose()
