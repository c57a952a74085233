"""Every installed connector passes the shared contract, through the pytest plugin.

The plugin (connectors/pytest_plugin.py, entry point ``pytest11``) is the same one a
third-party package uses: it parametrizes ``okr_sync_connector`` over every installed
connector, built-in or not.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import Connector, available_connectors

BUILT_IN = {"salesforce", "zendesk", "hubspot", "sql", "files"}


def test_the_built_in_connectors_are_installed() -> None:
    assert set(available_connectors()) >= BUILT_IN


def test_the_plugin_is_loaded_from_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("okr_sync_contract")
    assert plugin is not None
    assert plugin.__name__ == "connectors.pytest_plugin"


def test_connector_passes_the_contract(
    okr_sync_connector: Connector,
    connector_contract: Callable[[Connector], dict[str, int]],
) -> None:
    counts = connector_contract(okr_sync_connector)
    assert set(counts) == {stream.name for stream in okr_sync_connector.streams}
    assert all(count > 0 for count in counts.values()), counts
