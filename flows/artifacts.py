"""What a sync tells the world about the key results it changed: events and an artifact.

Each key result whose value or status changed gets one Prefect event, so Prefect
automations can notify its owner (see automations/ and docs/operations.md); each run
publishes one table artifact listing those changes, and one markdown artifact with the
whole OKR summary (the same numbers as the dashboard), for the Prefect UI. Only numbers,
statuses, ids, titles and owners travel: never a record, a URL with a password or a secret.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.events import emit_event

from flows.logs import run_logger
from flows.steps import prefect_api
from okr_targets.config import OkrConfig
from okr_targets.formatting import format_movement, format_progress, format_value
from okr_targets.status import status_label
from okr_targets.store import Store
from okr_targets.summary import store_summary_markdown
from transforms.measure import KeyResultOutcome

VALUE_CHANGED = "okr-sync.key-result.value-changed"
STATUS_CHANGED = "okr-sync.key-result.status-changed"  # its value may have changed too
ARTIFACT_KEY = "okr-sync-key-result-changes"
SUMMARY_ARTIFACT_KEY = "okr-sync-summary"

logger = logging.getLogger("okr_sync")


def key_result_resource_id(key_result_id: str) -> str:
    return f"okr-sync.key-result.{key_result_id}"


def change_events(
    config: OkrConfig, outcomes: list[KeyResultOutcome], run_id: str
) -> list[dict[str, Any]]:
    """The ``emit_event`` arguments for every key result this run changed."""
    specs = {spec.id: (objective, spec) for objective, spec, _ in config.key_results()}
    events = []
    for outcome in outcomes:
        if not outcome.changed or outcome.key_result_id not in specs:
            continue
        objective, spec = specs[outcome.key_result_id]
        owner, period = config.resolved(objective, spec)
        status_changed = outcome.status != outcome.previous_status
        payload: dict[str, Any] = {
            "key_result_id": spec.id,
            "title": spec.title,
            "owner": owner,
            "period": period,
            "old_value": outcome.previous_value,
            "new_value": outcome.value,
            "unit": outcome.unit,
            "baseline_period": outcome.baseline_period,
            "target": spec.target,
            "progress": outcome.progress,
            "previous_status": outcome.previous_status,
            "status": outcome.status,
            "run_id": run_id,
        }
        events.append(
            {
                "event": STATUS_CHANGED if status_changed else VALUE_CHANGED,
                "resource": {
                    "prefect.resource.id": key_result_resource_id(spec.id),
                    "prefect.resource.name": spec.title,
                    "okr-sync.status": outcome.status,
                    "okr-sync.previous-status": outcome.previous_status or "none",
                    "okr-sync.owner": owner,
                    "okr-sync.objective": objective.id,
                },
                "related": [
                    {
                        "prefect.resource.id": f"okr-sync.objective.{objective.id}",
                        "prefect.resource.role": "objective",
                        "prefect.resource.name": objective.title,
                    }
                ],
                "payload": payload | _texts(outcome, spec.target),
            }
        )
    return events


def _texts(outcome: KeyResultOutcome, target: float | None) -> dict[str, Any]:
    """The numbers as the dashboard writes them (``okr_targets.formatting``), for messages:
    "1.2M USD of 3.4M USD target (35% done, 50% expected)"."""
    unit, since = outcome.unit, outcome.baseline_period
    return {
        "value_text": format_value(outcome.value, unit, since),
        "old_value_text": format_value(outcome.previous_value, unit, since),
        "target_text": format_value(target, unit, since),
        "progress_text": format_progress(outcome.progress, outcome.expected_progress),
        "change_text": format_movement(outcome.previous_value, outcome.value, unit, since),
        "previous_status_text": (
            status_label(outcome.previous_status) if outcome.previous_status else "not measured"
        ),
    }


def changes_table(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per changed key result, as the run's artifact shows it."""
    rows = []
    for event in events:
        payload = event["payload"]
        rows.append(
            {
                "key result": payload["key_result_id"],
                "title": payload["title"],
                "old value": payload["old_value_text"],
                "new value": payload["value_text"],
                "change": payload["change_text"],
                "target": payload["target_text"],
                "progress": payload["progress_text"],
                "status": f"{payload['previous_status'] or 'new'} → {payload['status']}",
                "owner": payload["owner"],
            }
        )
    return rows


def publish_changes(
    config: OkrConfig,
    outcomes: list[KeyResultOutcome],
    run_id: str,
    store: Store,
    now: datetime,
) -> int:
    """Emit one event per changed key result and the run's artifacts; returns the count.

    With no Prefect API to report to (``PREFECT_API_URL`` unset) it publishes nothing and
    says so in one log line.

    The measurements are already committed: a Prefect API that cannot take the artifact
    costs a warning in the run's log, never the sync.
    """
    events = change_events(config, outcomes, run_id)
    if prefect_api() is None:  # emitting would start Prefect's temporary server: seconds
        run_logger().info(
            "no Prefect API configured: %d key-result event(s) and the run's artifacts not "
            "published; set PREFECT_API_URL to a Prefect server to get them",
            len(events),
        )
        return 0
    for event in events:
        emit_event(**event)
    if FlowRunContext.get() is None:  # the sync's logic called directly: no run to attach to
        return len(events)
    try:
        if events:
            create_table_artifact(
                changes_table(events),
                key=ARTIFACT_KEY,
                description=f"Key results changed by okr-sync run {run_id}",
            )
        else:
            create_markdown_artifact(
                f"Run `{run_id}` changed no key result.",
                key=ARTIFACT_KEY,
                description=f"Key results changed by okr-sync run {run_id}",
            )
        create_markdown_artifact(
            store_summary_markdown(store, now),
            key=SUMMARY_ARTIFACT_KEY,
            description=f"Every key result after okr-sync run {run_id}",
        )
    except Exception as exc:  # the data is safe; say why the UI misses this run's list
        logger.warning("could not publish the run's artifact: %s", exc)
    return len(events)
