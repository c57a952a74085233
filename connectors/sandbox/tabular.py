"""A small billing company's tables, for the SQL and file connectors' sandboxes and tests.

Deterministic (seeded) records with canonical column names plus ``id``, ``updated_at``
(naive, UTC) and ``deleted_at``. Some records share one ``updated_at`` (a bulk update),
so paging has to break ties by id; one deal is deleted (a tombstone).
"""

# The tables hold naive UTC wall times, as many databases and exports do.
# ruff: noqa: DTZ001

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

AS_OF = datetime(2026, 11, 27, 12, 0)  # naive: the tables hold UTC wall times
BULK_UPDATE = datetime(2026, 11, 20, 9, 30)  # many records share this timestamp

Table = list[dict[str, Any]]


def sample_tables(seed: int = 3, deals: int = 40) -> dict[str, Table]:
    """Every stream's rows (see ``connectors.tabular.STREAMS``), in id order."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 9, 0)

    def stamp(index: int) -> datetime:
        return BULK_UPDATE if index % 4 == 0 else start + timedelta(days=index * 7, minutes=index)

    reps = [
        {
            "id": i,
            "name": f"Rep {i}",
            "email": f"rep{i}@billing.example",
            "team": "EMEA" if i % 2 else "Americas",
            "started_on": date(2025, 1 + i, 1),
            "monthly_quota": Decimal("20000.00"),
            "quota_currency": "USD",
            "active": True,
            "updated_at": stamp(i),
            "deleted_at": None,
        }
        for i in range(1, 5)
    ]
    customers = [
        {
            "id": i,
            "name": f"Customer {i} GmbH",
            "owner_id": str(1 + i % 4),
            "segment": rng.choice(["smb", "mid-market", "enterprise"]),
            "created_at": start + timedelta(days=i),
            "became_customer_on": date(2026, 1 + i % 10, 1 + i),
            "churned_on": date(2026, 10, 15) if i == 3 else None,
            "domain": f"customer{i}.example",
            "external_id": f"CUST-{i:04d}",
            "updated_at": stamp(i),
            "deleted_at": None,
        }
        for i in range(1, 13)
    ]
    deal_rows: Table = []
    for i in range(1, deals + 1):
        created = start + timedelta(days=rng.randint(0, 250))
        outcome = rng.choice(["won", "won", "lost", "open"])
        deal_rows.append(
            {
                "id": i,
                "name": f"Subscription {i}",
                "customer_id": str(1 + i % 12),
                "owner_id": str(1 + i % 4),
                "amount": Decimal(rng.randrange(1000, 50000, 50)),
                "currency": "EUR" if i % 3 == 0 else "USD",
                "amount_home": None,
                "home_currency": None,
                "stage": {"won": "Closed Won", "lost": "Closed Lost", "open": "Negotiation"}[
                    outcome
                ],
                "outcome": outcome,
                "pipeline": "subscriptions",
                "deal_type": "new" if i % 5 else "renewal",
                "created_at": created,
                "close_on": (created + timedelta(days=rng.randint(10, 90))).date(),
                "updated_at": stamp(i),
                "deleted_at": stamp(i) if i == 7 else None,
            }
        )
    fx_rates = [
        {
            "id": 1,
            "currency": "USD",
            "rate": Decimal(1),
            "is_corporate": True,
            "valid_from": None,
            "valid_to": None,
            "updated_at": start,
            "deleted_at": None,
        },
        {
            "id": 2,
            "currency": "EUR",
            "rate": Decimal("0.92"),
            "is_corporate": False,
            "valid_from": None,
            "valid_to": None,
            "updated_at": start,
            "deleted_at": None,
        },
    ]
    tickets: Table = []
    for i in range(1, 21):
        created = start + timedelta(days=i * 9, hours=rng.randint(0, 8))
        solved = i % 5 != 0
        tickets.append(
            {
                "id": i,
                "customer_id": str(1 + i % 12),
                "status": "solved" if solved else "open",
                "priority": rng.choice(["low", "normal", "high"]),
                "channel": "email",
                "created_at": created,
                "first_response_at": created + timedelta(hours=rng.randint(1, 10)),
                "solved_at": created + timedelta(days=1) if solved else None,
                "updated_at": stamp(i),
                "deleted_at": None,
            }
        )
    ratings: Table = [
        {
            "id": i,
            "ticket_id": str(i),
            "customer_id": str(1 + i % 12),
            "score": Decimal(rng.randint(1, 5)),
            "scale_max": 5,
            "good": None,
            "rated_at": tickets[i - 1]["created_at"] + timedelta(days=2),
            "updated_at": stamp(i),
            "deleted_at": None,
        }
        for i in range(1, 11)
    ]
    for rating in ratings:
        rating["good"] = rating["score"] >= 4
    finance_lines: Table = []
    for i in range(1, 31):  # invoice lines, a credit note and a cost-only line
        amount = Decimal(rng.randrange(500, 20000, 10))
        finance_lines.append(
            {
                "id": i,
                "customer_id": None if i == 30 else str(1 + i % 12),
                "segment": customers[i % 12]["segment"],
                "amount": Decimal(0) if i == 30 else (-amount / 10 if i == 29 else amount),
                "cost": (amount * Decimal(rng.randint(35, 70)) / 100).quantize(Decimal("0.01")),
                "currency": "EUR" if i % 3 == 0 else "USD",
                "booked_on": date(2026, 1, 1) + timedelta(days=i * 11),
                "description": "Hosting" if i == 30 else f"Invoice {1000 + i} line 1",
                "updated_at": stamp(i),
                "deleted_at": stamp(i) if i == 11 else None,
            }
        )
    return {
        "customers": customers,
        "deals": deal_rows,
        "reps": reps,
        "fx_rates": fx_rates,
        "tickets": tickets,
        "ratings": ratings,
        "finance_lines": finance_lines,
    }


def utc(value: datetime) -> datetime:
    """A fixture's naive UTC wall time as the aware datetime the mirror holds."""
    return value.replace(tzinfo=UTC)
