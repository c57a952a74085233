"""The no-change sync: how long ``okr-sync sync`` takes when nothing changed at the sources.

    python -m benchmarks.no_change [--repeats N]

Serves the demo world (``okr_sync.demo.demo_sandboxes(7, today)``), runs one full sync of the
demo's OKR file into a temporary SQLite store, then times fresh ``okr-sync sync`` processes
with nothing changed, wall clock from process start to exit: (a) with no Prefect server
configured (the sync runs in-process, no flow run), and (b) with ``PREFECT_API_URL``
pointing at a real ``prefect server start`` (temporary PREFECT_HOME, stopped after; one
untimed sync first, as the fresh server registers the flow). The first process of each
case is the "first run"; the repeats follow. Target: <= 5 s each.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OKR_FILE = ROOT / "okr_sync" / "demo" / "okrs.yaml"
CLI = Path(sys.executable).parent / "okr-sync"
TARGET_SECONDS = 5.0
SERVER_STARTUP_SECONDS = 120.0


@dataclass(frozen=True)
class Case:
    name: str
    seconds: list[float]  # the first process, then the repeats

    @property
    def first(self) -> float:
        return self.seconds[0]

    @property
    def worst(self) -> float:
        return max(self.seconds)


def timed_sync(env: dict[str, str], *args: str) -> float:
    """One fresh ``okr-sync sync`` process; its wall time. A failed sync stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [str(CLI), "sync", "--okr-file", str(OKR_FILE), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"okr-sync sync {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def prefect_server(env: dict[str, str]) -> Iterator[str]:
    """``prefect server start`` on a free port until the block exits; yields its API URL."""
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - Prefect's own CLI beside ours
        [
            str(CLI.parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"prefect server did not come up on port {port}")
            time.sleep(0.5)
        yield api
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run(repeats: int) -> list[Case]:
    from okr_sync.demo import demo_sandboxes

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory(prefix="okr-no-change-") as scratch:
        home = Path(scratch)
        # As installed: bytecode cached (pip compiles site-packages; the project's own
        # modules compile on their first import), whatever this shell says.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "OKR_SYNC_")) and key != "PYTHONDONTWRITEBYTECODE"
        }
        env |= {
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "OKR_SYNC_STORE_URL": f"sqlite:///{home / 'store.db'}",
        }
        with demo_sandboxes(7, today, lax_limits=True) as world:
            env |= world.env
            print("full sync of the demo world…", file=sys.stderr)
            full = timed_sync(env, "--full-refresh")
            print(f"  {full:.1f} s", file=sys.stderr)
            cases = [Case("(a) no Prefect server", _repeat(env, repeats))]
            with prefect_server(env) as api:
                served = env | {"PREFECT_API_URL": api}
                # A fresh server's first run registers the flow: a deployment's server has
                # done that long before. Shown apart, not in the case's figures.
                registering = timed_sync(served)
                print(f"  first sync on the fresh server: {registering:.1f} s", file=sys.stderr)
                cases.append(Case("(b) Prefect server", _repeat(served, repeats)))
    return cases


def _repeat(env: dict[str, str], repeats: int) -> list[float]:
    return [timed_sync(env) for _ in range(1 + repeats)]


def print_table(cases: list[Case]) -> None:
    print(f"no-change `okr-sync sync`, wall seconds per fresh process (target <= {TARGET_SECONDS})")
    print(f"{'case':<24}{'first':>8}{'repeats':>20}{'median':>8}  within target")
    for case in cases:
        repeats = " ".join(f"{s:.2f}" for s in case.seconds[1:]) or "-"
        ok = "yes" if case.worst <= TARGET_SECONDS else "NO"
        print(
            f"{case.name:<24}{case.first:>8.2f}{repeats:>20}"
            f"{statistics.median(case.seconds):>8.2f}  {ok}"
        )


def main(argv: list[str] | None = None) -> list[Case]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs after the first (default 2)")
    cases = run(parser.parse_args(argv).repeats)
    print_table(cases)
    return cases


if __name__ == "__main__":
    main()
