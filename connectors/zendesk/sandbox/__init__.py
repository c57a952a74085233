"""A local Zendesk for tests, demos and the contract: a helpdesk generator (:mod:`.data`)
and a Support API emulator (:mod:`.emulator`).

Not product code: the connector never imports it.
"""

from datetime import UTC, datetime
from typing import Any

from connectors.base import SandboxSpec


def sandbox_env(
    server: Any, *, export_rate_limit: int | None = None, rate_limit: int | None = None
) -> dict[str, str]:
    """Settings that point the connector at a served Zendesk emulator.

    Give the rates an emulator was created with when they differ from Zendesk's (10
    exports and, at the connector's default, 200 calls a minute), so the connector's
    limiters match the emulator's instead of throttling a fast test sandbox.
    """
    from connectors.zendesk.sandbox.emulator import SANDBOX_API_TOKEN, SANDBOX_EMAIL

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
    """A small helpdesk for a hundred customers, paged in small pages."""
    from connectors.sandbox.world import sample_companies
    from connectors.zendesk.sandbox.data import generate_helpdesk
    from connectors.zendesk.sandbox.emulator import create_app

    as_of = datetime(2026, 11, 27, tzinfo=UTC)
    companies = sample_companies(seed=5, as_of=as_of.date(), count=100)
    helpdesk = generate_helpdesk(seed=5, as_of=as_of, companies=companies)
    # Pages of 100 make the contract's reads cost dozens of export calls: a limit of 10 a
    # minute (on either side) would make it wait minutes.
    app = create_app(helpdesk, export_page_size=100, export_rate_limit=1000, rate_limit=10_000)
    return SandboxSpec(
        app=app, env=lambda server: sandbox_env(server, export_rate_limit=1000, rate_limit=10_000)
    )
