"""``okr-sync secret set NAME``: a Prefect Secret block saved from a headless shell.

``prefect block create secret`` only prints a link to the UI. The connectors and the
webhook receiver read secrets by block name (``OKR_SYNC_*_BLOCK``, prefect.yaml), so this
saves one on the server ``PREFECT_API_URL`` names, the value read without echo (or piped
on stdin), never shown nor taken as an argument (shell history, ``ps``).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from okr_sync.cli.console import err, fail

secret_app = typer.Typer(help="Prefect Secret blocks the connectors read.", no_args_is_help=True)


@secret_app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(help="the block name, e.g. okr-sync-zendesk-api-token")],
) -> None:
    """Save (or replace) a Prefect Secret block; the value is prompted for without echo, or
    read from stdin when piped (`vault kv get -field=token … | okr-sync secret set NAME`)."""
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # Prefect would save it in a local database instead
        raise fail("PREFECT_API_URL is not set: the secret is saved on your Prefect server")
    if sys.stdin.isatty():
        value = typer.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not value:
        raise fail(f"no value given for {name}: nothing saved")
    try:
        Secret(value=value).save(name, overwrite=True)
    except ValueError as exc:  # a name Prefect refuses (pydantic's ValidationError is one)
        raise fail(f"secret {name!r} not saved: {exc}") from None
    err.print(f"saved Prefect Secret block {name!r} on {PREFECT_API_URL.value()}", highlight=False)
