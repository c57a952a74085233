"""Finance metrics: revenue, gross profit and gross margin from booked ledger lines.

A finance line (``connectors.canonical.FinanceLine``) carries its revenue ``amount`` and
direct ``cost`` in its own currency and counts in the period of the day it is booked on.
Sums are exact in SQL per source, currency and day (a dated rate holds for whole days) and
converted here in Decimal, as :mod:`transforms.money` converts deal amounts: with the OKR
file's ``money.rates`` first, else the line's own source's rates, never silently. Their
change against a baseline period is ``pct_change`` (``metric: gross_profit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from okr_targets.models import Customer, FinanceLine
from okr_targets.periods import Period
from transforms.lineage import record_columns
from transforms.metric import Matches, Metric, MetricError, MetricResult, metric
from transforms.money import Converter
from transforms.sql import exact_sum, from_units, live, shared


class FinanceParams(BaseModel):
    """Narrow the lines to a segment or one finance source; report in a currency."""

    model_config = ConfigDict(extra="forbid")

    currency: str | None = Field(
        default=None, description="report in this ISO currency; default: the OKR file's"
    )
    segment: Annotated[str | None, Matches("finance_line.segment", "finance segment")] = None
    source: Annotated[str | None, Matches("finance_line.source", "finance source")] = Field(
        default=None, description="only this source's lines"
    )


class AmountParams(FinanceParams):
    per_day: bool = Field(
        default=False,
        description="divide by the days of the period the ledger covers, so a period under "
        "way compares fairly with a whole one",
    )


BOOKED = ("finance_line.booked_on", "finance_line.amount", "finance_line.currency")
BOOKED_WITH_COST = (*BOOKED, "finance_line.cost")


def _lines_in(period: Period, params: FinanceParams, *columns: Any) -> Select[Any]:
    statement = (
        select(*columns)
        .select_from(FinanceLine)
        .where(
            live(FinanceLine),
            FinanceLine.booked_on >= period.start,
            FinanceLine.booked_on < period.end,
        )
    )
    if params.segment is not None:
        statement = statement.where(FinanceLine.segment == params.segment)
    if params.source is not None:
        statement = statement.where(FinanceLine.source == params.source)
    return statement


@dataclass(frozen=True)
class Totals:
    """The period's lines summed in one currency."""

    revenue: Decimal
    cost: Decimal
    lines: int
    currency: str

    @property
    def profit(self) -> Decimal:
        return self.revenue - self.cost

    def details(self) -> dict[str, Any]:
        return {
            "revenue": float(self.revenue),
            "cost": float(self.cost),
            "gross_profit": float(self.profit),
            "lines": self.lines,
            "currency": self.currency,
        }


def _totals(session: Session, period: Period, params: FinanceParams) -> Totals:
    """Revenue and cost of the period's lines in the report currency."""
    summed = _lines_in(
        period,
        params,
        FinanceLine.source,
        FinanceLine.currency,
        FinanceLine.booked_on,
        exact_sum(FinanceLine.amount).label("amount"),
        exact_sum(FinanceLine.cost).label("cost"),
        func.count().label("lines"),
    ).group_by(FinanceLine.source, FinanceLine.currency, FinanceLine.booked_on)
    key = ("finance sums", period.start, period.end, params.segment, params.source)
    groups = shared(session, key, lambda: session.execute(summed).all())
    converter = Converter(session)
    target = converter.target_currency({group.source for group in groups}, params.currency)
    currencies = {group.currency for group in groups}
    if target is None and len(currencies) > 1:
        raise MetricError(
            f"finance lines in {sorted(currencies)} but no exchange rates in the mirror"
        )
    unit = target or (currencies.pop() if currencies else "")

    def converted(group: Any, units: int, column: Any) -> Decimal:
        total = cast(Decimal, from_units(units, column))
        return converter.convert(
            total, group.currency, group.source, target, group.booked_on, what="finance lines"
        )

    revenue = sum((converted(g, g.amount, FinanceLine.amount) for g in groups), Decimal(0))
    cost = sum((converted(g, g.cost, FinanceLine.cost) for g in groups), Decimal(0))
    lines = sum(group.lines for group in groups)
    return Totals(revenue, cost, lines, unit)


def _result(
    period: Period, params: FinanceParams, totals: Totals, value: float | None, unit: str
) -> MetricResult:
    """The value with its lineage: every line of the period the sums counted."""
    records = _lines_in(period, params, *record_columns(FinanceLine, "finance_line"))
    return MetricResult(value, unit, records, totals.details(), totals.lines)


def _amount(
    session: Session, period: Period, params: AmountParams, totals: Totals, total: Decimal
) -> MetricResult:
    """A money total, or per day covered: from the period's first day to its end or, for a
    period the ledger has not passed yet, to its last booked day (the data's cutoff, not
    the wall clock), whole days."""
    if not totals.lines:
        return _result(period, params, totals, None, totals.currency)
    if not params.per_day:
        return _result(period, params, totals, float(total), totals.currency)
    last = session.scalar(  # ORDER BY … LIMIT 1, not MAX(): both databases walk the index
        select(FinanceLine.booked_on)
        .where(live(FinanceLine))
        .order_by(FinanceLine.booked_on.desc())
        .limit(1)
    )
    days = (min(period.end, last + timedelta(days=1)) - period.start).days if last else 0
    result = _result(period, params, totals, float(total / days), f"{totals.currency}/day")
    result.details["days"] = days
    return result


@metric("revenue", AmountParams, needs=BOOKED)
def revenue(session: Session, period: Period, params: AmountParams) -> MetricResult:
    """Revenue booked in the period: the sum of its finance lines' amounts (credit notes
    subtract), converted to one currency; or per day the ledger covers."""
    totals = _totals(session, period, params)
    return _amount(session, period, params, totals, totals.revenue)


@metric("gross_profit", AmountParams, needs=BOOKED_WITH_COST)
def gross_profit(session: Session, period: Period, params: AmountParams) -> MetricResult:
    """Gross profit booked in the period: its finance lines' revenue minus their direct cost,
    converted to one currency; or per day the ledger covers."""
    totals = _totals(session, period, params)
    return _amount(session, period, params, totals, totals.profit)


@metric("gross_margin", FinanceParams, needs=BOOKED_WITH_COST)
def gross_margin(session: Session, period: Period, params: FinanceParams) -> MetricResult:
    """Gross profit as a percent of revenue, for the lines booked in the period (none when
    the period has no positive revenue)."""
    totals = _totals(session, period, params)
    value = float(100 * totals.profit / totals.revenue) if totals.revenue > 0 else None
    return _result(period, params, totals, value, "%")


METRICS: tuple[Metric[Any], ...] = (revenue, gross_profit, gross_margin)


def unknown_customers(session: Session, shown: int = 5) -> list[str]:
    """Validation findings: live finance lines naming a customer no source's live customer
    record has as its id. They still count in revenue and profit (the ledger is right about
    money), but a customer id that matches nothing is usually an export's mapping gone
    wrong, so the run says so rather than keep quiet."""
    known = exists().where(live(Customer), Customer.source_id == FinanceLine.customer_id)
    unknown = (
        select(FinanceLine.source, FinanceLine.customer_id)
        .where(live(FinanceLine), FinanceLine.customer_id.is_not(None), ~known)
        .distinct()
        .order_by(FinanceLine.source, FinanceLine.customer_id)
    )
    by_source: dict[str, list[str]] = {}
    for source, customer_id in session.execute(unknown):
        by_source.setdefault(source, []).append(str(customer_id))
    findings = []
    for source, ids in by_source.items():
        listed = ", ".join(ids[:shown]) + (f" … ({len(ids):,} in all)" if len(ids) > shown else "")
        findings.append(
            f"{source} finance lines name {len(ids):,} customer(s) no source knows ({listed}); "
            "they count in revenue and profit under no customer (check the export's "
            "customer_id: the CRM's customer id, or a customer the same source provides)"
        )
    return findings
