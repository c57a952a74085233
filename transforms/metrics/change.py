"""Change metrics: ``pct_change``, the percent change of another metric between periods.

It is the one metric that runs others, so it is made for a set of metrics (the catalog it
belongs to) rather than looking them up anywhere global.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from okr_targets.periods import Period
from transforms.lineage import both_records
from transforms.metric import Comparison, Metric, MetricError, MetricResult, find_metric

PCT_CHANGE = "pct_change"


class ChangeParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    metric: str = Field(description="the metric to compare")
    baseline_period: str = Field(default="previous", description="'previous' or a period label")

    @field_validator("baseline_period")
    @classmethod
    def _a_period(cls, value: str) -> str:
        """Catch a mistyped label when the OKR file loads; its calendar is applied at run time."""
        if value != "previous":
            Period.parse(value)
        return value

    @property
    def inner_params(self) -> dict[str, Any]:
        """The compared metric's own parameters: every other key."""
        return dict(self.model_extra or {})


def check_change(params: ChangeParams) -> None:
    """What the parameter model cannot say: a change of a change is refused."""
    if params.metric == PCT_CHANGE:
        raise MetricError("pct_change cannot compare pct_change with itself")


def pct_change(metrics: Mapping[str, Metric[Any]]) -> Metric[ChangeParams]:
    """``pct_change`` comparing the metrics of ``metrics`` (the catalog it belongs to)."""

    def compute(session: Session, period: Period, params: ChangeParams) -> MetricResult:
        """Percent change of another metric between a baseline period and this one."""
        inner = find_metric(metrics, params.metric)
        inner_params = params.inner_params
        baseline_period = (
            period.previous()
            if params.baseline_period == "previous"
            else period.calendar.period(params.baseline_period)  # the same calendar
        )
        current = inner.run(session, period, inner_params)
        baseline = inner.run(session, baseline_period, inner_params)
        comparison = Comparison(
            params.metric,
            inner_params,
            current,
            baseline.value,
            baseline.record_count,
            baseline_period,
            period.calendar,
        )
        details = comparison.details()
        if current.value is None or not baseline.value:
            details["reason"] = "no baseline value" if not baseline.value else "no current value"
            return MetricResult(
                None, "%", current.records, details, current.record_count, comparison
            )
        value = 100.0 * (current.value - baseline.value) / abs(baseline.value)
        disjoint = inner.records_in_period and (
            baseline_period.end <= period.start or period.end <= baseline_period.start
        )
        records, count = both_records(session, current, baseline, disjoint)
        return MetricResult(value, "%", records, details, count, comparison)

    return Metric(
        PCT_CHANGE,
        (compute.__doc__ or "").strip(),
        ChangeParams,
        compute,
        records_in_period=False,
    )
