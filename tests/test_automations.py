"""The shipped example automation: a key result goes off track → a notification."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events import Event
from prefect.server.utilities.user_templates import render_user_template_sync
from typer.testing import CliRunner

import okr_sync.automations
from flows.artifacts import STATUS_CHANGED, change_events
from okr_sync.cli import DEMO_OKRS, app
from okr_targets.config import load_okrs
from transforms.measure import KeyResultOutcome

pytestmark = pytest.mark.usefixtures("prefect_harness")

NAME = "okr-sync key result off track"
BLOCK = "custom-webhook/okr-owners"


def read(name: str) -> Any:
    return asyncio.run(Automation.aread(name=name))


def test_install_points_the_automation_at_the_block_and_replaces_itself() -> None:
    block = CustomWebhookNotificationBlock(
        name="okr-owners",
        url="http://127.0.0.1:9/notify",
        json_data={"text": "{{subject}}: {{body}}"},
        headers={},
        cookies={},
    )
    block_id = block.save("okr-owners", overwrite=True)
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(
            app, ["automations", "install", "--notify", "custom-webhook/okr-owners"]
        )
        assert result.exit_code == 0, result.output
        assert "installed key-result-off-track" in result.stdout
    automation = read(NAME)
    assert automation.enabled
    trigger = automation.trigger
    assert trigger.expect == {STATUS_CHANGED}
    assert trigger.match.model_dump()["okr-sync.status"] == "off_track"
    [action] = automation.actions
    assert str(action.block_document_id) == str(block_id)
    assert "{{ event.payload.owner }}" in action.body
    # installing twice left one automation, not two
    automation.delete()
    with pytest.raises(ValueError, match="not found"):
        read(NAME)


def test_an_unknown_block_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        app, ["automations", "install", "--notify", "custom-webhook/nobody-home"]
    )
    assert result.exit_code == 1
    assert "notification block 'custom-webhook/nobody-home'" in result.stderr


def test_the_notification_reads_as_a_person_would_write_it() -> None:
    """The shipped message, rendered by Prefect's own template engine from a real event:
    numbers as the dashboard writes them, not "Value -2.920137737087879 % … progress 0.0"."""
    shipped = Path(okr_sync.automations.__file__).parent / "key-result-off-track.yaml"
    [action] = yaml.safe_load(shipped.read_text(encoding="utf-8"))["actions"]
    config = load_okrs(DEMO_OKRS)
    revenue = KeyResultOutcome(
        "won-revenue", 1_200_000.0, "USD", "off_track", 0.35, True, 10, None, 1_250_000.0,
        "at_risk", expected_progress=0.5,
    )  # fmt: skip
    cycle = KeyResultOutcome(
        "sales-cycle", 3.0, "%", "off_track", 0.0, True, 10, None, -2.920137737087879,
        None, expected_progress=0.5, baseline_period="2026-Q3",
    )  # fmt: skip
    [first, second] = [
        {"event": Event(**arguments)} for arguments in change_events(config, [revenue, cycle], "r1")
    ]
    assert render_user_template_sync(action["subject"], first) == (
        "Key result off track: Book 3.4M in won revenue (last quarter's 3.1M + 10%)"
    )
    # the demo's target is 3,400,000 USD; 1.2M - 1.25M = -50k
    assert render_user_template_sync(action["body"], first).splitlines()[:2] == [
        "Book 3.4M in won revenue (last quarter's 3.1M + 10%) is off track: 1.2M USD of "
        "3.4M USD target (35% done, 50% expected) in 2026-Q4.",
        "Since the last sync: \u221250k USD (was 1.25M USD); it was at risk. "
        "Owner ceo@acme-demo.example.",
    ]
    # a change key result, target -10: signed, against the period it is measured from
    assert render_user_template_sync(action["body"], second).splitlines()[:2] == [
        "Shorten the sales cycle by 10% is off track: +3.0% vs 2026-Q3 of "
        "\u221210.0% vs 2026-Q3 target (0% done, 50% expected) in 2026-Q4.",
        "Since the last sync: +5.9 pts (was \u22122.9% vs 2026-Q3); it was not measured. "
        "Owner morgan.blake@acme-demo.example.",
    ]
