"""Every installed connector passes the shared contract (connectors/contract.py)."""

from __future__ import annotations

import pytest

from connectors.base import available_connectors
from connectors.contract import run_contract

CONNECTORS = available_connectors()


def test_the_built_in_connectors_are_installed() -> None:
    assert {"salesforce"} <= set(CONNECTORS)


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_connector_passes_the_contract(name: str) -> None:
    counts = run_contract(CONNECTORS[name])
    assert set(counts) == {stream.name for stream in CONNECTORS[name].streams}
    assert all(count > 0 for count in counts.values()), counts
