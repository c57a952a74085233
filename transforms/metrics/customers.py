"""Customer metrics: who was a customer at a period's start, and who of them stayed."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from okr_targets.models import Customer
from okr_targets.periods import Period
from transforms.lineage import record_columns
from transforms.metric import Matches, Metric, MetricResult, RecordSelect, metric
from transforms.sql import live


class CustomerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Annotated[str | None, Matches("customer.source", "customer source")] = Field(
        default=None, description="only this CRM's customers"
    )
    segment: Annotated[str | None, Matches("customer.segment", "customer segment")] = None


CUSTOMER_DATES = ("customer.became_customer_on", "customer.churned_on")


def _customers_at_start(period: Period, params: CustomerParams, *columns: Any) -> Select[Any]:
    """Customers on the period's first day: became one before it, not churned before it."""
    statement = (
        select(*columns)
        .select_from(Customer)
        .where(
            live(Customer),
            Customer.became_customer_on < period.start,
            or_(Customer.churned_on.is_(None), Customer.churned_on >= period.start),
        )
    )
    if params.source is not None:
        statement = statement.where(Customer.source == params.source)
    if params.segment is not None:
        statement = statement.where(Customer.segment == params.segment)
    return statement


def _churn(
    session: Session, period: Period, params: CustomerParams
) -> tuple[int, int, RecordSelect]:
    """Customers at the period's start, how many of them churned in it, and their records."""
    at_start, churned = session.execute(
        _customers_at_start(
            period, params, func.count(), func.count(case((Customer.churned_on < period.end, 1)))
        )
    ).one()
    return (
        at_start,
        churned,
        _customers_at_start(period, params, *record_columns(Customer, "customer")),
    )


@metric("retention_rate", CustomerParams, needs=CUSTOMER_DATES, records_in_period=False)
def retention_rate(session: Session, period: Period, params: CustomerParams) -> MetricResult:
    """Percent of the customers at the period's start who are still customers at its end."""
    at_start, churned, records = _churn(session, period, params)
    kept = at_start - churned
    value = 100.0 * kept / at_start if at_start else None
    details = {"at_start": at_start, "retained": kept}
    return MetricResult(value, "%", records, details, at_start)


@metric("churn_rate", CustomerParams, needs=CUSTOMER_DATES, records_in_period=False)
def churn_rate(session: Session, period: Period, params: CustomerParams) -> MetricResult:
    """Percent of the customers at the period's start who stopped being customers in it."""
    at_start, churned, records = _churn(session, period, params)
    value = 100.0 * churned / at_start if at_start else None
    details = {"at_start": at_start, "churned": churned}
    return MetricResult(value, "%", records, details, at_start)


METRICS: tuple[Metric[Any], ...] = (retention_rate, churn_rate)
