"""The flow's deployment parameters: one source, a backfill window, frozen baselines kept;
and what each run publishes: one event per changed key result and its artifact."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy import delete, select

from connectors.sandbox.server import RunningServer
from flows.artifacts import (
    ARTIFACT_KEY,
    STATUS_CHANGED,
    SUMMARY_ARTIFACT_KEY,
    VALUE_CHANGED,
    change_events,
    changes_table,
)
from flows.plan import SyncRequest
from flows.settings import Settings
from flows.sync import run_sync, sync_okrs
from okr_sync.cli import DEMO_OKRS
from okr_targets.config import ConfigError, load_okrs
from okr_targets.models import Cursor, Deal, SourceRead
from okr_targets.store import Store
from transforms.measure import KeyResultOutcome

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run(store_url: str, **parameters: Any) -> Any:
    return sync_okrs(okr_file=str(DEMO_OKRS), store_url=store_url, return_state=True, **parameters)


def test_one_source_only(sqlite_url: str, sources_env: dict[str, RunningServer]) -> None:
    state = run(sqlite_url, sources=["zendesk"])
    assert state.is_completed(), state.message
    report = state.result().to_dict()
    assert report["streams"]
    assert {name.split(".")[0] for name in report["streams"]} == {"zendesk"}
    store = Store.open(sqlite_url)
    with store.session() as session:
        assert set(session.scalars(select(SourceRead.source))) == {"zendesk"}
        assert {c.source for c in session.scalars(select(Cursor))} == {"zendesk"}
    store.dispose()
    # every key result is still measured (those on Salesforce data have none yet)
    expected = {kr.id for _, kr, _ in load_okrs(DEMO_OKRS).key_results()}
    assert {kr["key_result_id"] for kr in report["key_results"]} == expected


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"sources": ["hubspot"]}, "source 'hubspot' is not among"),
        ({"backfill_from": "2026-Q5"}, "backfill:"),
        ({"backfill_to": "2026-Q3"}, "backfill_to needs backfill_from"),
        ({"backfill_from": "2026-Q3", "full_refresh": True}, "cannot also be a full refresh"),
        ({"backfill_from": "2026-Q4", "backfill_to": "2026-Q1"}, "ends before"),
    ],
)
def test_bad_scope_is_a_clear_failure(
    sqlite_url: str, sources_env: dict[str, RunningServer], parameters: dict, message: str
) -> None:
    state = run(sqlite_url, **parameters)
    assert state.is_failed()
    assert message in (state.message or "")
    assert "Traceback" not in (state.message or "")


def test_backfill_restores_a_window_and_leaves_cursors_alone(
    sqlite_url: str, sources_env: dict[str, RunningServer]
) -> None:
    assert run(sqlite_url).is_completed()
    store = Store.open(sqlite_url)
    with store.session() as session:
        cursors = {(c.source, c.stream): c.value for c in session.scalars(select(Cursor))}
        reads = {r.source: r.read_at for r in session.scalars(select(SourceRead))}
        deals = {d.source_id: d.source_modified_at for d in session.scalars(select(Deal))}
    # the mirror loses the deals last changed in 2026 (say, a restore from an old backup)
    lost = {key for key, modified in deals.items() if modified.year == 2026}
    kept = set(deals) - lost
    assert lost
    assert kept
    with store.session() as session, session.begin():
        session.execute(delete(Deal).where(Deal.source_id.in_(lost)))
    # an incremental sync brings back only those in its lookback: the rest did not change
    assert run(sqlite_url, sources=["salesforce"]).is_completed()
    with store.session() as session:
        assert lost - set(session.scalars(select(Deal.source_id)))

    state = run(sqlite_url, sources=["salesforce"], backfill_from="2026")
    assert state.is_completed(), state.message
    with store.session() as session:
        assert set(session.scalars(select(Deal.source_id))) == set(deals)
        after = {(c.source, c.stream): c.value for c in session.scalars(select(Cursor))}
        assert {r.source: r.read_at for r in session.scalars(select(SourceRead))}["zendesk"] == (
            reads["zendesk"]
        )
    store.dispose()
    assert {k: v for k, v in after.items() if k[0] == "salesforce"} == {
        k: v for k, v in cursors.items() if k[0] == "salesforce"
    }
    streams = state.result().to_dict()["streams"]
    assert streams["salesforce.Opportunity"]["read"] >= len(lost)


def test_each_changed_key_result_is_an_event_and_the_run_an_artifact(
    sqlite_url: str, sources_env: dict[str, RunningServer]
) -> None:
    state = run(sqlite_url)
    assert state.is_completed(), state.message
    report = state.result().to_dict()
    changed = {kr["key_result_id"] for kr in report["key_results"] if kr["changed"]}
    assert changed

    artifacts = artifacts_of(state)
    assert artifacts.keys() == {ARTIFACT_KEY, SUMMARY_ARTIFACT_KEY}
    artifact = artifacts[ARTIFACT_KEY]
    assert artifact.type == "table"
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert {row["key result"] for row in rows} == changed
    # the demo's pct_change key results (2026-Q4 against the previous quarter) read as changes
    changes = [row for row in rows if row["key result"] in {"deal-value", "sales-cycle"}]
    assert changes
    for row in changes:
        assert row["new value"] == "—" or row["new value"].endswith("% vs 2026-Q3"), row
        assert row["target"] in {"+20.0% vs 2026-Q3", "\u221210.0% vs 2026-Q3"}, row
    # the summary is the dashboard's: every key result, changed or not
    summary = artifacts[SUMMARY_ARTIFACT_KEY]
    assert summary.type == "markdown"
    for _, spec, _ in load_okrs(DEMO_OKRS).key_results():
        assert spec.title in str(summary.data)

    # nothing new at the sources: nothing changed, and the run's artifact says so
    second = run(sqlite_url)
    assert not any(kr["changed"] for kr in second.result().to_dict()["key_results"])
    artifact = artifacts_of(second)[ARTIFACT_KEY]
    assert artifact.type == "markdown"
    assert "changed no key result" in str(artifact.data)


def artifacts_of(state: Any) -> dict[str, Any]:
    """The run's artifacts by key (each key once)."""

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
                )
            )

    artifacts = asyncio.run(read())
    assert len({a.key for a in artifacts}) == len(artifacts)
    return {a.key: a for a in artifacts}


def test_change_events_carry_old_and_new_value_progress_and_status() -> None:
    config = load_okrs(DEMO_OKRS)

    def outcome(
        kr: str, value: float, unit: str, status: str, changed: bool, old: float, was: str
    ) -> Any:
        return KeyResultOutcome(
            kr, value, unit, status, 0.35, changed, 10, None, old, was, expected_progress=0.5
        )

    outcomes = [
        outcome("won-revenue", 1.2e6, "USD", "off_track", True, 1.25e6, "on_track"),
        outcome("win-rate", 31.0, "%", "on_track", True, 30.0, "on_track"),
        outcome("csat", 80.0, "%", "on_track", False, 80.0, "on_track"),
    ]
    sales_cycle = KeyResultOutcome(
        "sales-cycle", 3.0, "%", "off_track", 0.0, True, 10, None, -2.920137737087879,
        "at_risk", expected_progress=0.5, baseline_period="2026-Q3",
    )  # fmt: skip
    events = change_events(config, [*outcomes, sales_cycle], "run-1")
    assert [e["event"] for e in events] == [STATUS_CHANGED, VALUE_CHANGED, STATUS_CHANGED]
    off = events[0]
    assert off["resource"]["prefect.resource.id"] == "okr-sync.key-result.won-revenue"
    assert off["resource"]["okr-sync.status"] == "off_track"
    assert off["resource"]["okr-sync.owner"] == "ceo@acme-demo.example"
    assert (
        off["payload"].items()
        >= {
            "old_value": 1.25e6,
            "new_value": 1.2e6,
            "progress": 0.35,
            "status": "off_track",
            "previous_status": "on_track",
            "run_id": "run-1",
            # as a person reads them: the demo's target is 3,400,000 USD
            "value_text": "1.2M USD",
            "old_value_text": "1.25M USD",
            "target_text": "3.4M USD",
            "progress_text": "35% done, 50% expected",
            "change_text": "\u221250k USD (was 1.25M USD)",
        }.items()
    )
    assert off["related"][0]["prefect.resource.id"] == "okr-sync.objective.company-revenue"
    # a change key result: signed, against its baseline period; its target is -10
    assert (
        events[2]["payload"].items()
        >= {
            "value_text": "+3.0% vs 2026-Q3",
            "target_text": "\u221210.0% vs 2026-Q3",
            "progress_text": "0% done, 50% expected",
            "change_text": "+5.9 pts (was \u22122.9% vs 2026-Q3)",  # 3 - (-2.92) = 5.92
            "baseline_period": "2026-Q3",
        }.items()
    )
    rows = changes_table(events)
    assert rows[0]["status"] == "on_track → off_track"
    assert (rows[0]["old value"], rows[0]["new value"]) == ("1.25M USD", "1.2M USD")
    assert rows[1]["change"] == "+1 pts (was 30%)"
    assert rows[0]["target"] == "3.4M USD"


def test_some_streams_only_and_an_unknown_stream_is_a_one_line_error(sqlite_url: str) -> None:
    config = load_okrs(DEMO_OKRS)
    request = SyncRequest(okr_file=str(DEMO_OKRS), streams=("salesforce.Opportunity",))
    assert [(source, stream.name) for source, stream in request.chosen_streams(config)] == [
        ("salesforce", "Opportunity")
    ]
    both = SyncRequest(
        okr_file=str(DEMO_OKRS),
        sources=("zendesk",),
        streams=("zendesk.tickets", "zendesk.organizations"),
    )
    assert [stream.name for _, stream in both.chosen_streams(config)] == [
        "organizations",
        "tickets",
    ]
    # the demo reads no Salesforce Cases; a stream of another source is not among zendesk's
    for unknown in ("salesforce.Case", "salesforce.Opportunity"):
        with pytest.raises(ConfigError) as error:
            SyncRequest(
                okr_file=str(DEMO_OKRS), sources=("zendesk",), streams=(unknown,)
            ).chosen_streams(config)
        assert str(error.value).startswith(f"stream {unknown!r} is not among the streams ")
        assert "\n" not in str(error.value)
    # deletes are found per entity, and an entity may come from a stream not read
    report = run_sync(
        SyncRequest(okr_file=str(DEMO_OKRS), streams=both.streams, full_refresh=True),
        sqlite_url,
        Settings(),
    )
    assert report.status == "failed"
    assert report.reason == "a sync of some streams cannot also be a full refresh or reconcile"
