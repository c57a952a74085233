"""The OKR report: the cascade of objectives with each key result's latest number.

Status is scored at report time from the latest measurement (time moves on even when the
number does not), with the kind, thresholds, calendar and freshness limits the OKR file
set; a number whose inputs are stale or held back shows ``stale`` with the reason. Each
key result carries a forecast of its end-of-period value from its measurement history.
Objective progress is the weighted mean (equal weights by default) of its key results'
and child objectives' progress; every formula is in docs/scoring.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from okr_targets.forecast import forecast
from okr_targets.freshness import stale_reason
from okr_targets.lineage import latest_measurement
from okr_targets.models import KeyResult, Measurement, Objective
from okr_targets.periods import UTC_CALENDAR, Calendar
from okr_targets.rollup import rollup
from okr_targets.scoring import Kind, StatusThresholds, score
from okr_targets.status import KeyResultStatus


@dataclass
class KeyResultLine:
    id: str
    title: str
    owner: str
    period: str
    period_start: str
    period_end: str
    timezone: str
    metric: str
    value: float | None
    unit: str
    baseline: float
    target: float
    direction: str
    kind: str
    weight: float
    progress: float | None
    progress_raw: float | None
    expected_progress: float
    status: KeyResultStatus
    stale_reason: str | None
    error: str | None  # why the metric gave no number (a filter matching nothing, …)
    underlying_status: KeyResultStatus | None
    forecast: float | None
    forecast_progress: float | None
    forecast_method: str
    forecast_note: str | None
    final_score: float | None
    as_of: str | None
    data_cutoff: str | None
    checked_at: str | None
    records: int
    run_id: str | None


@dataclass
class ObjectiveLine:
    id: str
    title: str
    owner: str
    period: str
    parent: str | None
    weight: float
    progress: float | None
    key_results: list[KeyResultLine] = field(default_factory=list)
    children: list[ObjectiveLine] = field(default_factory=list)


def _key_result_line(
    session: Session, kr: KeyResult, now: datetime, calendar: Calendar
) -> KeyResultLine:
    latest = latest_measurement(session, kr.id)
    value = latest.value if latest else None
    thresholds = StatusThresholds(at_risk_gap=kr.at_risk_gap, off_track_gap=kr.off_track_gap)
    period = (Calendar(**kr.calendar) if kr.calendar else calendar).period(kr.period)
    kind: Kind = kr.kind  # type: ignore[assignment]
    stale = stale_reason(session, kr, latest, now) if latest else None
    scored = score(
        value, kr.baseline, kr.target, period, now, thresholds, kind=kind, stale_reason=stale
    )
    history = session.execute(
        select(Measurement.measured_at, Measurement.value)
        .where(Measurement.key_result_id == kr.id, Measurement.value.is_not(None))
        .order_by(Measurement.measured_at)
    ).all()
    projected = forecast(
        [(at, v) for at, v in history if v is not None],
        period,
        now,
        kind=kind,
        baseline=kr.baseline,
        target=kr.target,
    )
    return KeyResultLine(
        id=kr.id,
        title=kr.title,
        owner=kr.owner,
        period=kr.period,
        period_start=period.start_at.isoformat(),
        period_end=period.end_at.isoformat(),
        timezone=period.calendar.timezone,
        metric=kr.metric,
        value=value,
        unit=(latest.unit if latest else kr.unit) or kr.unit,
        baseline=kr.baseline,
        target=kr.target,
        direction=kr.direction,
        kind=kr.kind,
        weight=kr.weight,
        progress=scored.progress,
        progress_raw=scored.progress_raw,
        expected_progress=scored.expected,
        status=scored.status if latest else KeyResultStatus.NO_DATA,
        stale_reason=scored.stale_reason,
        error=(latest.details or {}).get("error") if latest else None,
        underlying_status=scored.underlying_status if latest else KeyResultStatus.NO_DATA,
        forecast=projected.value,
        forecast_progress=projected.progress,
        forecast_method=projected.method,
        forecast_note=projected.reason,
        final_score=kr.final_score,
        as_of=latest.measured_at.isoformat() if latest else None,
        data_cutoff=latest.data_cutoff.isoformat() if latest and latest.data_cutoff else None,
        checked_at=kr.checked_at.isoformat() if kr.checked_at else None,
        records=latest.record_count if latest else 0,
        run_id=latest.run_id if latest else None,
    )


def build_report(
    session: Session, now: datetime, calendar: Calendar = UTC_CALENDAR
) -> list[ObjectiveLine]:
    """The objective tree, roots first, each with its key results and children.

    ``calendar`` is the OKR file's (``config.calendar``): expected progress is the share of
    each period elapsed in it. The store keeps period labels only, not the calendar.
    """
    objectives = session.scalars(select(Objective).order_by(Objective.id)).all()
    lines = {
        o.id: ObjectiveLine(o.id, o.title, o.owner, o.period, o.parent_id, o.weight, None)
        for o in objectives
    }
    for kr in session.scalars(select(KeyResult).order_by(KeyResult.id)):
        lines[kr.objective_id].key_results.append(_key_result_line(session, kr, now, calendar))
    roots = []
    for objective in objectives:
        line = lines[objective.id]
        if objective.parent_id in lines:
            lines[objective.parent_id].children.append(line)
        else:
            roots.append(line)
    for root in roots:
        _roll_up(root)
    return roots


def _roll_up(line: ObjectiveLine) -> float | None:
    """Key results and child objectives side by side, each with its weight."""
    parts = [(kr.progress, kr.weight) for kr in line.key_results]
    parts += [(_roll_up(child), child.weight) for child in line.children]
    line.progress = rollup(parts)
    return line.progress


def walk(lines: list[ObjectiveLine], depth: int = 0) -> list[tuple[int, ObjectiveLine]]:
    """Objectives in tree order with their depth (0 = company)."""
    ordered = []
    for line in lines:
        ordered.append((depth, line))
        ordered += walk(line.children, depth + 1)
    return ordered


def as_json(lines: list[ObjectiveLine], now: datetime, store: str) -> dict[str, object]:
    flat = []
    for _depth, line in walk(lines):
        item = asdict(line)
        item.pop("children")
        flat.append(item)
    return {"generated_at": now.isoformat(), "store": store, "objectives": flat}
