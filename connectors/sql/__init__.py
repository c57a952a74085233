"""Generic SQL source: canonical tables (or views) in any database SQLAlchemy reaches."""

from __future__ import annotations

from connectors.base import Connector, SandboxSpec
from connectors.sql.client import SqlReader
from connectors.sql.settings import SqlSettings
from connectors.tabular import STREAMS


def contract_sandbox() -> SandboxSpec:
    """The sandbox the contract writes, imported only when asked for."""
    from connectors.sql.sandbox import contract_sandbox

    return contract_sandbox()


connector = Connector(
    name="sql",
    streams=STREAMS,
    settings=SqlSettings,
    open=SqlReader,
    description="any SQLAlchemy database: one table or view per entity with canonical "
    "columns, incremental on an updated-at column, keyset-paged on (updated_at, id)",
    sandbox=contract_sandbox,
)

__all__ = ["SqlReader", "SqlSettings", "connector"]
