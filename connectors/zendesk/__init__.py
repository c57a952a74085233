"""Zendesk connector: organizations, tickets (with metric sets) and satisfaction ratings."""

from connectors.base import Connector, SandboxSpec
from connectors.zendesk.client import ZendeskReader
from connectors.zendesk.settings import ZendeskSettings
from connectors.zendesk.streams import CHANGES, STREAMS


def contract_sandbox() -> SandboxSpec:
    """The sandbox the contract serves, imported only when asked for."""
    from connectors.zendesk.sandbox import contract_sandbox

    return contract_sandbox()


connector = Connector(
    name="zendesk",
    streams=tuple(stream.info for stream in STREAMS.values()),
    changes=CHANGES,
    settings=ZendeskSettings,
    open=ZendeskReader,
    description="Zendesk Support API over plain HTTP: cursor-based incremental ticket export, "
    "organizations and satisfaction ratings lists",
    sandbox=contract_sandbox,
)

__all__ = ["ZendeskReader", "ZendeskSettings", "connector"]
