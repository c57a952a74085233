"""The records behind a number, as SQL: selected, counted, combined and written as lineage.

A metric's records stay in the database: a SELECT of ``(entity, source, source_id)`` rows
that is counted there and copied into the measurement's lineage by ``INSERT … SELECT``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    Label,
    String,
    column,
    func,
    insert,
    literal,
    select,
    union,
    union_all,
    values,
)
from sqlalchemy.orm import Session

from okr_targets.models import MeasurementRecord, MirrorRecord
from transforms.metric import MetricResult, RecordRef, RecordSelect


def record_columns(
    model: type[MirrorRecord], entity: str
) -> tuple[Label[str], Label[str], Label[str]]:
    """The lineage columns of a mirror table's rows: ``entity, source, source_id``."""
    return (
        literal(entity, String).label("entity"),
        model.source.label("source"),
        model.source_id.label("source_id"),
    )


def record_select(refs: Iterable[RecordRef]) -> RecordSelect | None:
    """Records listed in Python (a custom Python metric's) as a SELECT, each once.

    The ids are rendered into the statement as quoted literals, so a long list needs
    no bind parameter per id (SQLite caps those).
    """
    unique = list(dict.fromkeys(refs))
    if not unique:
        return None
    listed = (
        values(
            column("entity", String),
            column("source", String),
            column("source_id", String),
            name="listed_records",
            literal_binds=True,
        )
        .data([(ref.entity, str(ref.source), str(ref.source_id)) for ref in unique])
        .cte()
    )
    return select(listed.c.entity, listed.c.source, listed.c.source_id)


def count_records(session: Session, records: RecordSelect | None) -> int:
    if records is None:
        return 0
    return int(session.scalar(select(func.count()).select_from(records.subquery())) or 0)


def record_refs(session: Session, result: MetricResult) -> list[RecordRef]:
    """The records behind a result, read into Python: for tests and small sets only."""
    if result.records is None:
        return []
    rows = session.execute(result.records).tuples()
    return [RecordRef(entity, source, source_id) for entity, source, source_id in rows]


def both_records(
    session: Session, first: MetricResult, second: MetricResult, disjoint: bool
) -> tuple[RecordSelect | None, int]:
    """The records of two results, each once, and how many: records that cannot be in
    both are simply put together (and counted by addition); others go through UNION."""
    if first.records is None or second.records is None:
        either = first if second.records is None else second
        return either.records, either.record_count
    if disjoint:
        both = union_all(first.records, second.records)
        return both, first.record_count + second.record_count
    records = union(first.records, second.records)  # customers recur
    return records, count_records(session, records)


def write_lineage(session: Session, measurement_id: int, records: RecordSelect) -> None:
    """The measurement's lineage rows, by one INSERT … SELECT of the metric's records."""
    listed = records.subquery()
    session.execute(
        insert(MeasurementRecord).from_select(
            ["measurement_id", "entity", "source", "source_id"],
            select(literal(measurement_id), listed.c.entity, listed.c.source, listed.c.source_id),
        )
    )
