"""Reading CSV and Excel exports as canonical tables, incrementally on (updated_at, id).

An export holds the whole table every time, so each read loads the file, orders its
records by (updated_at, id) and returns those after the bookmark, in pages: the same
keyset as the SQL and API sources, so a resume neither skips nor repeats a record. CSV is
read with the csv module (UTF-8, a BOM allowed), Excel with openpyxl (first sheet, first
row the header, values as the cells hold them).
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.base import ApiUsage, Bookmark, Page, Rejected, StreamInfo
from connectors.errors import FatalSourceError
from connectors.files.settings import FilesSettings
from connectors.tabular import Layout, MappingError

SOURCE = "files"
SUFFIXES = (".csv", ".xlsx")

Record = dict[str, Any]


class FilesReader:
    def __init__(self, settings: FilesSettings) -> None:
        if settings.directory is None:
            raise FatalSourceError(SOURCE, "OKR_SYNC_FILES_DIRECTORY is not set")
        if not settings.directory.is_dir():
            raise FatalSourceError(
                SOURCE, f"OKR_SYNC_FILES_DIRECTORY {settings.directory} is not a directory"
            )
        self.settings = settings
        self.directory = settings.directory
        self.usage = ApiUsage()
        self.layout = settings.layout(SOURCE)

    def path(self, stream: StreamInfo) -> Path:
        if stream.name in self.settings.files:
            return self.directory / self.settings.files[stream.name]
        for suffix in SUFFIXES:
            candidate = self.directory / f"{stream.name}{suffix}"
            if candidate.exists():
                return candidate
        raise FatalSourceError(
            SOURCE,
            f"no export for {stream.name}: expected {stream.name}.csv or {stream.name}.xlsx "
            f"in {self.directory} (or name it in OKR_SYNC_FILES_FILES)",
        )

    def records(self, stream: StreamInfo) -> list[Record]:
        """Every record of the stream's file; a file that lacks a column is fatal."""
        path = self.path(stream)
        self.usage.requests += 1
        try:
            header, records = _read_xlsx(path) if path.suffix == ".xlsx" else _read_csv(path)
        except (OSError, UnicodeDecodeError, csv.Error, zipfile.BadZipFile, KeyError) as exc:
            raise FatalSourceError(SOURCE, f"cannot read {path.name}: {exc}") from None
        missing = self.layout.check(stream, set(header))
        if missing:
            raise FatalSourceError(SOURCE, f"{path.name} lacks column(s) {missing}")
        return records

    def read(
        self, stream: StreamInfo, since: Bookmark | None, until: datetime | None = None
    ) -> Iterator[Page]:
        keyed: list[tuple[datetime, str, Record]] = []
        unreadable: list[Rejected] = []
        for line, record in enumerate(self.records(stream), start=2):
            try:
                keyed.append(
                    (self.layout.updated_at(record), self.layout.record_id(record), record)
                )
            except MappingError as exc:
                unreadable.append(_rejected(record, f"row {line}: {exc}", self.layout))
        if since is None and unreadable:  # reported once, on a full read
            yield Page([], None, unreadable)
        keyed.sort(key=lambda item: (item[0], item[1]))
        selected = [
            item
            for item in keyed
            if (until is None or item[0] < until) and _after(item[0], item[1], since)
        ]
        size = self.settings.page_size
        for start in range(0, len(selected), size):
            chunk = selected[start : start + size]
            rows, rejected = [], []
            for _at, _id, record in chunk:
                try:
                    rows.append(self.layout.to_canonical(stream.entity, record))
                except MappingError as exc:
                    rejected.append(_rejected(record, str(exc), self.layout))
            at, last_id, _record = chunk[-1]
            yield Page(rows, Bookmark(at, last_id=last_id), rejected, total=len(selected))

    def ids(self, stream: StreamInfo) -> Iterator[list[str]]:
        ids = []
        for record in self.records(stream):
            try:
                deleted = self.layout.timestamp(
                    record.get(self.settings.deleted_at_column), self.settings.deleted_at_column
                )
                if deleted is None:
                    ids.append(self.layout.record_id(record))
            except MappingError:
                continue  # quarantined when read; not listed as live
        yield ids

    def close(self) -> None:
        pass


def _after(at: datetime, record_id: str, since: Bookmark | None) -> bool:
    if since is None:
        return True
    if since.last_id is None:
        return at >= since.at
    return (at, record_id) > (since.at, since.last_id)


def _rejected(record: Record, reason: str, layout: Layout) -> Rejected:
    value = record.get(layout.id_column)
    return Rejected(SOURCE, None if value in (None, "") else str(value), record, [reason])


def _read_csv(path: Path) -> tuple[list[str], list[Record]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        records = [dict(row) for row in reader]
        return list(reader.fieldnames or []), records


def _read_xlsx(path: Path) -> tuple[list[str], list[Record]]:
    # Imported here: every sync discovers this connector, few read a workbook (~0.5 s).
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = [str(cell).strip() if cell is not None else "" for cell in next(rows, ())]
        records = [
            dict(zip(header, row, strict=False))
            for row in rows
            if any(cell is not None for cell in row)
        ]
        return header, records
    finally:
        workbook.close()
