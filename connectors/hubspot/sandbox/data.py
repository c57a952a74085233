"""The sandbox portal: an in-memory HubSpot account, its generator and its JSON Lines seed files.

Records are kept exactly as the CRM v3 objects API returns them (``id``, ``properties`` with
every value a string, ``createdAt``, ``updatedAt``, ``archived``, ``archivedAt``), plus the
v3 ``associations`` block that ``?associations=companies`` adds. A change replaces a record's
dict instead of editing it, so a page the emulator is serialising never changes under it.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from connectors.canonical import domain_of
from connectors.sandbox.world import (
    CompanySeed,
    company_names,
    domain_for,
    load_jsonl,
    quarter_start_day,
)

OBJECT_TYPES = ("companies", "deals", "tickets")
ASSOCIATION_TYPES = {"deals": "deal_to_company", "tickets": "ticket_to_company"}
"""Which objects carry a company association, and its v3 type name."""

DATETIME_PROPERTIES = frozenset(
    {
        "createdate",
        "hs_lastmodifieddate",
        "closedate",
        "hs_lifecyclestage_customer_date",
        "closed_date",
        "first_agent_reply_date",
    }
)
DATE_PROPERTIES = frozenset({"churned_date"})
NUMBER_PROPERTIES = frozenset({"amount", "amount_in_home_currency", "hs_object_id"})
_ENUMERATIONS = frozenset(
    {
        "industry",
        "lifecyclestage",
        "hubspot_owner_id",
        "deal_currency_code",
        "dealstage",
        "pipeline",
        "dealtype",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_priority",
        "source_type",
        "hs_ticket_category",
    }
)
_COMMON_PROPERTIES = ("createdate", "hs_lastmodifieddate", "hs_object_id", "hubspot_owner_id")
HUBSPOT_DEFINED = {
    "companies": (
        *_COMMON_PROPERTIES,
        *("name", "domain", "industry", "country", "lifecyclestage"),
        "hs_lifecyclestage_customer_date",
    ),
    "deals": (
        *_COMMON_PROPERTIES,
        *("dealname", "amount", "deal_currency_code", "amount_in_home_currency"),
        *("dealstage", "pipeline", "closedate", "dealtype"),
    ),
    "tickets": (
        *_COMMON_PROPERTIES,
        *("subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority"),
        *("hs_ticket_category", "source_type", "closed_date", "first_agent_reply_date"),
    ),
}
"""The HubSpot-defined properties the sandbox's objects carry (a real portal has hundreds)."""
CUSTOM_PROPERTIES = {"companies": ("churned_date",)}
"""Properties a portal's admins created: the default profile has them, others may not."""


def property_definition(object_type: str, name: str, *, custom: bool = False) -> dict[str, Any]:
    """One property as ``GET /crm/v3/properties/{object}`` describes it.

    Datetime properties have ``type: datetime`` (and the date picker as field type), date
    properties ``type: date``: what tells a reader whether a value is an instant or a
    calendar day stored as midnight UTC.
    """
    if name in DATETIME_PROPERTIES:
        kind, field_type = "datetime", "date"
    elif name in DATE_PROPERTIES:
        kind, field_type = "date", "date"
    elif name in NUMBER_PROPERTIES:
        kind, field_type = "number", "number"
    elif name in _ENUMERATIONS:
        kind, field_type = "enumeration", "select"
    else:
        kind, field_type = "string", "text"
    return {
        "name": name,
        "label": name.replace("_", " ").capitalize(),
        "type": kind,
        "fieldType": field_type,
        "groupName": f"{object_type[:-1]}information",
        "description": "",
        "options": [],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": name == "hs_object_id",
        "hidden": False,
        "hubspotDefined": not custom,
        "modificationMetadata": {
            "archivable": custom,
            "readOnlyDefinition": not custom,
            "readOnlyValue": name in _COMMON_PROPERTIES[:3],
        },
        "formField": custom,
        "archived": False,
    }


def property_definitions(custom: Mapping[str, Iterable[str]]) -> dict[str, list[dict[str, Any]]]:
    """Every object's property definitions: HubSpot's own, then the portal's ``custom``."""
    return {
        object_type: [property_definition(object_type, name) for name in defined]
        + [
            property_definition(object_type, name, custom=True)
            for name in custom.get(object_type, ())
        ]
        for object_type, defined in HUBSPOT_DEFINED.items()
    }


Record = dict[str, Any]

_DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CLOCK = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]


@functools.cache
def _iso_day(day: int) -> str:
    """ISO date of an epoch-day number (cached: a million deals share a few hundred days)."""
    return date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


def iso_ms(ms: int) -> str:
    """HubSpot's datetime rendering (UTC, millis, ``Z``) of epoch milliseconds, cheaply."""
    day, rest = divmod(ms, _DAY_MS)
    minute, rest = divmod(rest, 60_000)
    second, milli = divmod(rest, 1000)
    return f"{_iso_day(day)}T{_CLOCK[minute]}:{second:02d}.{milli:03d}Z"


def to_ms(value: str) -> int:
    """Epoch milliseconds of an epoch-ms string, an ISO datetime or an ISO date (UTC)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)  # exact for millisecond values, and fast


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


# ---------------------------------------------------------------------------
# The portal


DEFAULT_ACCOUNT: dict[str, Any] = {
    "portalId": 24_680_135,
    "accountType": "STANDARD",
    "timeZone": "US/Eastern",
    "companyCurrency": "USD",
    "additionalCurrencies": ["EUR", "GBP"],
    "utcOffset": "-05:00",
    "utcOffsetMilliseconds": -18_000_000,
    "uiDomain": "app.hubspot.com",
    "dataHostingLocation": "na1",
}


PACIFIC_ACCOUNT: dict[str, Any] = {
    "portalId": 24_680_246,
    "accountType": "STANDARD",
    "timeZone": "America/Los_Angeles",
    "companyCurrency": "USD",
    "additionalCurrencies": ["EUR", "GBP"],
    "utcOffset": "-08:00",
    "utcOffsetMilliseconds": -28_800_000,
    "uiDomain": "app.hubspot.com",
    "dataHostingLocation": "na1",
}


@dataclass(frozen=True)
class PortalProfile:
    """How a sandbox portal is set up, like one kind of real account.

    ``close_zone`` None keeps the original close times (12:00-17:00 UTC); a zone gives its
    users' evenings (17:00-23:30 local, the next day in UTC), as a US sales team closes.
    ``custom`` are the properties its admins created (none: no churn date property).
    """

    name: str
    account: Mapping[str, Any]
    close_zone: str | None = None
    custom: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


PROFILES = {
    profile.name: profile
    for profile in (
        PortalProfile("default", DEFAULT_ACCOUNT, custom=CUSTOM_PROPERTIES),
        PortalProfile("us-pacific", PACIFIC_ACCOUNT, close_zone="America/Los_Angeles"),
    )
}
"""The sandbox's portals: ``default`` (the demo's) and ``us-pacific`` (a Los Angeles
portal with evening close times and no custom churn property)."""


class HubSpotPortal:
    """Companies, deals and tickets by id, plus owners, pipelines, account details and the
    property definitions the properties API serves."""

    def __init__(
        self,
        *,
        owners: Iterable[Mapping[str, Any]] = (),
        pipelines: Mapping[str, list[dict[str, Any]]] | None = None,
        account: Mapping[str, Any] | None = None,
        properties: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.owners: list[dict[str, Any]] = [dict(owner) for owner in owners]
        self.pipelines: dict[str, list[dict[str, Any]]] = dict(
            pipelines if pipelines is not None else default_pipelines(0)
        )
        self.account: dict[str, Any] = dict(account or DEFAULT_ACCOUNT)
        self.properties: dict[str, list[dict[str, Any]]] = dict(
            properties if properties is not None else property_definitions(CUSTOM_PROPERTIES)
        )
        self._records: dict[str, dict[str, Record]] = {name: {} for name in OBJECT_TYPES}
        self._index: dict[str, tuple[list[int], list[Record]] | None] = dict.fromkeys(OBJECT_TYPES)
        self._by_id: dict[tuple[str, bool], list[Record]] = {}
        self._lock = threading.Lock()

    def add(self, object_type: str, record: Mapping[str, Any]) -> Record:
        """Store a record verbatim (no timestamp bump), replacing one with the same id."""
        record_id = record.get("id")
        if not isinstance(record_id, str) or not record_id.isdigit():
            raise ValueError("record has no numeric string 'id'")
        if not isinstance(record.get("properties"), dict):
            raise ValueError("record has no 'properties' object")
        stored = dict(record)
        with self._lock:
            self._records[object_type][record_id] = stored
            self._forget_listings(object_type)
        return stored

    def _forget_listings(self, object_type: str) -> None:
        """The object's records changed: its search index and id listings are built again."""
        self._index[object_type] = None
        self._by_id.pop((object_type, False), None)
        self._by_id.pop((object_type, True), None)

    def get(self, object_type: str, record_id: str) -> Record | None:
        return self._records[object_type].get(record_id)

    def records(self, object_type: str, *, archived: bool | None = False) -> list[Record]:
        """A snapshot list: live records (default), archived ones (True) or all (None)."""
        rows = self._records[object_type].values()
        if archived is None:
            return list(rows)
        return [r for r in rows if bool(r.get("archived")) == archived]

    def update(
        self,
        object_type: str,
        record_id: str,
        properties: Mapping[str, str | None],
        *,
        at: datetime | None = None,
    ) -> Record:
        """Change properties like an API PATCH; ``hs_lastmodifieddate`` moves unless given."""
        old = self._records[object_type][record_id]
        stamp = iso_ms(int((at or datetime.now(UTC)).timestamp() * 1000))
        new_properties = {**old["properties"], **properties}
        if "hs_lastmodifieddate" not in properties:
            new_properties["hs_lastmodifieddate"] = stamp
        updated = new_properties["hs_lastmodifieddate"] or stamp
        return self.add(object_type, {**old, "properties": new_properties, "updatedAt": updated})

    def archive(self, object_type: str, record_id: str, *, at: datetime | None = None) -> Record:
        """Delete a record the HubSpot way: it moves to the archived listing with ``archivedAt``."""
        old = self._records[object_type][record_id]
        stamp = iso_ms(int((at or datetime.now(UTC)).timestamp() * 1000))
        return self.add(
            object_type, {**old, "archived": True, "archivedAt": stamp, "updatedAt": stamp}
        )

    def purge(self, object_type: str, record_id: str) -> None:
        """Gone from both listings, as HubSpot purges an archived record after 90 days: only
        a full read that no longer sees it can tell it was deleted."""
        with self._lock:
            del self._records[object_type][record_id]
            self._forget_listings(object_type)

    def company_of(self, object_type: str, record_id: str) -> list[str]:
        """Ids of the companies a deal or ticket is associated with (primary first)."""
        record = self._records.get(object_type, {}).get(record_id)
        if record is None:
            return []
        block = record.get("associations", {}).get("companies", {})
        return [str(item["id"]) for item in block.get("results", [])]

    def by_id(self, object_type: str, *, archived: bool) -> list[Record]:
        """Live or archived records sorted by numeric id: built once per change, so each
        page of a listing is a bisect and a slice."""
        with self._lock:
            key = (object_type, archived)
            if key not in self._by_id:
                rows = [
                    r
                    for r in self._records[object_type].values()
                    if bool(r.get("archived")) == archived
                ]
                self._by_id[key] = sorted(rows, key=lambda r: int(r["id"]))
            return self._by_id[key]

    def live_index(self, object_type: str) -> tuple[list[int], list[Record]]:
        """Live records sorted by (hs_lastmodifieddate, id), with their modified epoch-ms keys.

        Built once per change (n log n), so each search page is a bisect and a slice.
        """
        with self._lock:
            index = self._index[object_type]
            if index is None:
                keyed = []
                for record in self._records[object_type].values():
                    if record.get("archived"):
                        continue
                    value = record["properties"].get("hs_lastmodifieddate") or record.get(
                        "updatedAt", "0"
                    )
                    keyed.append((to_ms(value), int(record["id"]), record))
                keyed.sort(key=lambda item: (item[0], item[1]))
                index = ([k[0] for k in keyed], [k[2] for k in keyed])
                self._index[object_type] = index
            return index


# ---------------------------------------------------------------------------
# Generator


@dataclass(frozen=True)
class Owner:
    """One member of the fixed roster (independent of the seed, so OKR files can name people)."""

    first: str
    last: str
    team: str
    start_days_ago: int
    left_days_ago: int | None = None

    @property
    def email(self) -> str:
        return f"{self.first}.{self.last}".lower().replace("'", "") + "@acme-demo.example"


ENTERPRISE, MID_MARKET, SUPPORT, LEADERSHIP = (
    "Enterprise Sales",
    "Mid-Market Sales",
    "Customer Support",
    "Sales Leadership",
)
TEAM_IDS = {LEADERSHIP: "4100001", ENTERPRISE: "4100002", MID_MARKET: "4100003", SUPPORT: "4100004"}
ROSTER: tuple[Owner, ...] = (
    Owner("Olivia", "Hart", LEADERSHIP, 2600),
    Owner("Ava", "Chen", ENTERPRISE, 1800),
    Owner("Marcus", "Reed", ENTERPRISE, 1300),
    Owner("Sofia", "Rossi", ENTERPRISE, 700),
    Owner("Liam", "O'Brien", MID_MARKET, 1500),
    Owner("Noah", "Patel", MID_MARKET, 1100),
    Owner("Emma", "Johansson", MID_MARKET, 900),
    Owner("Grace", "Liu", MID_MARKET, 400),
    Owner("Greg", "Lawson", MID_MARKET, 1400, left_days_ago=210),
    Owner("Maya", "Singh", SUPPORT, 1000),
    Owner("Tom", "Becker", SUPPORT, 300),
)
SELLERS = tuple(i for i, o in enumerate(ROSTER) if o.team in (ENTERPRISE, MID_MARKET))

CURRENCY_RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79}
"""Units of each currency one US dollar (the portal's company currency) buys."""
_COUNTRIES = (
    ("United States", "USD", 0.72),
    ("Germany", "EUR", 0.08),
    ("France", "EUR", 0.05),
    ("Netherlands", "EUR", 0.04),
    ("United Kingdom", "GBP", 0.11),
)
_INDUSTRIES = (
    "COMPUTER_SOFTWARE",
    "HOSPITAL_HEALTH_CARE",
    "FINANCIAL_SERVICES",
    "RETAIL",
    "MACHINERY",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "EDUCATION_MANAGEMENT",
    "MARKETING_AND_ADVERTISING",
)
_SUBJECTS = (
    "Cannot log in",
    "Invoice question",
    "Export fails with timeout",
    "Feature request: SSO",
    "Data sync delayed",
    "How do I add a user?",
    "Report shows wrong totals",
    "API rate limit questions",
)

SALES_PIPELINE, RENEWALS_PIPELINE, SUPPORT_PIPELINE = "default", "19800993", "0"
_SALES_OPEN = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "contractsent")
_RENEWAL_OPEN = ("19800994", "19800995")  # "Renewal due", "Won back" (open, despite its label)
_WON = {SALES_PIPELINE: "closedwon", RENEWALS_PIPELINE: "19800996"}  # "Closed won", "Signed"
_LOST = {SALES_PIPELINE: "closedlost", RENEWALS_PIPELINE: "19800997"}  # "Closed lost", "Churned"


def _stage(
    stage_id: str, label: str, order: int, metadata: dict[str, str], stamp: str
) -> dict[str, Any]:
    return {
        "id": stage_id,
        "label": label,
        "displayOrder": order,
        "metadata": metadata,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    }


def _deal_stage(stage_id: str, label: str, order: int, closed: bool, p: str, t: str) -> Any:
    return _stage(stage_id, label, order, {"isClosed": str(closed).lower(), "probability": p}, t)


def default_pipelines(created_ms: int) -> dict[str, list[dict[str, Any]]]:
    """Two deal pipelines and HubSpot's default ticket pipeline, as ``/crm/v3/pipelines`` has them.

    The renewals pipeline has an open stage labelled "Won back" and a won stage labelled
    "Signed": outcomes must come from ``isClosed``/``probability``, never from labels.
    """
    t = iso_ms(created_ms)

    def pipeline(pid: str, label: str, order: int, stages: list[Any]) -> dict[str, Any]:
        return {
            "id": pid,
            "label": label,
            "displayOrder": order,
            "stages": stages,
            "createdAt": t,
            "updatedAt": t,
            "archived": False,
        }

    sales = [
        _deal_stage("appointmentscheduled", "Appointment scheduled", 0, False, "0.2", t),
        _deal_stage("qualifiedtobuy", "Qualified to buy", 1, False, "0.4", t),
        _deal_stage("presentationscheduled", "Presentation scheduled", 2, False, "0.6", t),
        _deal_stage("contractsent", "Contract sent", 3, False, "0.9", t),
        _deal_stage("closedwon", "Closed won", 4, True, "1.0", t),
        _deal_stage("closedlost", "Closed lost", 5, True, "0.0", t),
    ]
    renewals = [
        _deal_stage("19800994", "Renewal due", 0, False, "0.5", t),
        _deal_stage("19800995", "Won back", 1, False, "0.7", t),
        _deal_stage("19800996", "Signed", 2, True, "1.0", t),
        _deal_stage("19800997", "Churned", 3, True, "0.0", t),
    ]
    tickets = [
        _stage("1", "New", 0, {"ticketState": "OPEN", "isClosed": "false"}, t),
        _stage("2", "Waiting on contact", 1, {"ticketState": "OPEN", "isClosed": "false"}, t),
        _stage("3", "Waiting on us", 2, {"ticketState": "OPEN", "isClosed": "false"}, t),
        _stage("4", "Closed", 3, {"ticketState": "CLOSED", "isClosed": "true"}, t),
    ]
    return {
        "deals": [
            pipeline(SALES_PIPELINE, "Sales Pipeline", 0, sales),
            pipeline(RENEWALS_PIPELINE, "Renewals", 1, renewals),
        ],
        "tickets": [pipeline(SUPPORT_PIPELINE, "Support Pipeline", 0, tickets)],
    }


def _quarter_start(day: date, quarters_back: int) -> date:
    index = day.year * 12 + (day.month - 1) // 3 * 3 - 3 * quarters_back
    return date(index // 12, index % 12 + 1, 1)


def _money(value: float) -> str:
    """A number as HubSpot renders it: plain decimal, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _before(ms: int, now: int, floor: int, fraction: float) -> int:
    """``ms``, or when it passes ``now`` a time in the last day before it (never one tie)."""
    if ms <= now:
        return ms
    return max(floor, now - int(fraction * _DAY_MS))


def _owners(now: int) -> list[dict[str, Any]]:
    today = now // _DAY_MS
    owners = []
    for i, person in enumerate(ROSTER):
        created = (today - person.start_days_ago - 3) * _DAY_MS + 15 * 3_600_000
        updated = min(now, created + (30 + 11 * i) * _DAY_MS)
        if person.left_days_ago is not None:
            updated = (today - person.left_days_ago) * _DAY_MS + 17 * 3_600_000
        owners.append(
            {
                "id": str(52_000_101 + i),
                "email": person.email,
                "type": "PERSON",
                "firstName": person.first,
                "lastName": person.last,
                "userId": 9_100_001 + i,
                "userIdIncludingInactive": 9_100_001 + i,
                "createdAt": iso_ms(created),
                "updatedAt": iso_ms(updated),
                "archived": person.left_days_ago is not None,
                "teams": [{"id": TEAM_IDS[person.team], "name": person.team, "primary": True}],
            }
        )
    return owners


def _record(record_id: str, properties: dict[str, str], archived_ms: int | None) -> Record:
    record: Record = {
        "id": record_id,
        "properties": properties,
        "createdAt": properties["createdate"],
        "updatedAt": properties["hs_lastmodifieddate"],
        "archived": archived_ms is not None,
    }
    if archived_ms is not None:
        record["archivedAt"] = iso_ms(archived_ms)
    return record


def _associate(record: Record, object_type: str, company_id: str) -> None:
    kind = ASSOCIATION_TYPES[object_type]
    record["associations"] = {"companies": {"results": [{"id": company_id, "type": kind}]}}


def _evening(zone_name: str) -> Callable[[int, float], int]:
    """Epoch ms of a time between 17:00 and 23:30 in ``zone_name`` on an epoch day, from a
    fraction in [0, 1): when a sales team there closes its deals."""
    zone = ZoneInfo(zone_name)

    def at(day: int, fraction: float) -> int:
        local = datetime.combine(date.fromordinal(_EPOCH_ORDINAL + day), time(17), tzinfo=zone)
        local += timedelta(milliseconds=int(fraction * 23_400_000))  # up to 6.5 hours later
        return int(local.astimezone(UTC).timestamp()) * 1000 + local.microsecond // 1000

    return at


def generate_portal(
    seed: int = 7,
    as_of: datetime | None = None,
    companies: int = 300,
    deals: int = 2000,
    tickets: int = 1500,
    tied_deals: int = 0,
    profile: str = "default",
) -> HubSpotPortal:
    """A realistic portal, deterministic for (seed, as_of), covering six calendar quarters.

    ``tied_deals`` live deals share one ``hs_lastmodifieddate`` millisecond (a bulk import
    or workflow does that): more than 10,000 is past what one search can page.

    Deals move through two pipelines in USD, EUR and GBP; a company becomes a customer on
    its first won deal and some churn; tickets come from customers while they are customers.
    About 1% of companies (without deals), deals and tickets are archived. Everything is one
    pass per object with integer milliseconds, so a million deals stay affordable.
    ``profile`` names one of :data:`PROFILES`: the account, close times and custom
    properties of the kind of portal to play.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    setup = PROFILES[profile]
    evening = _evening(setup.close_zone) if setup.close_zone else None
    as_of = as_of or datetime.now(UTC)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    if deals > 0 and companies <= 0:
        raise ValueError("deals need at least one company")
    now = int(as_of.timestamp()) * 1000
    today = now // _DAY_MS
    rng = random.Random(seed)
    rand = rng.random
    window_start = _quarter_start(date.fromordinal(_EPOCH_ORDINAL + today), 5)
    gen_start = (window_start.toordinal() - _EPOCH_ORDINAL - 75) * _DAY_MS
    portal = HubSpotPortal(
        owners=_owners(now),
        pipelines=default_pipelines(gen_start - 400 * _DAY_MS),
        account=setup.account,
        properties=property_definitions(setup.custom),
    )
    owner_ids = [owner["id"] for owner in portal.owners]

    # Companies: a name, a home country and currency, an industry.
    names = company_names(rng, companies)
    countries = [c for c, _, _ in _COUNTRIES]
    weights = [w for _, _, w in _COUNTRIES]
    currency_of = {c: cur for c, cur, _ in _COUNTRIES}
    company_rows = []
    for name in names:
        country = rng.choices(countries, weights)[0]
        company_rows.append((name, country, currency_of[country]))

    # Deals: created uniformly over the window, owned by a seller employed that day.
    leaver = {i: today - (ROSTER[i].left_days_ago or 0) for i in SELLERS if ROSTER[i].left_days_ago}
    stayers = [i for i in SELLERS if i not in leaver]
    span = now - gen_start
    dealing = max(1, companies - companies // 25)  # the rest stay leads without deals
    first_won: dict[int, int] = {}
    last_won: dict[int, int] = {}
    earliest: dict[int, tuple[int, str]] = {}
    # A boundary the sales metrics must cut right (issue 22): the first deal won in this
    # quarter (created before it) closes at the very midnight, in the close times' zone,
    # the quarter starts, so its day is the quarter's first, never the last one's.
    boundary = quarter_start_day(today)
    midnight = datetime.combine(
        date.fromordinal(_EPOCH_ORDINAL + boundary), time(), ZoneInfo(setup.close_zone or "UTC")
    )
    midnight_ms = int(midnight.timestamp()) * 1000
    planted: int | None = None
    for n in range(deals):
        created = gen_start + int(rand() * span)
        day = created // _DAY_MS
        seller = SELLERS[int(rand() * len(SELLERS))]
        if seller in leaver and day + 60 >= leaver[seller]:
            seller = stayers[int(rand() * len(stayers))]
        company = int(rand() * dealing)
        currency = company_rows[company][2]
        renewal = rand() < 0.25
        pipeline = RENEWALS_PIPELINE if renewal else SALES_PIPELINE
        close_day = day + 14 + int(rand() * 100)
        closed = close_day < today - (1 if evening else 0)  # a local evening ends after today
        won = closed and rand() < (0.6 if renewal else 0.35)
        usd = (9000.0 if ROSTER[seller].team == MID_MARKET else 26000.0) * rng.lognormvariate(
            0.0, 0.35
        )
        if evening is None:
            close_ms = close_day * _DAY_MS + 12 * 3_600_000 + int(rand() * 18_000_000)
        else:
            close_ms = evening(close_day, rand())
        if planted is None and won and close_day >= boundary and created < midnight_ms:
            close_ms, planted = midnight_ms, n
        if closed:
            stage = _WON[pipeline] if won else _LOST[pipeline]
            modified = close_ms + int(rand() * 3 * _DAY_MS)
        else:
            progress = (now - created) / max(1, close_ms - created)
            opens = _RENEWAL_OPEN if renewal else _SALES_OPEN
            stage = opens[min(len(opens) - 1, int(progress * len(opens)))]
            modified = created + int((now - created) * rand())
        modified = _before(max(modified, created + 60_000), now, created, rand())
        archived = (
            modified + int((now - modified) * rand()) if rand() < 0.01 and n != planted else None
        )
        amount = usd * CURRENCY_RATES[currency]
        blank_amount = not closed and rand() < 0.03
        properties = {
            "dealname": f"{company_rows[company][0]} - "
            + ("Renewal" if renewal else "New license"),
            "amount": "" if blank_amount else _money(amount),
            "deal_currency_code": currency,
            "amount_in_home_currency": "" if blank_amount else _money(usd),
            "dealstage": stage,
            "pipeline": pipeline,
            "closedate": iso_ms(close_ms),
            "createdate": iso_ms(created),
            "hs_lastmodifieddate": iso_ms(modified),
            "hubspot_owner_id": owner_ids[seller],
            "dealtype": "" if rand() < 0.05 else "existingbusiness" if renewal else "newbusiness",
            "hs_object_id": str(14_000_000_001 + n),
        }
        record = _record(properties["hs_object_id"], properties, archived)
        _associate(record, "deals", str(9_001_000_001 + company))
        portal._records["deals"][record["id"]] = record
        if won and archived is None:
            first_won[company] = min(first_won.get(company, close_ms), close_ms)
            last_won[company] = max(last_won.get(company, close_ms), close_ms)
        if company not in earliest or created < earliest[company][0]:
            earliest[company] = (created, owner_ids[seller])

    # Companies: customer since the first won deal; some churn; a few without deals archived.
    churnable = sorted(c for c in first_won if last_won[c] <= now - 60 * _DAY_MS)
    churned = set(rng.sample(churnable, min(len(churnable), round(0.08 * len(first_won)))))
    no_deals = [c for c in range(companies) if c not in earliest]
    archived_companies = set(rng.sample(no_deals, min(len(no_deals), companies // 100)))
    customers: list[tuple[str, int, int]] = []
    for c, (name, country, _currency) in enumerate(company_rows):
        if c in earliest:
            created, owner = earliest[c]
            created -= (1 + int(rand() * 120)) * _DAY_MS
        else:
            low = gen_start - 365 * _DAY_MS
            created = low + int((now - low) * rand())
            owner = owner_ids[SELLERS[int(rand() * len(SELLERS))]]
        modified = created + int(rand() * 30 * _DAY_MS)
        stage, since, churn = ("opportunity" if c in earliest else "lead"), "", ""
        if c in first_won:
            stage, since = "customer", iso_ms(first_won[c])
            modified = max(modified, first_won[c] + 3_600_000)
            end = now
            if c in churned:
                gap_days = (now - last_won[c]) // _DAY_MS
                churn_day = last_won[c] // _DAY_MS + 30 + int(rand() * (gap_days - 31))
                stage, churn, end = "other", _iso_day(churn_day), churn_day * _DAY_MS
                modified = max(modified, churn_day * _DAY_MS + 16 * 3_600_000)
            customers.append((str(9_001_000_001 + c), first_won[c], min(end, now)))
        modified = _before(modified + int(rand() * 5_400_000), now, created, rand())
        archived = modified + int((now - modified) * rand()) if c in archived_companies else None
        properties = {
            "name": name,
            "domain": domain_for(name),
            "industry": "" if rand() < 0.03 else _INDUSTRIES[int(rand() * len(_INDUSTRIES))],
            "country": country,
            "lifecyclestage": stage,
            "createdate": iso_ms(created),
            "hs_lastmodifieddate": iso_ms(modified),
            "hubspot_owner_id": owner,
            "hs_lifecyclestage_customer_date": since,
            "churned_date": churn,
            "hs_object_id": str(9_001_000_001 + c),
        }
        if "churned_date" not in setup.custom.get("companies", ()):
            del properties["churned_date"]  # the portal has no such property
        portal._records["companies"][properties["hs_object_id"]] = _record(
            properties["hs_object_id"], properties, archived
        )

    # Tickets: from customers while they are customers, most answered and closed.
    agents = [owner_ids[i] for i, o in enumerate(ROSTER) if o.team == SUPPORT]
    for n in range(tickets if customers else 0):
        company_id, start, end = customers[int(rand() * len(customers))]
        created = start + int(rand() * max(1, end - start))
        reply = created + 600_000 + int(rand() * 36 * 3_600_000) if rand() < 0.92 else None
        if reply is not None and reply > now:
            reply = None
        age_days = (now - created) / _DAY_MS
        solved = None
        if reply is not None and rand() < (0.9 if age_days > 7 else 0.4):
            solved = reply + 1_800_000 + int(rand() * 96 * 3_600_000)
            solved = solved if solved <= now else None
        stage = "4" if solved else "1" if reply is None else "2" if rand() < 0.5 else "3"
        modified = max(created, reply or 0, solved or 0) + int(rand() * 3_600_000)
        modified = _before(modified, now, created, rand())
        archived = (
            modified + int((now - modified) * rand()) if rand() < 0.01 and n != planted else None
        )
        properties = {
            "subject": _SUBJECTS[int(rand() * len(_SUBJECTS))],
            "hs_pipeline": SUPPORT_PIPELINE,
            "hs_pipeline_stage": stage,
            "hs_ticket_priority": ("LOW", "MEDIUM", "MEDIUM", "HIGH", "URGENT", "")[
                int(rand() * 6)
            ],
            "source_type": ("EMAIL", "EMAIL", "CHAT", "PHONE", "FORM")[int(rand() * 5)],
            "createdate": iso_ms(created),
            "hs_lastmodifieddate": iso_ms(modified),
            "closed_date": iso_ms(solved) if solved else "",
            "first_agent_reply_date": iso_ms(reply) if reply else "",
            "hubspot_owner_id": agents[int(rand() * len(agents))],
            "hs_object_id": str(2_100_000_001 + n),
        }
        record = _record(properties["hs_object_id"], properties, archived)
        _associate(record, "tickets", company_id)
        portal._records["tickets"][record["id"]] = record
    if tied_deals:
        tie_modified(portal, "deals", tied_deals)
    return portal


def tie_modified(portal: HubSpotPortal, object_type: str, count: int) -> str:
    """Give the first ``count`` live records (by id) one modified time; returns it.

    The newest of their own, so no record looks modified before it was created.
    """
    chosen = sorted(portal.records(object_type), key=lambda r: int(r["id"]))[:count]
    if not chosen:
        raise ValueError(f"no live {object_type} to tie")
    stamp = iso_ms(max(to_ms(r["properties"]["hs_lastmodifieddate"]) for r in chosen))
    for record in chosen:
        properties = {**record["properties"], "hs_lastmodifieddate": stamp}
        portal.add(object_type, {**record, "properties": properties, "updatedAt": stamp})
    return stamp


def customer_seeds(portal: HubSpotPortal) -> list[CompanySeed]:
    """Every live company that is or was a customer, for the helpdesk sandbox to mirror."""
    seeds = []
    for company in portal.records("companies"):
        props = company["properties"]
        since = props.get("hs_lifecyclestage_customer_date")
        if not since:
            continue
        churned = props.get("churned_date")
        name = props.get("name") or company["id"]
        seeds.append(
            CompanySeed(
                crm_id=company["id"],
                name=name,
                domain=domain_of(props.get("domain")) or domain_for(name),
                customer_since=datetime.fromtimestamp(to_ms(since) / 1000, UTC).date(),
                churned_on=date.fromisoformat(churned) if churned else None,
            )
        )
    return seeds


# ---------------------------------------------------------------------------
# Seed directories: one JSON Lines file per object, in the API's own record shapes

OWNERS_FILE, PIPELINES_FILE, ACCOUNT_FILE = "owners.jsonl", "pipelines.json", "account.json"
PROPERTIES_FILE = "properties.json"


def _with_id(add: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    def checked(record: dict[str, Any]) -> Any:
        if not isinstance(record.get("id"), str) or not record["id"]:
            raise ValueError("record has no string 'id'")
        return add(record)

    return checked


def load_portal(directory: Path) -> HubSpotPortal:
    """Read ``companies/deals/tickets/owners.jsonl``, ``pipelines.json``, ``account.json``
    and ``properties.json``.

    Missing files mean no such records (pipelines, account and properties fall back to the
    defaults).
    A bad line raises ValueError naming the file and line.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"seed directory not found: {directory}")
    settings: dict[str, Any] = {}
    for name in (PIPELINES_FILE, ACCOUNT_FILE, PROPERTIES_FILE):
        path = directory / name
        if path.is_file():
            try:
                value = orjson.loads(path.read_bytes())
                if not isinstance(value, dict):
                    raise ValueError("expected a JSON object")
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            settings[name] = value
    owners_path = directory / OWNERS_FILE
    owners: list[dict[str, Any]] = []
    if owners_path.is_file():
        load_jsonl(owners_path, _with_id(owners.append))
    portal = HubSpotPortal(
        owners=owners,
        pipelines=settings.get(PIPELINES_FILE),
        account=settings.get(ACCOUNT_FILE),
        properties=settings.get(PROPERTIES_FILE),
    )
    for object_type in OBJECT_TYPES:
        path = directory / f"{object_type}.jsonl"
        if not path.is_file():
            continue
        load_jsonl(path, _with_id(functools.partial(portal.add, object_type)))
    return portal


def write_portal(portal: HubSpotPortal, directory: Path) -> list[Path]:
    """Write every record (archived ones too) and the portal's settings; returns the files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    rows: dict[str, Iterable[Mapping[str, Any]]] = {
        f"{t}.jsonl": portal.records(t, archived=None) for t in OBJECT_TYPES
    }
    rows[OWNERS_FILE] = portal.owners
    for name, records in rows.items():
        path = directory / name
        with path.open("wb") as handle:
            for record in records:
                handle.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        written.append(path)
    for name, value in (
        (PIPELINES_FILE, portal.pipelines),
        (ACCOUNT_FILE, portal.account),
        (PROPERTIES_FILE, portal.properties),
    ):
        path = directory / name
        path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2))
        written.append(path)
    return written
