"""prefect.yaml as ops rely on it: four deployments on one pool, none on the warm path."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.server.schemas.schedules import CronSchedule

from flows.digest import send_digest
from flows.sync import sync_okrs
from okr_sync.webhooks import SOURCE_CHANGED, source_event

ROOT = Path(__file__).resolve().parent.parent


def deployments() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert "definitions" in config
    return {d["name"]: d for d in config["deployments"]}


def test_four_deployments_on_one_process_pool() -> None:
    found = deployments()
    assert set(found) == {
        "incremental-sync",
        "nightly-reconcile",
        "backfill",
        "weekly-digest",
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
    digest = found["weekly-digest"]
    assert digest["entrypoint"] == "flows/digest.py:send_digest"
    assert digest["schedules"][0]["cron"] == "5 8 * * 1"  # Mondays, past the hour
    assert "store_url" not in digest["parameters"]  # a password must never be a parameter
    assert "store_url" not in send_digest.parameters.properties
    flows: dict[str, Flow[..., Any]] = {
        "flows/sync.py:sync_okrs": sync_okrs,
        "flows/digest.py:send_digest": send_digest,
    }
    for deployment in found.values():
        documented = flows[deployment["entrypoint"]].parameters.properties
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
    assert event["resource"]["prefect.resource.id"].startswith("okr-sync.source.")


def fire_minutes(schedule: dict[str, Any], start: datetime, days: int) -> set[datetime]:
    """Every minute ``schedule`` fires in, over ``days`` days from ``start``, as Prefect's
    scheduler computes it (day by day: it checks at most 1,000 dates a call)."""
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
    found: set[datetime] = set()
    for day in range(days):
        begin, end = start + timedelta(days=day), start + timedelta(days=day + 1)
        dates = asyncio.run(cron.get_dates(start=begin, end=end))  # ``end`` is inclusive
        found |= {d.astimezone(UTC).replace(second=0, microsecond=0) for d in dates if d < end}
    return found


def test_no_two_schedules_fire_in_the_same_minute_all_week() -> None:
    """A reconcile and an incremental sync started together would only queue (the pool's
    limit, the writer lock), but the shipped schedules do not even meet."""
    week = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday; the crons are UTC, so any week will do
    fired = {
        (name, index): fire_minutes(schedule, week, days=7)
        for name, deployment in deployments().items()
        for index, schedule in enumerate(deployment.get("schedules") or [])
    }
    assert len(fired[("incremental-sync", 0)]) == 7 * 24 * 4
    assert len(fired[("nightly-reconcile", 0)]) == 7
    for (one, one_minutes), (other, other_minutes) in combinations(fired.items(), 2):
        assert not one_minutes & other_minutes, f"{one} and {other} fire in the same minute"
