"""Salesforce connector: accounts, opportunities, users, cases and exchange rates."""

from connectors.base import Connector, SandboxSpec
from connectors.salesforce.client import SalesforceReader
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.streams import CHANGES, STREAMS


def contract_sandbox() -> SandboxSpec:
    """The sandbox the contract serves, imported only when asked for."""
    from connectors.salesforce.sandbox import contract_sandbox

    return contract_sandbox()


connector = Connector(
    name="salesforce",
    streams=tuple(stream.info for stream in STREAMS.values()),
    changes=CHANGES,
    settings=SalesforceSettings,
    open=SalesforceReader,
    description="Salesforce REST API (SOQL query/queryAll), incremental by SystemModstamp",
    sandbox=contract_sandbox,
)

__all__ = ["SalesforceReader", "SalesforceSettings", "connector"]
