"""A data team's connector package (and its metric), installed for real, found and synced.

``tests/fixtures/okr-sync-inbox`` is a third party's package, outside okr-sync. It is
built and installed offline (pip, no index, no build isolation) into a scratch directory,
and every okr-sync command here runs in a subprocess with that directory on its path, so
the connector is found only through its entry point, as it would be in production.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from okr_targets.models import Measurement, QuarantinedRow, Ticket
from okr_targets.store import Store
from tests.installing import environment, okr_sync, pip_install

FIXTURE = Path(__file__).parent / "fixtures" / "okr-sync-inbox"

OKRS = """\
company: Inbox Users Ltd.
sources:
  inbox: [ticket]
objectives:
  - id: support
    title: Answer customers fast
    owner: sam@inbox-users.example
    period: 2026-11
    key_results:
      - id: november-requests
        title: Keep November's support requests under 10
        metric: ticket_volume
        kind: at_most
        target: 10
      - id: first-reply
        title: Reply within 8 hours (median)
        metric: median_first_response_hours
        baseline: 12
        target: 8
        unit: hours
      - id: waiting
        title: Keep conversations waiting on customers under 30%
        metric: waiting_share
        kind: at_most
        target: 30
        unit: "%"
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("third-party") / "site"
    pip_install(FIXTURE, site)
    assert (site / "okr_sync_inbox" / "sample" / "conversations.jsonl").exists()
    return site


def test_it_is_not_installed_in_this_process() -> None:
    from connectors.base import available_connectors

    assert "inbox" not in available_connectors()  # only the subprocesses see it


def test_connectors_list_shows_the_installed_package(installed: Path, tmp_path: Path) -> None:
    result = okr_sync(
        "connectors", "list", "--format", "json", env=environment(installed), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    listing = {item["name"]: item for item in json.loads(result.stdout)}
    assert listing["inbox"]["package"] == "okr-sync-inbox"
    assert listing["inbox"]["streams"] == [
        {"name": "conversations", "entity": "ticket", "cursor_field": "updated_at"}
    ]
    assert {"salesforce", "zendesk", "hubspot", "sql", "files"} <= set(listing)


@pytest.mark.usefixtures("prefect_harness")
def test_a_sync_reads_the_third_party_source(installed: Path, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    (tmp_path / "okrs.yaml").write_text(OKRS)
    store_url = f"sqlite:///{tmp_path / 'okr.db'}"
    env = environment(
        installed,
        OKR_SYNC_INBOX_DIRECTORY=str(installed / "okr_sync_inbox" / "sample"),
        # the session's Prefect server: starting a temporary one per subprocess is slow
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
    )
    result = okr_sync(
        "sync", "--okr-file", "okrs.yaml", "--store", store_url, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "inbox.conversations" in result.stdout
    store = Store.open(store_url)
    try:
        with store.session() as session:
            tickets = session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.source == "inbox")
            )
            quarantined = session.scalars(select(QuarantinedRow)).all()
            values = {m.key_result_id: m.value for m in session.scalars(select(Measurement))}
    finally:
        store.dispose()
    assert tickets == 12
    assert [(q.source, q.source_id) for q in quarantined] == [("inbox", "2000")]
    assert "'spam'" in quarantined[0].expectations[0]
    # November: conversations 1006-1010, first replies after 6, 7, 8, 9 and 10 hours; one
    # (1008) waits on its customer: the package's own metric, from its entry point
    assert values == {"november-requests": 5.0, "first-reply": 8.0, "waiting": 20.0}


def test_its_own_tests_run_the_shared_contract_through_the_plugin(
    installed: Path, tmp_path: Path
) -> None:
    tests = tmp_path / "package"
    shutil.copytree(FIXTURE, tests, ignore=shutil.ignore_patterns("okr_sync_inbox", "build"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        env=environment(installed),
        cwd=tests,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "test_the_inbox_passes_the_okr_sync_contract[inbox]" in (
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
            capture_output=True,
            text=True,
            env=environment(installed),
            cwd=tests,
            timeout=300,
            check=False,
        ).stdout
    )


BROKEN_OKRS = """\
company: Half Deployed Ltd.
sources:
  inbox: [ticket]
objectives:
  - id: support
    title: Answer customers fast
    owner: sam@inbox-users.example
    period: 2026-11
    key_results:
      - {id: k, title: k, metric: broken_metric, target: 1}
"""


@pytest.mark.usefixtures("prefect_harness")
def test_a_package_that_does_not_import_is_named_not_fatal(installed: Path, tmp_path: Path) -> None:
    """Beside a working package, a broken one is listed with its error; naming its
    connector is a one-line error, naming its metric that key result's error, and the
    working connector still syncs."""
    site = tmp_path / "site"
    pip_install(FIXTURE.parent / "okr-sync-broken", site)
    env = environment(site)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(installed)])
    listed = okr_sync("connectors", "list", "--format", "json", env=env, cwd=tmp_path)
    assert listed.returncode == 1
    by_name = {item["name"]: item for item in json.loads(listed.stdout)}
    assert by_name["broken"]["package"] == "okr-sync-broken"
    assert by_name["broken"]["error"] == (
        "ModuleNotFoundError: No module named 'a_dependency_nobody_installed'"
    )
    assert by_name["inbox"]["error"] is None
    (tmp_path / "okrs.yaml").write_text(BROKEN_OKRS.replace("inbox: [ticket]", "broken: null"))
    lint = okr_sync("lint", "--okr-file", "okrs.yaml", env=env, cwd=tmp_path)
    assert lint.returncode == 1
    assert "Traceback" not in lint.stderr
    assert (
        "connector 'broken' (package okr-sync-broken) cannot be loaded: ModuleNotFoundError"
        in lint.stderr
    )
    (tmp_path / "okrs.yaml").write_text(BROKEN_OKRS)
    from prefect.settings import PREFECT_API_URL

    env |= {
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "OKR_SYNC_INBOX_DIRECTORY": str(installed / "okr_sync_inbox" / "sample"),
    }
    store_url = f"sqlite:///{tmp_path / 'okr.db'}"
    synced = okr_sync(
        "sync", "--okr-file", "okrs.yaml", "--store", store_url, env=env, cwd=tmp_path
    )
    assert synced.returncode == 3, synced.stdout + synced.stderr  # partial: the data is in
    assert "Traceback" not in synced.stderr
    assert (
        "1 key result(s) could not be computed: metric 'broken_metric': package "
        "okr-sync-broken (okr_sync_broken:metric) cannot be loaded: No module named "
        "'a_dependency_nobody_installed'"
    ) in " ".join(synced.stderr.split())
