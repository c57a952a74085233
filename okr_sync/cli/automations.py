"""``okr-sync automations install``: the shipped Prefect automations (okr_sync/automations)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from okr_sync.automations import SHIPPED, install
from okr_sync.cli.console import fail

automations_app = typer.Typer(help="Prefect automations on key-result events.")


@automations_app.command("install")
def install_command(
    notify: Annotated[
        str, typer.Option(help="notification block, TYPE/NAME, e.g. slack-webhook/okr-owners")
    ],
) -> None:
    """Install the example automations (a key result goes off track → notify)."""
    try:
        ids = asyncio.run(install(notify))
    except ValueError as exc:  # Prefect's "Unable to find block document named …"
        raise fail(f"notification block {notify!r}: {exc}") from None
    for path, automation_id in zip(SHIPPED, ids, strict=True):
        typer.echo(f"installed {path.stem} ({automation_id}), notifying {notify}")
