"""The sync flow end to end: sandbox → simple-salesforce → validation → mirror → measurements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.salesforce.sandbox.data import SalesforceOrg, write_org
from connectors.salesforce.sandbox.data import load_org as load_seed_dir
from connectors.salesforce.sandbox.emulator import create_app
from connectors.salesforce.timestamps import parse_sf_datetime
from connectors.sandbox.server import RunningServer, serve_tls
from flows.report import RunReport
from flows.sync import sync_okrs
from okr_sync.cli import DEMO_OKRS
from okr_targets.config import load_okrs
from okr_targets.models import (
    Cursor,
    Deal,
    KeyResult,
    Measurement,
    MeasurementRecord,
    QuarantinedRow,
    Rep,
    SyncRun,
)
from okr_targets.store import Store
from tests.conftest import salesforce_env_vars
from tests.test_metrics_correctness import Oracle

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run_flow(okr_file: Path, store_url: str) -> dict[str, Any]:
    state = sync_okrs(okr_file=str(okr_file), store_url=store_url, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, RunReport)
    return report.to_dict()


def count(store: Store, model: Any) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.usefixtures("clock")  # no status moves with the date between the two runs
def test_demo_okrs_sync_end_to_end(
    store_url: str, sources_env: dict[str, RunningServer], sandbox_org: SalesforceOrg
) -> None:
    report = run_flow(DEMO_OKRS, store_url)

    assert report["status"] == "complete"
    opportunities = sandbox_org.records("Opportunity", include_deleted=True)
    deal_counts = report["streams"]["salesforce.Opportunity"]
    assert deal_counts["read"] == len(opportunities)
    assert deal_counts["loaded"] + deal_counts["quarantined"] == deal_counts["read"]
    assert deal_counts["deleted"] == sum(1 for o in opportunities if o["IsDeleted"])
    assert report["streams"]["salesforce.User"]["loaded"] == len(sandbox_org.records("User"))

    store = Store.open(store_url)
    config = load_okrs(DEMO_OKRS)
    expected_ids = {kr.id for _, kr, _ in config.key_results()}
    assert {kr["key_result_id"] for kr in report["key_results"]} == expected_ids
    assert count(store, Measurement) == len(expected_ids)
    with store.session() as session:
        run = session.get(SyncRun, report["run_id"])
        assert run is not None
        assert run.status == "complete"
        assert run.finished_at is not None
        assert run.stream_counts == report["streams"]
        cursors = {c.stream: c.value for c in session.scalars(select(Cursor))}
        assert set(cursors) == {stream.name for _, stream in config.streams()}
        newest = parse_sf_datetime(max(o["SystemModstamp"] for o in opportunities))
        # the cursor is the newest change read, but never past the run's start (the
        # sandbox's data runs to noon, possibly later than now)
        assert run.finished_at is not None
        assert cursors["Opportunity"] == min(newest, cursors["Opportunity"])
        assert cursors["Opportunity"] == newest or cursors["Opportunity"] < run.finished_at
        # lineage: every measurement lists the records its value rests on; here the first
        # won deal of each new customer, found by hand in the sandbox org's records
        expected = Oracle(sandbox_org).new_customers("2026-Q4", {})
        assert expected.value
        new_customers = session.scalars(
            select(Measurement).where(Measurement.key_result_id == "new-customers")
        ).one()
        linked = session.scalars(
            select(MeasurementRecord.source_id).where(
                MeasurementRecord.measurement_id == new_customers.id
            )
        ).all()
        assert new_customers.value == new_customers.record_count == expected.value
        assert sorted(linked) == sorted(expected.ids)
        assert session.get(KeyResult, "new-customers").checked_at is not None  # type: ignore[union-attr]

    # A second run with nothing new at the source writes no new measurement.
    second = run_flow(DEMO_OKRS, store_url)
    assert second["status"] == "complete"
    assert not any(kr["changed"] for kr in second["key_results"])
    assert count(store, Measurement) == len(expected_ids)
    assert count(store, Deal) == len(opportunities)
    store.dispose()


def test_bad_rows_are_quarantined_and_counted(
    sandbox_org: SalesforceOrg,
    sources_env: dict[str, RunningServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_url: str,
) -> None:
    seed_dir = tmp_path / "org"
    write_org(sandbox_org, seed_dir)
    lines = (seed_dir / "Opportunity.jsonl").read_text().splitlines()
    broken = {
        0: {"Amount": -500.0},  # fails expect_column_values_to_be_between(amount)
        1: {"CurrencyIsoCode": "usd"},  # fails the ISO currency regex
    }
    bad_ids = []
    for index, change in broken.items():
        record = json.loads(lines[index]) | change
        bad_ids.append(record["Id"])
        lines[index] = json.dumps(record)
    (seed_dir / "Opportunity.jsonl").write_text("\n".join(lines) + "\n")
    org = load_seed_dir(seed_dir)
    # A value no mapping can read; the seed loader would refuse it, so it is added raw.
    unreadable = json.loads(lines[2]) | {"Id": "006000000000999AAA", "CreatedDate": "yesterday"}
    org.add("Opportunity", unreadable)
    bad_ids.append(unreadable["Id"])

    with serve_tls(create_app(org)) as server:
        for name, value in salesforce_env_vars(server).items():
            monkeypatch.setenv(name, value)
        report = run_flow(DEMO_OKRS, sqlite_url)

    counts = report["streams"]["salesforce.Opportunity"]
    assert counts["quarantined"] == 3
    assert counts["loaded"] == counts["read"] - 3
    store = Store.open(sqlite_url)
    with store.session() as session:
        rows = {q.source_id: q for q in session.scalars(select(QuarantinedRow))}
        assert set(rows) == set(bad_ids)
        assert rows[bad_ids[0]].expectations == ["expect_column_values_to_be_between(amount)"]
        assert rows[bad_ids[1]].expectations == ["expect_column_values_to_match_regex(currency)"]
        assert rows[bad_ids[2]].expectations == [
            "mapping: CreatedDate 'yesterday' is not a Salesforce datetime"
        ]
        assert all(q.run_id == report["run_id"] for q in rows.values())
        mirrored = set(session.scalars(select(Deal.source_id).where(Deal.source_id.in_(bad_ids))))
        assert mirrored == set()
    store.dispose()


def test_personal_okr_follows_its_rep(
    store_url: str, sources_env: dict[str, RunningServer]
) -> None:
    """A person-level key result counts only that rep's deals (the cascade reaches people)."""
    run_flow(DEMO_OKRS, store_url)
    store = Store.open(store_url)
    with store.session() as session:
        marcus = session.scalars(
            select(Rep).where(Rep.email == "marcus.reed@acme-demo.example")
        ).one()
        measurement = session.scalars(
            select(Measurement).where(Measurement.key_result_id == "marcus-reed-won-revenue")
        ).one()
        deal_ids = set(
            session.scalars(
                select(MeasurementRecord.source_id).where(
                    MeasurementRecord.measurement_id == measurement.id
                )
            )
        )
        owners = set(session.scalars(select(Deal.owner_id).where(Deal.source_id.in_(deal_ids))))
        assert owners <= {marcus.source_id}
    store.dispose()
