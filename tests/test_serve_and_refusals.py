"""Issue 22: the live dashboard's summary cache, and ports and fault specs that are refused;
issue 24: a taken port, and sandboxes sharing a directory.

The cache is checked by what is served, never by timing: each answer must equal a fresh
``build_summary`` at the moment the cached summary says it was generated, and a change to
the store (a new measurement, a run, an edited key result) must show at once.
"""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.testclient import TestClient
from typer.testing import CliRunner

from okr_sync.cli import DEMO_OKRS, app
from okr_sync.serve import ServeSettings, create_app
from okr_targets.dashboard import Refresh, render_html
from okr_targets.models import KeyResult, Measurement, Organisation, SyncRun, utcnow
from okr_targets.store import Store
from okr_targets.summary import build_summary, summary_csv
from tests.okr_fixture import NOW, changes_of, fill_store


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def fresh(url: str, now: datetime) -> dict[str, Any]:
    """The summary built straight from the store, as ``okr-sync report`` builds it."""
    store = Store.open(url)
    with store.session() as session:
        found = build_summary(session, now, store.display_url)
    store.dispose()
    return json.loads(json.dumps(found))


@pytest.fixture
def served(store_url: str) -> Iterator[tuple[str, Clock, TestClient]]:
    fill_store(store_url)
    clock = Clock()
    store = Store.open(store_url)
    with TestClient(create_app(store, ServeSettings(), clock=clock)) as client:
        yield store_url, clock, client
    store.dispose()


def assert_serves(client: TestClient, url: str, now: datetime) -> dict[str, Any]:
    """Every view equals a fresh build at ``now``; the summary served is returned."""
    expected = fresh(url, now)
    summary = client.get("/api/v2/summary").json()
    assert summary == expected
    version = client.get("/api/v2/version").json()["version"]
    page = render_html(expected, changes=changes_of(url, now), refresh=Refresh(version, 15.0))
    assert client.get("/").text == page
    assert client.get("/api/v2/summary.csv").text == summary_csv(expected)
    revenue = client.get("/api/v2/key-results/revenue").json()
    assert revenue["value"] == next(
        kr["value"]
        for o in expected["objectives"]
        for kr in o["key_results"]
        if kr["id"] == "revenue"
    )
    return summary


def land_run(url: str, run_id: str, at: datetime, revenue: float | None) -> None:
    """A finished sync, with a new revenue measurement when ``revenue`` is given."""
    store = Store.open(url)
    with store.session() as session:
        session.add(
            SyncRun(
                id=run_id,
                started_at=at,
                finished_at=at + timedelta(seconds=30),
                status="complete",
                code_version="0.1.0",
            )
        )
        session.flush()
        if revenue is not None:
            session.add(
                Measurement(
                    key_result_id="revenue",
                    run_id=run_id,
                    measured_at=at,
                    value=revenue,
                    unit="USD",
                    progress=None,
                    progress_raw=None,
                    expected_progress=0.0,
                    status="on_track",
                    metric="won_revenue",
                    params={},
                    details={},
                    record_count=0,
                    code_version="0.1.0",
                    data_cutoff=at,
                )
            )
        session.commit()
    store.dispose()


def test_the_served_summary_is_built_once_per_store_change_and_equals_a_fresh_build(
    served: tuple[str, Clock, TestClient],
) -> None:
    url, clock, client = served
    first = assert_serves(client, url, NOW)
    assert first["generated_at"] == NOW.isoformat()

    # nothing changed, a little later: the same summary, built at NOW, is served
    clock.now = NOW + timedelta(seconds=20)
    assert client.get("/api/v2/summary").json() == first

    # a new measurement lands: the next request shows it
    land_run(url, "run-2", clock.now - timedelta(seconds=5), revenue=700_000.0)
    second = assert_serves(client, url, clock.now)
    assert second["generated_at"] == clock.now.isoformat()
    assert (
        next(kr for o in second["objectives"] for kr in o["key_results"] if kr["id"] == "revenue")[
            "value"
        ]
        == 700_000.0
    )

    # a run that measured nothing new still changes the page (its trouble, its reads)
    clock.now += timedelta(seconds=10)
    land_run(url, "run-3", clock.now - timedelta(seconds=1), revenue=None)
    assert assert_serves(client, url, clock.now)["generated_at"] == clock.now.isoformat()

    # an edited key result (the OKR file changed), stamped as a sync stamps it
    clock.now += timedelta(seconds=10)
    store = Store.open(url)
    with store.session() as session:
        kr = session.get(KeyResult, "revenue")
        assert kr is not None
        kr.title, kr.updated_at = "Book 1.2M in won revenue", utcnow()
        session.commit()
    store.dispose()
    edited = assert_serves(client, url, clock.now)
    assert "Book 1.2M in won revenue" in json.dumps(edited)

    # a person renamed in the OKR file's people: map, stamped as a sync stamps it
    clock.now += timedelta(seconds=10)
    store = Store.open(url)
    with store.session() as session:
        organisation = session.get(Organisation, 1)
        assert organisation is not None
        renamed = {"name": "Sue P. Porter", "team": "Support"}
        organisation.people = {**organisation.people, "support@example.com": renamed}
        organisation.updated_at = utcnow()
        session.commit()
    store.dispose()
    assert "Sue P. Porter" in json.dumps(assert_serves(client, url, clock.now))

    # nothing changes, but scoring reads the clock: after a minute the summary is rebuilt
    built = clock.now
    clock.now += timedelta(seconds=59)
    assert client.get("/api/v2/summary").json()["generated_at"] == built.isoformat()
    clock.now += timedelta(seconds=1)
    assert assert_serves(client, url, clock.now)["generated_at"] == clock.now.isoformat()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "command",
    [("serve",), ("webhooks", "serve"), ("sandbox",)],
    ids=["serve", "webhooks-serve", "sandbox"],
)
@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_is_one_error_line(command: tuple[str, ...], port: str) -> None:
    result = invoke(*command, "--port", port)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"error: --port {port} is not a port: use 0 (any free one) to 65535"
    ]


@pytest.mark.parametrize("spec", ["slow:nan", "slow:inf", "tie:-5", "503:nan"])
def test_the_sandbox_refuses_a_fault_spec_that_names_no_real_delay_or_count(spec: str) -> None:
    result = invoke("sandbox", "--port", "0", "--faults", spec)
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: fault {spec!r}: counts and delays must be positive and finite")


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("OKR_SYNC_WEBHOOK_TOLERANCE_SECONDS", "soon", "Input should be a valid number, unable"),
        ("OKR_SYNC_WEBHOOK_MAX_BODY_BYTES", "0", "Input should be greater than 0"),
    ],
)
def test_a_refused_webhook_setting_is_one_line_naming_its_variable(
    variable: str, value: str, why: str
) -> None:
    """Issue 22: the receiver's settings are refused as the sync's are, in one line."""
    result = CliRunner().invoke(app, ["webhooks", "serve", "--port", "0"], env={variable: value})
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {variable}={value!r}: {why}")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("soon", "Input should be a valid number, unable"),
        ("0.1", "Input should be greater than or equal to 0.5"),  # a poll storm
    ],
)
def test_a_refused_refresh_interval_is_one_line_naming_its_variable(
    sqlite_url: str, value: str, why: str
) -> None:
    """Issue 23: how often the live page polls is a setting refused as the others are."""
    variable = "OKR_SYNC_SERVE_REFRESH_SECONDS"
    result = CliRunner().invoke(
        app, ["serve", "--store", sqlite_url, "--port", "0"], env={variable: value}
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {variable}={value!r}: {why}")


@pytest.mark.parametrize(
    "command",
    [("serve",), ("webhooks", "serve"), ("sandbox",)],
    ids=["serve", "webhooks-serve", "sandbox"],
)
def test_a_taken_port_is_one_error_line(
    command: tuple[str, ...], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)  # serve's store
    monkeypatch.setenv("OKR_SYNC_OKR_FILE", str(DEMO_OKRS))  # the receiver's sources
    monkeypatch.setenv("OKR_SYNC_WEBHOOK_ZENDESK_SECRET", "zendesk-signing-secret")
    with (
        socket.socket() as taken,
        temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}),  # never called
    ):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke(*command, "--port", str(port))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def start_sandbox(source: str, directory: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``okr-sync sandbox`` run as a user would, in ``directory``: the process and the
    ``export`` lines it printed, read up to its "Press Ctrl-C"."""
    command = [str(Path(sys.executable).parent / "okr-sync"), "sandbox", "--source", source]
    process = subprocess.Popen(
        [*command, "--port", "0"], cwd=directory, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    exports: dict[str, str] = {}
    for line in process.stdout:
        if line.startswith("Press Ctrl-C"):
            return process, exports
        if line.strip().startswith("export "):
            name, _, value = shlex.split(line.strip().removeprefix("export "))[0].partition("=")
            exports[name] = value
    process.wait()
    raise AssertionError(f"the {source} sandbox ended (status {process.returncode})")


def test_two_sandboxes_in_one_directory_each_keep_their_own_ca(tmp_path: Path) -> None:
    sandboxes = []
    try:
        for source in ("salesforce", "zendesk"):
            sandboxes.append(start_sandbox(source, tmp_path))
        urls = [
            exports.get("OKR_SYNC_SALESFORCE_LOGIN_URL") or exports["OKR_SYNC_ZENDESK_BASE_URL"]
            for _, exports in sandboxes
        ]
        bundles = [
            exports.get("OKR_SYNC_SALESFORCE_CA_BUNDLE") or exports["OKR_SYNC_ZENDESK_CA_BUNDLE"]
            for _, exports in sandboxes
        ]
        assert len(set(bundles)) == 2
        for url, bundle in zip(urls, bundles, strict=True):
            # absolute, so the export works from any directory (this test's is not tmp_path)
            assert Path(bundle).is_absolute()
            assert Path(bundle).parent == tmp_path / ".okr-sync"
            # each CA file still makes a client trust its own sandbox
            requests.get(f"{url}/", verify=bundle, timeout=10)
            other = next(b for b in bundles if b != bundle)
            with pytest.raises(requests.exceptions.SSLError):
                requests.get(f"{url}/", verify=other, timeout=10)
    finally:
        for process, _ in sandboxes:
            process.send_signal(signal.SIGINT)  # Ctrl-C
            process.communicate(timeout=30)
    assert [process.returncode for process, _ in sandboxes] == [0, 0]
