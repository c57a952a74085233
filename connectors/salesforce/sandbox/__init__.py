"""A local Salesforce for tests, demos and the contract: an org generator (:mod:`.data`),
a REST emulator (:mod:`.emulator`) and the SOQL subset it answers (:mod:`.soql`).

Not product code: the connector never imports it.
"""

import json
from datetime import UTC, datetime
from typing import Any

from connectors.base import SandboxSpec


def sandbox_env(server: Any, profile: str | None = None) -> dict[str, str]:
    """Settings that point the connector at a served Salesforce emulator playing
    ``profile`` (default: the demo's org), its custom fields mapped where it has them."""
    from connectors.salesforce.sandbox.data import DEFAULT_PROFILE, FIELD_MAP, PROFILES
    from connectors.salesforce.sandbox.emulator import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    env = {
        "OKR_SYNC_SALESFORCE_LOGIN_URL": server.base_url,
        "OKR_SYNC_SALESFORCE_CLIENT_ID": SANDBOX_CLIENT_ID,
        "OKR_SYNC_SALESFORCE_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "OKR_SYNC_SALESFORCE_CA_BUNDLE": str(server.ca_file),
    }
    if PROFILES[profile or DEFAULT_PROFILE].custom_fields:
        env["OKR_SYNC_SALESFORCE_FIELD_MAP"] = json.dumps(FIELD_MAP)
    return env


def contract_sandbox() -> SandboxSpec:
    """A small org paged 200 records at a time, so paging is exercised."""
    from connectors.salesforce.sandbox.data import generate_org
    from connectors.salesforce.sandbox.emulator import create_app

    org = generate_org(
        seed=5, as_of=datetime(2026, 11, 27, tzinfo=UTC), accounts=60, opportunities=450
    )
    return SandboxSpec(app=create_app(org, page_size=200), env=sandbox_env)
