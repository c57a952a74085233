"""Incremental sync by SystemModstamp: only changes are read, deletes become tombstones."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connectors.salesforce.sandbox.data import SalesforceOrg, generate_org
from expectations import Validator
from okr_targets.models import Cursor, Deal, SyncRun
from okr_targets.store import Store
from tests.conftest import AS_OF, sync_sources


@pytest.fixture
def live_org() -> SalesforceOrg:
    """An org this test may change (the session's sandbox org must stay as generated)."""
    return generate_org(seed=3, as_of=AS_OF, accounts=60, opportunities=300)


def stream_counts(store_url: str, run_id: str) -> dict[str, dict[str, int]]:
    store = Store.open(store_url)
    with store.session() as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
        counts: dict[str, dict[str, int]] = run.stream_counts
    store.dispose()
    return counts


@pytest.mark.usefixtures("live_sandbox")
def test_second_sync_reads_only_changes_and_tombstones_deletes(
    store_url: str, live_org: SalesforceOrg, validator: Validator
) -> None:
    first = sync_sources(store_url, validator)
    assert stream_counts(store_url, first)["Opportunity"]["read"] == 300
    # The lower bound is inclusive, so records stamped exactly at the cursor are read again.
    opportunities = live_org.records("Opportunity", include_deleted=True)
    newest = max(o["SystemModstamp"] for o in opportunities)
    at_cursor = sum(1 for o in opportunities if o["SystemModstamp"] == newest)

    live = [o for o in live_org.records("Opportunity") if not o["IsWon"]]
    changed, deleted = live[0], live[1]
    live_org.upsert("Opportunity", {"Id": changed["Id"], "Amount": 123456.78})
    live_org.delete("Opportunity", deleted["Id"])

    second = sync_sources(store_url, validator)
    counts = stream_counts(store_url, second)
    assert counts["Opportunity"]["read"] == 2 + at_cursor
    assert counts["Opportunity"]["deleted"] == 1
    assert counts["Account"]["read"] <= 1

    store = Store.open(store_url)
    with store.session() as session:
        updated = session.get(Deal, ("salesforce", changed["Id"]))
        tombstone = session.get(Deal, ("salesforce", deleted["Id"]))
        assert updated is not None
        assert float(updated.amount or 0) == pytest.approx(123456.78)
        assert updated.run_id == second
        assert tombstone is not None
        assert tombstone.deleted_at is not None
        assert tombstone.deleted_at.tzinfo is not None
        cursor = session.scalars(select(Cursor).where(Cursor.stream == "Opportunity")).one()
        assert cursor.run_id == second
        assert cursor.value == tombstone.source_modified_at
    store.dispose()


@pytest.mark.usefixtures("live_sandbox")
def test_a_second_run_with_no_changes_writes_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch, validator: Validator
) -> None:
    """Re-reading the boundary and the lookback window changes no mirror row."""
    monkeypatch.setenv("OKR_SYNC_LOOKBACK_SECONDS", "86400")
    first = sync_sources(store_url, validator)
    second = sync_sources(store_url, validator)
    counts = stream_counts(store_url, second)
    assert counts["Opportunity"]["read"] > 0  # the lookback re-read something…
    assert all(stream["written"] == 0 for stream in counts.values()), counts  # …and wrote nothing
    store = Store.open(store_url)
    with store.session() as session:
        runs = set(session.scalars(select(Deal.run_id)))
    store.dispose()
    assert runs == {first}
