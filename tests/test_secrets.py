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


@pytest.mark.usefixtures("prefect_harness")
def test_okr_sync_secret_set_saves_the_block_a_connector_reads_headless(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 24: `prefect block create secret` only links to the UI; `okr-sync secret set`
    saves the block on a headless server, from stdin, and never echoes the value."""
    from connectors.zendesk.settings import ZendeskSettings

    name = "okr-sync-ops24-zendesk-api-token"
    monkeypatch.delenv("OKR_SYNC_ZENDESK_API_TOKEN", raising=False)
    monkeypatch.setenv("OKR_SYNC_ZENDESK_API_TOKEN_BLOCK", name)  # as prefect.yaml names it
    runner = CliRunner()
    for value in ("first-token-value", "rotated token, with spaces "):
        saved = runner.invoke(app, ["secret", "set", name], input=f"{value}\n")
        assert saved.exit_code == 0, saved.output
        assert value not in saved.output
        assert f"saved Prefect Secret block {name!r}" in saved.stderr
        assert ZendeskSettings().token() == value  # replaced, read as the connector reads it

    for given, why in [("", f"no value given for {name}"), ("x\n", "not saved")]:
        target = name if given == "" else "Not A Block Name!"
        refused = runner.invoke(app, ["secret", "set", target], input=given)
        assert refused.exit_code == 1
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith("error: ")
        assert why in line
    assert ZendeskSettings().token() == "rotated token, with spaces "
