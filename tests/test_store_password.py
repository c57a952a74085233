"""A store URL with a password, given to the CLI: the flow opens that store, but Prefect's
stored flow run parameters never hold the password, and the CLI changes no environment.
Given any other way (a Python call of the flow, a deployment's run), it is refused before
Prefect creates a flow run, so none holds it (issue 24)."""

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


def every_flow_run() -> list[FlowRun]:
    """Every flow run the session's Prefect API stored, whatever its flow or state."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(limit=200)


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


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://okr:{PASSWORD}@127.0.0.1:1/okr",
        f"postgresql://okr@127.0.0.1:1/okr?sslmode=require&Password={PASSWORD}",
    ],
    ids=["user-info", "query"],
)
def test_a_password_given_to_the_flow_is_refused_before_prefect_records_a_run(
    url: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.sync import StorePasswordError, sync_okrs

    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    runs_before = len(every_flow_run())
    with pytest.raises(StorePasswordError, match="carries a password") as refused:
        sync_okrs(okr_file=str(DEMO_OKRS), store_url=url, return_state=True)
    assert PASSWORD not in str(refused.value)
    stored = every_flow_run()
    assert len(stored) == runs_before  # no run was created for the attempt
    assert all(PASSWORD not in json.dumps(run.parameters, default=str) for run in stored)


def test_a_deployment_run_with_a_password_is_refused_by_the_prefect_server() -> None:
    """A deployment of the flow (as ``prefect deploy`` makes: the flow's parameter schema,
    enforced): a run asked for with a password-bearing store_url is never created."""
    from prefect.exceptions import PrefectHTTPStatusError

    from flows.sync import sync_okrs

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(sync_okrs.name)
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name="store-password-test",
            parameter_openapi_schema=sync_okrs.parameters.model_dump(),
            enforce_parameter_schema=True,
        )
        runs_before = len(every_flow_run())
        for url in (
            f"postgresql://okr:{PASSWORD}@db.internal/okr",
            f"postgresql://okr@db.internal/okr?password={PASSWORD}",
        ):
            with pytest.raises(PrefectHTTPStatusError) as refused:
                client.create_flow_run_from_deployment(deployment_id, parameters={"store_url": url})
            assert refused.value.response.status_code == 409
        assert len(every_flow_run()) == runs_before
        assert all(PASSWORD not in json.dumps(r.parameters, default=str) for r in every_flow_run())
        # a URL without a password, or none (the worker's OKR_SYNC_STORE_URL), is a run
        for plain in ("postgresql://okr@db.internal/okr?sslmode=require", None):
            run = client.create_flow_run_from_deployment(
                deployment_id, parameters={"store_url": plain}
            )
            assert run.parameters["store_url"] == plain
            client.delete_flow_run(run.id)  # nothing is to run it
        client.delete_deployment(deployment_id)
