"""The canonical entities every connector maps its source's records to, one type each.

A connector delivers rows of these types in :class:`connectors.base.Page`; the store mirrors
them column for column (``okr_targets.models``, checked by ``tests/test_canonical_types.py``).
Every datetime is timezone-aware (UTC); money is a Decimal with its currency code beside it;
``| None`` marks what a source may leave unset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType, NoneType, UnionType
from typing import TypedDict, TypeVar, cast, get_args, get_type_hints


class Record(TypedDict):
    """What every canonical row carries: where it comes from and when it last changed."""

    source: str  # the connector's name
    source_id: str  # the record's id at the source
    source_modified_at: datetime
    deleted_at: datetime | None  # set: deleted at the source (a tombstone)


class Customer(Record):
    name: str
    owner_id: str | None
    segment: str | None
    created_at: datetime
    became_customer_on: date | None
    churned_on: date | None
    domain: str | None  # the bare e-mail/web domain, see domain_of
    external_id: str | None  # the id another system knows it by (a helpdesk's CRM id)


class Deal(Record):
    name: str
    customer_id: str | None
    owner_id: str | None
    amount: Decimal | None
    currency: str
    amount_home: Decimal | None  # the source's own conversion, when it makes one
    home_currency: str | None
    stage: str
    outcome: str  # open | won | lost
    pipeline: str | None
    deal_type: str | None
    created_at: datetime
    close_on: date | None  # the close date (expected while open)


class Rep(Record):
    name: str
    email: str | None
    team: str | None
    started_on: date | None
    monthly_quota: Decimal | None
    quota_currency: str | None
    active: bool


class FxRate(Record):
    """How many units of ``currency`` one unit of the source's corporate currency buys."""

    currency: str
    rate: Decimal
    is_corporate: bool
    valid_from: date | None
    valid_to: date | None


class Ticket(Record):
    customer_id: str | None
    status: str | None  # new | open | pending | solved | closed; None for a deleted ticket
    priority: str | None
    channel: str | None
    created_at: datetime
    first_response_at: datetime | None
    solved_at: datetime | None


class Rating(Record):
    """Good/bad (``scale_max`` 1), a 1-3 or a 1-5 score (``scale_max`` 3 or 5); None:
    offered, unanswered."""

    ticket_id: str | None
    customer_id: str | None
    score: Decimal | None
    scale_max: int | None
    good: bool | None
    rated_at: datetime


class FinanceLine(Record):
    """A booked line of the ledger (an invoice line, a credit note, a cost): its revenue
    ``amount`` (negative for a credit) and its direct ``cost``, both in ``currency``.

    ``customer_id`` is the primary CRM's customer id (a Salesforce Account Id), or the id of
    a customer the same source provides, which customer matching links to the CRM's.
    """

    customer_id: str | None
    segment: str | None
    amount: Decimal
    cost: Decimal
    currency: str
    booked_on: date  # the day the line counts in (invoice or posting date)
    description: str | None


CanonicalRow = Customer | Deal | Rep | FxRate | Ticket | Rating | FinanceLine
"""One mapped record, of whichever entity its stream delivers."""

ENTITIES: Mapping[str, type[Record]] = MappingProxyType(
    {
        "customer": Customer,
        "deal": Deal,
        "rep": Rep,
        "fx_rate": FxRate,
        "ticket": Ticket,
        "rating": Rating,
        "finance_line": FinanceLine,
    }
)
"""Canonical entity name (``StreamInfo.entity``) → its row type."""

IDENTITY = tuple(Record.__annotations__)
"""The fields every entity shares, ahead of its own."""


T = TypeVar("T")


def unchecked(value: T | None) -> T:
    """A required field's value passed on as the source sent it, which may be None.

    A mapping does not refuse a record for a missing name or id: the flow's validator
    quarantines the row with the expectation it fails (``not_be_null``), the reason the
    quarantine shows, as it does a value of the wrong type (the column checks). Every row
    that reaches the mirror has the value, so the field stays typed as present; calls to
    this mark where a mapped row may not have it yet.
    """
    return cast(T, value)


@dataclass(frozen=True)
class EntityField:
    """One field of an entity: its name, its value's type, and whether it may be None."""

    name: str
    kind: type
    optional: bool


def fields_of(entity: str) -> tuple[EntityField, ...]:
    """The entity's fields in order, identity first, with the type each value has."""
    found = []
    for name, hint in get_type_hints(ENTITIES[entity]).items():
        kinds = get_args(hint) if isinstance(hint, UnionType) else (hint,)
        kind = next(k for k in kinds if k is not NoneType)
        found.append(EntityField(name, kind, NoneType in kinds))
    return tuple(found)


def domain_of(value: str | None) -> str | None:
    """The bare domain of a website or e-mail ("https://www.x.example/" → "x.example").

    A customer's canonical ``domain``: how a CRM's account is matched to a helpdesk's
    organization.
    """
    if not value:
        return None
    text = value.strip().lower()
    text = text.rsplit("@", 1)[-1]
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].split(":", 1)[0]
    return text.removeprefix("www.") or None
