"""Before/after pairs of okr-sync's full sync on one world: is a change worth keeping?

    python -m benchmarks.pairs --before DIR [--turns N] [--deals N] [--customers N]
                               [--tickets N] --out DIR

``DIR`` is a copy of the code before the change (``git archive COMMIT | tar -x -C DIR``).
Serves the benchmark's world and a Prefect server once, as ``make bench`` does, then runs
the full sync (``benchmarks/okr_run.py``, each its own process, into a new SQLite store)
from the old code and from this checkout in turns, ``--turns`` times each (before, after,
before, after…), so both sides share the machine's load of the moment; it prints each
run's CPU seconds, peak RSS and records, and the mean of each side.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from statistics import mean

import orjson

from benchmarks.bench import OKR_FILE, ROOT, served_world


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="the old code's tree")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with served_world(out, args.deals, args.customers, args.tickets):
        for turn in range(args.turns):
            for side, tree in (("before", args.before.resolve()), ("after", ROOT)):
                store = out / f"{side}-{turn}.db"
                result = out / f"{side}-{turn}.json"
                sync = ["-m", "benchmarks.okr_run", str(OKR_FILE), f"sqlite:///{store}"]
                subprocess.run(  # noqa: S603 - this venv's Python, our own module
                    [sys.executable, *sync, "full", str(result)], cwd=tree, check=True
                )
                store.unlink()
                run = orjson.loads(result.read_bytes())
                figures[side].append(run)
                print(
                    f"{side:6} cpu {run['cpu_seconds']:6.2f} s  rss {run['peak_rss_mb']:6.1f} MB"
                    f"  records {run['records']}  quarantined {run['quarantined']}",
                    flush=True,
                )
    for side, runs in figures.items():
        if runs:
            cpu = mean(run["cpu_seconds"] for run in runs)
            rss = mean(run["peak_rss_mb"] for run in runs)
            print(f"{side:6} mean cpu {cpu:6.2f} s  rss {rss:6.1f} MB")


if __name__ == "__main__":
    main()
