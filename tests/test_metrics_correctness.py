"""Key-result metrics agree with the same numbers computed by hand from the Salesforce records.

The expected values come from plain Python over the generated org (never from the metric
SQL), the actual ones from a store synced from the emulator, on SQLite and PostgreSQL. So a
wrong join, filter, currency conversion, period bound or lineage shows up as a mismatch,
whichever layer (emulator, connector, mirror or metric) introduced it.
"""

from __future__ import annotations

import calendar
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors.salesforce.sandbox_data import SalesforceOrg
from okr_targets.periods import Period
from okr_targets.store import Store
from transforms.metrics import MetricResult, get_metric

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
        start, end = bounds(label)
        return [
            deal
            for deal in self.deals
            if deal["IsWon"]
            and deal["CloseDate"] is not None
            and start <= date.fromisoformat(deal["CloseDate"]) < end
            and self.owned(deal, params)
        ]

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
            deals = self.won_in(label, params)
            days = [
                (
                    date.fromisoformat(d["CloseDate"])
                    - datetime.strptime(d["CreatedDate"], "%Y-%m-%dT%H:%M:%S.%f%z")
                    .astimezone(UTC)
                    .date()
                ).days
                for d in deals
            ]
            median = float(statistics.median(days)) if days else None
            return Expected(median, "days", "deal", {d["Id"] for d in deals})
        if name == "new_customers_won":
            return self.new_customers(label, params)
        if name == "new_rep_quota_attainment":
            return self.quota_attainment(label, params)
        if name == "pct_change":
            return self.pct_change(label, params)
        raise AssertionError(f"no oracle for {name}")

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
    return found


def same_number(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


def differences(result: MetricResult, expected: Expected) -> list[str]:
    """What is wrong with one result, as short readable lines (empty when it is right)."""
    problems = []
    if not same_number(result.value, expected.value):
        problems.append(f"value {result.value!r} != expected {expected.value!r}")
    if result.unit != expected.unit:
        problems.append(f"unit {result.unit!r} != expected {expected.unit!r}")
    kinds = {(ref.entity, ref.source) for ref in result.records}
    if kinds - {(expected.entity, "salesforce")}:
        problems.append(
            f"records of kinds {sorted(kinds)}, expected ({expected.entity}, salesforce)"
        )
    counts = Counter(ref.source_id for ref in result.records)
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


def measure(url: str, checks: Iterable[tuple[str, str, dict[str, Any]]]) -> list[MetricResult]:
    store = Store.open(url)
    try:
        with store.session() as session:
            return [
                get_metric(name).run(session, Period.parse(label), params)
                for name, label, params in checks
            ]
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


def test_metrics_match_independent_computation(synced_store: str, oracle: Oracle) -> None:
    """Every metric, period and filter gives the hand-computed value, unit and lineage."""
    checks = cases()
    results = measure(synced_store, checks)
    mismatches = []
    for (name, label, params), result in zip(checks, results, strict=True):
        for problem in differences(result, oracle.expect(name, label, params)):
            mismatches.append(f"{name} {label} {params}: {problem}")
    assert not mismatches, f"{len(mismatches)} mismatches in {len(checks)} cases:\n" + "\n".join(
        mismatches
    )


def test_won_revenue_in_another_currency(synced_store: str, oracle: Oracle) -> None:
    """Asking for EUR scales the corporate-currency total by the EUR rate, and says EUR."""
    usd_total = sum(
        oracle.convert(d["Amount"], d["CurrencyIsoCode"], "USD", d["CloseDate"])
        for d in oracle.won_in("2026-Q4", {})
        if d["Amount"] is not None
    )
    assert oracle.rates["USD"] == 1.0
    (result,) = measure(synced_store, [("won_revenue", "2026-Q4", {"currency": "EUR"})])
    assert result.unit == "EUR"
    eur = sum(
        oracle.convert(d["Amount"], d["CurrencyIsoCode"], "EUR", d["CloseDate"])
        for d in oracle.won_in("2026-Q4", {})
        if d["Amount"] is not None
    )
    assert result.value == pytest.approx(eur, rel=1e-9)
    assert result.value != pytest.approx(usd_total, rel=1e-3)
