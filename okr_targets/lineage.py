"""Where a key result's number came from: its measurement, run, inputs and corrections.

``explain`` answers a leader's four questions about a number: since when (measured at,
data cutoff), from which records (the lineage rows), how fresh (the run and its sources'
last full reads) and whether it changed after the fact (a restatement, with the records
that were added, removed or changed between the two values).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from okr_targets.models import (
    MIRROR,
    Baseline,
    KeyResult,
    Measurement,
    MeasurementRecord,
    MirrorRecord,
    SourceRead,
    SyncRun,
)

RecordKey = tuple[str, str, str]  # (entity, source, source_id)


class ExplainError(LookupError):
    """Nothing to explain: an unknown key result, or no measurement at that time."""


@dataclass
class Restatement:
    """How a closed period's value changed, and which records made it change."""

    replaces: int
    old_value: float | None
    old_measured_at: str
    difference: float | None
    added: list[RecordKey] = field(default_factory=list)
    removed: list[RecordKey] = field(default_factory=list)
    changed: list[RecordKey] = field(default_factory=list)  # in both, edited in between


@dataclass
class Explanation:
    key_result_id: str
    title: str
    kind: str
    period: str
    measurement_id: int
    value: float | None
    unit: str
    status: str
    progress: float | None
    target: float
    baseline: float
    metric: str
    params: dict[str, Any]
    details: dict[str, Any]
    measured_at: str
    data_cutoff: str | None
    run_id: str
    run_status: str | None
    flow_run_id: str | None
    code_version: str
    record_count: int
    records_by_kind: dict[str, int]
    sources_read_at: dict[str, str]
    baselines: list[dict[str, Any]] = field(default_factory=list)
    restatement: Restatement | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def latest_measurement(session: Session, key_result_id: str) -> Measurement | None:
    return session.scalars(
        select(Measurement)
        .where(Measurement.key_result_id == key_result_id)
        .order_by(Measurement.measured_at.desc(), Measurement.id.desc())
        .limit(1)
    ).first()


def measurement_at(session: Session, key_result_id: str, at: datetime | None) -> Measurement:
    """The measurement in force at ``at`` (the newest when None)."""
    query = select(Measurement).where(Measurement.key_result_id == key_result_id)
    if at is not None:
        query = query.where(Measurement.measured_at <= at)
    found = session.scalars(
        query.order_by(Measurement.measured_at.desc(), Measurement.id.desc()).limit(1)
    ).first()
    if found is None:
        when = f" at or before {at.isoformat()}" if at else ""
        raise ExplainError(f"key result {key_result_id!r} has no measurement{when}")
    return found


def lineage_select(measurement_id: int) -> Select[str, str, str]:
    """The records a measurement counted: (entity, source, source_id) of its lineage rows."""
    kept = MeasurementRecord
    return select(kept.entity, kept.source, kept.source_id).where(
        kept.measurement_id == measurement_id
    )


def record_keys(session: Session, measurement_id: int) -> set[RecordKey]:
    rows = session.execute(lineage_select(measurement_id))
    return {(entity, source, source_id) for entity, source, source_id in rows}


def explain(session: Session, key_result_id: str, at: datetime | None = None) -> Explanation:
    key_result = session.get(KeyResult, key_result_id)
    if key_result is None:
        known = ", ".join(sorted(session.scalars(select(KeyResult.id)))[:20]) or "none yet"
        raise ExplainError(f"no key result {key_result_id!r}; known: {known}")
    measurement = measurement_at(session, key_result_id, at)
    run = session.get(SyncRun, measurement.run_id)
    keys = record_keys(session, measurement.id)
    by_kind = Counter(f"{source}.{entity}" for entity, source, _ in keys)
    reads = {
        read.source: read.read_at.isoformat()
        for read in session.scalars(
            select(SourceRead).where(
                SourceRead.source.in_({source for _, source, _ in keys} or {"-"})
            )
        )
    }
    explanation = Explanation(
        key_result_id=key_result.id,
        title=key_result.title,
        kind=key_result.kind,
        period=key_result.period,
        measurement_id=measurement.id,
        value=measurement.value,
        unit=measurement.unit,
        status=measurement.status,
        progress=measurement.progress,
        target=key_result.target,
        baseline=key_result.baseline,
        metric=measurement.metric,
        params=dict(measurement.params or {}),
        details=dict(measurement.details or {}),
        measured_at=measurement.measured_at.isoformat(),
        data_cutoff=measurement.data_cutoff.isoformat() if measurement.data_cutoff else None,
        run_id=measurement.run_id,
        run_status=run.status if run else None,
        flow_run_id=run.flow_run_id if run else None,
        code_version=measurement.code_version,
        record_count=measurement.record_count,
        records_by_kind=dict(sorted(by_kind.items())),
        sources_read_at=reads,
    )
    baseline_key = explanation.details.get("baseline_key")
    if baseline_key:
        frozen = session.get(Baseline, baseline_key)
        if frozen is not None:
            explanation.baselines.append(
                {
                    "period": frozen.period,
                    "value": frozen.value,
                    "records": frozen.record_count,
                    "computed_at": frozen.computed_at.isoformat(),
                    "query": frozen.query,
                    # what the baseline period's data gives today, when that differs
                    "now": explanation.details.get("baseline_now"),
                    "refrozen_from": explanation.details.get("baseline_refrozen_from"),
                }
            )
    if measurement.restates_id is not None:
        explanation.restatement = restatement_of(session, measurement, keys)
    explanation.history = [
        {
            "id": m.id,
            "measured_at": m.measured_at.isoformat(),
            "value": m.value,
            "status": m.status,
            "restates": m.restates_id,
        }
        for m in session.scalars(
            select(Measurement)
            .where(Measurement.key_result_id == key_result_id)
            .order_by(Measurement.measured_at, Measurement.id)
        )
    ]
    return explanation


def restatement_of(session: Session, measurement: Measurement, keys: set[RecordKey]) -> Restatement:
    """Compare with the replaced measurement: which records came, went or changed."""
    replaced = session.get(Measurement, measurement.restates_id)
    assert replaced is not None, "restates_id is a foreign key"
    before = record_keys(session, replaced.id)
    kept = mirror_rows(session, keys & before)
    changed = [key for key in sorted(kept) if kept[key].source_modified_at > replaced.measured_at]
    difference = (
        None
        if measurement.value is None or replaced.value is None
        else measurement.value - replaced.value
    )
    return Restatement(
        replaces=replaced.id,
        old_value=replaced.value,
        old_measured_at=replaced.measured_at.isoformat(),
        difference=difference,
        added=sorted(keys - before),
        removed=sorted(before - keys),
        changed=changed,
    )


def contributing_records(
    session: Session, measurement_id: int, limit: int | None = None
) -> list[dict[str, Any]]:
    """The mirror rows behind a measurement, as they are now (deleted ones say so)."""
    keys = sorted(record_keys(session, measurement_id))[:limit]
    found = mirror_rows(session, set(keys))
    rows: list[dict[str, Any]] = []
    for entity, source, source_id in keys:
        record = found.get((entity, source, source_id))
        row: dict[str, Any] = {"entity": entity, "source": source, "source_id": source_id}
        if record is not None:
            row["modified_at"] = record.source_modified_at.isoformat()
            row["deleted"] = record.deleted_at is not None
            for name in ("name", "amount", "currency", "status", "score", "close_on"):
                value = getattr(record, name, None)
                if value is not None:
                    row[name] = value if isinstance(value, int | float | str) else str(value)
        rows.append(row)
    return rows


_CHUNK = 500  # ids per IN (...) when reading mirror rows


def mirror_rows(session: Session, keys: set[RecordKey]) -> dict[RecordKey, MirrorRecord]:
    """The mirror's copy of each record, read in chunks per entity and source (one query
    per 500 ids, not one per record)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for entity, source, source_id in keys:
        groups.setdefault((entity, source), []).append(source_id)
    found: dict[RecordKey, MirrorRecord] = {}
    for (entity, source), ids in groups.items():
        model = MIRROR.get(entity)
        if model is None:
            continue
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            query = select(model).where(model.source == source, model.source_id.in_(chunk))
            for row in session.scalars(query):
                found[(entity, source, row.source_id)] = row
    return found
