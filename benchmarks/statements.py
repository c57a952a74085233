"""Where the database time goes: every SQL statement timed, summed by its shape.

    python -m benchmarks.statements key-results STORE_URL [--passes N] [--top N]
    python -m benchmarks.statements sync [--deals N] [--customers N] [--tickets N]
                                         [--top N] --out DIR

``key-results`` measures every key result of ``benchmarks/okrs.yaml`` over a store (a
``make bench --keep`` one: rolled back, as ``make bench`` step (e) does) and prints each
pass's time, the share spent comparing unchanged key results' records with their stored
lineage, and the slowest statements. ``sync`` serves the benchmark's world and a Prefect
server as ``make bench`` does and runs okr-sync's full sync into a new SQLite store in
this process, timing each statement (SQLAlchemy's cursor events) and the staging of each
batch (``okr_targets.store._stage``: the values' bind processing and the driver's bulk
insert, which bypasses those events); it prints them by CPU seconds.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from benchmarks.bench import OKR_FILE, served_world

Totals = dict[str, list[float]]  # statement shape -> [count, wall seconds, CPU seconds]
LINEAGE_JOIN = "JOIN measurement_records"


def _shape(statement: str) -> str:
    """The statement's kind and table (a SELECT's first 80 characters before its FROM)."""
    text = " ".join(statement.split())
    kind = r"(INSERT INTO \S+|UPDATE \S+|DELETE FROM \S+|CREATE \w+ TABLE IF NOT EXISTS \S+"
    found = re.match(kind + r"|ANALYZE|SELECT .{0,80}?FROM \S+)", text)
    return found.group(1) if found else text[:80]


@contextmanager
def timed_statements(shape: Callable[[str], str] = _shape) -> Iterator[Totals]:
    """Sum every statement any engine runs while inside, by ``shape``."""
    totals: Totals = defaultdict(lambda: [0, 0.0, 0.0])
    started: dict[int, tuple[float, float]] = {}

    def before(_conn: Any, cursor: Any, *_args: Any) -> None:
        started[id(cursor)] = (time.perf_counter(), time.process_time())

    def after(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        wall, cpu = started.pop(id(cursor))
        total = totals[shape(statement)]
        total[0] += 1
        total[1] += time.perf_counter() - wall
        total[2] += time.process_time() - cpu

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        yield totals
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)


def _whole(statement: str) -> str:
    return " ".join(statement.split())


def _print(totals: Totals, top: int, by: int) -> None:
    for name, (count, wall, cpu) in sorted(totals.items(), key=lambda kv: -kv[1][by])[:top]:
        print(f"{cpu:8.3f} CPU s {wall:8.3f} wall s {int(count):6d}x  {name[:150]}")


def key_results(store_url: str, passes: int, top: int) -> None:
    from okr_sync import __version__
    from okr_targets.store import Store, begin_run
    from transforms.catalog import load
    from transforms.measure import measure_key_results

    config, catalog = load(OKR_FILE)
    store = Store.open(store_url)
    run_id = begin_run(store, __version__, None)
    try:
        for number in range(passes):
            with timed_statements(_whole) as totals, store.session() as session:
                wall, cpu = time.perf_counter(), time.process_time()
                measure_key_results(
                    session, config, catalog, run_id, datetime.now(UTC), __version__
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                session.rollback()
            sql = sum(total[1] for total in totals.values())
            lineage = sum(total[1] for name, total in totals.items() if LINEAGE_JOIN in name)
            print(
                f"pass {number + 1}: {wall:.3f} s ({cpu:.3f} s of it this process's CPU); "
                f"SQL {sql:.3f} s in {sum(int(t[0]) for t in totals.values())} statements, "
                f"{lineage:.3f} s of it comparing records with the stored lineage"
            )
        _print(totals, top, by=1)
    finally:
        store.dispose()


def sync(deals: int, customers: int, tickets: int, top: int, out: Path) -> None:
    import okr_targets.store as store_module
    from benchmarks import okr_run

    out.mkdir(parents=True, exist_ok=True)
    stage = store_module._stage
    try:
        with served_world(out, deals, customers, tickets), timed_statements() as totals:

            def staged(*args: Any, **kwargs: Any) -> Any:
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return stage(*args, **kwargs)
                finally:
                    total = totals["staging a batch (bind processing, bulk insert)"]
                    total[0] += 1
                    total[1] += time.perf_counter() - wall
                    total[2] += time.process_time() - cpu

            store_module._stage = staged
            store = out / f"statements-{deals}.db"
            result = okr_run.run(str(OKR_FILE), f"sqlite:///{store}", full_refresh=True)
        print({key: value for key, value in result.items() if key != "streams"})
        _print(totals, top, by=2)
    finally:
        store_module._stage = stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    steps = parser.add_subparsers(dest="step", required=True)
    measuring = steps.add_parser("key-results")
    measuring.add_argument("store_url")
    measuring.add_argument("--passes", type=int, default=2)
    measuring.add_argument("--top", type=int, default=12)
    syncing = steps.add_parser("sync")
    syncing.add_argument("--deals", type=int, default=300_000)
    syncing.add_argument("--customers", type=int, default=60_000)
    syncing.add_argument("--tickets", type=int, default=300_000)
    syncing.add_argument("--top", type=int, default=15)
    syncing.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.step == "key-results":
        key_results(args.store_url, args.passes, args.top)
    else:
        sync(args.deals, args.customers, args.tickets, args.top, args.out.resolve())


if __name__ == "__main__":
    main()
