"""The sample billing company as exports (CSV files, and Excel workbooks via openpyxl), and
the file connector's sandbox for the contract and demos."""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from connectors.base import SandboxSpec
from connectors.sandbox.tabular import sample_tables

EXCEL_STREAMS = ("customers", "deals")
"""Written as .xlsx in the sandbox (the others as .csv), so both readers are exercised."""


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """ISO text for dates and times (naive: the wall time, as spreadsheets export it)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _text(value) for key, value in row.items()})


def write_xlsx(path: Path, rows: list[dict[str, Any]]) -> None:
    """Native cells: dates and times as Excel dates, amounts as numbers."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append([float(v) if isinstance(v, Decimal) else v for v in row.values()])
    workbook.save(path)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_exports(directory: Path, tables: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """One export per stream: EXCEL_STREAMS as .xlsx, the rest as .csv."""
    for name, rows in (tables or sample_tables()).items():
        if name in EXCEL_STREAMS:
            write_xlsx(directory / f"{name}.xlsx", rows)
        else:
            write_csv(directory / f"{name}.csv", rows)


def sandbox_env(directory: Path) -> dict[str, str]:
    """Write the sample company's exports into ``directory``; settings to read them."""
    write_exports(directory)
    return {"OKR_SYNC_FILES_DIRECTORY": str(directory), "OKR_SYNC_FILES_PAGE_SIZE": "7"}


def contract_sandbox() -> SandboxSpec:
    """No emulator: the sample company's exports, some CSV, some Excel, in pages of 7."""
    return SandboxSpec(app=None, env=sandbox_env)
