"""The connector contract as a pytest plugin, for this project and for third-party packages.

Registered under the ``pytest11`` entry point, so any test run in an environment where
okr-sync is installed gets two fixtures:

- ``okr_sync_connector``: a test that asks for it runs once per installed connector
  (``okr_sync.connectors`` entry points), or once per name listed in the ini option
  ``okr_sync_connectors`` (e.g. a package's own connector only);
- ``connector_contract``: ``connectors.contract.run_contract``, which serves the
  connector's sandbox and runs every check, returning the rows read per stream.

Disable it with ``-p no:okr_sync_contract``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import Connector, available_connectors, get_connector

INI_OPTION = "okr_sync_connectors"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        INI_OPTION,
        "connectors the okr_sync_connector fixture runs over (default: every installed one)",
        type="args",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "okr_sync_connector" in metafunc.fixturenames:
        names = metafunc.config.getini(INI_OPTION) or sorted(available_connectors())
        metafunc.parametrize("okr_sync_connector", names, indirect=True)


@pytest.fixture
def okr_sync_connector(request: pytest.FixtureRequest) -> Connector:
    """The connector under test; a name that is not installed fails with the reason."""
    return get_connector(request.param)


@pytest.fixture
def connector_contract() -> Callable[[Connector], dict[str, int]]:
    """Run the whole shared contract over a connector (imported late: it starts servers)."""
    from connectors.contract import run_contract

    return run_contract
