"""A sync run with known secret values leaves none of them in logs, reports or the store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from connectors.sandbox.server import RunningServer
from okr_sync.cli import DEMO_OKRS, app
from okr_targets.models import SyncRun
from okr_targets.store import Store


@pytest.mark.usefixtures("prefect_harness")
def test_no_secret_leaves_a_trace(
    sources_env: dict[str, RunningServer],
    sandbox_app: Any,
    caplog: pytest.LogCaptureFixture,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    secrets = {
        "sandbox-secret",  # the Salesforce client secret the sandbox expects
        "sandbox-api-token",  # the Zendesk API token
    }
    runner = CliRunner()
    with caplog.at_level(logging.DEBUG):
        sync = runner.invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url])
        reports = [
            runner.invoke(app, ["report", "--store", sqlite_url, "--format", kind]).output
            for kind in ("table", "json", "csv", "html")
        ]
        runs = runner.invoke(app, ["runs", "--store", sqlite_url]).output
    assert sync.exit_code == 0, sync.output
    store = Store.open(sqlite_url)
    with store.session() as session:
        run_id = session.scalars(select(SyncRun.id)).one()
    shown = runner.invoke(app, ["runs", "show", run_id, "--store", sqlite_url]).output
    # the session tokens the sandbox issued during the sync are secrets too
    secrets |= set(sandbox_app.state.emulator.tokens)
    assert len(secrets) > 2
    texts = [sync.output, caplog.text, runs, shown, *reports]
    with store.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                texts.append(repr(tuple(row)))
    store.dispose()
    for secret in secrets:
        leaks = [t[:80] for t in texts if secret in t]
        assert not leaks, f"{secret!r} found in {leaks}"
