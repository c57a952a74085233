"""The shipped example automation: a key result goes off track → a notification."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from typer.testing import CliRunner

from flows.artifacts import STATUS_CHANGED
from okr_sync.cli import app

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
