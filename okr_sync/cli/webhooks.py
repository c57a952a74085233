"""``okr-sync webhooks serve``: the webhook receiver (okr_sync/webhooks.py) as a command."""

from __future__ import annotations

import importlib
import logging
from typing import Annotated

import typer

from okr_sync.cli.console import fail, listen, valid_port
from okr_sync.cli.options import okr_file_or_default, settings_of

webhooks_app = typer.Typer(
    help="Receive source webhooks and turn them into Prefect events and syncs."
)


@webhooks_app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="port (0 picks a free one)", callback=valid_port)
    ] = 8787,
) -> None:
    """Verify signed webhooks from HubSpot, Zendesk and Salesforce and emit Prefect events.

    Secrets: OKR_SYNC_WEBHOOK_{HUBSPOT,ZENDESK,SALESFORCE}_SECRET, or *_SECRET_BLOCK naming
    a Prefect Secret block. Webhooks of sources the OKR file (OKR_SYNC_OKR_FILE) does not
    read are refused. Serve plain HTTP behind a TLS-terminating proxy.
    """
    from prefect.settings import PREFECT_API_URL  # Prefect loads here, not for --help

    from connectors.secrets import MissingSecretError
    from okr_sync.webhooks import OkrSources, Receiver, WebhookSettings, create_app, serve
    from okr_targets.config import ConfigError

    settings = settings_of(WebhookSettings)
    if not PREFECT_API_URL.value():
        raise fail("PREFECT_API_URL is not set: the receiver sends events to your Prefect server")
    try:
        secrets = settings.secrets()
    except MissingSecretError as exc:
        raise fail(str(exc)) from None
    if not secrets:
        raise fail(
            "no webhook secret is set: set OKR_SYNC_WEBHOOK_HUBSPOT_SECRET, "
            "OKR_SYNC_WEBHOOK_ZENDESK_SECRET or OKR_SYNC_WEBHOOK_SALESFORCE_SECRET "
            "(or the *_SECRET_BLOCK of a Prefect Secret block)"
        )
    # a webhook of a source the OKR file does not read is refused: its sync would fail
    okr_sources = OkrSources(okr_file_or_default(None))
    try:
        okr_sources()
    except (OSError, ConfigError) as exc:
        raise fail(f"cannot read the OKR file (OKR_SYNC_OKR_FILE): {exc}") from None
    receiver = Receiver(
        secrets,
        settings.tolerance_seconds,
        settings.public_url,
        settings.max_body_bytes,
        okr_sources=okr_sources,
    )

    # each accepted, coalesced or refused webhook: one line through Prefect's console handler
    logging.getLogger("okr_sync.webhooks").setLevel(logging.INFO)

    importlib.import_module("flows.background")  # the sync task: loaded now, not on a webhook

    def ready(url: str) -> None:
        typer.echo(f"listening on {url} for {', '.join(f'/webhooks/{s}' for s in secrets)}")

    serve(create_app(receiver), listen(host, port), ready)
