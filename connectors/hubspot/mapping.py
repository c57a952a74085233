"""HubSpot records (as the CRM v3 API returns them) to canonical rows.

Every property value arrives as a string: "" means unset, numbers become Decimal, datetimes
come as ISO strings or epoch milliseconds. Won/lost and a ticket's status come from the
pipeline stage's metadata (``isClosed``/``probability``, ``ticketState``), never from labels.

Days: HubSpot has two kinds of time property (its "how should timestamps be formatted"
FAQ). A ``datetime`` one (``closedate``, ``hs_lifecyclestage_customer_date``) is an instant:
its day is the one it falls on in the OKR calendar's zone (a deal closed at 17:30 in Los
Angeles on Mar 31 closed on Mar 31, although it is Apr 1 in UTC). A ``date`` one (a date
picker) is stored as midnight UTC standing for that calendar day, whatever the zone: it
stays that day. Which kind a property is comes from the portal's properties API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.canonical import CanonicalRow, Customer, Deal, Rep, Ticket, domain_of, unchecked
from connectors.canonical import Record as Identity
from connectors.hubspot.settings import HubSpotSettings

SOURCE = "hubspot"
CURSOR_FIELD = "hs_lastmodifieddate"
OWNER_CURSOR_FIELD = "updatedAt"

Record = Mapping[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MappingError(ValueError):
    """A property holds a value that cannot become the canonical type."""


@dataclass(frozen=True)
class Stage:
    """A pipeline stage's label and what its metadata says about records in it."""

    label: str
    pipeline: str
    closed: bool
    probability: Decimal | None = None
    ticket_state: str | None = None

    @property
    def outcome(self) -> str:
        if not self.closed:
            return "open"
        return "won" if self.probability is not None and self.probability >= 1 else "lost"

    @property
    def ticket_status(self) -> str:
        state = (self.ticket_state or ("CLOSED" if self.closed else "OPEN")).upper()
        return "solved" if state == "CLOSED" else "open"


@dataclass
class Context:
    """What mapping a page needs besides the record: stages, home currency, associations."""

    settings: HubSpotSettings
    stages: Mapping[str, Stage] = field(default_factory=dict)
    pipelines: Mapping[str, str] = field(default_factory=dict)  # pipeline id -> label
    home_currency: str | None = None
    companies: Mapping[str, str] = field(default_factory=dict)  # record id -> company id
    types: Mapping[str, str] = field(default_factory=dict)  # property -> HubSpot type (date, …)


def stages_of(pipelines: list[Mapping[str, Any]]) -> tuple[dict[str, Stage], dict[str, str]]:
    """Stage id -> Stage and pipeline id -> label, from a ``/crm/v3/pipelines/{type}`` body."""
    stages: dict[str, Stage] = {}
    labels: dict[str, str] = {}
    for pipeline in pipelines:
        label = str(pipeline.get("label") or pipeline.get("id"))
        labels[str(pipeline.get("id"))] = label
        for stage in pipeline.get("stages") or []:
            meta = stage.get("metadata") or {}
            try:
                probability = Decimal(str(meta["probability"])) if "probability" in meta else None
            except InvalidOperation:
                probability = None
            state = meta.get("ticketState")
            closed = str(meta.get("isClosed", "")).lower() == "true" or state == "CLOSED"
            stages[str(stage.get("id"))] = Stage(
                label=str(stage.get("label") or stage.get("id")),
                pipeline=label,
                closed=closed,
                probability=probability,
                ticket_state=str(state) if state else None,
            )
    return stages, labels


def parse_timestamp(value: str) -> datetime:
    """An aware UTC datetime from epoch milliseconds, an ISO datetime or an ISO date."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return _EPOCH + timedelta(milliseconds=int(text))
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _text(values: Record, name: str) -> str | None:
    value = values.get(name)
    return None if value is None or value == "" else str(value)


def _timestamp(values: Record, name: str) -> datetime | None:
    value = _text(values, name)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError):
        raise MappingError(f"{name} {value!r} is not a datetime (ISO or epoch ms)") from None


def _date(ctx: Context, values: Record, name: str) -> date | None:
    """The calendar day a property stands for (see the module's note on days).

    An ISO date ("2026-03-01") is that day. A ``date`` property's midnight-UTC timestamp
    is its UTC day; any other instant is the day it falls on in the OKR calendar's zone
    (a property whose type the portal did not say is taken as the instant it looks like).
    """
    value = _text(values, name)
    if value is None:
        return None
    try:
        if len(value) == 10 and value[4] == "-":
            return date.fromisoformat(value)
        moment = parse_timestamp(value)
    except (ValueError, OverflowError) as exc:
        raise MappingError(f"{name} {value!r} is not a date ({exc})") from None
    if ctx.types.get(name) == "date":
        return moment.date()  # midnight UTC, standing for this calendar day
    return ctx.settings.local_day(moment)


def _decimal(values: Record, name: str) -> Decimal | None:
    value = _text(values, name)
    if value is None:
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise MappingError(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise MappingError(f"{name} {value!r} is not a finite number")
    return number


def _lower(values: Record, name: str) -> str | None:
    value = _text(values, name)
    return value.lower() if value is not None else None


def _required(value: datetime | None, name: str) -> datetime:
    if value is None:
        raise MappingError(f"{name} is missing")
    return value


def _props(record: Record) -> Record:
    props = record.get("properties")
    return props if isinstance(props, Mapping) else {}


def _common(record: Record) -> Identity:
    """Identity and change time; an archived record becomes a tombstone at ``archivedAt``."""
    modified = _timestamp(_props(record), CURSOR_FIELD) or _timestamp(record, "updatedAt")
    modified = _required(modified, CURSOR_FIELD)
    deleted = None
    if record.get("archived"):
        deleted = _timestamp(record, "archivedAt") or modified
        modified = max(modified, deleted)
    return {
        "source": SOURCE,
        "source_id": _record_id(record),
        "source_modified_at": modified,
        "deleted_at": deleted,
    }


def _record_id(record: Record) -> str:
    """The object id (a numeric string; HubSpot sends a number in places): never "None"."""
    value = record.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"id {value!r} is not a HubSpot object id")
    return value


def _created(record: Record) -> datetime:
    created = _timestamp(_props(record), "createdate") or _timestamp(record, "createdAt")
    return _required(created, "createdate")


def _stage(ctx: Context, values: Record, name: str) -> Stage:
    stage_id = _text(values, name)
    stage = ctx.stages.get(stage_id or "")
    if stage is None:
        raise MappingError(f"{name} {stage_id!r} is not a stage of any pipeline")
    return stage


def company_to_customer(record: Record, ctx: Context) -> Customer:
    props = _props(record)
    return {
        **_common(record),
        "name": unchecked(_text(props, "name")),
        "owner_id": _text(props, "hubspot_owner_id"),
        "segment": _text(props, "industry"),
        "created_at": _created(record),
        "became_customer_on": _date(ctx, props, "hs_lifecyclestage_customer_date"),
        "churned_on": _date(ctx, props, ctx.settings.churn_date_property),
        "domain": domain_of(_text(props, "domain")),
        "external_id": None,
    }


def deal_to_deal(record: Record, ctx: Context) -> Deal:
    props = _props(record)
    stage = _stage(ctx, props, "dealstage")
    currency = _text(props, "deal_currency_code") or ctx.home_currency
    if currency is None:
        raise MappingError("deal_currency_code is missing and the portal has no company currency")
    # A close date before createdate is kept: deals imported from another CRM are created
    # at the import. Cycle metrics leave such deals out of the cycle, and say so.
    created = _created(record)
    close_on = _date(ctx, props, "closedate")
    return {
        **_common(record),
        "name": unchecked(_text(props, "dealname")),
        "customer_id": ctx.companies.get(str(record.get("id"))),
        "owner_id": _text(props, "hubspot_owner_id"),
        "amount": _decimal(props, "amount"),
        "currency": currency.upper(),
        "amount_home": _decimal(props, "amount_in_home_currency"),
        "home_currency": ctx.home_currency,
        "stage": stage.label,
        "outcome": stage.outcome,
        "pipeline": ctx.pipelines.get(_text(props, "pipeline") or "", stage.pipeline),
        "deal_type": _text(props, "dealtype"),
        "created_at": created,
        "close_on": close_on,
    }


def ticket_to_ticket(record: Record, ctx: Context) -> Ticket:
    props = _props(record)
    return {
        **_common(record),
        "customer_id": ctx.companies.get(str(record.get("id"))),
        "status": _stage(ctx, props, "hs_pipeline_stage").ticket_status,
        "priority": _lower(props, "hs_ticket_priority"),
        "channel": _lower(props, "source_type"),
        "created_at": _created(record),
        "first_response_at": _timestamp(props, "first_agent_reply_date"),
        "solved_at": _timestamp(props, "closed_date"),
    }


def owner_to_rep(record: Record, ctx: Context) -> Rep:
    """Owners are deactivated, never deleted: an archived owner is an inactive rep."""
    teams = record.get("teams") or []
    name = " ".join(p for p in (_text(record, "firstName"), _text(record, "lastName")) if p)
    return {
        "source": SOURCE,
        "source_id": _record_id(record),
        "source_modified_at": _required(_timestamp(record, OWNER_CURSOR_FIELD), OWNER_CURSOR_FIELD),
        "deleted_at": None,
        "name": unchecked(name or None),
        "email": _text(record, "email"),
        "team": _text(teams[0], "name") if teams and isinstance(teams[0], Mapping) else None,
        "started_on": None,
        "monthly_quota": None,
        "quota_currency": None,
        "active": not record.get("archived"),
    }


Mapper = Callable[[Record, Context], CanonicalRow]
"""A HubSpot record to the canonical row of its stream's entity."""
