"""A local HubSpot for tests, demos and the contract: a portal generator (:mod:`.data`) and
a CRM API emulator (:mod:`.emulator`).

Not product code: the connector never imports it.
"""

from datetime import UTC, datetime
from typing import Any

from connectors.base import SandboxSpec


def sandbox_env(
    server: Any,
    *,
    search_requests_per_second: int | None = None,
    requests_per_ten_seconds: int | None = None,
) -> dict[str, str]:
    """Settings that point the connector at a served HubSpot emulator.

    Give the rates an emulator was created with when they are laxer than HubSpot's, so
    the connector's limiters match the emulator's instead of throttling a fast sandbox.
    """
    from connectors.hubspot.sandbox.emulator import SANDBOX_ACCESS_TOKEN

    env = {
        "OKR_SYNC_HUBSPOT_BASE_URL": server.base_url,
        "OKR_SYNC_HUBSPOT_ACCESS_TOKEN": SANDBOX_ACCESS_TOKEN,
        "OKR_SYNC_HUBSPOT_CA_BUNDLE": str(server.ca_file),
    }
    if search_requests_per_second is not None:
        env["OKR_SYNC_HUBSPOT_SEARCH_REQUESTS_PER_SECOND"] = str(search_requests_per_second)
    if requests_per_ten_seconds is not None:
        env["OKR_SYNC_HUBSPOT_REQUESTS_PER_TEN_SECONDS"] = str(requests_per_ten_seconds)
    return env


def contract_sandbox() -> SandboxSpec:
    """A small portal, several search pages per object, with headroom over the default limit."""
    from connectors.hubspot.sandbox.data import generate_portal
    from connectors.hubspot.sandbox.emulator import create_app

    portal = generate_portal(
        seed=5, as_of=datetime(2026, 11, 27, tzinfo=UTC), companies=60, deals=450, tickets=300
    )
    return SandboxSpec(app=create_app(portal, search_requests_per_second=8), env=sandbox_env)
