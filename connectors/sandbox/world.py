"""What every sandbox generator shares, so one customer exists in the CRM and the helpdesk.

A CRM sandbox (Salesforce, HubSpot) decides which companies are customers and when; it
hands them on as :class:`CompanySeed` so the helpdesk sandbox (Zendesk) creates the same
organizations (same name, e-mail domain and external id) and files their tickets.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True)
class CompanySeed:
    """One company as the CRM knows it: its identity and customer lifetime."""

    crm_id: str  # the CRM's record id; helpdesks store it as their organization's external id
    name: str
    domain: str  # e-mail domain of its people, e.g. "northwind-traders.example"
    customer_since: date | None
    churned_on: date | None = None


def quarter_start_day(today: int, quarters_back: int = 0) -> int:
    """The first day of today's quarter (or one ``quarters_back`` before), as epoch days.

    The sandboxes plant their boundary records there (issue 22): a quarter's first UTC
    midnight is where the tests' and the demo's periods meet."""
    day = date(1970, 1, 1) + timedelta(days=today)
    index = day.year * 12 + (day.month - 1) // 3 * 3 - 3 * quarters_back
    return (date(index // 12, index % 12 + 1, 1) - date(1970, 1, 1)).days


def domain_for(name: str) -> str:
    """A stable, reserved-TLD e-mail domain for a generated company name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{slug}.example"


NAME_FIRST = (
    "Northwind",
    "Blue Harbor",
    "Summit",
    "Ironwood",
    "Redfield",
    "Silverline",
    "Crescent",
    "Evergreen",
    "Granite",
    "Lakeshore",
    "Brightpath",
    "Pioneer",
    "Keystone",
    "Atlas",
    "Cobalt",
    "Harbor Point",
    "Maple",
    "Orion",
    "Quarry",
    "Riverbend",
    "Sterling",
    "Tidewater",
    "Vantage",
    "Westbrook",
    "O'Neill",
    "Beacon",
    "Cedar",
    "Falcon",
    "Juniper",
    "Meridian",
    "Oakridge",
    "Pinnacle",
    "Sable",
    "Trident",
    "Union",
    "Willow",
    "Zenith",
    "Aurora",
    "Copperleaf",
    "Driftwood",
)
NAME_SECOND = (
    "Logistics",
    "Health",
    "Analytics",
    "Foods",
    "Manufacturing",
    "Energy",
    "Capital",
    "Media",
    "Robotics",
    "Labs",
    "Systems",
    "Retail",
    "Telecom",
    "Pharma",
    "Motors",
    "Software",
    "Partners",
    "Materials",
    "Hotels",
    "Learning",
    "Insurance",
    "Freight",
    "Biotech",
    "Outfitters",
    "Networks",
)


def company_names(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct company names (numbered once the word pairs run out)."""
    combos = len(NAME_FIRST) * len(NAME_SECOND)
    picks = rng.sample(range(combos), min(count, combos))
    names = []
    for i in range(count):
        first, second = divmod(picks[i % len(picks)], len(NAME_SECOND))
        suffix = f" {i // combos + 1}" if i >= combos else ""
        names.append(f"{NAME_FIRST[first]} {NAME_SECOND[second]}{suffix}")
    return names


def load_jsonl(path: Path, add: Callable[[dict[str, Any]], Any]) -> None:
    """Feed each record of a JSON Lines file to ``add``; a bad line names file and line."""
    with path.open("rb") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("expected a JSON object")
                add(record)
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                raise ValueError(f"{path}:{lineno}: {exc}") from None


def sample_companies(seed: int, as_of: date, count: int) -> list[CompanySeed]:
    """``count`` customers of an imagined CRM, for a helpdesk sandbox that stands alone.

    Customers for up to 18 months before ``as_of``, about one in twelve churned since: what
    a CRM sandbox would hand on, without tying a helpdesk's sandbox to one CRM's generator.
    """
    rng = random.Random(seed)
    companies = []
    for index, name in enumerate(company_names(rng, count), start=1):
        since = as_of - timedelta(days=rng.randrange(3, 560))
        churned = None
        if rng.random() < 1 / 12:
            churned = since + timedelta(days=rng.randrange(1, max(2, (as_of - since).days)))
        companies.append(CompanySeed(f"CRM-{index:05d}", name, domain_for(name), since, churned))
    return companies
