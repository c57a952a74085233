"""Salesforce connector: Account, Opportunity, User and CurrencyType through simple-salesforce."""

from connectors.base import Connector
from connectors.salesforce.client import SalesforceReader
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.streams import STREAMS

connector = Connector(
    name="salesforce",
    streams=tuple(stream.info for stream in STREAMS.values()),
    settings=SalesforceSettings,
    open=SalesforceReader,
    description="Salesforce REST API (SOQL query/queryAll), incremental by SystemModstamp",
)

__all__ = ["SalesforceReader", "SalesforceSettings", "connector"]
