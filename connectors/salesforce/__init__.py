"""Salesforce connector: accounts, opportunities, users, cases and exchange rates."""

from datetime import UTC, datetime
from typing import Any

from connectors.base import Connector, SandboxSpec
from connectors.salesforce.client import SalesforceReader
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.streams import STREAMS


def sandbox_env(server: Any) -> dict[str, str]:
    """Settings that point the connector at a served Salesforce emulator."""
    from connectors.salesforce.emulator import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    return {
        "OKR_SYNC_SALESFORCE_LOGIN_URL": server.base_url,
        "OKR_SYNC_SALESFORCE_CLIENT_ID": SANDBOX_CLIENT_ID,
        "OKR_SYNC_SALESFORCE_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "OKR_SYNC_SALESFORCE_CA_BUNDLE": str(server.ca_file),
    }


def contract_sandbox() -> SandboxSpec:
    """A small org paged 200 records at a time, so paging is exercised."""
    from connectors.salesforce.emulator import create_app
    from connectors.salesforce.sandbox_data import generate_org

    org = generate_org(
        seed=5, as_of=datetime(2026, 11, 27, tzinfo=UTC), accounts=60, opportunities=450
    )
    return SandboxSpec(app=create_app(org, page_size=200), env=sandbox_env)


connector = Connector(
    name="salesforce",
    streams=tuple(stream.info for stream in STREAMS.values()),
    settings=SalesforceSettings,
    open=SalesforceReader,
    description="Salesforce REST API (SOQL query/queryAll), incremental by SystemModstamp",
    sandbox=contract_sandbox,
)

__all__ = ["SalesforceReader", "SalesforceSettings", "connector", "sandbox_env"]
