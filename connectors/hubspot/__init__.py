"""HubSpot connector: owners, companies, deals and tickets through hubspot-api-client."""

from connectors.base import Connector, SandboxSpec
from connectors.hubspot.client import HubSpotReader
from connectors.hubspot.settings import HubSpotSettings
from connectors.hubspot.streams import CHANGES, STREAMS


def contract_sandbox() -> SandboxSpec:
    """The sandbox the contract serves, imported only when asked for."""
    from connectors.hubspot.sandbox import contract_sandbox

    return contract_sandbox()


connector = Connector(
    name="hubspot",
    streams=tuple(stream.info for stream in STREAMS.values()),
    changes=CHANGES,
    settings=HubSpotSettings,
    open=HubSpotReader,
    description="HubSpot CRM API (search by hs_lastmodifieddate, archived listings), private app",
    sandbox=contract_sandbox,
)

__all__ = ["HubSpotReader", "HubSpotSettings", "connector"]
