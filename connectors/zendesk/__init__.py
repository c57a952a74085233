"""Zendesk connector: organizations, tickets (with metric sets) and satisfaction ratings."""

from datetime import UTC, datetime
from typing import Any

from connectors.base import Connector, SandboxSpec
from connectors.zendesk.client import ZendeskReader
from connectors.zendesk.settings import ZendeskSettings
from connectors.zendesk.streams import STREAMS


def sandbox_env(
    server: Any, *, export_rate_limit: int | None = None, rate_limit: int | None = None
) -> dict[str, str]:
    """Settings that point the connector at a served Zendesk emulator.

    Give the rates an emulator was created with when they differ from Zendesk's (10
    exports and, at the connector's default, 200 calls a minute), so the connector's
    limiters match the emulator's instead of throttling a fast test sandbox.
    """
    from connectors.zendesk.emulator import SANDBOX_API_TOKEN, SANDBOX_EMAIL

    env = {
        "OKR_SYNC_ZENDESK_BASE_URL": server.base_url,
        "OKR_SYNC_ZENDESK_EMAIL": SANDBOX_EMAIL,
        "OKR_SYNC_ZENDESK_API_TOKEN": SANDBOX_API_TOKEN,
        "OKR_SYNC_ZENDESK_CA_BUNDLE": str(server.ca_file),
    }
    if export_rate_limit is not None:
        env["OKR_SYNC_ZENDESK_EXPORT_REQUESTS_PER_MINUTE"] = str(export_rate_limit)
    if rate_limit is not None:
        env["OKR_SYNC_ZENDESK_REQUESTS_PER_MINUTE"] = str(rate_limit)
    return env


def contract_sandbox() -> SandboxSpec:
    """A small helpdesk for a small CRM's customers, paged in small pages."""
    from connectors.salesforce.sandbox_data import customer_seeds, generate_org
    from connectors.zendesk.emulator import create_app
    from connectors.zendesk.sandbox_data import generate_helpdesk

    as_of = datetime(2026, 11, 27, tzinfo=UTC)
    companies = customer_seeds(generate_org(seed=5, as_of=as_of, accounts=150, opportunities=600))
    helpdesk = generate_helpdesk(seed=5, as_of=as_of, companies=companies)
    # Pages of 100 make the contract's reads cost dozens of export calls: a limit of 10 a
    # minute (on either side) would make it wait minutes.
    app = create_app(helpdesk, export_page_size=100, export_rate_limit=1000, rate_limit=10_000)
    return SandboxSpec(
        app=app, env=lambda server: sandbox_env(server, export_rate_limit=1000, rate_limit=10_000)
    )


connector = Connector(
    name="zendesk",
    streams=STREAMS,
    settings=ZendeskSettings,
    open=ZendeskReader,
    description="Zendesk Support API over plain HTTP: cursor-based incremental ticket export, "
    "organizations and satisfaction ratings lists",
    sandbox=contract_sandbox,
)

__all__ = ["ZendeskReader", "ZendeskSettings", "connector", "sandbox_env"]
