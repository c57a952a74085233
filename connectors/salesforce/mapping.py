"""Salesforce records (as the REST API returns them) to canonical rows.

Won and lost come from the record's own ``IsWon``/``IsClosed`` flags, which Salesforce
derives from the stage's metadata, never from stage names. Money stays in its
``CurrencyIsoCode``; amounts arrive as Decimal (the client parses floats as Decimal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import CanonicalRow
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.timestamps import parse_sf_datetime
from connectors.sandbox_world import domain_of

SOURCE = "salesforce"
CURSOR_FIELD = "SystemModstamp"

Record = Mapping[str, Any]


class MappingError(ValueError):
    """A field holds a value that cannot become the canonical type."""


def _timestamp(record: Record, name: str, *, required: bool = True) -> datetime | None:
    value = record.get(name)
    if value is None:
        if required:
            raise MappingError(f"{name} is missing")
        return None
    try:
        return parse_sf_datetime(value)
    except (TypeError, ValueError):
        raise MappingError(f"{name} {value!r} is not a Salesforce datetime") from None


def _date(record: Record, name: str) -> date | None:
    value = record.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise MappingError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def _decimal(record: Record, name: str) -> Decimal | None:
    value = record.get(name)
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise MappingError(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise MappingError(f"{name} {value!r} is not a finite number")
    return number


def _common(record: Record) -> CanonicalRow:
    modified = _timestamp(record, CURSOR_FIELD)
    return {
        "source": SOURCE,
        "source_id": record.get("Id"),
        "source_modified_at": modified,
        "deleted_at": modified if record.get("IsDeleted") else None,
    }


def account_to_customer(record: Record, settings: SalesforceSettings) -> CanonicalRow:
    return _common(record) | {
        "name": record.get("Name"),
        "owner_id": record.get("OwnerId"),
        "segment": record.get("Industry"),
        "created_at": _timestamp(record, "CreatedDate"),
        "became_customer_on": _date(record, settings.customer_since_field),
        "churned_on": _date(record, settings.churn_date_field),
        "domain": domain_of(record.get("Website")),
        "external_id": None,
    }


def opportunity_to_deal(record: Record, settings: SalesforceSettings) -> CanonicalRow:
    outcome = "won" if record.get("IsWon") else "lost" if record.get("IsClosed") else "open"
    return _common(record) | {
        "name": record.get("Name"),
        "customer_id": record.get("AccountId"),
        "owner_id": record.get("OwnerId"),
        "amount": _decimal(record, "Amount"),
        "currency": record.get("CurrencyIsoCode"),
        "amount_home": None,
        "home_currency": None,
        "stage": record.get("StageName"),
        "outcome": outcome,
        "pipeline": None,
        "deal_type": record.get("Type"),
        "created_at": _timestamp(record, "CreatedDate"),
        "close_on": _date(record, "CloseDate"),
    }


def user_to_rep(record: Record, settings: SalesforceSettings) -> CanonicalRow:
    return _common(record) | {
        "name": record.get("Name"),
        "email": record.get("Email"),
        "team": record.get("Department"),
        "started_on": _date(record, settings.rep_start_date_field),
        "monthly_quota": _decimal(record, settings.rep_quota_field),
        "quota_currency": record.get("DefaultCurrencyIsoCode"),
        "active": bool(record.get("IsActive")),
    }


def currency_to_fx_rate(record: Record, settings: SalesforceSettings) -> CanonicalRow:
    return _common(record) | {
        "source_id": record.get("IsoCode"),
        "currency": record.get("IsoCode"),
        "rate": _decimal(record, "ConversionRate"),
        "is_corporate": bool(record.get("IsCorporate")),
        "valid_from": None,
        "valid_to": None,
    }


def dated_rate_to_fx_rate(record: Record, settings: SalesforceSettings) -> CanonicalRow:
    """A rate that holds for [StartDate, NextStartDate) (advanced currency management)."""
    following = _date(record, "NextStartDate")
    return _common(record) | {
        "currency": record.get("IsoCode"),
        "rate": _decimal(record, "ConversionRate"),
        "is_corporate": False,
        "valid_from": _date(record, "StartDate"),
        "valid_to": None if following == date(9999, 12, 31) else following,
    }


_CASE_STATUS = {"new": "new", "closed": "closed"}


def case_to_ticket(record: Record, settings: SalesforceSettings) -> CanonicalRow:
    """A Case as a support ticket; closed cases count as solved when they have a close time."""
    status = str(record.get("Status") or "").lower()
    if record.get("IsClosed"):
        status = "solved" if record.get("ClosedDate") else "closed"
    else:
        status = _CASE_STATUS.get(status, "open")
    return _common(record) | {
        "customer_id": record.get("AccountId"),
        "status": status,
        "priority": (record.get("Priority") or "").lower() or None,
        "channel": (record.get("Origin") or "").lower() or None,
        "created_at": _timestamp(record, "CreatedDate"),
        "first_response_at": _timestamp(record, settings.case_first_response_field, required=False),
        "solved_at": _timestamp(record, "ClosedDate", required=False),
    }


Mapper = Callable[[Record, SalesforceSettings], CanonicalRow]
