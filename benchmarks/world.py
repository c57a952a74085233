"""The benchmark's sandbox world, served from its own process.

``python -m benchmarks.world SIZES`` generates, with the sandbox generators, a Salesforce
org (accounts, opportunities) with its Zendesk helpdesk (tickets, ratings), and a HubSpot
portal (companies, deals, tickets) holding ``--hubspot-share`` of the customers, deals and
tickets: a business unit selling and supporting on HubSpot. It serves the three over TLS on
free ports and prints one JSON line: the settings to reach them, the record counts and the
generation time. It then answers commands, one JSON line each, on stdin:
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
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TICKETS_PER_CUSTOMER_QUARTER = 3.62  # the generator's tickets per customer, per unit rate
UNLIMITED = 1_000_000  # rate limits high enough never to throttle the benchmark


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class Systems:
    """The generated sources, kept in this process so ``change`` can edit them."""

    org: Any  # Salesforce
    desk: Any  # Zendesk, the helpdesk of the Salesforce customers
    portal: Any  # HubSpot, with its own companies, deals and tickets


def split(total: int, share: float) -> tuple[int, int]:
    """(Salesforce or Zendesk part, HubSpot part) of a size: they add up to it exactly."""
    hubspot = round(total * share)
    return total - hubspot, hubspot


def build(deals: int, customers: int, tickets: int, hubspot_share: float, seed: int = 7) -> Systems:
    """The three systems, together of (about) the asked sizes."""
    from connectors.hubspot.sandbox.data import generate_portal
    from connectors.salesforce.sandbox.data import customer_seeds, generate_org
    from connectors.zendesk.sandbox.data import generate_helpdesk

    sf_deals, hs_deals = split(deals, hubspot_share)
    sf_customers, hs_customers = split(customers, hubspot_share)
    zd_tickets, hs_tickets = split(tickets, hubspot_share)
    org = generate_org(seed=seed, as_of=AS_OF, accounts=sf_customers, opportunities=sf_deals)
    seeds = customer_seeds(org)
    paying = sum(1 for seed_ in seeds if seed_.customer_since) or 1
    rate = zd_tickets / (paying * TICKETS_PER_CUSTOMER_QUARTER)
    desk = generate_helpdesk(
        seed=seed, as_of=AS_OF, companies=seeds, tickets_per_customer_per_quarter=rate
    )
    portal = generate_portal(
        seed=seed, as_of=AS_OF, companies=hs_customers, deals=hs_deals, tickets=hs_tickets
    )
    return Systems(org, desk, portal)


def counts(world: Systems) -> dict[str, Any]:
    """Records per kind across the three systems, and per system."""
    org, desk, portal = world.org, world.desk, world.portal
    systems = {
        "salesforce": {
            "deals": len(org.records("Opportunity", include_deleted=True)),
            "customers": len(org.records("Account", include_deleted=True)),
            "reps": len(org.records("User")),
        },
        "hubspot": {
            "deals": len(portal.records("deals", archived=None)),
            "customers": len(portal.records("companies", archived=None)),
            "reps": len(portal.owners),
            "tickets": len(portal.records("tickets", archived=None)),
        },
        "zendesk": {
            "customers": len(desk.organizations),
            "tickets": len(desk.tickets),
            "ratings": len(desk.ratings),
        },
    }
    totals: dict[str, Any] = {}
    for figures in systems.values():
        for kind, count in figures.items():
            totals[kind] = totals.get(kind, 0) + count
    return totals | {"systems": systems}


HUBSPOT_EDITS = {
    "companies": ("industry", "COMPUTER_SOFTWARE"),
    "deals": ("amount", None),  # None: one more than it was, as for Salesforce's Amount
    "tickets": ("hs_ticket_priority", "HIGH"),
}
"""What a user edits on each HubSpot object between two syncs, and to what."""


def change(world: Systems, fraction: float, seed: int = 11) -> dict[str, int]:
    """Edit ``fraction`` of each object now, as users would between two syncs."""
    org, desk, portal = world.org, world.desk, world.portal
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
    for object_type, (name, value) in HUBSPOT_EDITS.items():
        live = portal.records(object_type)
        for record in rng.sample(live, int(len(live) * fraction)):
            new = value or str(Decimal(record["properties"].get(name) or 0) + 1)
            portal.update(object_type, record["id"], {name: new})
        changed[f"hubspot.{object_type}"] = int(len(live) * fraction)
    settle(world)
    return changed


def settle(world: Systems) -> None:
    """Build the HubSpot emulator's search index and listings now. HubSpot keeps them
    current as records change; the emulator builds them on the first read after a change,
    which would bill that to whichever side reads first (the floor, or the incremental)."""
    from connectors.hubspot.sandbox.data import OBJECT_TYPES

    for object_type in OBJECT_TYPES:
        world.portal.live_index(object_type)
        for archived in (False, True):
            world.portal.by_id(object_type, archived=archived)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--tickets", type=int, required=True)
    parser.add_argument("--hubspot-share", type=float, required=True)
    args = parser.parse_args(argv)

    from connectors.hubspot import sandbox as hubspot
    from connectors.hubspot.sandbox import emulator as hubspot_emulator
    from connectors.salesforce import sandbox as salesforce
    from connectors.salesforce.sandbox import emulator as salesforce_emulator
    from connectors.sandbox.server import serve_tls
    from connectors.zendesk import sandbox as zendesk
    from connectors.zendesk.sandbox import emulator as zendesk_emulator

    started = time.perf_counter()
    world = build(args.deals, args.customers, args.tickets, args.hubspot_share)
    settle(world)
    generated = time.perf_counter() - started
    crm_app = salesforce_emulator.create_app(world.org, daily_api_limit=100_000_000)
    desk_app = zendesk_emulator.create_app(
        world.desk, export_rate_limit=UNLIMITED, rate_limit=UNLIMITED
    )
    portal_app = hubspot_emulator.create_app(
        world.portal,
        search_requests_per_second=UNLIMITED,
        requests_per_ten_seconds=UNLIMITED,
        daily_limit=100_000_000,
    )
    with ExitStack() as stack:
        crm = stack.enter_context(serve_tls(crm_app))
        support = stack.enter_context(serve_tls(desk_app))
        portal = stack.enter_context(serve_tls(portal_app))
        env = (
            salesforce.sandbox_env(crm)
            | zendesk.sandbox_env(support, export_rate_limit=UNLIMITED, rate_limit=UNLIMITED)
            | hubspot.sandbox_env(
                portal, search_requests_per_second=UNLIMITED, requests_per_ten_seconds=UNLIMITED
            )
        )
        ready = {
            "env": env,
            "salesforce_url": crm.base_url,
            "zendesk_url": support.base_url,
            "hubspot_url": portal.base_url,
            "ca_file": str(crm.ca_file),
            "zendesk_ca_file": str(support.ca_file),
            "hubspot_ca_file": str(portal.ca_file),
            "counts": counts(world),
            "generate_seconds": round(generated, 2),
            "cpu_seconds": _cpu(),
        }
        _say(ready)
        for line in sys.stdin:
            command, *rest = line.split()
            if command == "cpu":
                _say({"cpu_seconds": _cpu()})
            elif command == "change":
                _say({"changed": change(world, float(rest[0])), "counts": counts(world)})
            elif command == "quit":
                break


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(message).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
