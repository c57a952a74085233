"""Held-back records per key result: those validation holds now that the key result's own
period and filters would count.

A number resting on records validation holds back is stale, and only that number: a month
whose every ticket was quarantined is stale with the count, the next month is not. Which
records a metric reads comes from its ``needs`` (:attr:`Metric.entities`); where a held
record falls comes from its newest copy (the quarantined one, or else the mirror's older
copy): its period field places it in a period, and the metric's filter parameters (marked
with :class:`Matches`) are compared with its fields. A record that cannot be placed (the
very field is what failed) counts for every period: it may be in this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from okr_targets.freshness import held_records
from okr_targets.models import MIRROR, Rep
from okr_targets.periods import Period
from transforms.metric import Matches, Metric
from transforms.sql import shared

PERIOD_FIELDS = {
    "deal": "close_on",
    "ticket": "created_at",
    "rating": "rated_at",
    "finance_line": "booked_on",
}
"""The field that puts a record of the entity in a period, for metrics whose records each
belong to one period (``records_in_period``)."""


@dataclass(frozen=True)
class HeldBack:
    """How many of a source's records of an entity the key result would count are held."""

    entity: str
    source: str
    records: int

    def details(self) -> dict[str, Any]:
        return {"entity": self.entity, "source": self.source, "records": self.records}


def held_back_for(
    session: Session, metric: Metric[Any], params: BaseModel, period: Period
) -> list[HeldBack] | None:
    """The held-back records the key result would count, per (entity, source); None when the
    metric does not say which entities it reads (a custom metric)."""
    if not metric.entities:
        return None
    counts: dict[tuple[str, str], int] = {}
    for entity in sorted(metric.entities):
        held = shared(session, ("held records", entity), partial(_held_fields, session, entity))
        for source, fields in held:
            in_period = not metric.records_in_period or _in_period(entity, fields, period)
            if in_period and _passes(session, entity, source, fields, params):
                counts[(entity, source)] = counts.get((entity, source), 0) + 1
    return [HeldBack(entity, source, n) for (entity, source), n in sorted(counts.items())]


def _held_fields(session: Session, entity: str) -> list[tuple[str, dict[str, Any]]]:
    """Each held record's source and fields: its quarantined copy's, over the mirror's
    older copy's (read in one query)."""
    held = held_records(session, entity)
    model = MIRROR[entity]
    keys = [(row.source, str(row.source_id)) for row in held]
    older = (
        {
            (record.source, record.source_id): record
            for record in session.scalars(
                select(model).where(tuple_(model.source, model.source_id).in_(keys))
            )
        }
        if keys
        else {}
    )
    found = []
    for row, key in zip(held, keys, strict=True):
        copy = older.get(key)
        known = {} if copy is None else {c.key: getattr(copy, c.key) for c in copy.__mapper__.attrs}
        quarantined = {name: value for name, value in row.record.items() if value is not None}
        found.append((row.source, known | quarantined))
    return found


def _in_period(entity: str, fields: dict[str, Any], period: Period) -> bool:
    """Whether the record falls in the period; True when it cannot be placed."""
    name = PERIOD_FIELDS.get(entity)
    value = fields.get(name) if name else None
    if isinstance(value, str):  # the quarantine keeps dates and times as ISO text
        try:
            value = (date if len(value.strip()) == 10 else datetime).fromisoformat(value.strip())
        except ValueError:
            return True
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return True
        return period.start_at <= value.astimezone(UTC) < period.end_at
    if isinstance(value, date):
        return period.start <= value < period.end
    return True


def _passes(
    session: Session, entity: str, source: str, fields: dict[str, Any], params: BaseModel
) -> bool:
    """Whether the record passes the key result's filters; a filter on a field the record
    does not carry (or cannot be compared) lets it pass."""
    for name, info in type(params).model_fields.items():
        wanted = getattr(params, name)
        for marker in info.metadata:
            if not isinstance(marker, Matches) or wanted is None:
                continue
            on, column = marker.column.split(".", 1)
            if on == entity:
                value = fields.get(column)
            elif on == "rep" and entity == "deal" and fields.get("owner_id") is not None:
                rep = session.get(Rep, (source, str(fields["owner_id"])))
                value = None if rep is None else getattr(rep, column)
            else:
                continue
            if value is None:
                continue
            same = (
                str(value).lower() == str(wanted).lower()
                if marker.ignore_case
                else str(value) == str(wanted)
            )
            if not same:
                return False
    return True
