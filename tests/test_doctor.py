"""``okr-sync doctor``: every check passes on a healthy install; each problem has its fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.sandbox.server import RunningServer
from okr_sync.cli import DEMO_OKRS, app
from okr_targets.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def doctor(store_url: str, okr_file: Path = DEMO_OKRS) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor", "--store", store_url, "--okr-file", str(okr_file)])
    return result.exit_code, result.stdout + result.stderr


def test_a_healthy_install_passes_every_check(
    store_url: str, sources_env: dict[str, RunningServer]
) -> None:
    synced = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", store_url])
    assert synced.exit_code == 0, synced.output
    code, output = doctor(store_url)
    assert code == 0, output
    for check in (
        "ok   store:",
        "ok   schema: at revision",
        "ok   credentials salesforce: present",
        "ok   credentials zendesk: present",
        "ok   reach salesforce: answers",
        "ok   reach zendesk: answers",
        "ok   last sync salesforce: last read in full 0m ago",
        "ok   last sync zendesk:",
    ):
        assert check in output
    assert "all checks passed" in output
    for name in ("OKR_SYNC_SALESFORCE_CLIENT_SECRET", "OKR_SYNC_ZENDESK_API_TOKEN"):
        assert os.environ[name] not in output  # secrets are checked, never shown


def test_each_problem_is_reported_with_its_fix(
    sqlite_url: str, sources_env: dict[str, RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    Store.open(sqlite_url).dispose()  # a store at the newest schema, never synced
    monkeypatch.delenv("OKR_SYNC_ZENDESK_API_TOKEN")
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_LOGIN_URL", "https://127.0.0.1:9")
    code, output = doctor(sqlite_url)
    assert code == 1
    assert "ok   schema: at revision" in output
    assert "FAIL credentials zendesk: OKR_SYNC_ZENDESK_API_TOKEN is not set" in output
    assert "fix: set OKR_SYNC_ZENDESK_API_TOKEN, or create a Prefect Secret block" in output
    assert "FAIL reach salesforce:" in output
    assert "fix: check the source's URL setting" in output
    assert "FAIL last sync salesforce: never read in full" in output
    assert "prefect worker start --pool okr-sync" in output
    assert "error: 4 problem(s) found" in output  # zendesk's is also never read


def test_store_problems_come_first(tmp_path: Path, sources_env: dict[str, RunningServer]) -> None:
    code, output = doctor("postgresql+psycopg://okr:hunter2@127.0.0.1:9/okr")
    assert code == 1
    assert "FAIL store: cannot reach postgresql+psycopg://okr:***@127.0.0.1:9/okr" in output
    assert "hunter2" not in output
    assert "fix: check OKR_SYNC_STORE_URL" in output

    code, output = doctor(f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 1
    assert "FAIL schema: at revision none (empty database); this okr-sync needs" in output
    assert "fix: back the store up, then run `okr-sync db upgrade`" in output


def test_a_field_a_source_lacks_names_the_key_results_it_blocks(
    sqlite_url: str, sources_env: dict[str, RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The org keeps its customers' dates, but the settings do not say where."""
    field_map = '{"first_response_at": "First_Response__c", "rep_started_on": "Start_Date__c", '
    field_map += '"monthly_quota": "Monthly_Quota__c"}'
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_FIELD_MAP", field_map)
    synced = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url])
    assert synced.exit_code == 0, synced.output  # the sync completes: a gap is no failure
    code, output = doctor(sqlite_url)
    assert code == 1
    [reads] = [line for line in output.splitlines() if "ok   fields salesforce: reads" in line]
    assert {"CurrencyType", "DatedConversionRate", "User", "Account", "Opportunity"} <= set(
        reads.split("reads ", 1)[1].split(", ")
    )
    for need in ("customer.became_customer_on", "customer.churned_on"):
        assert f"FAIL fields salesforce: lacks {need}, which key result(s) retention need" in output
    assert (
        "fix: Salesforce Account has no churn date field mapped; set "
        'OKR_SYNC_SALESFORCE_FIELD_MAP={"churned_on": "<Account field>"}'
    ) in output
    assert "error: 2 problem(s) found" in output
