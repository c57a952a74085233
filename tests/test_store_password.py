"""A store URL with a password, given to the CLI: the flow opens that store, but Prefect's
stored flow run parameters never hold the password, and the CLI changes no environment."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter
from prefect.client.schemas.objects import FlowRun
from sqlalchemy import func, select
from typer.testing import CliRunner

from connectors.sandbox.server import RunningServer
from okr_sync.cli import DEMO_OKRS, app
from okr_targets.models import Measurement
from okr_targets.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

PASSWORD = "hunter2-not-for-prefect"


def sync_runs_since(moment: datetime) -> list[FlowRun]:
    """The sync flow runs that started after ``moment``, as Prefect's API stored them."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["sync-okrs"])),
            # validated from a dict: pydantic turns the datetime into Prefect's DateTime
            flow_run_filter=FlowRunFilter.model_validate({"start_time": {"after_": moment}}),
        )


def assert_recorded_without_password(run: FlowRun) -> None:
    assert "store_url" in run.parameters  # recorded, masked, not dropped
    assert PASSWORD not in json.dumps(run.parameters)
    assert run.state is not None
    assert PASSWORD not in (run.state.message or "")


def test_the_flow_gets_the_password_and_prefect_does_not(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)  # the flow must not fall back to it
    environment = dict(os.environ)
    started = datetime.now(UTC)

    url = f"postgresql://okr:{PASSWORD}@127.0.0.1:1/okr"
    result = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", url])

    assert result.exit_code == 1, result.output
    # The flow tried the store it was given (nothing listens on port 1), password masked.
    assert "error: cannot open store postgresql://okr:***@127.0.0.1:1/okr" in result.stderr
    assert PASSWORD not in result.output
    assert dict(os.environ) == environment
    [run] = sync_runs_since(started)
    assert run.state is not None
    assert run.state.is_failed()
    assert_recorded_without_password(run)


@pytest.mark.postgres
def test_a_sync_into_a_store_with_a_password_completes(
    postgres_url: str,
    sqlite_url: str,
    sources_env: dict[str, RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The test server trusts local connections, so any password opens the store.
    url = postgres_url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    environment = dict(os.environ)
    started = datetime.now(UTC)

    result = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", url])

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert dict(os.environ) == environment
    [run] = sync_runs_since(started)
    assert run.state is not None
    assert run.state.is_completed()
    assert_recorded_without_password(run)
    store = Store.open(postgres_url)  # the measurements are in the store the URL named
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Measurement))
    store.dispose()
