"""When a key result's number should not be trusted yet: stale inputs, held-back records.

A number is only as good as its inputs. It shows **stale**, with the reason, when

- a source it was computed from was last read in full longer ago than that source's
  freshness limit (the OKR file's ``freshness:``, default one day), or has never been;
- validation is holding back records it would count: the newest copy of a record failed
  its checks and sits in quarantine, so the mirror has an older copy of it or none.
  Measuring counts them per key result, over its own period and filters
  (``transforms.held``), into the measurement's ``details["held_back"]``, so a number
  resting on 0 records is stale with the count and another period is not; for a metric
  that does not declare what it reads, every held record of the kinds behind it counts.

The sources are those of the records behind the latest measurement; a measurement with
no records (nothing to count yet) is checked against every source.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, and_, distinct, func, or_, select
from sqlalchemy.orm import Session, aliased

from okr_targets.models import (
    MIRROR,
    KeyResult,
    Measurement,
    MeasurementRecord,
    QuarantinedRow,
    SourceRead,
    SyncRun,
)

DEFAULT_LIMIT_SECONDS = 86_400.0


def inputs_of(session: Session, measurement: Measurement) -> set[tuple[str, str]]:
    """The (entity, source) pairs a measurement was computed from."""
    rows = session.execute(
        select(MeasurementRecord.entity, MeasurementRecord.source)
        .where(MeasurementRecord.measurement_id == measurement.id)
        .distinct()
    )
    return {(entity, source) for entity, source in rows}


def held_select(entity: str, *columns: Any) -> Select[Any]:
    """Quarantined rows of records whose newest copy failed validation: the mirror has an
    older copy, or none (a good copy read since, even unchanged, re-admits the record)."""
    table: Table = MIRROR[entity].__table__  # type: ignore[assignment]
    quarantine_run, mirror_run = aliased(SyncRun), aliased(SyncRun)
    quarantined = QuarantinedRow
    return (
        select(*columns)
        .select_from(quarantined)
        .join(quarantine_run, quarantine_run.id == quarantined.run_id)
        .outerjoin(
            table,
            and_(table.c.source == quarantined.source, table.c.source_id == quarantined.source_id),
        )
        .outerjoin(mirror_run, mirror_run.id == table.c.run_id)
        .where(
            quarantined.entity == entity,
            quarantined.source_id.is_not(None),
            or_(table.c.source_id.is_(None), mirror_run.started_at < quarantine_run.started_at),
        )
    )


def held_back(session: Session, entity: str, source: str) -> int:
    """How many records of the source's entity validation holds back now."""
    counted = held_select(entity, func.count(distinct(QuarantinedRow.source_id)))
    return int(session.scalar(counted.where(QuarantinedRow.source == source)) or 0)


def held_records(session: Session, entity: str) -> list[QuarantinedRow]:
    """The records of an entity validation holds back now, each by its newest quarantined
    copy (the one that says why it is held)."""
    rows = session.scalars(held_select(entity, QuarantinedRow).order_by(QuarantinedRow.id)).all()
    newest = {(row.source, row.source_id): row for row in rows}
    return list(newest.values())


def age_text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def stale_reason(
    session: Session, key_result: KeyResult, measurement: Measurement, now: datetime
) -> str | None:
    """Why the latest number should not be trusted, or None when its inputs are sound."""
    inputs = inputs_of(session, measurement)
    reads = {read.source: read for read in session.scalars(select(SourceRead))}
    sources = {source for _, source in inputs} or set(reads)
    limits = key_result.freshness or {}
    reasons = []
    for source in sorted(sources):
        limit = timedelta(seconds=float(limits.get(source, limits.get("default", 0)) or 0))
        limit = limit or timedelta(seconds=DEFAULT_LIMIT_SECONDS)
        read = reads.get(source)
        if read is None:
            reasons.append(f"{source} has not been read in full yet")
        elif now - read.read_at > limit:
            age = age_text(now - read.read_at)
            reasons.append(f"{source} data is {age} old (limit {age_text(limit)})")
    reasons += _held_back_reasons(session, key_result, measurement, inputs)
    return "; ".join(reasons) or None


QUARANTINE_COMMAND = "okr-sync quarantine"
"""The command that lists the records validation holds back, with why."""


def _held_back_reasons(
    session: Session, key_result: KeyResult, measurement: Measurement, inputs: set[tuple[str, str]]
) -> list[str]:
    """The held-back records behind the number: those of its own period and filters, as
    measuring counted them (``details["held_back"]``); for a metric that does not say
    which entities it reads, every held record of the kinds its records are."""
    counted = (measurement.details or {}).get("held_back")
    if counted is None:
        held = [
            (entity, source, held_back(session, entity, source))
            for entity, source in sorted(inputs)
        ]
        scope = ""
    else:
        held = [(item["entity"], item["source"], int(item["records"])) for item in counted]
        scope = f" in {key_result.period}"
    reasons = [
        f"{count:,} {source} {entity} record(s) held back by validation{scope} "
        f"(see {QUARANTINE_COMMAND})"
        for entity, source, count in held
        if count
    ]
    if reasons and not measurement.record_count:
        reasons.insert(0, "the number rests on 0 records")
    return reasons
