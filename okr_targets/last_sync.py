"""The last sync's trouble for a key result: the one place that decides it.

A number left by an earlier sync looks as good as a fresh one unless the reader is told
that the last sync failed or stopped early on something the number rests on. A key result
is touched by the last finished run when

- the run **failed**: nothing was measured, so every key result's number is older than the
  reader expects (the reason is the run's);
- the run was **partial** and a stream that stopped or failed reads an entity the key
  result's metric reads (``KeyResult.reads``, from ``Metric.needs``; a metric that does
  not declare its entities is touched by any stream), or the key result itself could not
  be computed (the run's ``key_result_errors``).

A complete run touches nothing. A run still going is not the last sync yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from okr_targets.models import KeyResult, SyncRun
from okr_targets.status import RunStatus


@dataclass(frozen=True)
class SyncTrouble:
    """What went wrong with the last sync for one key result."""

    run_id: str
    status: str  # a RunStatus: failed or partial
    reason: str
    finished_at: str | None

    def text(self) -> str:
        """One line for a reader: "last sync failed: …"."""
        return f"last sync {self.status}: {self.reason}"


def last_finished_run(session: Session) -> SyncRun | None:
    """The newest run that has ended, however it ended."""
    return session.scalars(
        select(SyncRun)
        .where(SyncRun.status != RunStatus.RUNNING)
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .limit(1)
    ).first()


def _stream_trouble(name: str, counts: dict[str, Any]) -> str | None:
    problem = counts.get("failed") or counts.get("stopped")
    return f"{name}: {problem}" if problem else None


def trouble_for(run: SyncRun | None, key_result: KeyResult) -> SyncTrouble | None:
    """The last run's trouble for this key result, or None when it has none."""
    if run is None or run.status == RunStatus.COMPLETE:
        return None
    finished = run.finished_at.isoformat() if run.finished_at else None
    if run.status == RunStatus.FAILED:
        reason = run.reason or "no reason recorded"
        return SyncTrouble(run.id, run.status, reason, finished)
    errors: dict[str, str] = (run.details or {}).get("key_result_errors") or {}
    if key_result.id in errors:
        return SyncTrouble(run.id, run.status, errors[key_result.id], finished)
    for name, counts in (run.stream_counts or {}).items():
        problem = _stream_trouble(name, counts)
        if problem and _reads(key_result, counts.get("entity")):
            return SyncTrouble(run.id, run.status, problem, finished)
    return None


def _reads(key_result: KeyResult, entity: str | None) -> bool:
    """Whether the key result may rest on records of ``entity`` (None: not known)."""
    if key_result.reads == []:  # a milestone set by hand reads no records
        return False
    return key_result.reads is None or entity is None or entity in key_result.reads
