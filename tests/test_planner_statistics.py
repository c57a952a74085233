"""A sync keeps PostgreSQL's planner statistics fresh itself (issue 25): the tables a first
sync fills are analyzed before its key results are measured, the lineage rows its
measuring wrote after it (the next pass joins them), and a sync that changes nothing
analyzes nothing. Counted from PostgreSQL's own statistics views."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from connectors.sandbox.server import RunningServer
from flows.plan import SyncRequest
from flows.settings import Settings
from flows.sync import sync_store
from okr_sync.cli import DEMO_OKRS
from okr_targets.models import MIRROR, Base, CustomerLink, MeasurementRecord
from okr_targets.store import Store

TABLES = [model.__tablename__ for model in MIRROR.values()] + [
    CustomerLink.__tablename__,
    MeasurementRecord.__tablename__,
]


def sync(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        report = sync_store(store, SyncRequest(str(DEMO_OKRS)), Settings())
    finally:
        store.dispose()
    assert report.status == "complete", report.reason


def analyses(store_url: str) -> dict[str, tuple[int, int]]:
    """Each table's (rows held, manual ANALYZE count)."""
    store = Store(store_url)
    try:
        with store.engine.connect() as connection:
            counts: dict[str, int] = dict(
                connection.execute(
                    text(
                        "SELECT relname, analyze_count FROM pg_stat_user_tables"
                        " WHERE relname = ANY(:names)"
                    ),
                    {"names": TABLES},
                ).all()
            )
            held = {
                name: connection.scalar(
                    select(func.count()).select_from(Base.metadata.tables[name])
                )
                for name in TABLES
            }
    finally:
        store.dispose()
    return {name: (int(held[name] or 0), int(counts[name])) for name in TABLES}


@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_harness")
def test_a_first_sync_analyzes_what_it_loaded_and_a_no_change_sync_does_not(
    postgres_url: str, sources_env: dict[str, RunningServer]
) -> None:
    sync(postgres_url)
    first = analyses(postgres_url)
    loaded = {name for name, (rows, _) in first.items() if rows}
    assert {"mirror_deals", "mirror_customers", "customer_links", "measurement_records"} <= loaded
    assert {name: count for name, (_, count) in first.items() if name in loaded} == dict.fromkeys(
        loaded, 1
    )

    sync(postgres_url)
    assert analyses(postgres_url) == first
