"""Where okr-sync's full sync spends its CPU and memory: one sync under a profiler.

    python -m benchmarks.profile [--deals N] [--customers N] [--tickets N] [--store URL]
                                 [--memray] --out DIR

Serves the benchmark's world (``benchmarks/world.py``) and a Prefect server as ``make
bench`` does, then runs okr-sync's full sync (``benchmarks/okr_run.py``, its own process)
under py-spy (``DIR/cpu.txt``: collapsed stacks, which https://www.speedscope.app and
flamegraph.pl read; only samples holding the GIL, i.e. CPU) and prints the functions with
the most samples, inclusive and self, and the share of each step of the sync. With
``--memray`` the same sync runs again under memray (``DIR/memory.bin``; ``memray
flamegraph DIR/memory.bin`` or ``memray stats``) for where the peak RSS lives.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

from benchmarks.bench import OKR_FILE, ROOT, served_world

BIN = Path(sys.executable).parent


def top_functions(collapsed: Path, limit: int = 40) -> str:
    """The functions with the most samples in py-spy's collapsed stacks: inclusive
    (on the stack) and self (running), as shares of all samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = [_function(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{n / total:7.1%}  {f}" for f, n in inclusive.most_common(limit)]
    lines += ["", "self:"]
    lines += [f"{n / total:7.1%}  {f}" for f, n in own.most_common(limit)]
    return "\n".join(lines)


STAGES = (  # (stage, a function on the stack that puts a sample in it), first match wins
    ("imports", "_find_and_load (<frozen importlib._bootstrap>)"),
    ("validation: Great Expectations", "Validator._validate_suite (expectations/__init__.py)"),
    ("validation: column checks", "batch_findings (expectations/__init__.py)"),
    ("load: staging + upsert (SQL)", "load_rows (okr_targets/store.py)"),
    ("load: re-read check (SQL)", "unchanged_rows (okr_targets/store.py)"),
    ("load: quarantine, cursor, commit", "validate_and_load (flows/load.py)"),
    ("read: mapping to canonical rows", "/mapping.py)"),
    ("read: JSON parse", "JSONDecoder.raw_decode"),
    ("read: HTTP + TLS", "Session.request (requests/sessions.py)"),
    ("read: HTTP + TLS", "HTTPConnectionPool.urlopen (urllib3/connectionpool.py)"),
    ("read: reader (orjson parse, paging)", "batches (flows/extract.py)"),
    ("measure key results", "measure (flows/measure.py)"),
    ("sync, other (Prefect engine, run records)", "sync_store (flows/sync.py)"),
)


def stages(collapsed: Path) -> str:
    """Each sample put in its step of the sync (:data:`STAGES`), as shares of all."""
    counts: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_function(frame) for frame in stack.split(";")]
        stage = next((name for name, mark in STAGES if any(mark in f for f in frames)), "other")
        counts[stage] += int(count)
        total += int(count)
    return "\n".join(f"{n / total:7.1%}  {stage}" for stage, n in counts.most_common())


def _function(frame: str) -> str:
    """``name (path:line)`` as ``name (package/module.py)``: lines apart, one function."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    short = path.split("site-packages/")[-1].removeprefix(str(ROOT) + "/")
    return f"{name} ({short})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--hubspot-share", type=float, default=0.2)
    parser.add_argument("--store", help="store URL (default: a new SQLite file in --out)")
    parser.add_argument("--memray", action="store_true", help="also run it under memray")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with served_world(out, args.deals, args.customers, args.tickets, args.hubspot_share):
        py_spy = [str(BIN / "py-spy"), "record", "--gil", "--rate", "200", "--format", "raw"]
        runs = [("cpu", [*py_spy, "-o", str(out / "cpu.txt"), "--", sys.executable])]
        if args.memray:
            memray = [str(BIN / "memray"), "run", "--force", "-o", str(out / "memory.bin")]
            runs.append(("memory", memray))
        for name, profiler in runs:
            store = args.store or f"sqlite:///{out / f'okr-sync-{name}.db'}"
            result = out / f"{name}-sync.json"
            sync = ["-m", "benchmarks.okr_run", str(OKR_FILE), store, "full", str(result)]
            subprocess.run([*profiler, *sync], cwd=ROOT, check=True)  # noqa: S603 - this venv's
            print(f"{name}: {result.read_text()}")
    print(top_functions(out / "cpu.txt"))
    print("\nby step:\n" + stages(out / "cpu.txt"))


if __name__ == "__main__":
    main()
