"""The generic SQL source, on a SQLite and a PostgreSQL source database, into both stores."""

# The sources under test keep naive wall times, as exports and many databases do.
# ruff: noqa: DTZ001

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from connectors import canonical
from connectors.base import Bookmark, StreamInfo, get_connector
from connectors.base import open_reader as open_connector
from connectors.canonical import CanonicalRow
from connectors.errors import FatalSourceError, RetriableSourceError
from connectors.sandbox.tabular import BULK_UPDATE, sample_tables, utc
from connectors.sql import SqlReader, SqlSettings
from connectors.sql.sandbox import create_fixture_database, fixture_metadata
from connectors.tabular import STREAMS
from expectations import Validator
from flows.extract import sync_stream
from okr_targets.models import Deal, QuarantinedRow
from okr_targets.store import Store, begin_run

DEALS = next(stream for stream in STREAMS if stream.name == "deals")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The sample billing database, on SQLite or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    create_fixture_database(url)
    return url


@pytest.fixture
def sql_env(source_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OKR_SYNC_SQL_URL", source_url)
    monkeypatch.setenv("OKR_SYNC_SQL_PAGE_SIZE", "5")
    return source_url


def open_reader(url: str, **settings: object) -> SqlReader:
    return SqlReader(SqlSettings(url=url, **settings))  # type: ignore[arg-type]


def read_rows(
    reader: SqlReader, stream: StreamInfo, since: Bookmark | None = None
) -> list[CanonicalRow]:
    return [row for page in reader.read(stream, since) for row in page.rows]


def test_pages_break_timestamp_ties_by_id(source_url: str) -> None:
    """Eleven deals share one updated_at; pages of 3 still read each deal exactly once."""
    reader = open_reader(source_url, page_size=3)
    try:
        pages = list(reader.read(DEALS, None))
    finally:
        reader.close()
    ids = [row["source_id"] for page in pages for row in page.rows]
    expected = sample_tables()["deals"]
    assert sorted(ids, key=int) == [str(deal["id"]) for deal in expected]
    assert len(ids) == len(set(ids))
    tied = [d for d in expected if d["updated_at"] == BULK_UPDATE]
    assert len(tied) > 3  # the tie spans several pages
    # one reflection, one look for rows without a timestamp, one query per page
    assert reader.usage.requests == 2 + len(pages)


def test_rows_are_typed_and_resume_after_the_bookmark(source_url: str) -> None:
    reader = open_reader(source_url, page_size=4)
    try:
        first = list(reader.read(DEALS, None))
        middle = first[2].bookmark
        assert middle is not None
        assert middle.last_id is not None
        rest = read_rows(reader, DEALS, middle)
    finally:
        reader.close()
    rows = {row["source_id"]: row for page in first for row in page.rows}
    deal = cast(canonical.Deal, rows["3"])
    source = sample_tables()["deals"][2]
    assert deal["amount"] == source["amount"]
    assert isinstance(deal["amount"], Decimal)
    assert deal["currency"] == "EUR"
    assert deal["created_at"] == utc(source["created_at"])
    assert deal["source_modified_at"].tzinfo is not None
    assert rows["7"]["deleted_at"] == utc(sample_tables()["deals"][6]["deleted_at"])
    before = {row["source_id"] for page in first[:3] for row in page.rows}
    assert {row["source_id"] for row in rest} == set(rows) - before


def test_naive_timestamps_are_read_in_the_configured_zone(source_url: str) -> None:
    reader = open_reader(source_url, timezone="Europe/Berlin")
    try:
        rows = {row["source_id"]: cast(canonical.Deal, row) for row in read_rows(reader, DEALS)}
    finally:
        reader.close()
    wall = sample_tables()["deals"][0]["created_at"]
    assert wall == datetime(2026, 8, 25, 9, 0)  # summer time in Berlin: UTC+2
    assert rows["1"]["created_at"] == datetime(2026, 8, 25, 7, 0, tzinfo=UTC)


def test_sync_into_the_store_then_only_changes(
    sql_env: str, store_url: str, validator: Validator
) -> None:
    """Through the flow's own task: everything, then only the deal changed at the source."""
    store = Store.open(store_url)
    try:
        first = sync_stream.fn(store, "sql", DEALS, begin_run(store, "test"), validator, 100)
        assert (first.read, first.written, first.deleted) == (40, 40, 1)
        engine = create_engine(sql_env)
        with engine.begin() as connection:
            connection.execute(
                update(fixture_metadata().tables["deals"])
                .where(text("id = 12"))
                .values(amount=Decimal("99999.00"), updated_at=datetime(2026, 11, 26, 8, 0))
            )
        engine.dispose()
        second = sync_stream.fn(
            store,
            "sql",
            DEALS,
            begin_run(store, "test"),
            validator,
            100,
            lookback=timedelta(seconds=60),
        )
        assert second.written == 1
        assert second.read < first.read
        with store.session() as session:
            deal = session.get(Deal, ("sql", "12"))
            assert deal is not None
            assert deal.amount == Decimal("99999.00")
            assert deal.source_modified_at == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    finally:
        store.dispose()


def test_bad_records_are_quarantined_with_the_reason(
    sql_env: str, sqlite_url: str, validator: Validator
) -> None:
    deals = fixture_metadata().tables["deals"]
    engine = create_engine(sql_env)
    base = dict(sample_tables()["deals"][0])
    with engine.begin() as connection:
        connection.execute(insert(deals), [base | {"id": 900, "currency": None}])
        connection.execute(insert(deals), [base | {"id": 901, "updated_at": None}])
    engine.dispose()
    store = Store.open(sqlite_url)
    try:
        counts = sync_stream.fn(store, "sql", DEALS, begin_run(store, "test"), validator, 100)
        with store.session() as session:
            reasons = {
                row.source_id: row.expectations for row in session.scalars(select(QuarantinedRow))
            }
    finally:
        store.dispose()
    assert counts.read == 42
    assert counts.quarantined == 2
    assert counts.loaded == 40
    assert reasons["900"] == ["currency is missing"]
    assert "updated_at is missing" in reasons["901"][0]


def test_the_source_is_opened_read_only(source_url: str) -> None:
    reader = open_reader(source_url)
    try:
        with (
            pytest.raises(DBAPIError, match=r"(?i)read-only|readonly"),
            reader.engine.begin() as connection,
        ):
            connection.execute(text("DELETE FROM deals"))
    finally:
        reader.close()
    engine = create_engine(source_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM deals")).scalar() == 40
    engine.dispose()


def test_missing_tables_and_columns_are_clear_fatal_errors(source_url: str) -> None:
    reader = open_reader(source_url, tables={"deals": "okr_deals"})
    with pytest.raises(FatalSourceError, match=r"okr_deals.*OKR_SYNC_SQL_TABLES"):
        list(reader.read(DEALS, None))
    reader.close()
    reader = open_reader(source_url, tables={"deals": "reps"})
    with pytest.raises(
        FatalSourceError,
        match=r"'reps' \(deals\) lacks column\(s\) "
        r"\['created_at', 'currency', 'outcome', 'stage'\]",
    ):
        list(reader.read(DEALS, None))
    reader.close()


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.db"
    reader = open_reader(f"sqlite:///{path}")
    with pytest.raises(
        FatalSourceError, match="no such database file: unable to open database file"
    ):
        list(reader.read(DEALS, None))
    reader.close()
    assert not path.exists()


def test_the_url_and_its_password_never_appear_in_errors() -> None:
    url = "postgresql://billing:s3cret-pw@127.0.0.1:9/billing"  # nothing listens on port 9
    reader = open_reader(url)
    with pytest.raises(RetriableSourceError) as caught:
        list(reader.read(DEALS, None))
    reader.close()
    assert "s3cret-pw" not in str(caught.value)
    settings = SqlSettings(url=url)  # type: ignore[arg-type]
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in str(settings.model_dump())
    with pytest.raises(FatalSourceError, match="not a SQLAlchemy URL") as bad:
        open_reader("billing:s3cret-pw@nowhere")
    assert "s3cret-pw" not in str(bad.value)


def test_it_is_found_like_every_connector() -> None:
    connector = get_connector("sql")
    assert [stream.entity for stream in connector.streams] == [
        "customer",
        "deal",
        "rep",
        "fx_rate",
        "ticket",
        "rating",
        "finance_line",
    ]


def test_malformed_settings_fail_the_stream_by_variable_name(
    sqlite_url: str, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_SQL_URL", "sqlite:///unused.db")
    monkeypatch.setenv("OKR_SYNC_SQL_TIMEZONE", "Mars/Olympus_Mons")
    store = Store.open(sqlite_url)
    try:
        counts = sync_stream.fn(store, "sql", DEALS, begin_run(store, "test"), validator, 100)
    finally:
        store.dispose()
    assert counts.failed == (
        "sql: OKR_SYNC_SQL_TIMEZONE: Value error, 'Mars/Olympus_Mons' is not an IANA time "
        "zone such as Europe/Berlin"
    )
    monkeypatch.setenv("OKR_SYNC_SQL_TIMEZONE", "UTC")
    monkeypatch.setenv("OKR_SYNC_SQL_TABLES", "{not json")
    with pytest.raises(FatalSourceError) as caught:
        open_connector(get_connector("sql"))
    assert str(caught.value) == (
        "sql: OKR_SYNC_SQL_TABLES cannot be parsed (a list or mapping is JSON)"
    )


@pytest.mark.postgres
def test_aware_timestamp_columns_page_and_resume(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """``timestamptz`` columns (here written as Berlin times) keep their own offset."""
    berlin = ZoneInfo("Europe/Berlin")
    tables = sample_tables()
    for records in tables.values():
        for record in records:
            for key, value in record.items():
                if isinstance(value, datetime):
                    record[key] = value.replace(tzinfo=UTC).astimezone(berlin)
    url = str(request.getfixturevalue("postgres_url"))
    create_fixture_database(url, tables, aware=True)
    reader = open_reader(url, page_size=3, timezone="America/New_York")  # not used: aware
    try:
        pages = list(reader.read(DEALS, None))
        middle = pages[4].bookmark
        assert middle is not None
        rest = read_rows(reader, DEALS, middle)
    finally:
        reader.close()
    rows = {row["source_id"]: cast(canonical.Deal, row) for page in pages for row in page.rows}
    assert len(rows) == 40
    source = sample_tables()["deals"][0]
    assert rows["1"]["created_at"] == utc(source["created_at"])
    assert rows["1"]["source_modified_at"] == utc(source["updated_at"])
    before = {row["source_id"] for page in pages[:5] for row in page.rows}
    assert {row["source_id"] for row in rest} == set(rows) - before
