"""The file source: CSV and Excel exports, read incrementally, bad cells quarantined."""

# The sources under test keep naive wall times, as exports and many databases do.
# ruff: noqa: DTZ001

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from connectors import canonical
from connectors.base import Bookmark, StreamInfo
from connectors.canonical import CanonicalRow
from connectors.errors import FatalSourceError
from connectors.files import FilesReader, FilesSettings
from connectors.files.sandbox import write_csv, write_exports, write_xlsx
from connectors.sandbox.tabular import sample_tables, utc
from connectors.tabular import STREAMS
from expectations import Validator
from flows.extract import sync_stream
from okr_targets.models import Customer, Deal, QuarantinedRow
from okr_targets.store import Store, begin_run

STREAM = {stream.name: stream for stream in STREAMS}


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    """The sample company's exports: customers and deals as .xlsx, the rest as .csv."""
    write_exports(tmp_path)
    return tmp_path


def reader_for(directory: Path, **settings: object) -> FilesReader:
    return FilesReader(FilesSettings(directory=directory, **settings))  # type: ignore[arg-type]


def rows_of(
    reader: FilesReader, stream: StreamInfo, since: Bookmark | None = None
) -> list[CanonicalRow]:
    return [row for page in reader.read(stream, since) for row in page.rows]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_both_formats_give_the_same_canonical_rows(tmp_path: Path, fmt: str) -> None:
    deals = sample_tables()["deals"]
    (write_csv if fmt == "csv" else write_xlsx)(tmp_path / f"deals.{fmt}", deals)
    rows = {row["source_id"]: row for row in rows_of(reader_for(tmp_path), STREAM["deals"])}
    assert len(rows) == len(deals)
    first = cast(canonical.Deal, rows["1"])
    assert first["amount"] == deals[0]["amount"]
    assert isinstance(first["amount"], Decimal)
    assert first["currency"] == deals[0]["currency"]
    assert first["created_at"] == utc(deals[0]["created_at"])
    assert first["close_on"] == deals[0]["close_on"]
    assert first["source_modified_at"] == utc(deals[0]["updated_at"])
    assert rows["7"]["deleted_at"] == utc(deals[6]["deleted_at"])


def test_naive_times_are_read_in_the_configured_zone(exports: Path) -> None:
    rows = rows_of(reader_for(exports, timezone="America/New_York"), STREAM["tickets"])
    ticket = cast(canonical.Ticket, next(row for row in rows if row["source_id"] == "1"))
    wall = sample_tables()["tickets"][0]["created_at"]  # January: EST, UTC-5
    assert wall.month == 1
    assert ticket["created_at"] == wall.replace(tzinfo=UTC) + timedelta(hours=5)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_date_written_as_an_instant_is_its_day_in_the_calendar_zone(
    tmp_path: Path, fmt: str
) -> None:
    """17:30 on Mar 31 in Los Angeles, written in UTC (Apr 1), is Mar 31 for a Los Angeles
    calendar; a naive midnight (how Excel keeps a date) stays its own day."""
    deals = sample_tables()["deals"][:2]
    deals[0] = deals[0] | {"close_on": "2026-04-01T00:30:00+00:00"}
    deals[1] = deals[1] | {"close_on": datetime(2026, 3, 31)}
    (write_csv if fmt == "csv" else write_xlsx)(tmp_path / f"deals.{fmt}", deals)
    for zone, day in (("America/Los_Angeles", date(2026, 3, 31)), ("UTC", date(2026, 4, 1))):
        reader = reader_for(tmp_path, calendar_timezone=zone)
        rows = {row["source_id"]: row for row in rows_of(reader, STREAM["deals"])}
        first, second = (cast(canonical.Deal, rows[key]) for key in ("1", "2"))
        assert first["close_on"] == day
        assert second["close_on"] == date(2026, 3, 31)


def test_pages_resume_after_the_bookmark_through_timestamp_ties(exports: Path) -> None:
    reader = reader_for(exports, page_size=3)
    pages = list(reader.read(STREAM["deals"], None))
    ids = [row["source_id"] for page in pages for row in page.rows]
    assert sorted(ids, key=int) == [str(i) for i in range(1, 41)]
    for index, page in enumerate(pages[:-1]):
        assert page.bookmark is not None
        later = {row["source_id"] for p in pages[index + 1 :] for row in p.rows}
        assert {row["source_id"] for row in rows_of(reader, STREAM["deals"], page.bookmark)} == (
            later
        )


def test_a_changed_export_is_read_incrementally_into_the_store(
    exports: Path, store_url: str, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_FILES_DIRECTORY", str(exports))
    store = Store.open(store_url)
    try:
        first = sync_stream.fn(
            store, "files", STREAM["customers"], begin_run(store, "t"), validator, 100
        )
        assert (first.read, first.written) == (12, 12)
        customers = sample_tables()["customers"]
        customers[4] |= {
            "churned_on": datetime(2026, 11, 25).date(),
            "updated_at": datetime(2026, 11, 26, 10, 0),
        }
        write_xlsx(exports / "customers.xlsx", customers)
        second = sync_stream.fn(
            store, "files", STREAM["customers"], begin_run(store, "t"), validator, 100
        )
        assert (second.read, second.written) == (1, 1)
        with store.session() as session:
            customer = session.get(Customer, ("files", "5"))
            assert customer is not None
            assert customer.churned_on == datetime(2026, 11, 25).date()
            assert customer.source_modified_at == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    finally:
        store.dispose()


def test_bad_cells_are_quarantined_one_record_at_a_time(
    tmp_path: Path, sqlite_url: str, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    deals = sample_tables()["deals"][:5]
    write_csv(tmp_path / "deals.csv", deals)
    with (tmp_path / "deals.csv").open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(deals[0]))
        bad = {key: "" for key in deals[0]} | {
            "name": "x",
            "currency": "EUR",
            "stage": "s",
            "outcome": "won",
            "created_at": "2026-01-01T00:00:00",
        }
        writer.writerow(bad | {"id": "50", "amount": "12,50", "updated_at": "2026-02-01T10:00"})
        writer.writerow(bad | {"id": "51", "amount": "10", "updated_at": "yesterday"})
        writer.writerow(
            bad
            | {
                "id": "52",
                "amount": "10",
                "updated_at": "2026-02-01T10:00",
                "close_on": "31/01/2026",
            }
        )
    monkeypatch.setenv("OKR_SYNC_FILES_DIRECTORY", str(tmp_path))
    store = Store.open(sqlite_url)
    try:
        counts = sync_stream.fn(
            store, "files", STREAM["deals"], begin_run(store, "t"), validator, 100
        )
        with store.session() as session:
            reasons = {r.source_id: r.expectations for r in session.scalars(select(QuarantinedRow))}
            mirrored = session.scalars(select(Deal.source_id)).all()
    finally:
        store.dispose()
    assert (counts.read, counts.loaded, counts.quarantined) == (8, 5, 3)
    assert reasons["50"] == ["amount '12,50' is not a number"]
    assert reasons["51"] == ["row 8: updated_at 'yesterday' is not an ISO 8601 timestamp"]
    assert reasons["52"] == ["close_on '31/01/2026' is not an ISO date (YYYY-MM-DD)"]
    assert sorted(mirrored) == ["1", "2", "3", "4", "5"]


def test_missing_files_and_columns_are_clear_fatal_errors(tmp_path: Path) -> None:
    with pytest.raises(FatalSourceError, match=r"deals\.csv or deals\.xlsx in"):
        list(reader_for(tmp_path).read(STREAM["deals"], None))
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "updated_at", "name"])
    sheet.append([1, datetime(2026, 1, 1), "Acme"])
    workbook.save(tmp_path / "deals.xlsx")
    with pytest.raises(FatalSourceError, match=r"deals\.xlsx lacks column\(s\) \['created_at'"):
        list(reader_for(tmp_path).read(STREAM["deals"], None))
    (tmp_path / "reps.xlsx").write_text("not a workbook")
    with pytest.raises(FatalSourceError, match=r"cannot read reps\.xlsx"):
        list(reader_for(tmp_path).read(STREAM["reps"], None))
    with pytest.raises(FatalSourceError, match="is not a directory"):
        reader_for(tmp_path / "nowhere")


def test_reconcile_lists_live_ids_only(exports: Path) -> None:
    ids = [i for page in reader_for(exports).ids(STREAM["deals"]) for i in page]
    assert "7" not in ids  # deleted in the export
    assert sorted(ids, key=int) == [str(i) for i in range(1, 41) if i != 7]
