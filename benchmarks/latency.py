"""Webhook-to-key-result latency on a real Prefect server, and a burst that must coalesce.

``python -m benchmarks.latency [--changes N] [--burst N] [--seed N]`` (``make latency``)
sets up what docs/operations.md prescribes: ``prefect server start``, the work pool and
``prefect deploy --all`` from prefect.yaml, ``okr-sync worker`` and ``okr-sync webhooks
serve`` as subprocesses; the demo world's Salesforce and Zendesk emulators run in this
process, so a record can be changed at the source and a signed webhook sent about it.

After a full sync, each of ``--changes`` times one open opportunity is won at the
source and a signed Salesforce webhook POSTed; the clock runs from the POST until (a)
the store holds won-revenue's new measurement and (b) its Prefect event
(okr-sync.key-result.*) reaches an events subscriber. Then ``--burst`` webhooks, each
after a real change, go out at once: the syncs that ran, whether two overlapped, and
whether the key results equal a fresh full sync's of the same data (none lost).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEY_RESULT = "won-revenue"  # the demo's company won revenue, 2026-Q4
TARGET_P50, TARGET_P95 = 5.0, 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every)
    raise SystemExit(f"error: timed out after {timeout:.0f}s waiting for {what}")


class Processes:
    """Subprocesses in their own process groups, logging to files; all ended on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 (our own commands: prefect, okr-sync)
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(  # noqa: S603 (our own commands: prefect, okr-sync)
        args, cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"error: {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def signed(secret: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A Salesforce webhook as okr-sync's Apex callout signs it (okr_sync/webhooks.py)."""
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).digest()
    headers = {
        "content-type": "application/json",
        "x-okr-sync-signature": base64.b64encode(digest).decode(),
        "x-okr-sync-timestamp": stamp,
    }
    return raw, headers


def opportunity_changed(opportunity_id: str) -> dict[str, Any]:
    return {"objects": [{"type": "Opportunity", "id": opportunity_id, "change": "updated"}]}


class EventLog:
    """Key-result events as a Prefect events subscriber receives them, with arrival times."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}  # (key result, run id) -> perf time
        self.ready = threading.Event()
        threading.Thread(target=asyncio.run, args=(self.listen(),), daemon=True).start()

    async def listen(self) -> None:
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter

        wanted = EventFilter(event=EventNameFilter(prefix=["okr-sync.key-result."]))
        try:
            async with get_events_subscriber(filter=wanted) as subscriber:
                self.ready.set()
                async for event in subscriber:
                    payload = event.payload
                    key = (str(payload.get("key_result_id")), str(payload.get("run_id")))
                    self.arrived.setdefault(key, time.perf_counter())
        except OSError:  # the server stopped at the end of the benchmark
            return


def latest(store_url: str, key_result_id: str) -> tuple[int, float | None, str]:
    from sqlalchemy import select

    from okr_targets.models import Measurement
    from okr_targets.store import Store

    store = Store.open(store_url)
    try:
        with store.session() as session:
            found = session.scalars(
                select(Measurement)
                .where(Measurement.key_result_id == key_result_id)
                .order_by(Measurement.id.desc())
                .limit(1)
            ).one()
            return found.id, found.value, found.run_id
    finally:
        store.dispose()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float]) -> str:
    p50, p95 = statistics.median(seconds), percentile(seconds, 0.95)
    verdict = "within target" if p50 <= TARGET_P50 and p95 <= TARGET_P95 else "OVER target"
    return (
        f"{name}: p50 {p50:.2f} s, p95 {p95:.2f} s, min {min(seconds):.2f} s, max "
        f"{max(seconds):.2f} s over {len(seconds)} changes "
        f"(target p50 <= {TARGET_P50:.0f} s, p95 <= {TARGET_P95:.0f} s: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=25, help="single-record changes timed")
    parser.add_argument("--burst", type=int, default=500, help="webhooks in the burst")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="okr-latency-") as tmp:
        measure(Path(tmp), args.changes, args.burst, args.seed)


def measure(tmp: Path, changes: int, burst: int, seed: int) -> None:
    api_url = f"http://127.0.0.1:{free_port()}/api"
    secret = secrets.token_urlsafe(24)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OKR_SYNC_"))}
    prefect_env = base | {
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    os.environ.update(prefect_env)  # this process: the events subscriber, the full syncs
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # its full syncs' task lines
    os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
    from okr_sync.cli.sync import DEMO_OKRS
    from okr_sync.demo import demo_sandboxes

    processes = Processes(tmp)
    try:
        started = time.perf_counter()
        port = api_url.split(":")[2].split("/")[0]
        server = processes.start(
            "server", [str(BIN / "prefect"), "server", "start", "--port", port], prefect_env
        )

        def healthy() -> bool:
            if server.poll() is not None:
                raise SystemExit(f"error: the Prefect server exited:\n{processes.log('server')}")
            try:
                return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the Prefect server", healthy, timeout=180, every=0.5)
        prefect = str(BIN / "prefect")
        run([prefect, "work-pool", "create", "okr-sync", "--type", "process"], prefect_env)
        run([prefect, "work-pool", "set-concurrency-limit", "okr-sync", "1"], prefect_env)
        run([prefect, "--no-prompt", "deploy", "--all"], prefect_env)
        took = time.perf_counter() - started
        print(f"Prefect server at {api_url}, prefect.yaml deployed ({took:.0f} s)")
        with demo_sandboxes(seed=seed, as_of=datetime.now(UTC)) as world:
            os.environ.update(world.env)
            store_url = f"sqlite:///{tmp / 'store.db'}"
            okr_env = {"OKR_SYNC_STORE_URL": store_url, "OKR_SYNC_OKR_FILE": str(DEMO_OKRS)}
            full_sync(store_url, str(DEMO_OKRS))
            worker_env = prefect_env | world.env | okr_env
            worker = processes.start("worker", [str(BIN / "okr-sync"), "worker"], worker_env)
            wait_for(
                "okr-sync worker to subscribe",
                lambda: worker.poll() is None and "Subscribing to runs" in processes.log("worker"),
                timeout=120,
                every=0.2,
            )
            receiver_env = prefect_env | {"OKR_SYNC_WEBHOOK_SALESFORCE_SECRET": secret}
            receiver_port = free_port()
            processes.start(
                "receiver",
                [str(BIN / "okr-sync"), "webhooks", "serve", "--port", str(receiver_port)],
                receiver_env,
            )
            receiver = f"http://127.0.0.1:{receiver_port}/webhooks/salesforce"
            wait_for(
                "the receiver",
                lambda: "listening on" in processes.log("receiver"),
                timeout=60,
                every=0.2,
            )
            events = EventLog()
            events.ready.wait(30)
            org = world.data["salesforce"]
            stored, announced = single_changes(org, receiver, secret, store_url, events, changes)
            print(summary("(a) webhook -> measurement committed", stored))
            print(summary("(b) webhook -> key-result event received", announced))
            burst_of(org, receiver, secret, store_url, burst, tmp)
    finally:
        processes.stop()


def full_sync(store_url: str, okr_file: str, started: float | None = None) -> None:
    from flows.plan import SyncRequest
    from flows.settings import Settings
    from flows.sync import run_sync

    began = time.perf_counter()
    report = run_sync(SyncRequest(okr_file, full_refresh=True), store_url, Settings())
    if report.status != "complete":
        raise SystemExit(f"error: the full sync ended {report.status}: {report.reason}")
    print(f"full sync into {store_url.rsplit('/', 1)[-1]}: {time.perf_counter() - began:.1f} s")


def open_opportunities(org: Any) -> list[str]:
    return sorted(
        r["Id"] for r in org.records("Opportunity") if not r["IsClosed"] and (r["Amount"] or 0) > 0
    )


def single_changes(
    org: Any, receiver: str, secret: str, store_url: str, events: EventLog, changes: int
) -> tuple[list[float], list[float]]:
    """Win one open opportunity at a time; time its webhook to the store and the event."""
    stored, announced = [], []
    candidates = open_opportunities(org)
    if len(candidates) < changes:
        raise SystemExit(f"error: only {len(candidates)} open opportunities to win")
    for number, opportunity_id in enumerate(candidates[:changes], 1):
        before_id, before_value, _ = latest(store_url, KEY_RESULT)
        org.upsert(
            "Opportunity",
            {
                "Id": opportunity_id,
                "StageName": "Closed Won",
                "IsClosed": True,
                "IsWon": True,
                "Probability": 100,
                "CloseDate": datetime.now(UTC).date().isoformat(),
            },
        )
        body, headers = signed(secret, opportunity_changed(opportunity_id))
        posted = time.perf_counter()
        answer = httpx.post(receiver, content=body, headers=headers, timeout=30)
        if answer.status_code != 202:
            raise SystemExit(f"error: the receiver answered {answer.status_code}: {answer.text}")

        def measured(before_id: int = before_id, before_value: Any = before_value) -> Any:
            found = latest(store_url, KEY_RESULT)
            return found if found[0] > before_id and found[1] != before_value else None

        _, value, run_id = wait_for(f"change {number} in the store", measured, timeout=120)
        stored.append(time.perf_counter() - posted)
        key = (KEY_RESULT, str(run_id))
        arrived = wait_for(f"change {number}'s event", partial(events.arrived.get, key), timeout=60)
        announced.append(arrived - posted)
        print(
            f"  change {number:2}: won {opportunity_id}; {KEY_RESULT} {before_value:,.0f} -> "
            f"{value:,.0f}; stored {stored[-1]:.2f} s, event {announced[-1]:.2f} s"
        )
    return stored, announced


def burst_of(org: Any, receiver: str, secret: str, store_url: str, burst: int, tmp: Path) -> None:
    """``burst`` webhooks, each after a real change (an amount won this quarter moves)."""
    from sqlalchemy import select

    from okr_sync.cli.sync import DEMO_OKRS
    from okr_targets.models import SyncRun
    from okr_targets.store import Store

    won = sorted(
        r["Id"]
        for r in org.records("Opportunity")
        if r["IsWon"] and r["CloseDate"] >= datetime.now(UTC).date().replace(day=1).isoformat()
    )
    began_at = datetime.now(UTC)

    def change_and_post(number: int) -> dict[str, Any]:
        opportunity_id = won[number % len(won)]
        amount = org.get("Opportunity", opportunity_id)["Amount"]
        org.upsert("Opportunity", {"Id": opportunity_id, "Amount": amount + 1})
        body, headers = signed(secret, opportunity_changed(opportunity_id) | {"n": number})
        answer = httpx.post(receiver, content=body, headers=headers, timeout=60)
        if answer.status_code != 202:
            raise SystemExit(f"error: the receiver answered {answer.status_code}: {answer.text}")
        return dict(answer.json())

    sent = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(change_and_post, range(burst)))
    spent = time.perf_counter() - sent
    submitted = {a["sync"] for a in answers if not a["coalesced"]}
    print(
        f"burst: {burst} signed webhooks (each after a real change) answered 202 in "
        f"{spent:.1f} s; {len(submitted)} sync(s) submitted, "
        f"{sum(a['coalesced'] for a in answers)} coalesced into a queued one"
    )
    store = Store.open(store_url)

    def runs() -> list[SyncRun]:
        with store.session() as session:
            return list(
                session.scalars(
                    select(SyncRun)
                    .where(SyncRun.started_at >= began_at)
                    .order_by(SyncRun.started_at)
                ).all()
            )

    def settled() -> list[SyncRun] | None:  # every submitted sync ran or skipped, and ended
        found = runs()
        if any(r.finished_at is None for r in found) or not task_runs_done(submitted):
            return None
        return found

    done = wait_for("the burst's syncs to finish", settled, timeout=600, every=0.5)
    store.dispose()
    overlaps = sum(
        1
        for earlier, later in itertools.pairwise(done)
        if earlier.finished_at is not None and later.started_at < earlier.finished_at
    )
    statuses = [r.status for r in done]
    skipped = processes_log(tmp, "worker").count("skipped: sync run")
    print(
        f"burst: {len(done)} sync run(s) ran (statuses {sorted(set(statuses))}), "
        f"{skipped} submitted sync(s) skipped as already covered by one that started later; "
        f"{overlaps} overlapped another for the same source; all done "
        f"{time.perf_counter() - sent:.1f} s after the first webhook"
    )
    check_url = f"sqlite:///{tmp / 'check.db'}"
    full_sync(check_url, str(DEMO_OKRS))
    mine, fresh = values(store_url), values(check_url)
    differ = {k: (mine.get(k), fresh[k]) for k in fresh if not same(mine.get(k), fresh[k])}
    print(
        f"burst: {len(fresh) - len(differ)} of {len(fresh)} key results equal a fresh full "
        f"sync's of the same data" + (f"; DIFFERENT: {differ}" if differ else " (none lost)")
    )


def processes_log(tmp: Path, name: str) -> str:
    return (tmp / f"{name}.log").read_text(errors="replace")


def task_runs_done(task_run_ids: set[str]) -> bool:
    api = os.environ["PREFECT_API_URL"]
    body = {"task_runs": {"id": {"any_": sorted(task_run_ids)}}}
    found = httpx.post(f"{api}/task_runs/filter", json=body, timeout=10).json()
    final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
    return len(found) == len(task_run_ids) and all(r["state"]["type"] in final for r in found)


def values(store_url: str) -> dict[str, float | None]:
    from sqlalchemy import func, select

    from okr_targets.models import Measurement
    from okr_targets.store import Store

    store = Store.open(store_url)
    try:
        with store.session() as session:
            newest = select(func.max(Measurement.id)).group_by(Measurement.key_result_id)
            rows = session.scalars(select(Measurement).where(Measurement.id.in_(newest))).all()
            return {m.key_result_id: m.value for m in rows}
    finally:
        store.dispose()


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


if __name__ == "__main__":
    main()
