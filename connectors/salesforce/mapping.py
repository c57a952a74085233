"""Salesforce records (as the REST API returns them) to canonical rows.

Won and lost come from the record's own ``IsWon``/``IsClosed`` flags, which Salesforce
derives from the stage's metadata, never from stage names. Money stays in its
``CurrencyIsoCode`` or, in a single-currency org, the company currency; amounts arrive as
Decimal (the client parses floats as Decimal). Fields an org keeps where it chooses (a
customer's start, a churn date) are read where ``OKR_SYNC_SALESFORCE_FIELD_MAP`` says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.canonical import (
    CanonicalRow,
    Customer,
    Deal,
    FxRate,
    Rep,
    Ticket,
    domain_of,
    unchecked,
)
from connectors.canonical import Record as Identity
from connectors.salesforce.settings import FieldMap
from connectors.salesforce.timestamps import parse_sf_datetime

SOURCE = "salesforce"
CURSOR_FIELD = "SystemModstamp"

Record = Mapping[str, Any]
_DATE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


class MappingError(ValueError):
    """A field holds a value that cannot become the canonical type."""


@dataclass(frozen=True)
class OrgFields:
    """What mapping needs to know of the org beyond a record's standard fields.

    ``fields`` says which of the org's fields hold the mapped values (None: the org has
    none, and the value stays unknown); ``currency`` is a single-currency org's company
    currency, which every amount is in (None: records carry ``CurrencyIsoCode``).
    """

    fields: FieldMap
    currency: str | None = None


def _field(record: Record, name: str | None) -> Any:
    """A mapped field's value; None where the org maps nothing."""
    return None if name is None else record.get(name)


def _timestamp(record: Record, name: str) -> datetime:
    value = record.get(name)
    if value is None:
        raise MappingError(f"{name} is missing")
    try:
        return parse_sf_datetime(value)
    except (TypeError, ValueError) as exc:
        message = f"{name} {value!r} is not a Salesforce datetime"
        reason = str(exc)
        if not reason.startswith("not a Salesforce datetime"):
            message += f" ({reason})"  # the right shape, but no such instant
        raise MappingError(message) from None


def _optional_timestamp(record: Record, name: str | None) -> datetime | None:
    return None if name is None or record.get(name) is None else _timestamp(record, name)


def _date(record: Record, name: str | None) -> date | None:
    value = _field(record, name)
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE_SHAPE.fullmatch(value):
        raise MappingError(f"{name} {value!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:  # the right shape, but no such day (2026-02-30)
        raise MappingError(f"{name} {value!r} is not a real date ({exc})") from None


def _flag(record: Record, name: str) -> bool:
    """A checkbox field: true, false or (unselected, or deactivated-object) null as false.

    Anything else (the text "false", 0) is refused: ``bool("false")`` would be True.
    """
    value = record.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise MappingError(f"{name} {value!r} is not a boolean (true/false)")


def _decimal(record: Record, name: str | None) -> Decimal | None:
    value = _field(record, name)
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise MappingError(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise MappingError(f"{name} {value!r} is not a finite number")
    return number


def _id(record: Record, name: str) -> str | None:
    """The record's own Id, which every row needs as text (a number would be mistaken)."""
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise MappingError(f"{name} {value!r} is not a Salesforce Id")
    return value


def _common(record: Record) -> Identity:
    modified = _timestamp(record, CURSOR_FIELD)
    return {
        "source": SOURCE,
        "source_id": unchecked(_id(record, "Id")),
        "source_modified_at": modified,
        "deleted_at": modified if _flag(record, "IsDeleted") else None,
    }


def account_to_customer(record: Record, org: OrgFields) -> Customer:
    return {
        **_common(record),
        "name": unchecked(record.get("Name")),
        "owner_id": record.get("OwnerId"),
        "segment": _field(record, org.fields.segment),
        "created_at": _timestamp(record, "CreatedDate"),
        "became_customer_on": _date(record, org.fields.customer_since),
        "churned_on": _date(record, org.fields.churned_on),
        "domain": domain_of(record.get("Website")),
        "external_id": None,
    }


def opportunity_to_deal(record: Record, org: OrgFields) -> Deal:
    outcome = "won" if _flag(record, "IsWon") else "lost" if _flag(record, "IsClosed") else "open"
    # A CloseDate before CreatedDate is kept: records loaded through the API are created at
    # the load (unless "Set Audit Fields upon Record Creation" is on), so a migrated CRM's
    # won history closes before it was created. Cycle metrics leave such deals out, and say so.
    created = _timestamp(record, "CreatedDate")
    close_on = _date(record, "CloseDate")
    return {
        **_common(record),
        "name": unchecked(record.get("Name")),
        "customer_id": record.get("AccountId"),
        "owner_id": record.get("OwnerId"),
        "amount": _decimal(record, "Amount"),
        "currency": unchecked(org.currency or record.get("CurrencyIsoCode")),
        "amount_home": None,
        "home_currency": None,
        "stage": unchecked(record.get("StageName")),
        "outcome": outcome,
        "pipeline": None,
        "deal_type": record.get("Type"),
        "created_at": created,
        "close_on": close_on,
    }


def user_to_rep(record: Record, org: OrgFields) -> Rep:
    return {
        **_common(record),
        "name": unchecked(record.get("Name")),
        "email": record.get("Email"),
        "team": _field(record, org.fields.team),
        "started_on": _date(record, org.fields.rep_started_on),
        "monthly_quota": _decimal(record, org.fields.monthly_quota),
        "quota_currency": org.currency or record.get("DefaultCurrencyIsoCode"),
        "active": _flag(record, "IsActive"),
    }


def currency_to_fx_rate(record: Record, org: OrgFields) -> FxRate:
    return {
        **_common(record),
        "source_id": unchecked(record.get("IsoCode")),
        "currency": unchecked(record.get("IsoCode")),
        "rate": unchecked(_decimal(record, "ConversionRate")),
        "is_corporate": _flag(record, "IsCorporate"),
        "valid_from": None,
        "valid_to": None,
    }


def dated_rate_to_fx_rate(record: Record, org: OrgFields) -> FxRate:
    """A rate that holds for [StartDate, NextStartDate) (advanced currency management)."""
    following = _date(record, "NextStartDate")
    return {
        **_common(record),
        "currency": unchecked(record.get("IsoCode")),
        "rate": unchecked(_decimal(record, "ConversionRate")),
        "is_corporate": False,
        "valid_from": _date(record, "StartDate"),
        "valid_to": None if following == date(9999, 12, 31) else following,
    }


_CASE_STATUS = {"new": "new", "closed": "closed"}


def case_to_ticket(record: Record, org: OrgFields) -> Ticket:
    """A Case as a support ticket; closed cases count as solved when they have a close time."""
    status = str(record.get("Status") or "").lower()
    if _flag(record, "IsClosed"):
        status = "solved" if record.get("ClosedDate") else "closed"
    else:
        status = _CASE_STATUS.get(status, "open")
    return {
        **_common(record),
        "customer_id": record.get("AccountId"),
        "status": status,
        "priority": (record.get("Priority") or "").lower() or None,
        "channel": (record.get("Origin") or "").lower() or None,
        "created_at": _timestamp(record, "CreatedDate"),
        "first_response_at": _optional_timestamp(record, org.fields.first_response_at),
        "solved_at": _optional_timestamp(record, "ClosedDate"),
    }


Mapper = Callable[[Record, OrgFields], CanonicalRow]
"""A Salesforce record to the canonical row of its stream's entity."""
