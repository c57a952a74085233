"""Zendesk records (as the Support API returns them) to canonical rows.

Any value that cannot become its canonical type raises :class:`MappingError`, so the
reader quarantines that one record with the reason instead of failing the sync or
guessing. First response and solve times come from the ticket's metric set (sideloaded
with ``include=metric_sets``), never from comments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.canonical import Customer, Rating, Ticket, unchecked
from connectors.canonical import Record as Identity

SOURCE = "zendesk"

Record = Mapping[str, Any]

TICKET_STATUSES = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "pending",  # on hold: waiting on a third party, still not the agent's move
    "solved": "solved",
    "closed": "closed",
}
UNANSWERED = ("offered", "unoffered")


class MappingError(ValueError):
    """A field holds a value that cannot become the canonical type."""


def parse_time(value: Any) -> datetime:
    """An aware datetime from Zendesk's ISO 8601 form (``2026-01-05T10:00:00Z``)."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(
            f"{value!r} lacks a time-zone offset (Z or ±HH:MM): its instant is unknown"
        )
    return parsed


def _timestamp(record: Record, name: str) -> datetime:
    value = record.get(name)
    if value is None:
        raise MappingError(f"{name} is missing")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise MappingError(f"{name} {exc}") from None


def _optional_timestamp(record: Record, name: str) -> datetime | None:
    return None if record.get(name) is None else _timestamp(record, name)


def _id(record: Record, name: str) -> str:
    value = record.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MappingError(f"{name} {value!r} is not an integer id")


def _optional_id(record: Record, name: str) -> str | None:
    return None if record.get(name) is None else _id(record, name)


def _common(record: Record) -> Identity:
    return {
        "source": SOURCE,
        "source_id": _id(record, "id"),
        "source_modified_at": _timestamp(record, "updated_at"),
        "deleted_at": None,
    }


def organization_to_customer(record: Record) -> Customer:
    """An organization is a customer; its ``external_id`` is the CRM's id for it."""
    domains = record.get("domain_names") or []
    if not isinstance(domains, list):
        raise MappingError(f"domain_names {domains!r} is not a list")
    fields = record.get("organization_fields") or {}
    if not isinstance(fields, Mapping):
        raise MappingError(f"organization_fields {fields!r} is not an object")
    return {
        **_common(record),
        "name": unchecked(record.get("name")),
        "owner_id": None,
        "segment": fields.get("industry"),
        "created_at": _timestamp(record, "created_at"),
        "became_customer_on": None,
        "churned_on": None,
        "domain": domains[0] if domains else None,
        "external_id": record.get("external_id"),
    }


def _minutes(metric_set: Record, name: str) -> int | float | None:
    block = metric_set.get(name)
    if block is None:
        return None
    value = block.get("calendar") if isinstance(block, Mapping) else block
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e9:
        return value
    raise MappingError(f"metric_sets {name}.calendar {value!r} is not a number of minutes")


def ticket_to_ticket(record: Record, metric_set: Record | None) -> Ticket:
    """A ticket; a ``deleted`` one becomes a tombstone (its former status is unknown)."""
    row = _common(record)
    status = record.get("status")
    if status == "deleted":
        row["deleted_at"] = row["source_modified_at"]
        canonical = None
    elif status in TICKET_STATUSES:
        canonical = TICKET_STATUSES[status]
    else:
        raise MappingError(f"status {status!r} is not a Zendesk ticket status")
    priority = record.get("priority")
    if priority is not None and not isinstance(priority, str):
        raise MappingError(f"priority {priority!r} is not text")
    via = record.get("via")
    created = _timestamp(record, "created_at")
    metrics = metric_set or {}
    reply = _minutes(metrics, "reply_time_in_minutes")
    return {
        **row,
        "customer_id": _optional_id(record, "organization_id"),
        "status": canonical,
        "priority": priority.lower() if priority else None,
        "channel": via.get("channel") if isinstance(via, Mapping) else None,
        "created_at": created,
        "first_response_at": None if reply is None else created + timedelta(minutes=reply),
        "solved_at": _optional_timestamp(metrics, "solved_at"),
    }


def _score(value: Any) -> tuple[Decimal | None, int | None, bool | None]:
    """(score, scale_max, good) of a survey answer: good/bad, or 1-5 on a numeric survey."""
    if value in UNANSWERED:
        return None, None, None
    if value == "good":
        return Decimal(1), 1, True
    if value == "bad":
        return Decimal(0), 1, False
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is not None and 1 <= number <= 5:
        return Decimal(number), 5, number >= 4
    raise MappingError(f"score {value!r} is not good, bad, offered, unoffered or 1-5")


def rating_to_rating(record: Record, organization_id: Any) -> Rating:
    """A satisfaction rating; offered/unoffered ones carry no answer (score and good None)."""
    score, scale_max, good = _score(record.get("score"))
    return {
        **_common(record),
        "ticket_id": _id(record, "ticket_id"),
        "customer_id": None if organization_id is None else str(organization_id),
        "score": score,
        "scale_max": scale_max,
        "good": good,
        "rated_at": _timestamp(record, "created_at"),
    }
