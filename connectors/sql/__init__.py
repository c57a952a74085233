"""Generic SQL source: canonical tables (or views) in any database SQLAlchemy reaches."""

from __future__ import annotations

from pathlib import Path

from connectors.base import Connector, SandboxSpec
from connectors.sql.client import SqlReader
from connectors.sql.settings import SqlSettings
from connectors.tabular import STREAMS


def sandbox_env(directory: Path) -> dict[str, str]:
    """Write the sample billing database (SQLite) into ``directory``; settings to read it."""
    from connectors.sql.fixtures import create_fixture_database

    url = f"sqlite:///{directory / 'billing.db'}"
    create_fixture_database(url)
    return {"OKR_SYNC_SQL_URL": url, "OKR_SYNC_SQL_PAGE_SIZE": "7"}


def contract_sandbox() -> SandboxSpec:
    """No emulator: a real SQLite database of the sample company, read in pages of 7."""
    return SandboxSpec(app=None, env=sandbox_env)


connector = Connector(
    name="sql",
    streams=STREAMS,
    settings=SqlSettings,
    open=SqlReader,
    description="any SQLAlchemy database: one table or view per entity with canonical "
    "columns, incremental on an updated-at column, keyset-paged on (updated_at, id)",
    sandbox=contract_sandbox,
)

__all__ = ["SqlReader", "SqlSettings", "connector", "sandbox_env"]
