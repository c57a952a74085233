"""The sample billing company as a database (tables with canonical columns, any dialect),
and the SQL connector's sandbox for the contract and demos."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    insert,
)

from connectors.base import SandboxSpec
from connectors.canonical import IDENTITY, fields_of
from connectors.sandbox.tabular import sample_tables
from connectors.tabular import STREAMS


def fixture_metadata(aware: bool = False) -> MetaData:
    """One table per stream: ``id`` (integer key), ``updated_at``, ``deleted_at`` and the
    entity's canonical columns; timestamps naive (as many databases keep them) unless
    ``aware`` (PostgreSQL ``timestamptz``)."""
    metadata = MetaData()
    stamp = DateTime(timezone=aware)
    for stream in STREAMS:
        columns: list[Column[Any]] = [
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("updated_at", stamp, nullable=True, index=True),
            Column("deleted_at", stamp, nullable=True),
        ]
        for field in fields_of(stream.entity):
            if field.name not in IDENTITY:
                columns.append(Column(field.name, _plain(field.kind, stamp), nullable=True))
        Table(stream.name, metadata, *columns)
    return metadata


def _plain(kind: type, stamp: DateTime) -> Any:
    """The column type a plain database gives a field of this Python type."""
    plain = {datetime: stamp, date: Date, Decimal: Numeric(18, 4), bool: Boolean, int: Integer}
    return plain.get(kind, String(200))


def create_fixture_database(
    url: str, tables: dict[str, list[dict[str, Any]]] | None = None, aware: bool = False
) -> None:
    """Create the tables at ``url`` and fill them (the sample company by default)."""
    engine = create_engine(url)
    metadata = fixture_metadata(aware)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            for name, rows in (tables or sample_tables()).items():
                if rows:
                    connection.execute(insert(metadata.tables[name]), rows)
    finally:
        engine.dispose()


def sandbox_env(directory: Path) -> dict[str, str]:
    """Write the sample billing database (SQLite) into ``directory``; settings to read it."""
    url = f"sqlite:///{directory / 'billing.db'}"
    create_fixture_database(url)
    return {"OKR_SYNC_SQL_URL": url, "OKR_SYNC_SQL_PAGE_SIZE": "7"}


def contract_sandbox() -> SandboxSpec:
    """No emulator: a real SQLite database of the sample company, read in pages of 7."""
    return SandboxSpec(app=None, env=sandbox_env)
