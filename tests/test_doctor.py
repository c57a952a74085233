"""``okr-sync doctor``: every check passes on a healthy install; each problem has its fix."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from alembic.script import ScriptDirectory
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from connectors.sandbox.server import RunningServer
from okr_sync.cli import DEMO_OKRS, app
from okr_targets.store import MIGRATIONS, Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = ROOT / "prefect.yaml"
DEPLOYMENTS = [d["name"] for d in yaml.safe_load(PREFECT_FILE.read_text())["deployments"]]
POOL = "okr-sync"  # the one pool every deployment in prefect.yaml names (test_prefect_yaml.py)
AUTOMATION = "okr-sync key result off track"


def doctor(
    store_url: str,
    okr_file: Path = DEMO_OKRS,
    prefect_server: bool = False,
    prefect_file: Path = PREFECT_FILE,
) -> tuple[int, str]:
    """Doctor's exit code and output; without ``prefect_server`` PREFECT_API_URL is unset,
    as on a machine that syncs in-process, so only the harness's tests see its server."""
    args = ["doctor", "--store", store_url, "--okr-file", str(okr_file)]
    args += ["--prefect-file", str(prefect_file)]
    if prefect_server:
        result = CliRunner().invoke(app, args)
    else:
        with temporary_settings(restore_defaults={PREFECT_API_URL}):
            result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def prefect_pieces() -> Iterator[None]:
    """What prefect.yaml and the docs set up on a server: the pool, a worker polling it (its
    heartbeat, as `prefect worker start` sends), the deployments and the automation."""
    CustomWebhookNotificationBlock(
        name="doctor-notify",
        url="http://127.0.0.1:9/notify",
        json_data={"text": "{{body}}"},
        headers={},
        cookies={},
    ).save("doctor-notify", overwrite=True)
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        flow_id = client.create_flow_from_name("sync-okrs")
        ids = [client.create_deployment(flow_id, name, work_pool_name=POOL) for name in DEPLOYMENTS]
        client.send_worker_heartbeat(POOL, "doctor-test-worker")
        installed = CliRunner().invoke(
            app, ["automations", "install", "--notify", "custom-webhook/doctor-notify"]
        )
        assert installed.exit_code == 0, installed.output
        try:
            yield
        finally:
            for deployment_id in ids:
                client.delete_deployment(deployment_id)
            client.delete_work_pool(POOL)
            for automation in client.read_automations_by_name(AUTOMATION):
                client.delete_automation(automation.id)


def test_a_healthy_install_passes_every_check(
    store_url: str, sources_env: dict[str, RunningServer], prefect_pieces: None
) -> None:
    synced = CliRunner().invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", store_url])
    assert synced.exit_code == 0, synced.output
    code, output = doctor(store_url, prefect_server=True)
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
        f"ok   prefect api: {PREFECT_API_URL.value()} answers",
        f"ok   prefect work pool {POOL}: exists (process, ready)",
        f"ok   prefect worker {POOL}: 1 online, last poll by doctor-test-worker, 0m ago",
        f"ok   prefect deployments {POOL}: {', '.join(DEPLOYMENTS)}",
        f"ok   prefect automation: {AUTOMATION!r} is enabled",
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
    # no Prefect server is information, not a problem: in-process syncs need none
    assert "info prefect: PREFECT_API_URL is not set" in output
    assert "error: 5 problem(s) found" in output  # zendesk and the finance export: never read


def test_each_missing_prefect_piece_is_reported_with_its_fix(
    sqlite_url: str, tmp_path: Path
) -> None:
    Store.open(sqlite_url).dispose()
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        code, output = doctor(sqlite_url, prefect_server=True)
    assert code == 1
    assert "FAIL prefect api: cannot reach http://127.0.0.1:9/api" in output
    assert "fix: start the server (`prefect server start`" in output
    assert "prefect work pool" not in output  # nothing more to ask an API that is not there

    code, output = doctor(sqlite_url, prefect_server=True)
    assert code == 1
    assert f"ok   prefect api: {PREFECT_API_URL.value()} answers" in output
    assert f"FAIL prefect work pool {POOL}: does not exist" in output
    assert f"fix: `prefect work-pool create {POOL} --type process`" in output
    assert f"FAIL prefect deployments {POOL}: missing {', '.join(DEPLOYMENTS)}" in output
    assert "fix: `prefect deploy --all` from the directory that holds prefect.yaml" in output
    assert f"info prefect automation: {AUTOMATION!r} is not installed" in output
    assert "fix: `okr-sync automations install --notify BLOCK`" in output

    code, output = doctor(sqlite_url, prefect_server=True, prefect_file=tmp_path / "prefect.yaml")
    assert "FAIL prefect.yaml: cannot read the deployments in" in output
    assert "fix: run doctor from the directory you deploy from, or pass --prefect-file" in output
    assert "Traceback" not in output

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        try:
            code, output = doctor(sqlite_url, prefect_server=True)
        finally:
            client.delete_work_pool(POOL)
    assert f"ok   prefect work pool {POOL}: exists (process, not_ready)" in output
    assert f"FAIL prefect worker {POOL}: no worker polls it" in output
    assert f"fix: `prefect worker start --pool {POOL}` where the syncs run" in output


def test_the_sample_in_the_operations_guide_shows_the_newest_schema() -> None:
    sample = (ROOT / "docs" / "operations.md").read_text().split("$ okr-sync doctor\n", 1)[1]
    [head] = ScriptDirectory(str(MIGRATIONS)).get_heads()
    shown = re.search(r"ok   schema: at revision (\S+), the newest", sample)
    assert shown is not None
    assert shown[1] == head


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
