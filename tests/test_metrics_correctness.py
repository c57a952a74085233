"""Key-result metrics agree with the same numbers computed by hand from the source records.

The expected values come from plain Python over the generated Salesforce org and Zendesk
helpdesk (never from the metric SQL), the actual ones from a store synced from the
emulators, on SQLite and PostgreSQL. So a wrong join, filter, currency conversion, period
bound or lineage shows up as a mismatch, whichever layer (emulator, connector, mirror or
metric) introduced it.
"""

from __future__ import annotations

import calendar
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from connectors.base import get_connector
from connectors.salesforce.sandbox.data import SalesforceOrg, customer_seeds
from connectors.sandbox.server import RunningServer, serve_tls
from connectors.zendesk.sandbox.data import Helpdesk, generate_helpdesk
from connectors.zendesk.sandbox.emulator import SANDBOX_API_TOKEN, SANDBOX_EMAIL
from connectors.zendesk.sandbox.emulator import create_app as create_zendesk_app
from expectations import Validator
from flows.extract import sync_stream
from okr_targets.models import Ticket
from okr_targets.periods import Period
from okr_targets.status import RunStatus
from okr_targets.store import Store, begin_run, finish_run, upsert_records
from tests.conftest import AS_OF
from tests.test_periods import ticket
from transforms.catalog import BUILT_IN
from transforms.lineage import record_refs
from transforms.metric import MetricError, MetricResult, RecordRef
from transforms.metrics.sales import CLOSED_BEFORE_CREATED
from transforms.sql import shared_results

Record = dict[str, Any]

QUARTERS = ("2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4")
FILTERS: tuple[dict[str, str], ...] = (
    {},
    {"owner": "Tom.Becker@ACME-demo.example"},  # a new rep; mixed case on purpose
    {"owner": "ava.chen@acme-demo.example"},
    {"team": "Enterprise Sales"},
    {"team": "Mid-Market Sales"},
)
MONEY_AND_CYCLE = ("won_revenue", "avg_won_deal_value", "median_sales_cycle_days")
RAMP_PERIODS = ("2026-Q2", "2026-Q3", "2026-Q4", "2026")
RAMP_PARAMS: tuple[dict[str, Any], ...] = (
    {"months": 4},
    {"months": 4, "team": "Mid-Market Sales"},
    {"months": 4, "team": "Enterprise Sales"},
)
CHANGE_PERIODS = ("2026-Q1", "2026-Q3", "2026-Q4")
CHANGE_PARAMS: tuple[dict[str, Any], ...] = (
    *({"metric": name, "baseline_period": "previous"} for name in MONEY_AND_CYCLE),
    {"metric": "new_customers_won", "baseline_period": "previous"},
    {"metric": "won_revenue", "baseline_period": "previous", "team": "Mid-Market Sales"},
    {"metric": "avg_won_deal_value", "baseline_period": "previous", "team": "Enterprise Sales"},
    {
        "metric": "median_sales_cycle_days",
        "baseline_period": "previous",
        "team": "Mid-Market Sales",
    },
    {"metric": "won_revenue", "baseline_period": "previous", "currency": "GBP"},
    # A rep who started in late 2026-Q3: baseline revenue 0 / no baseline mean → no value.
    {
        "metric": "won_revenue",
        "baseline_period": "previous",
        "owner": "sam.whitaker@acme-demo.example",
    },
    {
        "metric": "avg_won_deal_value",
        "baseline_period": "previous",
        "owner": "sam.whitaker@acme-demo.example",
    },
)


# Service metrics: win rate, customer retention and support tickets.
SERVICE_PERIODS = (*QUARTERS, "2026")
CUSTOMER_FILTERS: tuple[dict[str, str], ...] = (
    {},
    {"source": "salesforce"},
    {"segment": "Technology"},  # an Account Industry
    {"segment": "Financial Services"},
)  # a filter value the store lacks ({"source": "zendesk"}) is an error: see below
TICKET_FILTERS: tuple[dict[str, str], ...] = (
    {},
    {"channel": "email"},
    {"channel": "phone"},
    {"priority": "high"},
    {"source": "salesforce"},
    {"source": "salesforce", "channel": "web", "priority": "low"},
)
SERVICE_CHANGE_PARAMS: tuple[dict[str, Any], ...] = (
    {"metric": "ticket_volume", "baseline_period": "previous"},
    {"metric": "ticket_volume", "baseline_period": "previous", "channel": "email"},
    {"metric": "win_rate", "baseline_period": "previous"},
    {"metric": "win_rate", "baseline_period": "previous", "team": "Enterprise Sales"},
    {"metric": "retention_rate", "baseline_period": "previous"},
    {"metric": "retention_rate", "baseline_period": "previous", "segment": "Technology"},
)
SERVICE_CHANGE_PERIODS = ("2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4")


def bounds(label: str) -> tuple[date, date]:
    """``[start, end)`` of ``YYYY`` or ``YYYY-Qn``, written out here rather than via Period."""
    if "-Q" not in label:
        year = int(label)
        return date(year, 1, 1), date(year + 1, 1, 1)
    year, quarter = int(label[:4]), int(label[-1])
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, end


def previous_quarter(label: str) -> str:
    year, quarter = int(label[:4]), int(label[-1])
    return f"{year - 1}-Q4" if quarter == 1 else f"{year}-Q{quarter - 1}"


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def sf_time(text: str) -> datetime:
    """A Salesforce datetime (``2026-01-05T10:00:00.000+0000``) as aware UTC."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def sf_day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def plus_months(day: date, months: int) -> date:
    """Same day of the month ``months`` later, clamped to that month's last day."""
    year, month = day.year + (day.month - 1 + months) // 12, (day.month - 1 + months) % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass
class Expected:
    value: float | None
    unit: str
    entity: str
    ids: set[str]
    details: dict[str, Any] = field(default_factory=dict)
    ids_exact: bool = True  # False: records need only be a subset of ``ids``
    source: str = "salesforce"


class Oracle:
    """The metric definitions, re-implemented over the raw Salesforce records."""

    def __init__(self, org: SalesforceOrg) -> None:
        opportunities = org.records("Opportunity", include_deleted=True)
        self.deals: list[Record] = [d for d in opportunities if not d.get("IsDeleted")]
        self.users: dict[str, Record] = {u["Id"]: u for u in org.records("User")}
        currencies = org.records("CurrencyType", include_deleted=True)
        self.rates: dict[str, float] = {c["IsoCode"]: c["ConversionRate"] for c in currencies}
        (self.corporate,) = [c["IsoCode"] for c in currencies if c["IsCorporate"]]
        self.dated = [
            (r["IsoCode"], r["StartDate"], r["NextStartDate"], r["ConversionRate"])
            for r in org.records("DatedConversionRate")
        ]
        accounts = org.records("Account", include_deleted=True)
        self.accounts: list[Record] = [a for a in accounts if not a.get("IsDeleted")]
        cases = org.records("Case", include_deleted=True)
        self.cases: list[Record] = [c for c in cases if not c.get("IsDeleted")]

    def rate(self, currency: str, on: str | None) -> float:
        """The dated rate covering ``on`` (advanced currency management), else the static one."""
        for iso, start, following, rate in self.dated:
            if iso == currency and on is not None and start <= on < following:
                return rate
        return self.rates[currency]

    def convert(self, amount: float, currency: str, target: str, on: str | None = None) -> float:
        return amount / self.rate(currency, on) * self.rate(target, on)

    def owned(self, deal: Record, params: dict[str, Any]) -> bool:
        """Whether the deal's owner passes the ``owner`` (e-mail) and ``team`` filters."""
        if params.get("owner") is None and params.get("team") is None:
            return True
        user = self.users.get(deal["OwnerId"])
        if user is None:
            return False
        if params.get("owner") is not None and (user["Email"] or "").lower() != (
            params["owner"].lower()
        ):
            return False
        return params.get("team") is None or user["Department"] == params["team"]

    def won_in(self, label: str, params: dict[str, Any]) -> list[Record]:
        """Won deals closed in the period (Salesforce sets IsClosed on every won deal)."""
        return [deal for deal in self.closed_in(label, params) if deal["IsWon"]]

    def expect(self, name: str, label: str, params: dict[str, Any]) -> Expected:
        if name in ("won_revenue", "avg_won_deal_value"):
            target = (params.get("currency") or self.corporate).upper()
            deals = [d for d in self.won_in(label, params) if d["Amount"] is not None]
            amounts = [
                self.convert(d["Amount"], d["CurrencyIsoCode"], target, d["CloseDate"])
                for d in deals
            ]
            if name == "won_revenue":
                value: float | None = sum(amounts)
            else:
                value = sum(amounts) / len(amounts) if amounts else None
            return Expected(value, target, "deal", {d["Id"] for d in deals})
        if name == "median_sales_cycle_days":
            cycles = {
                d["Id"]: (
                    date.fromisoformat(d["CloseDate"])
                    - datetime.strptime(d["CreatedDate"], "%Y-%m-%dT%H:%M:%S.%f%z")
                    .astimezone(UTC)
                    .date()
                ).days
                for d in self.won_in(label, params)
            }
            # a deal closed before it was created (migrated) has no cycle: left out, counted
            days = [n for n in cycles.values() if n >= 0]
            median = float(statistics.median(days)) if days else None
            left_out = len(cycles) - len(days)
            why = {"what": "won deals", "why": CLOSED_BEFORE_CREATED}  # the message, not a number
            details = {"left_out": [{"count": left_out, **why}]} if left_out else {}
            ids = {deal_id for deal_id, n in cycles.items() if n >= 0}
            return Expected(median, "days", "deal", ids, details)
        if name == "new_customers_won":
            return self.new_customers(label, params)
        if name == "new_rep_quota_attainment":
            return self.quota_attainment(label, params)
        if name == "pct_change":
            return self.pct_change(label, params)
        if name == "win_rate":
            return self.win_rate(label, params)
        if name in ("retention_rate", "churn_rate"):
            return self.retention(name, label, params)
        if name in ("ticket_volume", "median_first_response_hours"):
            return self.tickets(name, label, params)
        raise AssertionError(f"no oracle for {name}")

    def closed_in(self, label: str, params: dict[str, Any]) -> list[Record]:
        start, end = bounds(label)
        return [
            deal
            for deal in self.deals
            if deal["IsClosed"]
            and deal["CloseDate"] is not None
            and start <= date.fromisoformat(deal["CloseDate"]) < end
            and self.owned(deal, params)
        ]

    def win_rate(self, label: str, params: dict[str, Any]) -> Expected:
        deals = self.closed_in(label, params)
        won = sum(1 for deal in deals if deal["IsWon"])
        value = 100.0 * won / len(deals) if deals else None
        details = {"won": won, "closed": len(deals)}
        return Expected(value, "%", "deal", {d["Id"] for d in deals}, details)

    def customers_at_start(self, label: str, params: dict[str, Any]) -> list[Record]:
        """Accounts that became customers before the period and had not churned by its start."""
        if params.get("source") not in (None, "salesforce"):
            return []
        start, _ = bounds(label)
        found = []
        for account in self.accounts:
            since, churned = sf_day(account["Customer_Since__c"]), sf_day(account["Churn_Date__c"])
            if since is None or since >= start or (churned is not None and churned < start):
                continue
            if params.get("segment") is not None and account["Industry"] != params["segment"]:
                continue
            found.append(account)
        return found

    def retention(self, name: str, label: str, params: dict[str, Any]) -> Expected:
        _, end = bounds(label)
        at_start = self.customers_at_start(label, params)
        churn_days = [sf_day(a["Churn_Date__c"]) for a in at_start]
        churned = sum(1 for day in churn_days if day is not None and day < end)
        ids = {a["Id"] for a in at_start}
        if name == "retention_rate":
            kept = len(at_start) - churned
            value = 100.0 * kept / len(at_start) if at_start else None
            details = {"at_start": len(at_start), "retained": kept}
        else:
            value = 100.0 * churned / len(at_start) if at_start else None
            details = {"at_start": len(at_start), "churned": churned}
        return Expected(value, "%", "customer", ids, details)

    def cases_created_in(self, label: str, params: dict[str, Any]) -> list[Record]:
        if params.get("source") not in (None, "salesforce"):
            return []
        start, end = (midnight(day) for day in bounds(label))
        return [
            case
            for case in self.cases
            if start <= sf_time(case["CreatedDate"]) < end
            and params.get("channel") in (None, (case["Origin"] or "").lower())
            and params.get("priority") in (None, (case["Priority"] or "").lower())
        ]

    def tickets(self, name: str, label: str, params: dict[str, Any]) -> Expected:
        cases = self.cases_created_in(label, params)
        if name == "ticket_volume":
            return Expected(float(len(cases)), "tickets", "ticket", {c["Id"] for c in cases})
        answered = [c for c in cases if c["First_Response__c"] is not None]
        hours = [
            (sf_time(c["First_Response__c"]) - sf_time(c["CreatedDate"])).total_seconds() / 3600
            for c in answered
        ]
        median = float(statistics.median(hours)) if hours else None
        return Expected(median, "hours", "ticket", {c["Id"] for c in answered})

    def new_customers(self, label: str, params: dict[str, Any]) -> Expected:
        first: dict[str, Record] = {}
        for deal in self.deals:
            if not deal["IsWon"] or deal["AccountId"] is None or deal["CloseDate"] is None:
                continue
            best = first.get(deal["AccountId"])
            if best is None or (deal["CloseDate"], deal["Id"]) < (best["CloseDate"], best["Id"]):
                first[deal["AccountId"]] = deal
        start, end = bounds(label)
        ids = {
            deal["Id"]
            for deal in first.values()
            if start <= date.fromisoformat(deal["CloseDate"]) < end and self.owned(deal, params)
        }
        return Expected(float(len(ids)), "customers", "deal", ids)

    def quota_attainment(self, label: str, params: dict[str, Any]) -> Expected:
        start, end = bounds(label)
        cohort: dict[str, tuple[date, date]] = {}
        for user in self.users.values():
            if not user["Start_Date__c"] or user["Monthly_Quota__c"] is None:
                continue
            if params.get("team") is not None and user["Department"] != params["team"]:
                continue
            started = date.fromisoformat(user["Start_Date__c"])
            deadline = plus_months(started, params["months"])
            if start <= deadline < end:
                cohort[user["Id"]] = (started, deadline)
        reached = []
        for rep_id, (started, deadline) in cohort.items():
            user = self.users[rep_id]
            per_month: defaultdict[tuple[int, int], float] = defaultdict(float)
            for deal in self.deals:
                if not deal["IsWon"] or deal["OwnerId"] != rep_id or deal["Amount"] is None:
                    continue
                closed = date.fromisoformat(deal["CloseDate"])
                if started <= closed < deadline:
                    per_month[(closed.year, closed.month)] += self.convert(
                        deal["Amount"],
                        deal["CurrencyIsoCode"],
                        user["DefaultCurrencyIsoCode"],
                        deal["CloseDate"],
                    )
            if any(total >= user["Monthly_Quota__c"] for total in per_month.values()):
                reached.append(rep_id)
        value = 100.0 * len(reached) / len(cohort) if cohort else None
        details = {"cohort": len(cohort), "reached_quota": sorted(reached)}
        return Expected(value, "%", "rep", set(cohort), details)

    def pct_change(self, label: str, params: dict[str, Any]) -> Expected:
        inner_params = {k: v for k, v in params.items() if k not in ("metric", "baseline_period")}
        assert params["baseline_period"] == "previous"
        current = self.expect(params["metric"], label, inner_params)
        baseline = self.expect(params["metric"], previous_quarter(label), inner_params)
        details = {"current": current.value, "baseline": baseline.value}
        ids = current.ids | baseline.ids
        if current.value is None or baseline.value is None or baseline.value == 0:
            # No number: the lineage may be empty or partial, but never foreign.
            return Expected(None, "%", current.entity, ids, details, ids_exact=False)
        value = 100.0 * (current.value - baseline.value) / abs(baseline.value)
        return Expected(value, "%", current.entity, ids, details)


def cases() -> list[tuple[str, str, dict[str, Any]]]:
    """Every (metric, period, params) the comparison runs, on each backend."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for label in QUARTERS:
        for params in FILTERS:
            for name in (*MONEY_AND_CYCLE, "new_customers_won"):
                found.append((name, label, dict(params)))
    for label in ("2026-Q3", "2026-Q4"):
        for currency in ("EUR", "GBP", "usd"):
            for name in ("won_revenue", "avg_won_deal_value"):
                found.append((name, label, {"currency": currency}))
    for label in RAMP_PERIODS:
        for params in RAMP_PARAMS:
            found.append(("new_rep_quota_attainment", label, dict(params)))
    for label in CHANGE_PERIODS:
        for params in CHANGE_PARAMS:
            found.append(("pct_change", label, dict(params)))
    return found + service_cases()


def service_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """The win-rate, retention and ticket comparisons (Salesforce Opportunity, Account, Case)."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for label in SERVICE_PERIODS:
        for params in FILTERS:
            found.append(("win_rate", label, dict(params)))
        for params in CUSTOMER_FILTERS:
            for name in ("retention_rate", "churn_rate"):
                found.append((name, label, dict(params)))
        for params in TICKET_FILTERS:
            for name in ("ticket_volume", "median_first_response_hours"):
                found.append((name, label, dict(params)))
    for label in SERVICE_CHANGE_PERIODS:
        for params in SERVICE_CHANGE_PARAMS:
            found.append(("pct_change", label, dict(params)))
    return found


def same_number(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


Measured = tuple[MetricResult, list[RecordRef]]
"""A result and the records its lineage SELECT returns."""


def differences(measured: Measured, expected: Expected) -> list[str]:
    """What is wrong with one result, as short readable lines (empty when it is right)."""
    result, records = measured
    problems = []
    if result.record_count != len(records):
        problems.append(f"record_count {result.record_count} != {len(records)} records selected")
    if not same_number(result.value, expected.value):
        problems.append(f"value {result.value!r} != expected {expected.value!r}")
    if result.unit != expected.unit:
        problems.append(f"unit {result.unit!r} != expected {expected.unit!r}")
    kinds = {(ref.entity, ref.source) for ref in records}
    if kinds - {(expected.entity, expected.source)}:
        problems.append(
            f"records of kinds {sorted(kinds)}, expected ({expected.entity}, {expected.source})"
        )
    counts = Counter(ref.source_id for ref in records)
    duplicated = sorted(source_id for source_id, n in counts.items() if n > 1)
    if duplicated:
        problems.append(f"duplicate records {duplicated[:5]}")
    extra, missing = set(counts) - expected.ids, expected.ids - set(counts)
    if extra:
        problems.append(f"{len(extra)} unexpected records, e.g. {sorted(extra)[:3]}")
    if missing and expected.ids_exact:
        problems.append(f"{len(missing)} missing records, e.g. {sorted(missing)[:3]}")
    for key, want in expected.details.items():
        got = result.details.get(key, "<absent>")
        if isinstance(want, float) or isinstance(got, float):
            ok = isinstance(got, float | int | None) and same_number(got, want)
        else:
            ok = got == want
        if not ok:
            problems.append(f"details[{key!r}] {got!r} != expected {want!r}")
    return problems


def measure(
    url: str, checks: Iterable[tuple[str, str, dict[str, Any]]], *, shared: bool = False
) -> list[Measured]:
    """Each check's result and records; ``shared``: all in one shared_results scope, as a
    sync measures its key results."""
    store = Store.open(url)
    try:
        with store.session() as session, shared_results(session) if shared else nullcontext():
            results = [
                BUILT_IN.find(name).run(session, Period.parse(label), params)
                for name, label, params in checks
            ]
            return [(result, record_refs(session, result)) for result in results]
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def oracle(sandbox_org: SalesforceOrg) -> Oracle:
    return Oracle(sandbox_org)


def test_expected_values_are_not_trivial(oracle: Oracle) -> None:
    """Guards the comparison against passing vacuously on an org without the hard cases."""
    q4_won = oracle.won_in("2026-Q4", {})
    assert {d["CurrencyIsoCode"] for d in q4_won} >= {"USD", "EUR", "GBP"}
    for name in (*MONEY_AND_CYCLE, "new_customers_won"):
        for label in QUARTERS:
            assert oracle.expect(name, label, {}).value, (name, label)
    ramps = [oracle.expect("new_rep_quota_attainment", p, {"months": 4}) for p in RAMP_PERIODS]
    assert any(r.details["cohort"] for r in ramps)
    assert any(r.details["reached_quota"] for r in ramps)
    assert any(r.value is not None and 0 < r.value < 100 for r in ramps)  # hits and misses
    changes = [oracle.expect("pct_change", p, c) for p in CHANGE_PERIODS for c in CHANGE_PARAMS]
    assert any(c.value is None for c in changes)
    assert sum(c.value is not None for c in changes) >= len(changes) // 2
    assert oracle.expect("won_revenue", "2026-Q4", FILTERS[1]).value  # the owner filter bites


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
def test_metrics_match_independent_computation(
    synced_store: str, oracle: Oracle, shared: bool
) -> None:
    """Every metric, period and filter gives the hand-computed value, unit and lineage,
    computed alone or with what the metrics share within one measurement."""
    checks = cases()
    results = measure(synced_store, checks, shared=shared)
    mismatches = []
    for (name, label, params), result in zip(checks, results, strict=True):
        for problem in differences(result, oracle.expect(name, label, params)):
            mismatches.append(f"{name} {label} {params}: {problem}")
    assert not mismatches, f"{len(mismatches)} mismatches in {len(checks)} cases:\n" + "\n".join(
        mismatches
    )


def test_a_filter_value_the_store_lacks_is_an_error(synced_store: str) -> None:
    """No Zendesk customers in a store synced from Salesforce only: the filter matches
    nothing, which is said, never measured as "no value"."""
    with pytest.raises(MetricError) as raised:
        measure(synced_store, [("retention_rate", "2026-Q4", {"source": "zendesk"})])
    assert str(raised.value) == "source 'zendesk' matches no customer source; known: salesforce"


def test_won_revenue_in_another_currency(synced_store: str, oracle: Oracle) -> None:
    """Asking for EUR scales the corporate-currency total by the EUR rate, and says EUR."""
    usd_total = sum(
        oracle.convert(d["Amount"], d["CurrencyIsoCode"], "USD", d["CloseDate"])
        for d in oracle.won_in("2026-Q4", {})
        if d["Amount"] is not None
    )
    assert oracle.rates["USD"] == 1.0
    ((result, _),) = measure(synced_store, [("won_revenue", "2026-Q4", {"currency": "EUR"})])
    assert result.unit == "EUR"
    eur = sum(
        oracle.convert(d["Amount"], d["CurrencyIsoCode"], "EUR", d["CloseDate"])
        for d in oracle.won_in("2026-Q4", {})
        if d["Amount"] is not None
    )
    assert result.value == pytest.approx(eur, rel=1e-9)
    assert result.value != pytest.approx(usd_total, rel=1e-3)


def test_service_expectations_are_not_trivial(oracle: Oracle) -> None:
    """Win rates, churn and tickets in the org exercise every branch the comparison checks."""
    for label in SERVICE_PERIODS:
        assert oracle.expect("ticket_volume", label, {}).value, label
        assert oracle.expect("median_first_response_hours", label, {}).value, label
        assert oracle.expect("retention_rate", label, {}).details["at_start"], label
    rates = [oracle.expect("win_rate", p, f) for p in SERVICE_PERIODS for f in FILTERS]
    assert any(r.value is not None and 0 < r.value < 100 for r in rates)
    assert oracle.expect("win_rate", "2026-Q4", FILTERS[1]).details["closed"]  # owner filter
    churns = [oracle.expect("churn_rate", label, {}) for label in SERVICE_PERIODS]
    assert any(c.details["churned"] for c in churns)
    assert any(c.details["churned"] == 0 for c in churns)
    everyone = oracle.expect("retention_rate", "2026-Q4", {}).details["at_start"]
    assert (
        0
        < oracle.expect("retention_rate", "2026-Q4", CUSTOMER_FILTERS[2]).details["at_start"]
        < everyone
    )  # the segment filter bites
    q4 = oracle.cases_created_in("2026-Q4", {})
    assert len({c["Origin"] for c in q4}) >= 3
    assert any(c["Origin"] != c["Origin"].lower() for c in q4)  # lower-casing matters
    for params in TICKET_FILTERS:
        assert oracle.expect("ticket_volume", "2026", params).value, params
    changes = [
        oracle.expect("pct_change", p, c)
        for p in SERVICE_CHANGE_PERIODS
        for c in SERVICE_CHANGE_PARAMS
    ]
    assert sum(c.value is not None and c.value != 0 for c in changes) >= len(changes) // 2


# --- Zendesk: CSAT and tickets from the helpdesk sandbox -----------------------------------

ZENDESK_SEED = 5
ZENDESK_CHECKS: tuple[tuple[str, dict[str, str]], ...] = (
    ("csat", {}),
    ("csat", {"source": "zendesk"}),
    ("csat_mean_score", {}),
    ("csat_mean_score", {"source": "zendesk"}),
    ("ticket_volume", {"source": "zendesk"}),
    ("ticket_volume", {}),  # the store holds Zendesk tickets only
    ("ticket_volume", {"source": "zendesk", "channel": "chat"}),
    ("ticket_volume", {"source": "zendesk", "priority": "high"}),
    ("ticket_volume", {"source": "zendesk", "priority": "urgent", "channel": "email"}),
    ("median_first_response_hours", {"source": "zendesk"}),
    ("median_first_response_hours", {"source": "zendesk", "channel": "web"}),
)


def zendesk_time(text: str) -> datetime:
    """A Zendesk timestamp (``2026-01-05T10:00:00Z``) as aware UTC."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class HelpdeskOracle:
    """CSAT and ticket metrics re-implemented over the helpdesk's raw API records."""

    def __init__(self, desk: Helpdesk) -> None:
        self.tickets: list[Record] = [
            t for t in desk.tickets.values() if t.get("status") != "deleted"
        ]
        self.metric_sets: dict[int, Record] = dict(desk.metric_sets)
        self.ratings: list[Record] = list(desk.ratings.values())

    def created_in(self, label: str, params: dict[str, Any]) -> list[Record]:
        if params.get("source") not in (None, "zendesk"):
            return []
        start, end = (midnight(day) for day in bounds(label))
        return [
            ticket
            for ticket in self.tickets
            if start <= zendesk_time(ticket["created_at"]) < end
            and params.get("channel") in (None, ticket["via"]["channel"])
            and params.get("priority") in (None, ticket["priority"])
        ]

    def rated_in(self, label: str, params: dict[str, Any]) -> list[Record]:
        if params.get("source") not in (None, "zendesk"):
            return []
        start, end = (midnight(day) for day in bounds(label))
        return [r for r in self.ratings if start <= zendesk_time(r["created_at"]) < end]

    def expect(self, name: str, label: str, params: dict[str, Any]) -> Expected:
        if name == "ticket_volume":
            tickets = self.created_in(label, params)
            ids = {str(t["id"]) for t in tickets}
            return Expected(float(len(tickets)), "tickets", "ticket", ids, source="zendesk")
        if name == "median_first_response_hours":
            minutes = {
                str(t["id"]): self.metric_sets[t["id"]]["reply_time_in_minutes"]["calendar"]
                for t in self.created_in(label, params)
                if t["id"] in self.metric_sets
            }
            hours = [m / 60 for m in minutes.values() if m is not None]
            ids = {i for i, m in minutes.items() if m is not None}
            median = float(statistics.median(hours)) if hours else None
            return Expected(median, "hours", "ticket", ids, source="zendesk")
        ratings = self.rated_in(label, params)
        if name == "csat":
            answered = [r for r in ratings if r["score"] not in ("offered", "unoffered")]
            good = sum(
                1
                for r in answered
                if r["score"] == "good" or (isinstance(r["score"], int) and r["score"] >= 4)
            )
            value = 100.0 * good / len(answered) if answered else None
            details = {"good": good, "answered": len(answered)}
            ids = {str(r["id"]) for r in answered}
            return Expected(value, "%", "rating", ids, details, source="zendesk")
        if name == "csat_mean_score":
            scored = [r for r in ratings if isinstance(r["score"], int)]
            mean = sum(r["score"] for r in scored) / len(scored) if scored else None
            ids = {str(r["id"]) for r in scored}
            return Expected(mean, "/5", "rating", ids, source="zendesk")
        raise AssertionError(f"no helpdesk oracle for {name}")


@pytest.fixture(scope="module")
def helpdesk(sandbox_org: SalesforceOrg) -> Helpdesk:
    """The helpdesk of the org's customers (never mutate it)."""
    return generate_helpdesk(seed=ZENDESK_SEED, as_of=AS_OF, companies=customer_seeds(sandbox_org))


@pytest.fixture(scope="module")
def zendesk_server(helpdesk: Helpdesk) -> Iterator[RunningServer]:
    with serve_tls(create_zendesk_app(helpdesk)) as server:
        yield server


def sync_zendesk(
    store_url: str, server: RunningServer, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the Zendesk streams into the store through the task logic (no Prefect run)."""
    monkeypatch.setenv("OKR_SYNC_ZENDESK_BASE_URL", server.base_url)
    monkeypatch.setenv("OKR_SYNC_ZENDESK_EMAIL", SANDBOX_EMAIL)
    monkeypatch.setenv("OKR_SYNC_ZENDESK_API_TOKEN", SANDBOX_API_TOKEN)
    monkeypatch.setenv("OKR_SYNC_ZENDESK_CA_BUNDLE", str(server.ca_file))
    store = Store.open(store_url)
    try:
        run_id = begin_run(store, "test")
        counts = {
            stream.name: asdict(sync_stream.fn(store, "zendesk", stream, run_id, validator, 500))
            for stream in get_connector("zendesk").streams
        }
        finish_run(store, run_id, RunStatus.COMPLETE, None, counts)
    finally:
        store.dispose()


def test_zendesk_expectations_are_not_trivial(helpdesk: Helpdesk) -> None:
    oracle = HelpdeskOracle(helpdesk)
    for label in SERVICE_PERIODS:
        assert oracle.expect("ticket_volume", label, {}).value, label
        csat = oracle.expect("csat", label, {})
        assert csat.value is not None
        assert 0 < csat.value < 100, label
    assert {r["score"] for r in oracle.ratings} >= {"good", "bad", "offered", 3, 4, 5}
    assert any(t["status"] == "deleted" for t in helpdesk.tickets.values())
    assert len({t["via"]["channel"] for t in oracle.tickets}) >= 4
    for check, params in ZENDESK_CHECKS:
        if params.get("source") != "salesforce":
            assert oracle.expect(check, "2026", params).value, (check, params)


def test_zendesk_metrics_match_independent_computation(
    store_url: str,
    zendesk_server: RunningServer,
    helpdesk: Helpdesk,
    validator: Validator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CSAT, mean score, volume and first response from a store synced from Zendesk only."""
    sync_zendesk(store_url, zendesk_server, validator, monkeypatch)
    oracle = HelpdeskOracle(helpdesk)
    checks = [
        (name, label, dict(params)) for label in SERVICE_PERIODS for name, params in ZENDESK_CHECKS
    ]
    results = measure(store_url, checks)
    mismatches = []
    for (name, label, params), result in zip(checks, results, strict=True):
        for problem in differences(result, oracle.expect(name, label, params)):
            mismatches.append(f"{name} {label} {params}: {problem}")
    assert not mismatches, f"{len(mismatches)} mismatches in {len(checks)} cases:\n" + "\n".join(
        mismatches
    )
    # No Salesforce ratings in a store synced from Zendesk only: an error, never "no data".
    with pytest.raises(MetricError) as raised:
        measure(store_url, [("csat", "2026", {"source": "salesforce"})])
    assert str(raised.value) == "source 'salesforce' matches no rating source; known: zendesk"


# --- the median first response, against statistics.median ------------------------------------

WAIT_MS = st.one_of(
    st.integers(0, 5 * 86_400_000),  # anything up to five days
    st.sampled_from([0, 59_999, 60_000, 60_001, 3_600_000]),  # ties and minute boundaries
)


@pytest.fixture
def ticket_store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    yield store
    store.dispose()


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # cleared per example
)
@given(waits=st.lists(WAIT_MS, min_size=1, max_size=40))
def test_median_first_response_is_exactly_the_median_of_the_waits(
    ticket_store: Store, waits: list[int]
) -> None:
    """Counted per minute and then read only around the middle, it is still the exact
    median: of one wait, of an even count (the mean of the middle two), across ties and
    on either side of a minute's boundary."""
    created = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)
    rows = [
        ticket(str(index), created + timedelta(minutes=index))
        | {"first_response_at": created + timedelta(minutes=index, milliseconds=wait)}
        for index, wait in enumerate(waits)
    ]
    with ticket_store.session() as session, session.begin():
        session.execute(delete(Ticket))
        upsert_records(session, Ticket, rows)
    with ticket_store.session() as session:
        result = BUILT_IN.find("median_first_response_hours").run(
            session, Period.parse("2026-Q4"), {}
        )
    assert result.record_count == len(waits)
    assert result.value == pytest.approx(statistics.median(waits) / 3_600_000, abs=1e-9)
