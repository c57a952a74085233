"""End to end on a real Prefect server: deployments from prefect.yaml, a process worker,
the scheduled sync, then a burst of signed Zendesk webhooks that the warm task worker
syncs, Zendesk alone, one run at a time, with the store updated and the key-result events
and artifacts published; last, the weekly digest deployment, run as its schedule would,
sends what needs attention and what changed through a webhook block.

Everything runs as it would for an operator: `prefect server start`, `prefect work-pool
create`, `prefect deploy --all`, `prefect worker start`, `okr-sync worker`, `okr-sync
webhooks serve`, each a subprocess with one PREFECT_HOME (the receiver and the task worker
share its task-parameter storage); the sources are the sandbox emulators over TLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from sqlalchemy import select

from connectors.salesforce import sandbox as salesforce
from connectors.salesforce.sandbox.data import customer_seeds, generate_org
from connectors.salesforce.sandbox.emulator import SANDBOX_CLIENT_SECRET
from connectors.salesforce.sandbox.emulator import create_app as create_org_app
from connectors.sandbox.server import serve_tls
from connectors.zendesk import sandbox as zendesk
from connectors.zendesk.sandbox.data import generate_helpdesk
from connectors.zendesk.sandbox.emulator import SANDBOX_API_TOKEN
from connectors.zendesk.sandbox.emulator import create_app as create_helpdesk_app
from okr_targets.models import KeyResult, Measurement, SyncRun, Ticket
from okr_targets.store import Store
from tests.conftest import (
    PG_ADMIN_DSN,
    _postgres_error,
    fresh_postgres_database,
    running_in_ci,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WEBHOOK_SECRET = "e2e-zendesk-signing-secret"
DIGEST_HOOK = "/digest/e2e-hook-token-not-for-logs"  # a webhook URL is a secret

# The servers and the worker run on the real clock, so the OKRs are set in a fiscal year
# around today (FISCAL_YEAR_START, FISCAL_YEAR): on any date it is half over, with half a
# year of generated data before today and room for the ticket the test opens now.
OKR_FILE = """\
company: E2E Inc.
sources:
  salesforce: [customer, deal, rep, fx_rate]
  zendesk: [customer, ticket, rating]
customers: {primary: salesforce, match_by: external_id}
money: {currency: USD}
calendar: {fiscal_year_start_month: FISCAL_YEAR_START}
objectives:
  - id: revenue
    title: Grow revenue
    owner: ceo@e2e.example
    period: FISCAL_YEAR
    key_results:
      - id: won-revenue
        title: Book 900M in won revenue
        metric: won_revenue
        params: {currency: USD}
        target: 900000000
        unit: USD
      - id: support-load
        title: Keep tickets under 100000 this year
        metric: ticket_volume
        kind: at_most
        target: 100000
"""


def okr_file_around(today: date) -> str:
    """The OKR file, in the fiscal year that began on the first of the month six months ago."""
    start_month = (today.month - 7) % 12 + 1
    start_year = today.year if today.month > 6 else today.year - 1
    label = f"FY{start_year if start_month == 1 else start_year + 1}"  # FY names its end year
    return OKR_FILE.replace("FISCAL_YEAR_START", str(start_month)).replace("FISCAL_YEAR", label)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Processes:
    """Subprocesses in their own process groups, all ended (children too) on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str], read_stdout: bool = False
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE if read_stdout else log,
            stderr=log,
            start_new_session=True,
        )
        self.started.append((name, process))
        return process

    def stop(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _name, process in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line of a process, or fail if it has none in time."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("no output in time")
    return process.stdout.readline().decode().strip()


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def zendesk_webhook(body: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + raw, hashlib.sha256).digest()
    return raw, {
        "content-type": "application/json",
        "x-zendesk-webhook-signature": base64.b64encode(digest).decode(),
        "x-zendesk-webhook-signature-timestamp": stamp,
    }


class Inbox(BaseHTTPRequestHandler):
    """Where the webhook blocks post: the off-track automation's and the digest's."""

    received: ClassVar[list[tuple[str, str]]] = []  # (path, body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.path, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def inbox(path: str) -> list[str]:
    return [body for at, body in Inbox.received if at == path]


@pytest.fixture
def prefect_database(tmp_path: Path) -> Iterator[str]:
    """Prefect's own database: PostgreSQL as in production.

    In CI (``CI=true``) an unreachable server fails the test; elsewhere the test falls back
    to SQLite and says why in a warning.
    """
    error = _postgres_error()
    if error is not None:
        message = f"PostgreSQL at {PG_ADMIN_DSN} is not reachable for Prefect's database: {error}"
        if running_in_ci():
            pytest.fail(f"{message} (required when CI=true)")
        warnings.warn(f"{message}; Prefect's database falls back to SQLite", stacklevel=1)
        yield f"sqlite+aiosqlite:///{tmp_path / 'prefect-server.db'}"
        return
    with fresh_postgres_database("prefect_e2e") as name:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def world(tmp_path: Path, prefect_database: str) -> Iterator[dict[str, Any]]:
    """A Prefect server, the project deployed to it, a worker, the sources, the receiver."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    org = generate_org(seed=3, as_of=today, accounts=40, opportunities=200)
    helpdesk = generate_helpdesk(seed=3, as_of=today, companies=customer_seeds(org))
    helpdesk_app = create_helpdesk_app(helpdesk, export_rate_limit=1000, rate_limit=100_000)
    (tmp_path / "okrs.yaml").write_text(okr_file_around(today.date()))
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    api_url = f"http://127.0.0.1:{free_port()}/api"
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "OKR_SYNC_"))
    }
    prefect_env = base_env | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    processes = Processes(tmp_path)
    with ExitStack() as stack:
        stack.callback(processes.stop)
        crm = stack.enter_context(serve_tls(create_org_app(org)))
        support = stack.enter_context(serve_tls(helpdesk_app))
        host, port = api_url.removeprefix("http://").removesuffix("/api").split(":")
        server_env = prefect_env | {"PREFECT_API_DATABASE_CONNECTION_URL": prefect_database}
        server = processes.start(
            "server",
            [str(BIN / "prefect"), "server", "start", "--host", host, "--port", port],
            server_env,
        )

        def healthy() -> bool:
            assert server.poll() is None, processes.log("server")
            try:
                return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the Prefect server", healthy, timeout=120)
        prefect = str(BIN / "prefect")
        run([prefect, "work-pool", "create", "okr-sync", "--type", "process"], prefect_env)
        run([prefect, "work-pool", "set-concurrency-limit", "okr-sync", "1"], prefect_env)
        run([prefect, "--no-prompt", "deploy", "--all"], prefect_env)
        # The deployments name Secret blocks (prefect.yaml); the operator creates them once.
        secrets = {
            "okr-sync-salesforce-client-secret": SANDBOX_CLIENT_SECRET,
            "okr-sync-zendesk-api-token": SANDBOX_API_TOKEN,
        }
        script = "\n".join(
            ["from prefect.blocks.system import Secret"]
            + [f"Secret(value={value!r}).save({name!r})" for name, value in secrets.items()]
        )
        run([sys.executable, "-c", script], prefect_env)
        # Webhook blocks to our inbox: the shipped example automation's, and the digest's
        # (docs/operations.md has the operator create the digest's block once, headless).
        receiving = ThreadingHTTPServer(("127.0.0.1", 0), Inbox)
        threading.Thread(target=receiving.serve_forever, daemon=True).start()
        stack.callback(receiving.shutdown)
        blocks = "from prefect.blocks.notifications import CustomWebhookNotificationBlock as Hook"
        for name, path in (("okr-owners", "/notify"), ("okr-digest", DIGEST_HOOK)):
            blocks += (
                f"\nHook(name={name!r}, url='http://127.0.0.1:{receiving.server_port}{path}',"
                " allow_private_urls=True,"
                " json_data={'subject': '{{subject}}', 'body': '{{body}}'})"
                f".save({name!r})"
            )
        run([sys.executable, "-c", blocks], prefect_env)
        okr_sync = str(BIN / "okr-sync")
        run(
            [okr_sync, "automations", "install", "--notify", "custom-webhook/okr-owners"],
            prefect_env,
        )
        sources_env = {
            name: value
            for name, value in (
                salesforce.sandbox_env(crm)
                | zendesk.sandbox_env(support, export_rate_limit=1000, rate_limit=100_000)
            ).items()
            if not name.endswith(("_SECRET", "_TOKEN"))  # these come from the blocks
        }
        worker_env = (
            prefect_env
            | sources_env
            | {
                "OKR_SYNC_STORE_URL": store_url,
                "OKR_SYNC_OKR_FILE": str(tmp_path / "okrs.yaml"),
                "PREFECT_WORKER_QUERY_SECONDS": "2",
            }
        )
        processes.start("worker", [prefect, "worker", "start", "--pool", "okr-sync"], worker_env)
        # The warm path: webhook-submitted syncs run here, the connectors' secrets read
        # from the blocks prefect.yaml names for the process worker (docs/operations.md).
        task_worker_env = worker_env | {
            "OKR_SYNC_SALESFORCE_CLIENT_SECRET_BLOCK": "okr-sync-salesforce-client-secret",
            "OKR_SYNC_ZENDESK_API_TOKEN_BLOCK": "okr-sync-zendesk-api-token",
        }
        processes.start("task-worker", [okr_sync, "worker"], task_worker_env)
        receiver = processes.start(
            "receiver",
            [okr_sync, "webhooks", "serve", "--port", "0"],
            prefect_env
            | {
                "OKR_SYNC_WEBHOOK_ZENDESK_SECRET": WEBHOOK_SECRET,
                "OKR_SYNC_OKR_FILE": worker_env["OKR_SYNC_OKR_FILE"],  # the sources it serves
            },
            read_stdout=True,
        )
        line = first_line(receiver, timeout=60)
        assert line.startswith("listening on http://127.0.0.1:"), processes.log("receiver")
        api = httpx.Client(base_url=api_url, timeout=10)
        # The test starts every run itself: a cron run firing mid-test (at :00, :15, …)
        # would sync the webhook's ticket first and take its measurement.
        for scheduled_deployment in ("incremental-sync", "nightly-reconcile"):
            call(
                api,
                "POST",
                f"/deployments/{deployment_id(api, scheduled_deployment)}/pause_deployment",
            )
        # The digest (Mondays 08:05) stays paused: step 6 runs it as its schedule would.
        digest = call(api, "GET", "/deployments/name/okr-digest/weekly-digest")["id"]
        call(api, "POST", f"/deployments/{digest}/pause_deployment")
        yield {
            "api": api,
            "receiver": line.split()[2],
            "helpdesk": helpdesk,
            "store_url": store_url,
            "processes": processes,
        }


def call(api: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    """One Prefect API call; a busy server's 503 is retried, as Prefect's own client does."""
    for _ in range(10):
        response = api.request(method, path, json=body)
        if response.status_code != 503:
            break
        time.sleep(2)
    response.raise_for_status()
    return response.json()


def deployment_id(api: httpx.Client, name: str) -> str:
    return str(call(api, "GET", f"/deployments/name/sync-okrs/{name}")["id"])


def finished(api: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run = call(api, "GET", f"/flow_runs/{run_id}")
    state = run["state"]["type"]
    assert state not in ("FAILED", "CRASHED", "CANCELLED"), run["state"]
    return run if state == "COMPLETED" else None


def sync_run(store_url: str, flow_run_id: str) -> SyncRun:
    store = Store.open(store_url)
    with store.session() as session:
        found = session.scalars(select(SyncRun).where(SyncRun.flow_run_id == flow_run_id)).one()
    store.dispose()
    return found


def ended(api: httpx.Client, task_run_ids: set[str]) -> bool:
    body = {"task_runs": {"id": {"any_": sorted(task_run_ids)}}}
    found = call(api, "POST", "/task_runs/filter", body)
    assert all(r["state"]["type"] not in ("FAILED", "CRASHED") for r in found), found
    return len(found) == len(task_run_ids) and all(r["state"]["type"] == "COMPLETED" for r in found)


def store_runs(store_url: str) -> list[SyncRun]:
    store = Store.open(store_url)
    with store.session() as session:
        found = list(session.scalars(select(SyncRun).order_by(SyncRun.started_at)))
    store.dispose()
    return found


def latest_measurement(store_url: str, key_result_id: str) -> Measurement:
    store = Store.open(store_url)
    with store.session() as session:
        latest = session.scalars(
            select(Measurement)
            .where(Measurement.key_result_id == key_result_id)
            .order_by(Measurement.id.desc())
        ).first()
    store.dispose()
    assert latest is not None
    return latest


def latest_value(store_url: str, key_result_id: str) -> tuple[float | None, str]:
    latest = latest_measurement(store_url, key_result_id)
    return latest.value, latest.run_id


def backdate(store_url: str, run_id: str, by: timedelta) -> None:
    """Move a run's measurements into the past: as if that sync had run ``by`` earlier."""
    store = Store.open(store_url)
    with store.session() as session:
        for measurement in session.scalars(select(Measurement).where(Measurement.run_id == run_id)):
            measurement.measured_at -= by
        session.commit()
    store.dispose()


ATTENTION_RANK = {"off_track": 0, "stale": 1, "at_risk": 2}  # the digest's documented order


def needing_attention(store_url: str) -> list[KeyResult]:
    """The key results the store's latest measurements mark off track, stale or at risk."""
    store = Store.open(store_url)
    with store.session() as session:
        key_results = list(session.scalars(select(KeyResult).order_by(KeyResult.id)))
    store.dispose()
    status = {kr.id: latest_measurement(store_url, kr.id).status for kr in key_results}
    needing = [kr for kr in key_results if status[kr.id] in ATTENTION_RANK]
    return sorted(needing, key=lambda kr: ATTENTION_RANK[status[kr.id]])


def reads_as(text: str, value: float) -> bool:
    """Whether a number as a person reads it ("12.3M USD", "1,234 tickets") is ``value``,
    to its three significant digits (or one decimal)."""
    found = re.fullmatch(r"([\d,.]+)([kMB]?)(?: .*)?", text)
    assert found, text
    scale = {"": 1, "k": 1e3, "M": 1e6, "B": 1e9}[found[2]]
    number = float(found[1].replace(",", "")) * scale
    return abs(number - value) <= max(0.005 * abs(value), 0.05)


def test_scheduled_and_webhook_triggered_syncs_and_the_digest_on_a_real_prefect_server(
    world: dict[str, Any],
) -> None:
    api: httpx.Client = world["api"]
    processes: Processes = world["processes"]
    store_url: str = world["store_url"]

    # 1. The scheduled deployment, run now, syncs both sources into the store.
    scheduled = call(
        api, "POST", f"/deployments/{deployment_id(api, 'incremental-sync')}/create_flow_run", {}
    )
    first = scheduled["id"]
    try:
        wait_for("the incremental sync", lambda: finished(api, first), timeout=240, every=2)
    except AssertionError:
        raise AssertionError(processes.log("worker")) from None
    run = sync_run(store_url, first)
    assert run.status == "complete"
    assert {name.split(".")[0] for name in run.stream_counts} == {"salesforce", "zendesk"}
    tickets_before, _ = latest_value(store_url, "support-load")
    assert tickets_before
    # won-revenue is far from its target: off track, so the example automation notified
    [notice] = wait_for("the off-track notification", lambda: inbox("/notify"), timeout=60)
    assert "Key result off track: Book 900M in won revenue" in notice
    assert "Owner ceo@e2e.example." in notice

    # 2. A ticket is opened at Zendesk, which tells the receiver three times in a burst.
    ticket = world["helpdesk"].upsert_ticket({"subject": "Checkout is down", "status": "new"})
    syncs = set()
    for attempt in range(3):
        body, headers = zendesk_webhook(
            {
                "type": "zen:event-type:ticket.created",
                "id": f"evt-{attempt}",
                "detail": {"id": str(ticket["id"])},
            }
        )
        answer = httpx.post(f"{world['receiver']}/webhooks/zendesk", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.json()["objects"] == 1
        # a ticket's change re-reads the tickets and their CSAT ratings, nothing else
        assert answer.json()["streams"] == ["zendesk.tickets", "zendesk.satisfaction_ratings"]
        syncs.add(answer.json()["sync"])
    replayed = httpx.post(f"{world['receiver']}/webhooks/zendesk", content=body, headers=headers)
    assert replayed.status_code == 409
    tampered = httpx.post(
        f"{world['receiver']}/webhooks/zendesk", content=body + b" ", headers=headers
    )
    assert tampered.status_code == 403

    # 3. The task worker syncs Zendesk alone, one run at a time, and the store has the ticket.
    try:
        wait_for(
            "the webhook's sync",
            lambda: latest_value(store_url, "support-load")[0] == tickets_before + 1,
            timeout=120,
            every=0.5,
        )
        wait_for("every submitted sync to end", lambda: ended(api, syncs), timeout=120)
    except AssertionError:
        raise AssertionError(
            processes.log("task-worker") + processes.log("receiver") + processes.log("server")
        ) from None
    assert run.finished_at is not None
    later = [r for r in store_runs(store_url) if r.started_at > run.finished_at]
    assert later
    assert all(r.finished_at is not None for r in later)
    assert all(r.status == "complete" for r in later)
    assert all({name.split(".")[0] for name in r.stream_counts} == {"zendesk"} for r in later)
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(later))  # type: ignore[operator]
    store = Store.open(store_url)
    with store.session() as session:
        assert session.get(Ticket, ("zendesk", str(ticket["id"]))) is not None
    store.dispose()
    tickets_after, measured_by = latest_value(store_url, "support-load")
    assert measured_by in {r.id for r in later}

    # 4. Each changed key result became an event; each run left its artifact.
    def changed() -> set[tuple[str, float]]:
        events = call(
            api,
            "POST",
            "/events/filter",
            {"filter": {"event": {"prefix": ["okr-sync.key-result."]}}, "limit": 50},
        )["events"]
        return {(e["resource"]["prefect.resource.id"], e["payload"]["new_value"]) for e in events}

    # the server stores an event a moment after it arrives
    wait_for(
        "the new value's event",
        lambda: ("okr-sync.key-result.support-load", tickets_after) in changed(),
        timeout=30,
    )
    assert ("okr-sync.key-result.support-load", tickets_before) in changed()
    artifacts = call(
        api,
        "POST",
        "/artifacts/filter",
        {"artifacts": {"key": {"any_": ["okr-sync-key-result-changes"]}}},
    )
    assert first in {a["flow_run_id"] for a in artifacts}  # background syncs have no flow run

    # 5. A store password asked for in a deployment's run (as `prefect deployment run -p
    # store_url=…` or the UI's custom run would) is refused before Prefect records a run.
    password = "e2e-hunter2-not-for-prefect"
    asked = api.post(
        f"/deployments/{deployment_id(api, 'incremental-sync')}/create_flow_run",
        json={"parameters": {"store_url": f"postgresql://okr:{password}@127.0.0.1:1/okr"}},
    )
    assert asked.status_code == 409, asked.text
    stored = call(api, "POST", "/flow_runs/filter", {"limit": 200})
    assert stored
    assert all(password not in json.dumps(run["parameters"]) for run in stored)

    # 6. The weekly digest as deployed: the schedule on the server is prefect.yaml's.
    digest = call(api, "GET", "/deployments/name/okr-digest/weekly-digest")
    declared = next(
        d
        for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
        if d["name"] == "weekly-digest"
    )
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in digest["schedules"]] == [
        (s["cron"], s["timezone"]) for s in declared["schedules"]
    ]
    assert digest["paused"]  # it cannot fire on its own during the test
    # The first sync as if it had run last week: the webhook's ticket is this week's change.
    backdate(store_url, run.id, timedelta(days=8))
    # What Monday 08:05 would do, now, with the parameters docs/operations.md gives.
    sent = call(
        api,
        "POST",
        f"/deployments/{digest['id']}/create_flow_run",
        {"parameters": {"notify": "custom-webhook/okr-digest", "days": 7}},
    )
    try:
        wait_for("the digest's run", lambda: finished(api, sent["id"]), timeout=120, every=2)
    except AssertionError:
        raise AssertionError(processes.log("worker")) from None
    [posted] = wait_for("the digest", lambda: inbox(DIGEST_HOOK), timeout=30)
    message = json.loads(posted)
    assert message["subject"].startswith("E2E Inc. OKR digest: 1 need attention, 1 moved (")
    lines = message["body"].splitlines()
    attention = lines[lines.index("Needs attention (1):") + 1 : lines.index("What moved (1):") - 1]
    expected = needing_attention(store_url)
    assert [line.split(": ")[1] for line in attention] == [kr.title for kr in expected]
    won = latest_measurement(store_url, "won-revenue")
    [line] = attention
    found = re.fullmatch(
        r"- 🔴 off track: Book 900M in won revenue: (.+ USD) \(target 900M USD\),"
        r" ceo@e2e\.example — (\d+)% done, (\d+)% expected",
        line,
    )
    assert found, line
    assert won.value is not None
    assert won.progress is not None
    assert reads_as(found[1], won.value), (found[1], won.value)
    assert abs(int(found[2]) - 100 * won.progress) <= 1
    assert abs(int(found[3]) - 100 * won.expected_progress) <= 1  # scored now, a moment later
    # What moved this week, and why: the one ticket opened at Zendesk.
    title, numbers = lines[lines.index("What moved (1):") + 1].split(": ", 1)
    assert title == "- Keep tickets under 100000 this year"
    then, now = numbers.split(" (")[0].split(" → ")
    assert reads_as(then, tickets_before)
    assert reads_as(now, tickets_before + 1)  # the one ticket opened
    assert lines[lines.index("What moved (1):") + 2] == "  tickets: 1 added (1 new at the source)"
    assert "Unchanged: 1; not measured yet: 0." in message["body"]

    # No secret: neither the webhook's URL nor the store's, in the digest, the run's
    # parameters or its logs.
    def run_logs() -> list[str] | None:
        body = {"logs": {"flow_run_id": {"any_": [sent["id"]]}}}
        messages = [entry["message"] for entry in call(api, "POST", "/logs/filter", body)]
        done = any("sent the digest through custom-webhook/okr-digest" in m for m in messages)
        return messages if done else None  # the server stores a log a moment after it arrives

    logs = json.dumps(wait_for("the digest's log", run_logs, timeout=30))
    parameters = json.dumps(call(api, "GET", f"/flow_runs/{sent['id']}")["parameters"])
    assert '"notify": "custom-webhook/okr-digest"' in parameters
    for secret in (DIGEST_HOOK, store_url, "store.db", "sqlite"):
        assert secret not in posted
        assert secret not in logs
        assert secret not in parameters
