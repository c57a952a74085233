"""File source: CSV or Excel exports (a spreadsheet finance keeps), one file per entity."""

from __future__ import annotations

from connectors.base import Connector, SandboxSpec
from connectors.files.client import FilesReader
from connectors.files.settings import FilesSettings
from connectors.tabular import STREAMS


def contract_sandbox() -> SandboxSpec:
    """The sandbox the contract writes, imported only when asked for."""
    from connectors.files.sandbox import contract_sandbox

    return contract_sandbox()


connector = Connector(
    name="files",
    streams=STREAMS,
    settings=FilesSettings,
    open=FilesReader,
    description="CSV or Excel exports in a directory, one file per entity with canonical "
    "columns, re-read each sync and keyset-paged on (updated_at, id)",
    sandbox=contract_sandbox,
)

__all__ = ["FilesReader", "FilesSettings", "connector"]
