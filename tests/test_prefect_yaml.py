"""prefect.yaml as ops rely on it: three deployments on one pool, none on the warm path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flows.sync import sync_okrs
from okr_sync.webhooks import SOURCE_CHANGED, source_event

ROOT = Path(__file__).resolve().parent.parent


def deployments() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert "definitions" in config
    return {d["name"]: d for d in config["deployments"]}


def test_three_deployments_on_one_process_pool() -> None:
    found = deployments()
    assert set(found) == {
        "incremental-sync",
        "nightly-reconcile",
        "backfill",
    }
    assert {d["work_pool"]["name"] for d in found.values()} == {"okr-sync"}
    assert found["incremental-sync"]["schedules"][0]["cron"] == "*/15 * * * *"
    nightly = found["nightly-reconcile"]
    assert nightly["schedules"]
    assert nightly["parameters"]["full_refresh"] is True
    assert nightly["parameters"]["reconcile"] is True
    assert nightly["parameters"]["refreeze_baselines"] is False
    assert "schedules" not in found["backfill"]
    assert {"backfill_from", "backfill_to", "sources"} <= set(found["backfill"]["parameters"])
    documented = sync_okrs.parameters.properties
    for deployment in found.values():
        for name in deployment["parameters"]:
            assert documented[name].get("description"), f"{name} has no description"


def test_a_source_change_has_one_path_the_warm_task_worker() -> None:
    # okr-sync webhooks serve submits the background sync itself (okr_sync/webhooks.py); a
    # deployment triggered by the same event would sync every change a second time
    for name, deployment in deployments().items():
        assert not deployment.get("triggers"), f"{name} reacts to events"
    event = source_event("zendesk", [{"type": "ticket", "id": "1", "change": "created"}])
    assert event["event"] == SOURCE_CHANGED  # still emitted, for automations and the UI
    assert event["resource"]["okr-sync.source"] == "zendesk"
