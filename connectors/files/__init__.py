"""File source: CSV or Excel exports (a spreadsheet finance keeps), one file per entity."""

from __future__ import annotations

from pathlib import Path

from connectors.base import Connector, SandboxSpec
from connectors.files.client import FilesReader
from connectors.files.settings import FilesSettings
from connectors.tabular import STREAMS


def sandbox_env(directory: Path) -> dict[str, str]:
    """Write the sample company's exports into ``directory``; settings to read them."""
    from connectors.files.fixtures import write_exports

    write_exports(directory)
    return {"OKR_SYNC_FILES_DIRECTORY": str(directory), "OKR_SYNC_FILES_PAGE_SIZE": "7"}


def contract_sandbox() -> SandboxSpec:
    """No emulator: the sample company's exports, some CSV, some Excel, in pages of 7."""
    return SandboxSpec(app=None, env=sandbox_env)


connector = Connector(
    name="files",
    streams=STREAMS,
    settings=FilesSettings,
    open=FilesReader,
    description="CSV or Excel exports in a directory, one file per entity with canonical "
    "columns, re-read each sync and keyset-paged on (updated_at, id)",
    sandbox=contract_sandbox,
)

__all__ = ["FilesReader", "FilesSettings", "connector", "sandbox_env"]
