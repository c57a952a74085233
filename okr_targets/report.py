"""The OKR report: the cascade of objectives with each key result's latest number.

Status is scored at report time from the latest measurement (time moves on even when the
number does not), with the kind, thresholds, calendar and freshness limits the OKR file
set; a number whose inputs are stale or held back, or that the last sync failed or stopped
early on (``okr_targets/last_sync.py``), shows ``stale`` with the reason. A closed period
shows ``met`` or ``missed`` with its final score, not a live status. Each key result
carries a forecast of its end-of-period value from one value per day, or why there is none.
Objective progress is the weighted mean (equal weights by default) of its key results'
and child objectives' progress, and its status the weakest of theirs
(``okr_targets.status.objective_status``); every formula is in docs/scoring.md. Owners
carry their names (``okr_targets/people.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from okr_targets.forecast import forecast, value_range
from okr_targets.freshness import stale_reason
from okr_targets.last_sync import SyncTrouble, last_finished_run, trouble_for
from okr_targets.lineage import latest_measurement
from okr_targets.models import DailyValue, KeyResult, Objective, SyncRun
from okr_targets.people import Person, people
from okr_targets.periods import UTC_CALENDAR, Calendar
from okr_targets.rollup import rollup
from okr_targets.scoring import Kind, StatusThresholds, score
from okr_targets.status import KeyResultStatus, objective_status


@dataclass
class KeyResultLine:
    id: str
    title: str
    owner: str  # the e-mail, as in the OKR file
    owner_name: str  # the person's name (okr_targets/people.py), else the e-mail
    owner_team: str | None
    period: str
    period_start: str
    period_end: str
    timezone: str
    metric: str
    value: float | None
    unit: str
    baseline_period: str | None  # a change (pct_change) is measured against this period
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
    forecast_low: float | None
    forecast_high: float | None
    forecast_progress: float | None
    forecast_method: str
    forecast_note: str | None
    final_score: float | None
    as_of: str | None
    data_cutoff: str | None
    checked_at: str | None
    records: int
    run_id: str | None
    sync_status: str | None  # the last sync's trouble for this key result: failed, partial
    sync_reason: str | None


@dataclass
class ObjectiveLine:
    id: str
    title: str
    owner: str
    period: str
    parent: str | None
    weight: float
    progress: float | None
    owner_name: str = ""
    owner_team: str | None = None
    status: KeyResultStatus = KeyResultStatus.NO_DATA  # the weakest below it: objective_status
    key_results: list[KeyResultLine] = field(default_factory=list)
    children: list[ObjectiveLine] = field(default_factory=list)


def _key_result_line(
    session: Session,
    kr: KeyResult,
    now: datetime,
    calendar: Calendar,
    last_run: SyncRun | None,
    person: Person,
) -> KeyResultLine:
    latest = latest_measurement(session, kr.id)
    value = latest.value if latest else None
    unit = (latest.unit if latest else kr.unit) or kr.unit
    thresholds = StatusThresholds(at_risk_gap=kr.at_risk_gap, off_track_gap=kr.off_track_gap)
    period = (Calendar(**kr.calendar) if kr.calendar else calendar).period(kr.period)
    kind: Kind = kr.kind  # type: ignore[assignment]
    trouble = trouble_for(last_run, kr)
    stale = _reasons(stale_reason(session, kr, latest, now) if latest else None, trouble)
    scored = score(
        value, kr.baseline, kr.target, period, now, thresholds, kind=kind, stale_reason=stale
    )
    status = scored.status
    final = kr.final_score if now >= period.end_at else None
    if final is not None and status is not KeyResultStatus.STALE:  # doubtful data: no verdict
        status = KeyResultStatus.MET if final >= 1 else KeyResultStatus.MISSED
    days = session.scalars(
        select(DailyValue).where(DailyValue.key_result_id == kr.id).order_by(DailyValue.day)
    ).all()
    projected = forecast(
        [(day.checked_at, day.value) for day in days if day.value is not None],
        period,
        now,
        kind=kind,
        baseline=kr.baseline,
        target=kr.target,
        bounds=value_range(kind, unit),
    )
    confirmed = days[-1] if days else None
    cutoff = confirmed.data_cutoff if confirmed else (latest.data_cutoff if latest else None)
    return KeyResultLine(
        id=kr.id,
        title=kr.title,
        owner=kr.owner,
        owner_name=person.name,
        owner_team=person.team,
        period=kr.period,
        period_start=period.start_at.isoformat(),
        period_end=period.end_at.isoformat(),
        timezone=period.calendar.timezone,
        metric=kr.metric,
        value=value,
        unit=unit,
        baseline_period=(latest.details or {}).get("baseline_period") if latest else None,
        baseline=kr.baseline,
        target=kr.target,
        direction=kr.direction,
        kind=kr.kind,
        weight=kr.weight,
        progress=scored.progress,
        progress_raw=scored.progress_raw,
        expected_progress=scored.expected,
        status=status,
        stale_reason=scored.stale_reason,
        error=(latest.details or {}).get("error") if latest else None,
        underlying_status=scored.underlying_status,
        forecast=projected.value,
        forecast_low=projected.low,
        forecast_high=projected.high,
        forecast_progress=projected.progress,
        forecast_method=projected.method,
        forecast_note=projected.reason,
        final_score=kr.final_score,
        as_of=latest.measured_at.isoformat() if latest else None,
        data_cutoff=cutoff.isoformat() if cutoff else None,
        checked_at=kr.checked_at.isoformat() if kr.checked_at else None,
        records=latest.record_count if latest else 0,
        run_id=latest.run_id if latest else None,
        sync_status=trouble.status if trouble else None,
        sync_reason=trouble.reason if trouble else None,
    )


def _reasons(stale: str | None, trouble: SyncTrouble | None) -> str | None:
    """The stale reasons and the last sync's trouble, as one line."""
    parts = [part for part in (trouble.text() if trouble else None, stale) if part]
    return "; ".join(parts) or None


def build_report(
    session: Session, now: datetime, calendar: Calendar = UTC_CALENDAR
) -> list[ObjectiveLine]:
    """The objective tree, roots first, each with its key results and children.

    ``calendar`` is the OKR file's (``config.calendar``): expected progress is the share of
    each period elapsed in it. The store keeps period labels only, not the calendar.
    """
    # Only what the OKR file holds now: retired ones stay in history and ``explain``.
    objectives = session.scalars(
        select(Objective).where(Objective.retired_at.is_(None)).order_by(Objective.id)
    ).all()
    named = people(session)
    lines = {
        o.id: ObjectiveLine(
            o.id,
            o.title,
            o.owner,
            o.period,
            o.parent_id,
            o.weight,
            None,
            owner_name=named(o.owner).name,
            owner_team=named(o.owner).team,
        )
        for o in objectives
    }
    last_run = last_finished_run(session)
    live = select(KeyResult).where(KeyResult.retired_at.is_(None)).order_by(KeyResult.id)
    for kr in session.scalars(live):
        kr_line = _key_result_line(session, kr, now, calendar, last_run, named(kr.owner))
        lines[kr.objective_id].key_results.append(kr_line)
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
    """Key results and child objectives side by side, each with its weight; the status is
    the weakest of theirs (``objective_status``)."""
    parts = [(kr.progress, kr.weight) for kr in line.key_results]
    parts += [(_roll_up(child), child.weight) for child in line.children]
    line.progress = rollup(parts)
    line.status = objective_status(
        [kr.status for kr in line.key_results] + [child.status for child in line.children]
    )
    return line.progress


def walk(lines: list[ObjectiveLine], depth: int = 0) -> list[tuple[int, ObjectiveLine]]:
    """Objectives in tree order with their depth (0 = company)."""
    ordered = []
    for line in lines:
        ordered.append((depth, line))
        ordered += walk(line.children, depth + 1)
    return ordered


def as_json(lines: list[ObjectiveLine]) -> list[dict[str, object]]:
    """The objectives as a flat list in tree order, without their ``children``."""
    flat = []
    for _depth, line in walk(lines):
        item = asdict(line)
        item.pop("children")
        flat.append(item)
    return flat
