"""The sandbox org: an in-memory Salesforce data set, its generator and its JSONL seed files.

Records are stored exactly as the REST API returns them (``attributes`` first) and
are never mutated in place: a change replaces the dict, so query snapshots taken by
the emulator stay consistent while a test edits the org mid-sync.
"""

from __future__ import annotations

import bisect
import functools
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from connectors.canonical import domain_of
from connectors.salesforce.timestamps import format_sf_datetime, parse_sf_datetime
from connectors.sandbox.world import (
    CompanySeed,
    company_names,
    domain_for,
    load_jsonl,
    quarter_start_day,
)

API_VERSION = "59.0"

_DT = "datetime"
SCHEMA: dict[str, dict[str, str]] = {
    "User": {
        "Id": "id",
        "Username": "string",
        "Email": "email",
        "FirstName": "string",
        "LastName": "string",
        "Name": "string",
        "Title": "string",
        "Department": "string",
        "ManagerId": "reference",
        "IsActive": "boolean",
        "Start_Date__c": "date",
        "Monthly_Quota__c": "currency",
        "DefaultCurrencyIsoCode": "picklist",
        "CreatedDate": _DT,
        "LastModifiedDate": _DT,
        "SystemModstamp": _DT,
    },
    "Account": {
        "Id": "id",
        "Name": "string",
        "Type": "picklist",
        "Industry": "picklist",
        "Website": "url",
        "BillingCountry": "string",
        "CurrencyIsoCode": "picklist",
        "OwnerId": "reference",
        "Customer_Since__c": "date",
        "Churn_Date__c": "date",
        "IsDeleted": "boolean",
        "CreatedDate": _DT,
        "LastModifiedDate": _DT,
        "SystemModstamp": _DT,
    },
    "Opportunity": {
        "Id": "id",
        "Name": "string",
        "AccountId": "reference",
        "OwnerId": "reference",
        "Amount": "currency",
        "CurrencyIsoCode": "picklist",
        "StageName": "picklist",
        "IsClosed": "boolean",
        "IsWon": "boolean",
        "Probability": "percent",
        "CloseDate": "date",
        "Type": "picklist",
        "IsDeleted": "boolean",
        "CreatedDate": _DT,
        "LastModifiedDate": _DT,
        "SystemModstamp": _DT,
    },
    "CurrencyType": {
        "Id": "id",
        "IsoCode": "picklist",
        "ConversionRate": "double",
        "DecimalPlaces": "int",
        "IsActive": "boolean",
        "IsCorporate": "boolean",
        "CreatedDate": _DT,
        "LastModifiedDate": _DT,
        "SystemModstamp": _DT,
    },
    "DatedConversionRate": {
        "Id": "id",
        "IsoCode": "picklist",
        "ConversionRate": "double",
        "StartDate": "date",
        "NextStartDate": "date",
        "CreatedDate": _DT,
        "LastModifiedDate": _DT,
        "SystemModstamp": _DT,
    },
    "Case": {
        "Id": "id",
        "CaseNumber": "string",
        "AccountId": "reference",
        "Subject": "string",
        "Status": "picklist",
        "IsClosed": "boolean",
        "Priority": "picklist",
        "Origin": "picklist",
        "First_Response__c": _DT,
        "ClosedDate": _DT,
        "IsDeleted": "boolean",
        "CreatedDate": _DT,
        "LastModifiedDate": _DT,
        "SystemModstamp": _DT,
    },
}
"""Object -> field -> Salesforce field type, in the order the API returns fields."""

ID_PREFIXES = {
    "User": "005",
    "Account": "001",
    "Opportunity": "006",
    "CurrencyType": "01L",
    "DatedConversionRate": "04w",
    "Case": "500",
}

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_UPPER_BITS = str.maketrans({c: "1" if c.isupper() else "0" for c in _B62})


def sf_id(prefix: str, n: int) -> str:
    """The n-th 18-character Salesforce Id for a key prefix, with its real checksum suffix."""
    body = ""
    for _ in range(6):
        n, digit = divmod(n, 62)
        body = _B62[digit] + body
    id15 = f"{prefix}5g0000{body}"
    bits = id15.translate(_UPPER_BITS)  # one bit per char: uppercase or not, read backwards
    return (
        id15
        + _ID_SUFFIX[int(bits[4::-1], 2)]
        + _ID_SUFFIX[int(bits[9:4:-1], 2)]
        + _ID_SUFFIX[int(bits[14:9:-1], 2)]
    )


@dataclass(frozen=True)
class OrgProfile:
    """What kind of org the sandbox plays, as its describe and records show it.

    A real org has ``CurrencyIsoCode`` fields and the ``CurrencyType`` object only with
    multiple currencies, ``DatedConversionRate`` only with advanced currency management,
    and custom fields only where its admins made them.
    """

    name: str
    multi_currency: bool
    dated_rates: bool  # advanced currency management
    custom_fields: bool  # the demo's Customer_Since__c, Churn_Date__c, First_Response__c, …
    currency: str = "USD"  # the company (corporate) currency

    def keeps(self, sobject: str, field: str | None = None) -> bool:
        """Whether an org of this kind has the object (or the object's field)."""
        if sobject == "CurrencyType" and not self.multi_currency:
            return False
        if sobject == "DatedConversionRate" and not self.dated_rates:
            return False
        if field is None:
            return True
        if field.endswith("CurrencyIsoCode") and not self.multi_currency:
            return False
        return self.custom_fields or not field.endswith("__c")


PROFILES: dict[str, OrgProfile] = {
    profile.name: profile
    for profile in (
        OrgProfile("advanced-currency", multi_currency=True, dated_rates=True, custom_fields=True),
        OrgProfile("multi-currency", multi_currency=True, dated_rates=False, custom_fields=True),
        OrgProfile("single-currency", multi_currency=False, dated_rates=False, custom_fields=False),
    )
}
"""The orgs the sandbox plays: the demo's (the default), one without advanced currency
management, and a Developer-Edition-like one (one currency, no custom fields)."""
DEFAULT_PROFILE = "advanced-currency"
FIELD_MAP = {
    "customer_since": "Customer_Since__c",
    "churned_on": "Churn_Date__c",
    "first_response_at": "First_Response__c",
    "rep_started_on": "Start_Date__c",
    "monthly_quota": "Monthly_Quota__c",
}
"""OKR_SYNC_SALESFORCE_FIELD_MAP for a profile with the demo's custom fields."""


class SalesforceOrg:
    """Records per object keyed by Id, plus the field schema used to validate SOQL."""

    currency = "USD"  # the company currency getUserInfo names when the org has only one

    def __init__(
        self, schema: Mapping[str, Mapping[str, str]] | None = None, api_version: str = API_VERSION
    ) -> None:
        self.schema: dict[str, dict[str, str]] = {
            name: dict(fields) for name, fields in (schema or SCHEMA).items()
        }
        self.api_version = api_version
        self._records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self._lock = threading.Lock()
        self._clock: str | None = None
        self._id_counter = 0

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """A snapshot list of the object's records (IsDeleted ones only if asked)."""
        rows = list(self._records[sobject].values())
        return rows if include_deleted else [r for r in rows if not r.get("IsDeleted")]

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """One record by Id, deleted or not."""
        return self._records[sobject].get(record_id)

    def add(self, sobject: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Store a record verbatim (no timestamp bump); ``attributes`` is rebuilt."""
        record_id = record.get("Id")
        if not isinstance(record_id, str) or not record_id:
            raise ValueError(f"{sobject} record without a string Id")
        stored = {"attributes": self._attributes(sobject, record_id)}
        stored.update((k, v) for k, v in record.items() if k != "attributes")
        with self._lock:
            self._records[sobject][record_id] = stored
            stamp = stored.get("SystemModstamp")
            if self._clock is not None and isinstance(stamp, str) and stamp > self._clock:
                self._clock = stamp
        return stored

    def upsert(
        self, sobject: str, fields: Mapping[str, Any], *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Insert or update like an API edit: LastModifiedDate/SystemModstamp move forward.

        Timestamps given explicitly in ``fields`` are kept (to simulate odd histories);
        otherwise they become ``now`` (default: wall clock), bumped past every
        SystemModstamp already in the org so incremental syncs always see the change.
        """
        unknown = set(fields) - set(self.schema[sobject]) - {"attributes"}
        if unknown:
            raise ValueError(f"unknown {sobject} fields: {sorted(unknown)}")
        with self._lock:
            stamp = self._next_stamp(now)
            record_id = fields.get("Id") or self._new_id(sobject)
            old = self._records[sobject].get(record_id)
            if old is None:
                new: dict[str, Any] = {"attributes": self._attributes(sobject, record_id)}
                new.update(dict.fromkeys(self.schema[sobject]))
                new["Id"] = record_id
                if "CreatedDate" in self.schema[sobject]:
                    new["CreatedDate"] = stamp
                if "IsDeleted" in self.schema[sobject]:
                    new["IsDeleted"] = False
            else:
                new = dict(old)
            new.update((k, v) for k, v in fields.items() if k != "attributes")
            new["Id"] = record_id
            for name in ("LastModifiedDate", "SystemModstamp"):
                if name in self.schema[sobject] and name not in fields:
                    new[name] = stamp
            self._records[sobject][record_id] = new
            return new

    def delete(self, sobject: str, record_id: str, *, now: datetime | None = None) -> None:
        """Soft-delete (IsDeleted, visible to queryAll) or, without IsDeleted, remove."""
        if record_id not in self._records[sobject]:
            raise KeyError(f"no {sobject} with Id {record_id}")
        if "IsDeleted" in self.schema[sobject]:
            self.upsert(sobject, {"Id": record_id, "IsDeleted": True}, now=now)
        else:
            with self._lock:
                del self._records[sobject][record_id]

    def purge(self, sobject: str, record_id: str) -> None:
        """Hard-delete: gone even from queryAll, as after the recycle bin is emptied."""
        with self._lock:
            del self._records[sobject][record_id]

    def _attributes(self, sobject: str, record_id: str) -> dict[str, str]:
        url = f"/services/data/v{self.api_version}/sobjects/{sobject}/{record_id}"
        return {"type": sobject, "url": url}

    def _new_id(self, sobject: str) -> str:
        while True:
            self._id_counter += 1
            candidate = sf_id(ID_PREFIXES.get(sobject, "a00"), 10_000_000 + self._id_counter)
            if candidate not in self._records[sobject]:
                return candidate

    def _next_stamp(self, now: datetime | None) -> str:
        if self._clock is None:
            self._clock = max(
                (
                    r["SystemModstamp"]
                    for rows in self._records.values()
                    for r in rows.values()
                    if isinstance(r.get("SystemModstamp"), str)
                ),
                default="",
            )
        stamp = format_sf_datetime(now or datetime.now(UTC))
        if self._clock and stamp <= self._clock:
            stamp = format_sf_datetime(parse_sf_datetime(self._clock) + timedelta(milliseconds=1))
        self._clock = stamp
        return stamp


# ---------------------------------------------------------------------------
# Generator


@dataclass(frozen=True)
class Rep:
    """One member of the fixed sales roster (independent of the generator seed)."""

    first: str
    last: str
    team: str
    quota: float | None
    start_days_ago: int
    profile: str  # veteran | hit (new rep who hits quota) | miss (new rep who doesn't) | manager
    left_days_ago: int | None = None

    @property
    def email(self) -> str:
        local = f"{self.first}.{self.last}".lower().replace("'", "")
        return f"{local}@acme-demo.example"


ENTERPRISE, MID_MARKET, LEADERSHIP = "Enterprise Sales", "Mid-Market Sales", "Sales Leadership"
ROSTER: tuple[Rep, ...] = (
    Rep("Morgan", "Blake", LEADERSHIP, None, 2900, "manager"),
    Rep("Ava", "Chen", ENTERPRISE, 110000.0, 1850, "veteran"),
    Rep("Marcus", "Reed", ENTERPRISE, 120000.0, 2400, "veteran"),
    Rep("Sofia", "Rossi", ENTERPRISE, 100000.0, 1200, "veteran"),
    Rep("Daniel", "Kim", ENTERPRISE, 105000.0, 820, "veteran"),
    Rep("Hannah", "Okafor", ENTERPRISE, 90000.0, 170, "miss"),
    Rep("Sam", "Whitaker", ENTERPRISE, 90000.0, 60, "miss"),
    Rep("Liam", "O'Brien", MID_MARKET, 60000.0, 1500, "veteran"),
    Rep("Noah", "Patel", MID_MARKET, 55000.0, 1100, "veteran"),
    Rep("Emma", "Johansson", MID_MARKET, 65000.0, 2100, "veteran"),
    Rep("Grace", "Liu", MID_MARKET, 50000.0, 640, "veteran"),
    Rep("Greg", "Lawson", MID_MARKET, 45000.0, 1300, "veteran", left_days_ago=210),
    Rep("Priya", "Raman", MID_MARKET, 45000.0, 250, "hit"),
    Rep("Diego", "Alvarez", MID_MARKET, 45000.0, 200, "hit"),
    Rep("Tom", "Becker", MID_MARKET, 40000.0, 140, "hit"),
    Rep("Lena", "Fischer", MID_MARKET, 40000.0, 100, "miss"),
)
"""Fixed roster: 1 manager, 6 Enterprise and 9 Mid-Market reps (6 new: 3 hit quota, 3 don't)."""

CURRENCIES: tuple[tuple[str, float], ...] = (("USD", 1.0), ("EUR", 0.92), ("GBP", 0.79))
_COUNTRIES = (
    ("United States", "USD", 0.75),
    ("Germany", "EUR", 0.07),
    ("France", "EUR", 0.04),
    ("Netherlands", "EUR", 0.04),
    ("United Kingdom", "GBP", 0.10),
)
_INDUSTRIES = (
    "Technology",
    "Manufacturing",
    "Healthcare",
    "Financial Services",
    "Retail",
    "Education",
    "Media",
    "Energy",
    "Transportation",
    "Hospitality",
)
_NEW_PRODUCTS = ("Platform License", "Starter Package", "Analytics Suite", "Data Connector Pack")
_EXISTING_PRODUCTS = (
    "Renewal",
    "Seat Expansion",
    "Premium Support",
    "Analytics Add-on",
    "Professional Services",
)
_OPEN_STAGES = (
    ("Prospecting", 10.0),
    ("Qualification", 10.0),
    ("Needs Analysis", 20.0),
    ("Proposal/Price Quote", 75.0),
    ("Negotiation/Review", 90.0),
)
_WIN_RATE = {"veteran": 0.33, "hit": 0.30, "miss": 0.24}


_DAY = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_HOURS = [f"{h:02d}:" for h in range(24)]
_MINSEC = [f"{m:02d}:{s:02d}" for m in range(60) for s in range(60)]


@functools.cache
def _iso_day(day: int) -> str:
    """ISO date of an epoch-day number (cached: a million deals share a few hundred days)."""
    return date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


def _sf_ts(sec: int) -> str:
    """Salesforce timestamp of whole epoch seconds; much cheaper than datetime formatting."""
    day, rest = divmod(sec, _DAY)
    hour, rest = divmod(rest, 3600)
    return f"{_iso_day(day)}T{_HOURS[hour]}{_MINSEC[rest]}.000+0000"


def _quarter_start(day: date, quarters_back: int) -> date:
    index = day.year * 12 + (day.month - 1) // 3 * 3 - 3 * quarters_back
    return date(index // 12, index % 12 + 1, 1)


def _add_users(org: SalesforceOrg, now: int) -> list[str]:
    """The fixed roster (never seed-dependent, so OKR files can name people)."""
    today = now // _DAY
    user_ids = [sf_id(ID_PREFIXES["User"], i + 1) for i in range(len(ROSTER))]
    for i, rep in enumerate(ROSTER):
        start = today - rep.start_days_ago
        created = min((start - 7) * _DAY + 16 * 3600, now)
        modified = max(created, now - (3 + 7 * i) * _DAY - i * 3600)
        if rep.left_days_ago is not None:
            modified = (today - rep.left_days_ago) * _DAY + 17 * 3600
        title = "Senior Account Executive" if rep.start_days_ago > 1000 else "Account Executive"
        org.add(
            "User",
            {
                "Id": user_ids[i],
                "Username": rep.email,
                "Email": rep.email,
                "FirstName": rep.first,
                "LastName": rep.last,
                "Name": f"{rep.first} {rep.last}",
                "Title": "VP of Sales" if rep.profile == "manager" else title,
                "Department": rep.team,
                "ManagerId": None if rep.profile == "manager" else user_ids[0],
                "IsActive": rep.left_days_ago is None,
                "Start_Date__c": _iso_day(start),
                "Monthly_Quota__c": rep.quota,
                "DefaultCurrencyIsoCode": "USD",
                "CreatedDate": _sf_ts(created),
                "LastModifiedDate": _sf_ts(modified),
                "SystemModstamp": _sf_ts(modified),
            },
        )
    for i, (iso, rate) in enumerate(CURRENCIES):
        created = (today - 1460 + i) * _DAY + 15 * 3600
        org.add(
            "CurrencyType",
            {
                "Id": sf_id(ID_PREFIXES["CurrencyType"], i + 1),
                "IsoCode": iso,
                "ConversionRate": rate,
                "DecimalPlaces": 2,
                "IsActive": True,
                "IsCorporate": iso == "USD",
                "CreatedDate": _sf_ts(created),
                "LastModifiedDate": _sf_ts(created),
                "SystemModstamp": _sf_ts(created),
            },
        )
    return user_ids


def shaped(org: SalesforceOrg, profile: OrgProfile) -> SalesforceOrg:
    """The org as one of ``profile``'s kind would hold it: objects and fields it lacks are
    gone, and a single-currency org's amounts are in its company currency."""
    rates = dict(CURRENCIES)
    schema = {
        sobject: {name: kind for name, kind in fields.items() if profile.keeps(sobject, name)}
        for sobject, fields in org.schema.items()
        if profile.keeps(sobject)
    }
    out = SalesforceOrg(schema, org.api_version)
    out.currency = profile.currency
    for sobject, fields in schema.items():
        for record in org.records(sobject, include_deleted=True):
            row = {name: value for name, value in record.items() if name in fields}
            amount, currency = record.get("Amount"), record.get("CurrencyIsoCode")
            if not profile.multi_currency and amount is not None and currency:
                row["Amount"] = round(amount / rates[currency] * rates[profile.currency], 2)
            out.add(sobject, row)
    return out


def generate_org(
    seed: int = 7,
    as_of: datetime | None = None,
    accounts: int = 400,
    opportunities: int = 2500,
    profile: str = DEFAULT_PROFILE,
) -> SalesforceOrg:
    """A realistic, deterministic org for (seed, as_of) covering six calendar quarters.

    The roster and currencies never depend on the seed; accounts and deals do. Deal sizes
    grow ~10% a quarter; new reps marked "hit" close one quota-sized deal within their first
    three months, "miss" reps never win more than 80% of quota in a calendar month.
    Times are whole epoch seconds internally so a million deals stay affordable.
    ``profile`` names the kind of org (:data:`PROFILES`); the default has it all.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown org profile {profile!r}; known: {', '.join(PROFILES)}")
    if as_of is None:
        as_of = datetime.now(UTC)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    if opportunities > 0 and accounts <= 0:
        raise ValueError("opportunities need at least one account")
    now = int(as_of.timestamp())
    today = now // _DAY
    rng = random.Random(seed)
    org = SalesforceOrg()
    user_ids = _add_users(org, now)
    rates = dict(CURRENCIES)

    # Accounts: a name, a home country/currency and the team that sells to it.
    window_start = _quarter_start(date.fromordinal(_EPOCH_ORDINAL + today), 5)
    gen_start = (window_start.toordinal() - _EPOCH_ORDINAL - 75) * _DAY
    names = company_names(rng, accounts)
    countries = [c for c, _, _ in _COUNTRIES]
    country_weights = [w for _, _, w in _COUNTRIES]
    currency_of = {c: cur for c, cur, _ in _COUNTRIES}
    account_rows: list[dict[str, Any]] = []
    by_team: dict[str, list[int]] = {ENTERPRISE: [], MID_MARKET: []}
    for i, name in enumerate(names):
        country = rng.choices(countries, country_weights)[0]
        team = ENTERPRISE if rng.random() < 0.3 else MID_MARKET
        by_team[team].append(i)
        account_rows.append(
            {
                "Id": sf_id(ID_PREFIXES["Account"], i + 1),
                "Name": name,
                "Type": "Prospect",
                "Industry": rng.choice(_INDUSTRIES),
                "Website": f"https://www.{domain_for(name)}",
                "BillingCountry": country,
                "CurrencyIsoCode": currency_of[country],
                "team": team,
            }
        )
    for members in by_team.values():
        if not members and account_rows:
            members.append(rng.randrange(len(account_rows)))
    usd_accounts = [i for i, row in enumerate(account_rows) if row["CurrencyIsoCode"] == "USD"]

    # Opportunities: created uniformly over the window, owned by a rep employed that day.
    sellers = [i for i, rep in enumerate(ROSTER) if rep.profile != "manager"]
    starts = {i: today - ROSTER[i].start_days_ago for i in sellers}
    ends = {
        i: today - (ROSTER[i].left_days_ago or 0)
        for i in sellers
        if ROSTER[i].left_days_ago is not None
    }
    heirs = {
        team: [
            i
            for i in sellers
            if ROSTER[i].team == team and ROSTER[i].profile == "veteran" and i not in ends
        ]
        for team in (ENTERPRISE, MID_MARKET)
    }
    heroes = [i for i in sellers if ROSTER[i].profile == "hit" and ROSTER[i].start_days_ago >= 100][
        : max(0, opportunities)
    ]
    first_hero = opportunities - len(heroes)
    pools: dict[int, tuple[list[int], list[float]]] = {}
    won_by_month: dict[tuple[int, str], float] = {}
    opp_url = f"/services/data/v{org.api_version}/sobjects/Opportunity/"
    span = now - gen_start
    opp_rows: list[dict[str, Any]] = []
    for n in range(opportunities):
        rand = rng.random
        if n >= first_hero:
            rep_i = heroes[n - first_hero]
            close = starts[rep_i] + 45 + int(rand() * 46)
            created = (close - 20 - int(rand() * 21)) * _DAY + 13 * 3600 + int(rand() * 28800)
            acct_i = rng.choice(usd_accounts or by_team[MID_MARKET])
            usd = (ROSTER[rep_i].quota or 0.0) * (1.1 + 0.2 * rand())
            won = closed = True
        else:
            created = gen_start + int(rand() * span)
            day = created // _DAY
            if day not in pools:
                pool = [i for i in sellers if starts[i] <= day < ends.get(i, today + 1)]
                cum, total = [], 0.0
                for i in pool:
                    total += 0.6 if ROSTER[i].team == ENTERPRISE else 1.0
                    cum.append(total)
                pools[day] = (pool, cum)
            pool, cum = pools[day]
            rep_i = pool[bisect.bisect(cum, rand() * cum[-1])]
            team = ROSTER[rep_i].team
            cycle = 30 + int(rand() * 91) if team == ENTERPRISE else 10 + int(rand() * 66)
            close = day + cycle
            if rep_i in ends and close >= ends[rep_i]:
                rep_i = rng.choice(heirs[team])
            acct_i = rng.choice(by_team[team])
            growth = 1.0 + 0.10 * (created - gen_start) / (91 * _DAY)
            base = 24000.0 if team == ENTERPRISE else 8500.0
            usd = base * growth * rng.lognormvariate(0.0, 0.35)
            closed = close < today
            won = closed and rand() < _WIN_RATE[ROSTER[rep_i].profile]
            if won and ROSTER[rep_i].profile == "miss":
                key = (rep_i, _iso_day(close)[:7])
                if won_by_month.get(key, 0.0) + usd > 0.8 * (ROSTER[rep_i].quota or 0.0):
                    won = False
                else:
                    won_by_month[key] = won_by_month.get(key, 0.0) + usd
        currency = "USD" if n >= first_hero else account_rows[acct_i]["CurrencyIsoCode"]
        if closed:
            stage, probability = ("Closed Won", 100.0) if won else ("Closed Lost", 0.0)
            modified = close * _DAY + 14 * 3600 + int(rand() * 32400)
            if rand() < 0.2:
                modified += (1 + int(rand() * 20)) * _DAY
        else:
            progress = (now - created) / (close * _DAY + 43200 - created)
            stage, probability = _OPEN_STAGES[min(4, int(progress * 5))]
            modified = created + int((now - created) * rand())
        modified = min(max(modified, created + 300), now)
        modstamp = modified
        if rand() < 0.15:
            modstamp = min(modified + 3600 * (1 + int(rand() * 72)), now)
        deleted = n < first_hero and rand() < 0.01
        if deleted:
            modified = modstamp = modstamp + int((now - modstamp) * rand())
        opp_id = sf_id(ID_PREFIXES["Opportunity"], n + 1)
        opp_rows.append(
            {  # "Name" holds the account index until the second pass
                "attributes": {"type": "Opportunity", "url": opp_url + opp_id},
                "Id": opp_id,
                "Name": acct_i,
                "AccountId": account_rows[acct_i]["Id"],
                "OwnerId": user_ids[rep_i],
                "Amount": round(usd * rates[currency], 2),
                "CurrencyIsoCode": currency,
                "StageName": stage,
                "IsClosed": closed,
                "IsWon": won,
                "Probability": probability,
                "CloseDate": close,
                "Type": None,
                "IsDeleted": deleted,
                "CreatedDate": created,
                "LastModifiedDate": modified,
                "SystemModstamp": modstamp,
            }
        )

    # What follows from the deals: first won deal per account, deal Type and Name.
    first_won: dict[int, int] = {}
    last_won: dict[int, int] = {}
    earliest: dict[int, tuple[int, str]] = {}
    for opp in opp_rows:
        a = opp["Name"]
        if opp["IsWon"] and not opp["IsDeleted"]:
            first_won[a] = min(first_won.get(a, opp["CloseDate"]), opp["CloseDate"])
            last_won[a] = max(last_won.get(a, opp["CloseDate"]), opp["CloseDate"])
        if a not in earliest or opp["CreatedDate"] < earliest[a][0]:
            earliest[a] = (opp["CreatedDate"], opp["OwnerId"])
    records = org._records["Opportunity"]  # rows are already API-shaped: skip add()'s copy
    for opp in opp_rows:
        a = opp["Name"]
        existing = a in first_won and first_won[a] < opp["CreatedDate"] // _DAY
        opp["Type"] = "Existing Business" if existing else "New Business"
        product = rng.choice(_EXISTING_PRODUCTS if existing else _NEW_PRODUCTS)
        opp["Name"] = f"{account_rows[a]['Name']} - {product}"
        opp["CloseDate"] = _iso_day(opp["CloseDate"])
        opp["CreatedDate"] = _sf_ts(opp["CreatedDate"])
        opp["LastModifiedDate"] = _sf_ts(opp["LastModifiedDate"])
        opp["SystemModstamp"] = _sf_ts(opp["SystemModstamp"])
        records[opp["Id"]] = opp

    # Accounts: owner, Customer/Former Customer, churn, a few deleted prospects.
    churnable = sorted(a for a in first_won if last_won[a] <= today - 60)
    churned = set(rng.sample(churnable, min(len(churnable), round(0.08 * len(first_won)))))
    # A boundary the customer metrics must cut right (issue 22): one churned customer of
    # two quarters ago churns on this quarter's first day, so it is a customer at this
    # quarter's start and churns in it, and the last quarter kept it to its end.
    this_quarter, last_quarter = quarter_start_day(today, 0), quarter_start_day(today, 1)
    on_boundary = min(
        (a for a in churned if first_won[a] < last_quarter and last_won[a] < this_quarter),
        default=None,
    )
    no_deals = [a for a in range(accounts) if a not in earliest]
    deleted_accounts = set(rng.sample(no_deals, min(len(no_deals), accounts // 100)))
    for a, row in enumerate(account_rows):
        team = row.pop("team")
        if a in earliest:
            first_created, owner = earliest[a]
            created = first_created - (1 + int(rng.random() * 120)) * _DAY
        else:
            low = gen_start - 365 * _DAY
            created = low + int((now - low) * rng.random())
            owner = user_ids[rng.choice(heirs[team])]
        modified = created + int(rng.random() * 31) * _DAY
        churn = None
        if a in first_won:
            row["Type"] = "Customer"
            modified = max(modified, first_won[a] * _DAY + 18 * 3600)
        if a in churned:
            gap = today - last_won[a]
            churn = last_won[a] + 30 + int(rng.random() * (gap - 31))
            if a == on_boundary:
                churn = this_quarter
            row["Type"] = "Former Customer"
            modified = max(modified, churn * _DAY + 16 * 3600)
        modified = min(modified, now)
        modstamp = min(modified + 60 * int(rng.random() * 91), now)
        if a in deleted_accounts:
            modified = modstamp = modstamp + int((now - modstamp) * rng.random())
        org.add(
            "Account",
            {
                **row,
                "OwnerId": owner,
                "Customer_Since__c": _iso_day(first_won[a]) if a in first_won else None,
                "Churn_Date__c": None if churn is None else _iso_day(churn),
                "IsDeleted": a in deleted_accounts,
                "CreatedDate": _sf_ts(created),
                "LastModifiedDate": _sf_ts(modified),
                "SystemModstamp": _sf_ts(modstamp),
            },
        )
    _add_dated_rates(org, today)
    _add_cases(org, random.Random(seed * 7919 + 1), now)
    return org if profile == DEFAULT_PROFILE else shaped(org, PROFILES[profile])


_CASE_STATUSES = (("New", False), ("Working", False), ("Escalated", False))
_CASE_SUBJECTS = (
    "Login problem",
    "Invoice question",
    "Data export",
    "API error",
    "Onboarding help",
)


def _add_dated_rates(org: SalesforceOrg, today: int) -> None:
    """Quarterly dated rates (advanced currency management) drifting around CurrencyType's."""
    current = _quarter_start(date.fromordinal(_EPOCH_ORDINAL + today), 0)
    quarters = [_quarter_start(current, back) for back in range(7, -1, -1)]
    number = 0
    for iso, rate in CURRENCIES:
        if iso == "USD":
            continue
        for index, start in enumerate(quarters):
            number += 1
            drift = 1 + 0.01 * ((index * 7 + len(iso)) % 5 - 2)
            following = (
                quarters[index + 1].isoformat() if index + 1 < len(quarters) else "9999-12-31"
            )
            stamp = _sf_ts((start.toordinal() - _EPOCH_ORDINAL) * _DAY + 6 * 3600)
            org.add(
                "DatedConversionRate",
                {
                    "Id": sf_id(ID_PREFIXES["DatedConversionRate"], number),
                    "IsoCode": iso,
                    "ConversionRate": round(rate * drift, 6),
                    "StartDate": start.isoformat(),
                    "NextStartDate": following,
                    "CreatedDate": stamp,
                    "LastModifiedDate": stamp,
                    "SystemModstamp": stamp,
                },
            )


def _add_cases(org: SalesforceOrg, rng: random.Random, now: int) -> None:
    """Support cases filed by customers while they are customers (about two a quarter).

    One case is filed at the very instant this quarter starts (midnight UTC), the exact
    end of the last one: a boundary the ticket metrics must cut right (issue 22)."""
    number = 0
    boundary = quarter_start_day(now // _DAY, 0) * _DAY
    planted = False
    for account in org.records("Account"):
        since = account.get("Customer_Since__c")
        if not since:
            continue
        first = (date.fromisoformat(since).toordinal() - _EPOCH_ORDINAL) * _DAY
        churn = account.get("Churn_Date__c")
        last = (date.fromisoformat(churn).toordinal() - _EPOCH_ORDINAL) * _DAY if churn else now
        opened = first + int(rng.expovariate(1 / (45 * _DAY)))
        while opened < last:
            on_boundary = not planted and first < boundary <= opened
            if on_boundary:
                opened, planted = boundary, True
            number += 1
            first_reply = opened + int(rng.expovariate(1 / (6 * 3600))) + 300
            closes = first_reply + int(rng.expovariate(1 / (2 * _DAY)))
            closed = closes <= now
            status, _ = rng.choice(_CASE_STATUSES) if not closed else ("Closed", True)
            modified = min(closes if closed else first_reply, now)
            org.add(
                "Case",
                {
                    "Id": sf_id(ID_PREFIXES["Case"], number),
                    "CaseNumber": f"{number:08d}",
                    "AccountId": account["Id"],
                    "Subject": rng.choice(_CASE_SUBJECTS),
                    "Status": status,
                    "IsClosed": closed,
                    "Priority": rng.choices(("Low", "Medium", "High"), (5, 4, 1))[0],
                    "Origin": rng.choices(("Email", "Web", "Phone"), (5, 3, 2))[0],
                    "First_Response__c": _sf_ts(first_reply) if first_reply <= now else None,
                    "ClosedDate": _sf_ts(closes) if closed else None,
                    "IsDeleted": rng.random() < 0.01 and not on_boundary,
                    "CreatedDate": _sf_ts(opened),
                    "LastModifiedDate": _sf_ts(modified),
                    "SystemModstamp": _sf_ts(modified),
                },
            )
            opened += int(rng.expovariate(1 / (45 * _DAY))) + 3600


# ---------------------------------------------------------------------------
# Seed directories (one JSON Lines file per object)


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "double"
    if isinstance(value, str):
        try:
            parse_sf_datetime(value)
            return _DT
        except ValueError:
            pass
        try:
            date.fromisoformat(value)
            return "date" if len(value) == 10 else "string"
        except ValueError:
            pass
    return "string"


def _normalize(record: Mapping[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """Validate one seed record; datetimes become canonical; unknown fields join the schema."""
    if not isinstance(record.get("Id"), str) or not record["Id"]:
        raise ValueError("record has no string 'Id'")
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if key not in fields and value is not None:
            fields[key] = _infer_type(value)
        kind = fields.get(key)
        if isinstance(value, str) and kind == _DT:
            value = format_sf_datetime(parse_sf_datetime(value))
        elif isinstance(value, str) and kind == "date":
            value = date.fromisoformat(value).isoformat()
        out[key] = value
    return out


def _add_normalized(org: SalesforceOrg, sobject: str, record: dict[str, Any]) -> None:
    org.add(sobject, _normalize(record, org.schema[sobject]))


def load_org(directory: Path) -> SalesforceOrg:
    """Read ``<Object>.jsonl`` files (User, Account, Opportunity, CurrencyType) into an org."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"seed directory not found: {directory}")
    org = SalesforceOrg()
    for sobject in org.schema:
        path = directory / f"{sobject}.jsonl"
        if not path.is_file():
            continue
        load_jsonl(path, functools.partial(_add_normalized, org, sobject))
    return org


def write_org(org: SalesforceOrg, directory: Path) -> list[Path]:
    """Write every object (deleted records included) as ``<Object>.jsonl``; returns the files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for sobject in org.schema:
        path = directory / f"{sobject}.jsonl"
        rows: Iterable[dict[str, Any]] = org.records(sobject, include_deleted=True)
        with path.open("wb") as handle:
            for row in rows:
                handle.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        written.append(path)
    return written


def customer_seeds(org: SalesforceOrg) -> list[CompanySeed]:
    """Every account that is or was a customer, for the helpdesk sandbox to mirror."""
    seeds = []
    for account in org.records("Account"):
        since = account.get("Customer_Since__c")
        if not since:
            continue
        churned = account.get("Churn_Date__c")
        seeds.append(
            CompanySeed(
                crm_id=account["Id"],
                name=account["Name"],
                domain=domain_of(account.get("Website")) or domain_for(account["Name"]),
                customer_since=date.fromisoformat(since),
                churned_on=date.fromisoformat(churned) if churned else None,
            )
        )
    return seeds
