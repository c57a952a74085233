"""The OKR report: the cascade of objectives with each key result's latest number.

Status is scored at report time from the latest measurement (time moves on even when the
number does not), with the thresholds the OKR file set. Objective progress is the
equal-weight mean of its key results' progress and its child objectives' progress,
following Google re:Work ("each key result is graded and then, using a rough average,
the objective is graded").
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import datetime
from statistics import fmean

from sqlalchemy import select
from sqlalchemy.orm import Session

from okr_targets.measurements import latest_measurement
from okr_targets.models import KeyResult, Objective
from okr_targets.periods import UTC_CALENDAR, Calendar
from okr_targets.scoring import StatusThresholds, score


@dataclass
class KeyResultLine:
    id: str
    title: str
    owner: str
    period: str
    metric: str
    value: float | None
    unit: str
    baseline: float
    target: float
    direction: str
    progress: float | None
    progress_raw: float | None
    expected_progress: float
    status: str
    as_of: str | None
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
    progress: float | None
    key_results: list[KeyResultLine] = field(default_factory=list)
    children: list[ObjectiveLine] = field(default_factory=list)


def _key_result_line(
    session: Session, kr: KeyResult, now: datetime, calendar: Calendar
) -> KeyResultLine:
    latest = latest_measurement(session, kr.id)
    value = latest.value if latest else None
    thresholds = StatusThresholds(at_risk_gap=kr.at_risk_gap, off_track_gap=kr.off_track_gap)
    scored = score(value, kr.baseline, kr.target, calendar.period(kr.period), now, thresholds)
    return KeyResultLine(
        id=kr.id,
        title=kr.title,
        owner=kr.owner,
        period=kr.period,
        metric=kr.metric,
        value=value,
        unit=(latest.unit if latest else kr.unit) or kr.unit,
        baseline=kr.baseline,
        target=kr.target,
        direction=kr.direction,
        progress=scored.progress,
        progress_raw=scored.progress_raw,
        expected_progress=scored.expected,
        status=scored.status if latest else "no_data",
        as_of=latest.measured_at.isoformat() if latest else None,
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
        o.id: ObjectiveLine(o.id, o.title, o.owner, o.period, o.parent_id, None) for o in objectives
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
    parts = [kr.progress for kr in line.key_results if kr.progress is not None]
    parts += [p for p in (_roll_up(child) for child in line.children) if p is not None]
    line.progress = fmean(parts) if parts else None
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


CSV_COLUMNS = [
    "objective_id",
    "objective",
    "objective_progress",
    *KeyResultLine.__dataclass_fields__,
]


def as_csv(lines: list[ObjectiveLine]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for _depth, line in walk(lines):
        for kr in line.key_results:
            writer.writerow(
                {
                    "objective_id": line.id,
                    "objective": line.title,
                    "objective_progress": line.progress,
                    **asdict(kr),
                }
            )
    return buffer.getvalue()
