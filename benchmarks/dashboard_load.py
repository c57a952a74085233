"""Load on the live dashboard (issue 22): many clients with a token, one store.

``python -m benchmarks.dashboard_load [--world demo|fixture] [--store URL] [--requests N]
[--clients N]`` builds a store (``demo``: ``okr-sync demo``'s synced sample company, as the
issue measured; ``fixture``: tests/okr_fixture.py's small one, in a second), or uses
``--store``; starts ``okr-sync serve`` with ``OKR_SYNC_SERVE_TOKEN`` as a subprocess; then
fires ``--requests`` GETs (default 2,000) from ``--clients`` threads (default 20), each
with its own connection, over the page and the API in turn. It prints the first (cold)
answer's time, throughput, p50/p95/p99 against the target (p99 < 1 s), and fails when an
answer is not 200.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
TARGET_P99 = 1.0
PATHS = ("/", "/api/v2/summary", "/api/v2/summary.csv", "/api/v2/summary")


def build_store(world: str, directory: Path) -> str:
    url = f"sqlite:///{directory / 'dashboard.db'}"
    if world == "fixture":
        from tests.okr_fixture import fill_store

        fill_store(url)
        return url
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 (our own command: okr-sync)
        [str(BIN / "okr-sync"), "demo", "--store", url],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"demo store synced in {time.perf_counter() - started:.0f} s: {url}")
    return url


def start_serve(url: str, token: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("w") as stderr:
        process = subprocess.Popen(  # noqa: S603 (our own command: okr-sync)
            [str(BIN / "okr-sync"), "serve", "--store", url, "--port", "0"],
            env={**os.environ, "OKR_SYNC_SERVE_TOKEN": token},
            stderr=stderr,
        )
    deadline = time.monotonic() + 60
    while not (found := re.search(r"http://127\.0\.0\.1:\d+", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"okr-sync serve did not start:\n{log.read_text()}")
        time.sleep(0.1)
    base = found.group(0)
    while True:  # the line is printed just before uvicorn accepts
        try:
            httpx.get(f"{base}/api/v2", headers={"Authorization": f"Bearer {token}"})
            return process, base
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise SystemExit("okr-sync serve did not accept connections") from None
            time.sleep(0.1)


def fire(base: str, token: str, requests: int, clients: int) -> tuple[list[float], float]:
    """Each request's seconds, and the wall time of them all."""
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []

    def client_loop() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                started = time.perf_counter()
                answer = client.get(PATHS[n % len(PATHS)])
                took = time.perf_counter() - started
                if answer.status_code != 200:
                    raise SystemExit(f"GET {PATHS[n % len(PATHS)]}: {answer.status_code}")
                with lock:
                    latencies.append(took)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    return latencies, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=("demo", "fixture"), default="demo")
    parser.add_argument("--store", help="serve this store instead of building one")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="okr-dashboard-load-") as tmp:
        url = args.store or build_store(args.world, Path(tmp))
        process, base = start_serve(url, token, Path(tmp) / "serve.log")
        try:
            started = time.perf_counter()
            cold = httpx.get(f"{base}/", headers={"Authorization": f"Bearer {token}"}, timeout=60)
            cold_seconds = time.perf_counter() - started
            assert cold.status_code == 200, cold.text
            latencies, wall = fire(base, token, args.requests, args.clients)
        finally:
            process.terminate()
            process.wait(timeout=30)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    p50, p95, p99 = cuts[49], cuts[94], cuts[98]
    print(f"store: {args.store or args.world}; first page (summary built): {cold_seconds:.3f} s")
    print(
        f"{len(latencies):,} GETs from {args.clients} clients with token auth in {wall:.1f} s: "
        f"{len(latencies) / wall:.0f} requests/s"
    )
    print(f"latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    verdict = "met" if p99 < TARGET_P99 else "MISSED"
    print(f"target p99 < {TARGET_P99:.0f} s: {verdict}")
    if p99 >= TARGET_P99:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
