"""prefect.yaml, retries, Secret blocks and the demo: the pieces ops and new users touch first."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.blocks.system import Secret
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.sandbox.server import RunningServer
from okr_sync.cli import DEMO_OKRS, app
from okr_targets.config import load_okrs
from okr_targets.models import Cursor, SyncRun
from okr_targets.store import Store

ROOT = Path(__file__).resolve().parent.parent


def test_every_prefect_yaml_entrypoint_is_a_flow() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = config["deployments"]
    assert any(d.get("schedules") for d in deployments), "at least one scheduled deployment"
    for deployment in deployments:
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert isinstance(flow, Flow)
        assert set(deployment.get("parameters", {})) <= set(flow.parameters.properties)
        assert deployment["work_pool"]["name"]
        assert "SECRET=" not in json.dumps(deployment).upper()


@pytest.mark.usefixtures("prefect_harness")
def test_retriable_errors_are_retried_honouring_retry_after(
    sources_env: dict[str, RunningServer],
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_url: str,
) -> None:
    """429s and a 503 mid-sync are retried from the committed cursor; the run succeeds."""
    monkeypatch.setenv("OKR_SYNC_RETRY_BUDGET_SECONDS", "30")
    faults.inject(429, times=2, path="/services/data", headers={"Retry-After": "0.3"})
    faults.inject(503, times=1, path="/services/data")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.6  # both Retry-After waits were honoured
    store = Store.open(sqlite_url)
    with store.session() as session:
        [run] = session.scalars(select(SyncRun)).all()
    store.dispose()
    assert run.status == "complete"
    assert run.stream_counts["salesforce.CurrencyType"]["attempts"] == 4


@pytest.mark.usefixtures("prefect_harness")
def test_a_source_that_stays_down_ends_partial_or_failed_never_success(
    sources_env: dict[str, RunningServer],
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_url: str,
) -> None:
    monkeypatch.setenv("OKR_SYNC_RETRY_BUDGET_SECONDS", "0.5")
    # Salesforce's queryAll objects answer 503 for good after the others synced:
    # the run is partial (exit 3), never a success
    faults.inject(503, times=10_000, path="/services/data/v59.0/queryAll")
    result = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url])
    assert result.exit_code == 3, result.output
    assert "the run is partial" in result.stderr
    store = Store.open(sqlite_url)
    with store.session() as session:
        [run] = session.scalars(select(SyncRun)).all()
        cursors = {c.stream for c in session.scalars(select(Cursor))}
    store.dispose()
    assert run.status == "partial"
    assert run.reason is not None
    assert "salesforce.Account" in run.reason
    assert run.stream_counts["salesforce.Opportunity"]["stopped"].startswith("skipped")
    assert run.stream_counts["zendesk.tickets"]["stopped"] is None  # another source carried on
    assert {"User", "tickets"} <= cursors
    assert not {"Account", "Opportunity"} & cursors  # cursors stay where written data ends


@pytest.mark.usefixtures("prefect_harness")
def test_fatal_errors_are_not_retried(
    sources_env: dict[str, RunningServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    sqlite_url: str,
) -> None:
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_CLIENT_SECRET", "wrong")
    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(
            app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url]
        )
    assert result.exit_code == 1
    assert "; retry " not in caplog.text  # the backoff's log line never appeared


@pytest.mark.usefixtures("prefect_harness")
def test_client_secret_from_a_prefect_secret_block(
    sources_env: dict[str, RunningServer], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    Secret(value=SecretStr(os.environ["OKR_SYNC_SALESFORCE_CLIENT_SECRET"])).save(
        "sf-test-secret", overwrite=True
    )
    monkeypatch.delenv("OKR_SYNC_SALESFORCE_CLIENT_SECRET")
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_CLIENT_SECRET_BLOCK", "sf-test-secret")
    result = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_CLIENT_SECRET_BLOCK", "no-such-block")
    result = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url])
    assert result.exit_code == 1
    assert "Secret block 'no-such-block' not found" in result.stderr


def values(store_url: str) -> dict[str, float | None]:
    result = CliRunner().invoke(app, ["report", "--store", store_url, "--format", "json"])
    report = json.loads(result.stdout)
    return {kr["id"]: kr["value"] for o in report["objectives"] for kr in o["key_results"]}


@pytest.mark.usefixtures("prefect_harness", "clock")
def test_demo_runs_twice_on_the_same_store(sqlite_url: str, tmp_path: Path) -> None:
    """The demo regenerates its org each time, so a second demo fully refreshes the store.

    The demo generates its company up to today: the clock is pinned, so every run of this
    test sees the same company, with data in the demo OKRs' quarters (2026-Q3 and Q4).
    """
    runner = CliRunner()
    for seed in ("7", "8"):
        result = runner.invoke(app, ["demo", "--store", sqlite_url, "--seed", seed])
        assert result.exit_code == 0, result.output
        assert "Increase sales by 10%" in result.stdout
        assert "Sell to 10 new customers" in result.stdout
        assert "Increase profit by 5%" in result.stdout  # from the finance export
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = runner.invoke(app, ["demo", "--store", fresh, "--seed", "8"])
    assert result.exit_code == 0, result.output
    twice = values(sqlite_url)
    assert twice == values(fresh)
    assert set(twice) == {kr.id for _, kr, _ in load_okrs(DEMO_OKRS).key_results()}
    assert all(value is not None for value in twice.values())


def test_the_readme_says_how_to_call_what_make_installed() -> None:
    """`make install` fills .venv without activating it: the set-up says how to reach it."""
    venv_okr_sync = ROOT / ".venv" / "bin" / "okr-sync"
    if not venv_okr_sync.exists():
        pytest.skip("no .venv in this checkout: the tests run outside `make`")
    setup = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    env = dict(os.environ, PATH=os.defpath)  # as in a new shell: .venv is not on PATH
    [activate] = re.findall(r"`(\. \.venv/bin/activate)`", setup)
    found = subprocess.run(
        ["bash", "-c", f"{activate} && command -v okr-sync"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.stdout.strip() == str(venv_okr_sync), found.stderr
    [by_path] = re.findall(r"`(\.venv/bin/okr-sync)[^`]*`", setup)
    ran = subprocess.run(
        [by_path, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert "doctor" in ran.stdout
