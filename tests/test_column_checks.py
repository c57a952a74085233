"""The batch's column checks, column by column, find exactly what the per-row check finds.

The validator judges a whole column at once where it can (types, longest text, one search
for unstorable characters) and falls back to checking values one by one; a row of a batch
must be rejected for the same reasons, in the same order, as when checked alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from expectations import batch_findings, column_findings

MODIFIED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def deal(number: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "source": "salesforce",
        "source_id": f"006{number:015d}",
        "source_modified_at": MODIFIED,
        "deleted_at": None,
        "name": f"Deal {number}",
        "customer_id": None,
        "owner_id": "005000000000000001",
        "amount": Decimal("1234.5000"),
        "currency": "USD",
        "amount_home": None,
        "home_currency": None,
        "stage": "Prospecting",
        "outcome": "open",
        "pipeline": None,
        "deal_type": "",
        "created_at": MODIFIED - timedelta(days=3),
        "close_on": date(2026, 5, 1),
    }
    row.update(changes)
    return row


BAD: list[dict[str, object]] = [
    {"name": 12345},
    {"name": "x" * 10_001},
    {"currency": "EURO"},
    {"name": "caf\ufffd"},
    {"stage": "Won\x00"},
    {"deal_type": "\ud800"},
    {"name": True, "stage": "\udfff"},
    {"amount": Decimal("NaN")},
    {"amount": Decimal("1e20")},
    {"amount": float("inf")},
    {"amount": 10**400},
    {"amount": True},
    {"amount": "12"},
    {"created_at": datetime(2026, 1, 1)},  # noqa: DTZ001 - the naive value under test
    {"created_at": "2026-01-01"},
    {"close_on": datetime(2026, 1, 1, tzinfo=UTC)},
    {"close_on": "2026-01-01"},
    {"source_id": 6},
]
GOOD: list[dict[str, object]] = [
    {},
    {"amount": 12, "amount_home": 3.5, "home_currency": "EUR"},
    {"created_at": datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))},
    {"created_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))},
    {"name": "Ünïcode ✓ deal", "pipeline": "x" * 100},
]


@pytest.mark.parametrize("changes", BAD + GOOD)
def test_a_batch_finds_what_each_row_finds(changes: dict[str, object]) -> None:
    rows = [deal(1), deal(2, **changes), deal(3)]
    expected = {i: found for i, row in enumerate(rows) if (found := column_findings("deal", row))}
    assert batch_findings("deal", rows) == expected
    assert (1 in expected) == (changes in BAD)


def test_every_bad_value_in_one_batch() -> None:
    rows = [deal(i, **changes) for i, changes in enumerate(BAD + GOOD)]
    found = batch_findings("deal", rows)
    assert sorted(found) == list(range(len(BAD)))
    assert found == {i: column_findings("deal", rows[i]) for i in range(len(BAD))}
    assert found[6] == ["column(name): bool is not text", found[6][1]]
    assert found[6][1].startswith("column(stage): holds a lone surrogate (U+DFFF)")
