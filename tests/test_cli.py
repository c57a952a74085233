"""The CLI: reports in three formats, lint, and one clear line (never a traceback) on bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from connectors.salesforce.sandbox import sandbox_env as salesforce_env_vars
from connectors.salesforce.sandbox.data import SalesforceOrg
from connectors.sandbox.server import RunningServer
from okr_sync.cli import DEMO_OKRS, app
from okr_targets.models import Measurement, SyncRun
from okr_targets.store import Store, alembic_config
from tests.test_metrics_correctness import Oracle

pytestmark = pytest.mark.usefixtures("prefect_harness")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def last_error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1]


def assert_failed_cleanly(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = last_error_line(result)
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def failed_runs(store_url: str) -> list[SyncRun]:
    store = Store.open(store_url)
    with store.session() as session:
        runs = list(session.scalars(select(SyncRun)))
        measurements = session.scalar(select(func.count()).select_from(Measurement))
    store.dispose()
    assert measurements == 0, "a failed run wrote measurements"
    return [run for run in runs if run.status == "failed"]


def test_sync_then_report_in_every_format(
    sqlite_url: str, sources_env: dict[str, RunningServer], sandbox_org: SalesforceOrg
) -> None:
    result = invoke("sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "salesforce.Opportunity" in result.stdout
    assert "Sell to 10 new customers" in result.stdout

    as_json = json.loads(invoke("report", "--store", sqlite_url, "--format", "json").stdout)
    objectives = {o["id"]: o for o in as_json["objectives"]}
    assert objectives["sales"]["parent"] == "company-revenue"
    assert objectives["marcus-reed"]["parent"] == "enterprise-sales"
    key_result = next(
        kr for kr in objectives["sales"]["key_results"] if kr["id"] == "new-customers"
    )
    # counted by hand from the sandbox org's records, not by the metric under test
    new_customers = Oracle(sandbox_org).new_customers("2026-Q4", {}).value
    assert new_customers
    assert key_result["target"] == 10
    assert key_result["value"] == new_customers
    assert key_result["status"] in {"on_track", "at_risk", "off_track"}
    assert key_result["progress"] == pytest.approx(min(1.0, new_customers / 10))
    assert key_result["as_of"].endswith("+00:00")

    rows = list(
        csv.DictReader(
            io.StringIO(invoke("report", "--store", sqlite_url, "--format", "csv").stdout)
        )
    )
    assert {row["id"] for row in rows} == {
        kr["id"] for o in as_json["objectives"] for kr in o["key_results"]
    }
    # owners by name: the reps the CRM gives, and the OKR file's people: for the others
    assert as_json["company"] == "Acme Demo Inc."
    users = {u["Email"]: (u["Name"], u["Department"]) for u in sandbox_org.records("User")}
    marcus = objectives["marcus-reed"]
    assert (marcus["owner_name"], marcus["owner_team"]) == users[marcus["owner"]]
    top = objectives["company-revenue"]
    assert (top["owner_name"], top["owner_team"]) == ("Alex Morgan", "Leadership")
    named = {row["owner_email"]: row["owner"] for row in rows}
    assert named["marcus.reed@acme-demo.example"] == users["marcus.reed@acme-demo.example"][0]
    table = invoke("report", "--store", sqlite_url)
    assert table.exit_code == 0, table.output
    assert "Alex Morgan" in table.stdout
    assert "ceo@acme-demo.example" not in table.stdout

    listing = invoke("runs", "--store", sqlite_url)
    assert listing.exit_code == 0, listing.output
    store = Store.open(sqlite_url)
    with store.session() as session:
        [run] = session.scalars(select(SyncRun)).all()
    store.dispose()
    assert run.id in listing.stdout
    assert "complete" in listing.stdout
    shown = invoke("runs", "show", run.id, "--store", sqlite_url)
    assert shown.exit_code == 0, shown.output
    assert "salesforce.Opportunity" in shown.stdout
    opportunity = run.stream_counts["salesforce.Opportunity"]
    assert opportunity["cursor_after"] in shown.stdout
    assert opportunity["requests"] > 0
    assert opportunity["quota"] in shown.stdout  # e.g. "123/15000 daily API calls used"
    assert "customers matched" in shown.stdout

    # Purged past the recycle bin: only the reconcile can tell the deal is gone.
    purged = sandbox_org.records("Opportunity")[0]
    sandbox_org.purge("Opportunity", purged["Id"])
    try:
        reconciled = invoke(
            "sync", "--reconcile", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url
        )
    finally:
        sandbox_org.add("Opportunity", purged)
    assert reconciled.exit_code == 0, reconciled.output
    assert "salesforce.deal: 1 deleted at the source, tombstoned" in reconciled.stdout
    assert_failed_cleanly(
        invoke("runs", "show", "nope", "--store", sqlite_url), "no run id starts with 'nope'"
    )


@pytest.mark.parametrize(
    ("okr_text", "fragments"),
    [
        (
            "company: X\nobjectives:\n  - id: a\n    title: [broken\n",
            ("okrs.yaml:", "not valid YAML"),
        ),
        (
            "company: X\nobjectives:\n  - id: a\n    title: A\n    owner: o\n    period: 2026-Q4\n"
            "    key_results:\n      - id: k\n        title: K\n        metric: revenue_magic\n"
            "        target: 1\n",
            ("okrs.yaml:10:", "unknown metric 'revenue_magic'"),
        ),
    ],
    ids=["malformed-okr-file", "unknown-metric"],
)
def test_bad_okr_file_fails_with_one_line(
    tmp_path: Path, sqlite_url: str, okr_text: str, fragments: tuple[str, ...]
) -> None:
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(okr_text)
    line = assert_failed_cleanly(
        invoke("sync", "--okr-file", str(okr_file), "--store", sqlite_url), *fragments
    )
    [run] = failed_runs(sqlite_url)
    assert run.reason is not None
    assert run.reason in line


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("OKR_SYNC_SALESFORCE_LOGIN_URL", "https://127.0.0.1:9", "cannot reach the server"),
        (
            "OKR_SYNC_SALESFORCE_CLIENT_SECRET",
            "wrong-secret",
            "refused (400 invalid client credentials)",
        ),
        (
            "OKR_SYNC_SALESFORCE_FIELD_MAP",
            '{"monthly_quota": "Quota_Typo__c"}',
            "maps monthly_quota to User.Quota_Typo__c, which the org's User describe",
        ),
        ("OKR_SYNC_SALESFORCE_CA_BUNDLE", "", "certificate is not trusted"),
    ],
    ids=["unreachable-source", "wrong-credential", "unknown-field", "untrusted-certificate"],
)
def test_source_failures_fail_with_one_line(
    sources_env: dict[str, RunningServer],
    monkeypatch: pytest.MonkeyPatch,
    sqlite_url: str,
    variable: str,
    value: str,
    fragment: str,
) -> None:
    if value:
        monkeypatch.setenv(variable, value)
    else:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("OKR_SYNC_RETRY_BUDGET_SECONDS", "0.5")
    result = invoke("sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url)
    line = assert_failed_cleanly(result, "salesforce: ", fragment)
    assert "sandbox-secret" not in result.output
    [run] = failed_runs(sqlite_url)
    assert run.reason is not None
    assert run.reason in line


def test_unusable_store_fails_with_one_line(tmp_path: Path) -> None:
    result = invoke("report", "--store", f"sqlite:///{tmp_path}/missing-dir/okr.db")
    assert_failed_cleanly(result, "cannot open store")
    secret_url = "postgresql://okr:hunter2@127.0.0.1:1/okr"
    result = invoke("report", "--store", secret_url)
    assert_failed_cleanly(result, "cannot open store", "***")
    assert "hunter2" not in result.output


def test_lint(tmp_path: Path) -> None:
    result = invoke("lint", "--okr-file", str(DEMO_OKRS))
    assert result.exit_code == 0, result.output
    assert "all SMART" in result.stdout
    vague = tmp_path / "okrs.yaml"
    vague.write_text(
        "company: X\nobjectives:\n  - id: a\n    title: A\n"
        "    key_results:\n      - id: k\n        title: Be great\n"
    )
    result = invoke("lint", "--okr-file", str(vague))
    assert result.exit_code == 1
    assert "'k' is not bound to a metric" in result.stderr
    assert "'k' has no measurable target" in result.stderr
    assert "'k' has no period" in result.stderr
    assert "'k' has no owner" in result.stderr


def test_db_upgrade_and_unknown_format(sqlite_url: str) -> None:
    result = invoke("db", "upgrade", "--store", sqlite_url)
    assert result.exit_code == 0, result.output
    store = Store(sqlite_url)
    head = ScriptDirectory.from_config(alembic_config(store.engine)).get_current_head()
    store.dispose()
    assert head is not None
    assert f"schema revision {head}" in result.stdout
    assert_failed_cleanly(
        invoke("report", "--store", sqlite_url, "--format", "xml"), "unknown format"
    )


def test_a_store_password_never_becomes_a_flow_parameter(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.sync import StorePasswordError, sync_okrs

    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)  # restored after the CLI changes it

    with pytest.raises(StorePasswordError, match="carries a password") as refused:
        sync_okrs(
            okr_file=str(DEMO_OKRS),
            store_url="postgresql://okr:hunter2@127.0.0.1:1/okr",
            return_state=True,
        )
    assert "hunter2" not in str(refused.value)
    # The CLI passes such a URL through the environment instead, and the store error is
    # the connection's, with the password masked.
    result = invoke(
        "sync", "--okr-file", str(DEMO_OKRS), "--store", "postgresql://okr:hunter2@127.0.0.1:1/okr"
    )
    assert_failed_cleanly(result, "cannot open store", "***")
    assert "hunter2" not in result.output


def test_the_real_command_prints_no_traceback(tmp_path: Path) -> None:
    """As a user runs it (own process, Prefect's console logs on): one error line, no traceback."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OKR_SYNC_")}
    command = [
        sys.executable,
        "-m",
        "okr_sync.cli",
        "sync",
        "--okr-file",
        str(DEMO_OKRS),
        "--store",
        f"sqlite:///{tmp_path / 'okr.db'}",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    # Nothing is configured: the first thing missing is where the org is (no default URL).
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: salesforce: OKR_SYNC_SALESFORCE_LOGIN_URL is not set")
    )


SMALL_OKRS = """\
company: Acme
sources:
  salesforce: [customer, deal, rep, fx_rate]
objectives:
  - id: sales
    title: Sell
    owner: morgan.blake@acme-demo.example
    period: 2026-Q4
    key_results:
      - {id: new-customers, title: New customers, metric: new_customers_won, target: 10}
"""


def test_sync_without_a_prefect_server_starts_none(
    tmp_path: Path, sandbox: RunningServer, sandbox_org: SalesforceOrg
) -> None:
    """No PREFECT_API_URL and Prefect not allowed to start its temporary server (any attempt
    fails): the sync runs in its own process with no flow run, twice; the second reads the
    lookback again without loading Great Expectations, and publishing says how to get events."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_SYNC_", "PREFECT_"))}
    env |= salesforce_env_vars(sandbox) | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
    }
    okr_file, url = tmp_path / "okrs.yaml", f"sqlite:///{tmp_path / 'okr.db'}"
    okr_file.write_text(SMALL_OKRS)
    command = [sys.executable, "-X", "importtime", "-m", "okr_sync.cli", "sync"]
    command += ["--okr-file", str(okr_file), "--store", url]
    outputs = []
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        outputs.append(done.stderr)
    assert "set PREFECT_API_URL to a Prefect server" in outputs[0]
    assert " great_expectations\n" in outputs[0]  # the first read validated its rows
    assert " great_expectations\n" not in outputs[1]  # the re-read rows equal the mirror's

    store = Store.open(url)
    with store.session() as session:
        runs = list(session.scalars(select(SyncRun).order_by(SyncRun.started_at)))
        values = list(session.scalars(select(Measurement.value)))
    store.dispose()
    assert [(run.status, run.flow_run_id) for run in runs] == [("complete", None)] * 2
    again = runs[1].stream_counts.values()
    assert sum(counts["read"] for counts in again) > 0  # the lookback, read again
    assert all(counts["loaded"] == counts["read"] for counts in again)  # none dropped
    assert sum(counts["written"] + counts["quarantined"] for counts in again) == 0
    # counted by hand from the sandbox org's records, not by the metric under test
    assert set(values) == {Oracle(sandbox_org).new_customers("2026-Q4", {}).value}


@pytest.mark.parametrize("args", [["--help"], ["lint", "--okr-file", str(DEMO_OKRS)]])
def test_light_commands_load_no_prefect_gx_pandas_or_sandbox(args: list[str]) -> None:
    """``--help`` and ``lint`` import only what they use: not Prefect, Great Expectations,
    pandas, or a sandbox's server and emulators (seconds and hundreds of modules)."""
    import re
    import subprocess
    import sys

    command = [sys.executable, "-X", "importtime", "-m", "okr_sync.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = set(re.findall(r"\|\s+([\w.]+)$", done.stderr, re.MULTILINE))
    assert "okr_sync.cli" in imported  # the listing is what it should be
    heavy = {"prefect", "great_expectations", "pandas", "connectors.sandbox.server"}
    assert imported & heavy == set()
    assert [name for name in imported if re.fullmatch(r"connectors\.\w+\.sandbox", name)] == []
