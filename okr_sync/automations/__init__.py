"""Example Prefect automations that act on okr-sync's key-result events.

``okr-sync automations install --notify BLOCK`` creates (or replaces, by name) each
automation shipped here, pointing its notification at the named notification block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SHIPPED = sorted(Path(__file__).parent.glob("*.yaml"))


def shipped_names() -> list[str]:
    """The names the shipped automations are installed under (``okr-sync doctor`` looks
    them up by name)."""
    return [yaml.safe_load(path.read_text())["name"] for path in SHIPPED]


def with_block(spec: dict[str, Any], block_document_id: str) -> dict[str, Any]:
    """The automation with every notification action pointed at the block."""
    actions = [
        {**action, "block_document_id": block_document_id}
        if action.get("type") == "send-notification"
        else action
        for action in spec["actions"]
    ]
    return {**spec, "actions": actions}


async def install(block_slug: str) -> list[str]:
    """Create the shipped automations notifying through the block; returns their ids."""
    from prefect.automations import Automation
    from prefect.blocks.core import Block

    block: Block = await Block.aload(block_slug)
    block_id = str(block._block_document_id)  # Prefect's id of the saved block
    created = []
    for path in SHIPPED:
        spec = with_block(yaml.safe_load(path.read_text()), block_id)
        while True:  # installing again replaces: one automation per name
            try:
                existing = await Automation.aread(name=spec["name"])
            except ValueError:
                break
            await existing.adelete()
        automation = await Automation.model_validate(spec).acreate()
        created.append(str(automation.id))
    return created
