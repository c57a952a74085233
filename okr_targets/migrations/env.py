"""Alembic environment: runs on the engine the store hands over (never a URL from a file).

Every pending migration runs in one transaction, so a process killed mid-way leaves the
schema as it was before. PostgreSQL's DDL is transactional as it is; pysqlite begins a
transaction only before INSERT/UPDATE/DELETE, so each CREATE TABLE before the first of those
committed on its own (a kill during the first migration left half a schema, and the next
open failed on "table … already exists"). On SQLite the migration therefore turns pysqlite's
implicit transactions off and issues its own BEGIN (SQLAlchemy's pysqlite notes,
"Serializable isolation / Savepoints / Transactional DDL").

On SQLite, a batch migration rebuilds a table (copy, drop, rename); with foreign keys
enforced, dropping ``measurements`` would cascade to its lineage rows. Enforcement is off
while migrating (SQLite ignores the pragma inside a transaction, so it is set before) and
the keys are checked once the migration is done.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import context
from sqlalchemy import Connection, text

from okr_targets.models import Base


@contextmanager
def transactional_ddl(connection: Connection) -> Iterator[None]:
    """On SQLite, one explicit transaction that DDL statements cannot commit early."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    level = raw.isolation_level
    raw.isolation_level = None  # no implicit BEGIN (or COMMIT): the BEGIN below holds all
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the writer from the start
        yield
    finally:
        raw.isolation_level = level  # commit or rollback comes from the outer transaction


engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    with connection.begin(), transactional_ddl(connection):
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            transactional_ddl=True,
        )
        context.run_migrations()
        if sqlite:
            broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise RuntimeError(f"migration left {len(broken)} broken foreign key(s)")
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
