"""A full measuring pass against targeted ones, over a generated mirror.

    python -m benchmarks.targeted [--rows N]

Fills a scratch SQLite store with N deals and N tickets (no sync: only measuring is timed),
then measures the benchmark's OKR file (benchmarks/okrs.yaml) as successive syncs would:
two full passes, then targeted passes told nothing, tickets, or deals changed. Each line
prints the wall time of the pass, of its store check (which entities the run wrote) and how
many key results it computed. The key results filtered on reps error here (no reps are
generated): errors are always computed again.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from flows.report import RunReport
from flows.version import __version__
from okr_targets.models import Deal, Ticket, utcnow
from okr_targets.status import RunStatus
from okr_targets.store import Store, begin_run, finish_run
from transforms.catalog import load
from transforms.measure import entities_written, measure_key_results, save_okrs

OKR_FILE = Path(__file__).resolve().parent / "okrs.yaml"
START = datetime(2026, 7, 1, tzinfo=UTC)  # two quarters: the current one and its baseline


def fill(store: Store, rows: int) -> None:
    """``rows`` deals and ``rows`` tickets over 2026-Q3 and Q4, as a seed run left them."""
    rnd, now = random.Random(1), utcnow()
    deals, tickets = [], []
    for i in range(rows):
        deals.append(
            {
                "source": "salesforce",
                "source_id": f"d{i}",
                "source_modified_at": now,
                "run_id": "seed",
                "name": f"Deal {i}",
                "customer_id": f"c{rnd.randrange(max(1, rows // 10))}",
                "owner_id": None,
                "amount": Decimal(rnd.randrange(1_000, 90_000)),
                "currency": "USD",
                "stage": "x",
                "outcome": rnd.choice(["won", "lost", "open"]),
                "pipeline": None,
                "deal_type": None,
                "created_at": START - timedelta(days=rnd.randrange(100)),
                "close_on": date(2026, 7, 1) + timedelta(days=rnd.randrange(150)),
            }
        )
        created = START + timedelta(minutes=rnd.randrange(150 * 1440))
        tickets.append(
            {
                "source": "zendesk",
                "source_id": f"t{i}",
                "source_modified_at": now,
                "run_id": "seed",
                "customer_id": None,
                "status": "solved",
                "priority": None,
                "channel": "email",
                "created_at": created,
                "first_response_at": created + timedelta(minutes=rnd.randrange(600)),
                "solved_at": None,
            }
        )
    with store.session() as session, session.begin():
        session.execute(insert(Deal), deals)
        session.execute(insert(Ticket), tickets)


def one_pass(store: Store, url: str, changed: Collection[str] | None) -> tuple[float, float, str]:
    """One measuring pass as a sync runs it; (seconds, store check seconds, N of M)."""
    config, catalog = load(OKR_FILE)
    run_id = begin_run(store, __version__)
    with store.session() as session, session.begin():
        save_okrs(session, config, utcnow(), catalog)
        started = time.perf_counter()
        if changed is not None:
            changed = entities_written(session, run_id, known=changed)
        checked = time.perf_counter() - started
        outcomes = measure_key_results(
            session, config, catalog, run_id, utcnow(), __version__, changed=changed
        )
        took = time.perf_counter() - started
    report = RunReport(run_id, RunStatus.COMPLETE, None, url, "", key_results=tuple(outcomes))
    finish_run(store, run_id, RunStatus.COMPLETE, None, {}, report.details())
    computed = sum(1 for outcome in outcomes if not outcome.reused)
    return took, checked, f"{computed} of {len(outcomes)}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="deals, and as many tickets")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="okr-targeted-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'store.db'}"
        store = Store.open(url)
        try:
            fill(store, args.rows)
            passes: list[tuple[str, Collection[str] | None]] = [
                ("full, first", None),
                ("full, nothing changed", None),
                ("targeted, nothing changed", set()),
                ("targeted, tickets changed", {"ticket"}),
                ("targeted, deals changed", {"deal"}),
            ]
            for label, changed in passes:
                took, checked, computed = one_pass(store, url, changed)
                print(
                    f"{args.rows:>9,} deals and tickets  {label:27} {took:6.2f} s"
                    f"  (store check {checked * 1000:4.0f} ms)  re-measured {computed}"
                )
        finally:
            store.dispose()


if __name__ == "__main__":
    main()
