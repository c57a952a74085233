"""The store: migrations match the models, timestamps stay UTC, upserts never go back in time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select, text

from okr_targets.models import (
    Base,
    Cursor,
    Deal,
    KeyResult,
    Measurement,
    MeasurementRecord,
    Objective,
    SyncRun,
    Ticket,
)
from okr_targets.periods import Period
from okr_targets.report import build_report
from okr_targets.store import Store, alembic_config, normalize_url, redact, upsert_records
from transforms.catalog import BUILT_IN


# SQLite cannot reflect expression indexes (lower(domain)), so Alembic skips comparing them
# there: the test below checks them by name on both databases.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migrations_build_exactly_the_models(store_url: str) -> None:
    store = Store.open(store_url)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        if connection.dialect.name == "sqlite":
            listed = "SELECT name FROM sqlite_master WHERE type = 'index'"
        else:
            listed = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        built = set(connection.execute(text(listed)).scalars())
    assert differences == []
    expected = {index.name for table in Base.metadata.tables.values() for index in table.indexes}
    assert expected <= built
    head = ScriptDirectory.from_config(alembic_config(store.engine)).get_current_head()
    assert store.revision() == head
    store.upgrade()  # a second upgrade is a no-op
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "objectives",
        "key_results",
        "measurements",
        "sync_runs",
        "cursors",
        "mirror_deals",
        "mirror_customers",
        "mirror_reps",
        "quarantined_rows",
    } <= tables
    store.dispose()


def deal(modified: datetime, amount: str) -> dict[str, object]:
    return {
        "source": "salesforce",
        "source_id": "006A",
        "source_modified_at": modified,
        "deleted_at": None,
        "run_id": "r",
        "name": "Deal",
        "customer_id": None,
        "owner_id": None,
        "amount": Decimal(amount),
        "currency": "EUR",
        "stage": "Closed Won",
        "outcome": "won",
        "pipeline": None,
        "deal_type": None,
        "created_at": modified - timedelta(days=3),
        "close_on": date(2026, 11, 2),
    }


def test_upsert_keeps_the_newest_copy_and_utc(store_url: str) -> None:
    store = Store.open(store_url)
    newer = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    in_new_york = newer.astimezone(ZoneInfo("America/New_York"))
    with store.session() as session, session.begin():
        upsert_records(session, Deal, [deal(in_new_york, "100.10")])
        upsert_records(session, Deal, [deal(newer - timedelta(hours=1), "1.00")])  # older copy
    with store.session() as session:
        row = session.get(Deal, ("salesforce", "006A"))
        assert row is not None
        assert row.amount == Decimal("100.10")
        assert row.currency == "EUR"
        assert row.source_modified_at == newer
        assert row.source_modified_at.utcoffset() == timedelta(0)
    with store.session() as session, session.begin():
        upsert_records(session, Deal, [deal(newer - timedelta(hours=1), "1.00")], replace=True)
    with store.session() as session:
        row = session.get(Deal, ("salesforce", "006A"))
        assert row is not None
        assert row.amount == Decimal("1.00")
    store.dispose()


def test_naive_timestamps_are_refused(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    with store.session() as session, pytest.raises(Exception, match="naive datetime"):
        upsert_records(session, Deal, [deal(datetime(2026, 11, 2, 10, 0), "1")])  # noqa: DTZ001
    store.dispose()


def test_urls_are_redacted_and_normalized() -> None:
    assert redact("postgresql://okr:s3cret@db:5432/okr") == "postgresql://okr:***@db:5432/okr"
    assert normalize_url("postgresql://u@h/d").startswith("postgresql+psycopg://")
    assert normalize_url("sqlite:///okr.db") == "sqlite:///okr.db"


def test_report_rolls_up_and_scores_with_the_files_thresholds(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    q4 = Period.parse("2026-Q4")
    halfway = q4.start_at + (q4.end_at - q4.start_at) / 2
    with store.session() as session, session.begin():
        session.add(SyncRun(id="r", started_at=halfway, status="complete", code_version="t"))
        session.add(Objective(id="top", title="Top", owner="ceo", period="2026-Q4"))
        session.add(
            Objective(id="team", title="Team", owner="lead", period="2026-Q4", parent_id="top")
        )
        for kr_id, objective, value, gaps in (
            ("a", "top", 40.0, (0.2, 0.3)),
            ("b", "team", 40.0, (0.05, 0.08)),
        ):
            session.add(
                KeyResult(
                    id=kr_id,
                    objective_id=objective,
                    title=kr_id,
                    owner="o",
                    period="2026-Q4",
                    metric="won_revenue",
                    params={},
                    baseline=0,
                    target=100,
                    direction="increase",
                    unit="USD",
                    at_risk_gap=gaps[0],
                    off_track_gap=gaps[1],
                )
            )
            session.flush()
            session.add(
                Measurement(
                    key_result_id=kr_id,
                    run_id="r",
                    measured_at=halfway,
                    value=value,
                    unit="USD",
                    progress=0.4,
                    progress_raw=0.4,
                    expected_progress=0.5,
                    status="?",
                    metric="won_revenue",
                    params={},
                    details={},
                    record_count=0,
                    code_version="t",
                )
            )
    with store.session() as session:
        [top] = build_report(session, halfway)
    assert top.key_results[0].status == "on_track"  # gap 0.1 within its 0.2 tolerance
    assert top.children[0].key_results[0].status == "off_track"  # beyond its 0.08
    assert top.children[0].progress == pytest.approx(0.4)
    assert top.progress == pytest.approx(0.4)  # mean of its key result and its child
    store.dispose()


def test_a_record_twice_in_one_batch_keeps_its_newest_copy(store_url: str) -> None:
    """A record that changed while the source paged can arrive twice; PostgreSQL would
    refuse to update one row twice in a statement."""
    store = Store.open(store_url)
    older = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    with store.session() as session, session.begin():
        written = upsert_records(
            session, Deal, [deal(older + timedelta(minutes=5), "2.00"), deal(older, "1.00")]
        )
    assert written == {"006A"}
    with store.session() as session:
        row = session.get(Deal, ("salesforce", "006A"))
        assert row is not None
        assert row.amount == Decimal("2.00")
    store.dispose()


def test_a_store_made_by_the_first_release_upgrades_in_place(store_url: str) -> None:
    """0001 → head keeps the data: cursors gain ``last_id``, finished runs read "complete",
    and a measurement keeps its lineage rows while SQLite rebuilds its table."""
    store = Store(store_url)
    command.upgrade(alembic_config(store.engine), "0001")
    started = datetime(2026, 11, 1, tzinfo=UTC)
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sync_runs (id, started_at, status, stream_counts, details, "
                "code_version) VALUES ('old', :at, 'success', '{}', '{}', '0.1')"
            ),
            {"at": started},
        )
        connection.execute(
            text(
                "INSERT INTO cursors (source, stream, value, run_id, updated_at) "
                "VALUES ('salesforce', 'Opportunity', :at, 'old', :at)"
            ),
            {"at": started},
        )
        connection.execute(
            text(
                "INSERT INTO objectives (id, title, owner, period, updated_at) "
                "VALUES ('o', 'O', 'me', '2026-Q4', :at)"
            ),
            {"at": started},
        )
        connection.execute(
            text(
                "INSERT INTO key_results (id, objective_id, title, owner, period, metric, "
                "params, baseline, target, direction, unit, at_risk_gap, off_track_gap, "
                "updated_at) VALUES ('kr', 'o', 'KR', 'me', '2026-Q4', 'won_revenue', '{}', "
                "0, 10, 'decrease', '', 0.1, 0.25, :at)"
            ),
            {"at": started},
        )
        connection.execute(
            text(
                "INSERT INTO measurements (id, key_result_id, run_id, measured_at, value, unit, "
                "expected_progress, status, metric, params, details, record_count, "
                "code_version) VALUES (1, 'kr', 'old', :at, 5, '', 0.5, 'on_track', "
                "'won_revenue', '{}', '{}', 1, '0.1')"
            ),
            {"at": started},
        )
        connection.execute(
            text(
                "INSERT INTO measurement_records (measurement_id, entity, source, source_id) "
                "VALUES (1, 'deal', 'salesforce', '006A')"
            )
        )
    store.dispose()

    upgraded = Store.open(store_url)
    with upgraded.session() as session:
        run = session.get(SyncRun, "old")
        cursor = session.get(Cursor, ("salesforce", "Opportunity"))
        lineage = session.scalars(select(MeasurementRecord.source_id)).all()
        kind = session.scalars(select(KeyResult.kind)).one()
    upgraded.dispose()
    assert lineage == ["006A"]
    assert kind == "decrease_to"
    assert run is not None
    assert run.status == "complete"
    assert cursor is not None
    assert (cursor.value, cursor.last_id) == (started, None)


def test_an_upgrade_computes_the_first_reply_wait_of_tickets_already_stored(
    store_url: str,
) -> None:
    """0007 makes the wait a generated column: tickets stored before it get theirs, to the
    millisecond, and the median first response reads them."""
    store = Store(store_url)
    command.upgrade(alembic_config(store.engine), "0006")
    created = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)
    waits = {"1": timedelta(hours=2, milliseconds=7), "2": timedelta(hours=3), "3": None}
    with store.engine.begin() as connection:
        connection.execute(
            insert(Ticket),
            [
                {
                    "source": "zendesk",
                    "source_id": ticket_id,
                    "source_modified_at": created,
                    "run_id": "r",
                    "created_at": created,
                    "first_response_at": None if wait is None else created + wait,
                }
                for ticket_id, wait in waits.items()
            ],
        )
    store.dispose()
    upgraded = Store.open(store_url)
    with upgraded.session() as session:
        stored = dict(
            session.execute(select(Ticket.source_id, Ticket.first_response_ms)).tuples().all()
        )
        median = BUILT_IN.find("median_first_response_hours").run(
            session, Period.parse("2026-Q4"), {}
        )
    upgraded.dispose()
    assert stored == {"1": 7_200_007, "2": 10_800_000, "3": None}
    assert median.record_count == 2
    assert median.value == (2 * 3600 + 0.007 + 3 * 3600) / 3600 / 2
