"""The benchmark's sandbox world, served from its own process.

``python -m benchmarks.world SIZES`` generates a Salesforce org (accounts, opportunities)
and its Zendesk helpdesk (tickets, ratings) with the sandbox generators, serves both over
TLS on free ports and prints one JSON line: the settings to reach them, the record counts
and the generation time. It then answers commands, one JSON line each, on stdin:
``cpu`` (this process's CPU seconds so far: the emulators' own cost), ``change FRACTION``
(that share of each object changes now, for the incremental sync) and ``quit``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import orjson

AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TICKETS_PER_CUSTOMER_QUARTER = 3.62  # the generator's tickets per customer, per unit rate
UNLIMITED = 1_000_000  # rate limits high enough never to throttle the benchmark


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def build(deals: int, customers: int, tickets: int, seed: int = 7) -> tuple[Any, Any]:
    """A Salesforce org and its helpdesk of (about) the asked sizes."""
    from connectors.salesforce.sandbox_data import customer_seeds, generate_org
    from connectors.zendesk.sandbox_data import generate_helpdesk

    org = generate_org(seed=seed, as_of=AS_OF, accounts=customers, opportunities=deals)
    seeds = customer_seeds(org)
    paying = sum(1 for seed_ in seeds if seed_.customer_since) or 1
    rate = tickets / (paying * TICKETS_PER_CUSTOMER_QUARTER)
    desk = generate_helpdesk(
        seed=seed, as_of=AS_OF, companies=seeds, tickets_per_customer_per_quarter=rate
    )
    return org, desk


def counts(org: Any, desk: Any) -> dict[str, int]:
    return {
        "deals": len(org.records("Opportunity", include_deleted=True)),
        "customers": len(org.records("Account", include_deleted=True)) + len(desk.organizations),
        "reps": len(org.records("User")),
        "tickets": len(desk.tickets),
        "ratings": len(desk.ratings),
    }


def change(org: Any, desk: Any, fraction: float, seed: int = 11) -> dict[str, int]:
    """Edit ``fraction`` of each object now, as users would between two syncs."""
    rng = random.Random(seed)
    changed: dict[str, int] = {}
    for sobject, field in (("Opportunity", "Amount"), ("Account", "Industry")):
        live = org.records(sobject)
        for record in rng.sample(live, int(len(live) * fraction)):
            value = record.get(field)
            new = (value or 0) + 1 if field == "Amount" else "Technology"
            org.upsert(sobject, {"Id": record["Id"], field: new})
        changed[sobject] = int(len(live) * fraction)
    ticket_ids = [i for i, t in desk.tickets.items() if t.get("status") != "deleted"]
    picked = rng.sample(ticket_ids, int(len(ticket_ids) * fraction))
    for ticket_id in picked:
        desk.upsert_ticket({"id": ticket_id, "priority": "high"})
    changed["tickets"] = len(picked)
    rating_ids = rng.sample(sorted(desk.ratings), int(len(desk.ratings) * fraction))
    for rating_id in rating_ids:
        desk.upsert_rating({"id": rating_id, "comment": "changed"})
    changed["ratings"] = len(rating_ids)
    organizations = rng.sample(sorted(desk.organizations), int(len(desk.organizations) * fraction))
    for org_id in organizations:
        desk.upsert_organization({"id": org_id, "notes": "changed"})
    changed["organizations"] = len(organizations)
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--tickets", type=int, required=True)
    args = parser.parse_args(argv)

    from connectors import salesforce, zendesk
    from connectors.salesforce import emulator as salesforce_emulator
    from connectors.zendesk import emulator as zendesk_emulator
    from okr_sync.sandbox import serve_tls

    started = time.perf_counter()
    org, desk = build(args.deals, args.customers, args.tickets)
    generated = time.perf_counter() - started
    crm_app = salesforce_emulator.create_app(org, daily_api_limit=100_000_000)
    desk_app = zendesk_emulator.create_app(desk, export_rate_limit=UNLIMITED, rate_limit=UNLIMITED)
    with ExitStack() as stack:
        crm = stack.enter_context(serve_tls(crm_app))
        support = stack.enter_context(serve_tls(desk_app))
        env = salesforce.sandbox_env(crm) | zendesk.sandbox_env(
            support, export_rate_limit=UNLIMITED, rate_limit=UNLIMITED
        )
        ready = {
            "env": env,
            "salesforce_url": crm.base_url,
            "zendesk_url": support.base_url,
            "ca_file": str(crm.ca_file),
            "zendesk_ca_file": str(support.ca_file),
            "counts": counts(org, desk),
            "generate_seconds": round(generated, 2),
            "cpu_seconds": _cpu(),
        }
        _say(ready)
        for line in sys.stdin:
            command, *rest = line.split()
            if command == "cpu":
                _say({"cpu_seconds": _cpu()})
            elif command == "change":
                _say({"changed": change(org, desk, float(rest[0])), "counts": counts(org, desk)})
            elif command == "quit":
                break


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(message).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
