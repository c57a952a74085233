"""The quarantine as people read it: which records a run held back, which are held now,
each with its source, id, field and reason; and runs found by any unique id prefix.

A record is held while its newest copy failed validation (:func:`freshness.held_records`);
the next sync that reads a good copy of it re-admits it, and it leaves the held list.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from okr_targets.freshness import held_records
from okr_targets.models import MIRROR, QuarantinedRow, SyncRun


class RunLookupError(LookupError):
    """No run, or more than one, has the id prefix given."""


def find_run(session: Session, prefix: str) -> SyncRun:
    """The run whose id starts with ``prefix``; none or several is a RunLookupError saying
    which (the candidates listed, newest first)."""
    prefix = prefix.strip()
    if not prefix:
        raise RunLookupError("no run id given; `okr-sync runs` lists them")
    candidates = session.scalars(
        select(SyncRun)
        .where(SyncRun.id.startswith(prefix, autoescape=True))
        .order_by(SyncRun.started_at.desc())
        .limit(11)
    ).all()
    if not candidates:
        raise RunLookupError(f"no run id starts with {prefix!r}; `okr-sync runs` lists them")
    if len(candidates) > 1:
        shown = ", ".join(f"{run.id} ({run.started_at:%Y-%m-%d %H:%M})" for run in candidates[:10])
        more = " …" if len(candidates) > 10 else ""
        raise RunLookupError(
            f"run id prefix {prefix!r} is ambiguous: {shown}{more}; give more of the id"
        )
    return candidates[0]


@dataclass(frozen=True)
class QuarantineLine:
    """One quarantined record: where it came from, the field at fault and why."""

    run_id: str
    entity: str
    source: str
    source_id: str | None
    field: str | None  # None when the reason names no single field
    reason: str
    quarantined_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NAMED = re.compile(r"^(?:expect_\w+|column)\((\w+)\)")
_PREFIXES = re.compile(r"^(?:mapping: )?(?:row \d+: )?")
_FIRST_WORD = re.compile(r"^([A-Za-z_][\w.]*) ")


def field_of(reason: str) -> str | None:
    """The field a reason names: ``column(name): …``, ``expect_…(amount)``, or the first
    word of a mapping reason (``mapping: CloseDate '2026-02-30' is not a real date``)."""
    named = _NAMED.match(reason)
    if named:
        return named.group(1)
    rest = _PREFIXES.sub("", reason, count=1)
    first = _FIRST_WORD.match(rest)
    return first.group(1) if first else None


def _lines(row: QuarantinedRow) -> list[QuarantineLine]:
    reasons = list(row.expectations or []) or ["(no reason recorded)"]
    return [
        QuarantineLine(
            row.run_id,
            row.entity,
            row.source,
            row.source_id,
            field_of(reason),
            reason,
            row.quarantined_at.isoformat(),
        )
        for reason in reasons
    ]


def quarantined_in_run(session: Session, run_id: str) -> list[QuarantineLine]:
    """Every record the run quarantined, a line per reason, in the order they were kept."""
    rows = session.scalars(
        select(QuarantinedRow).where(QuarantinedRow.run_id == run_id).order_by(QuarantinedRow.id)
    )
    return [line for row in rows for line in _lines(row)]


def held_now(session: Session) -> list[QuarantineLine]:
    """The records validation holds back now, across runs, by their newest failed copy."""
    rows = [row for entity in MIRROR for row in held_records(session, entity)]
    rows.sort(key=lambda row: (row.entity, row.source, str(row.source_id)))
    return [line for row in rows for line in _lines(row)]
