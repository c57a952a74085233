"""What every sandbox generator shares, so one customer exists in the CRM and the helpdesk.

A CRM sandbox (Salesforce, HubSpot) decides which companies are customers and when; it
hands them on as :class:`CompanySeed` so the helpdesk sandbox (Zendesk) creates the same
organizations (same name, e-mail domain and external id) and files their tickets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class CompanySeed:
    """One company as the CRM knows it: its identity and customer lifetime."""

    crm_id: str  # the CRM's record id; helpdesks store it as their organization's external id
    name: str
    domain: str  # e-mail domain of its people, e.g. "northwind-traders.example"
    customer_since: date | None
    churned_on: date | None = None


def domain_for(name: str) -> str:
    """A stable, reserved-TLD e-mail domain for a generated company name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{slug}.example"


def domain_of(value: str | None) -> str | None:
    """The bare domain of a website or e-mail ("https://www.x.example/" → "x.example")."""
    if not value:
        return None
    text = value.strip().lower()
    text = text.rsplit("@", 1)[-1]
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].split(":", 1)[0]
    return text.removeprefix("www.") or None
