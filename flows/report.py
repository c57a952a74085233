"""What a sync run did, typed: the flow returns a :class:`RunReport`, the CLI prints it,
and the store keeps its JSON (``to_dict``) on the run, in the shape it always had."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from connectors.base import Gap
from connectors.errors import FatalSourceError
from okr_targets.status import RunStatus
from okr_targets.store import Store, latest_stream_counts
from transforms.matching import MatchReport
from transforms.measure import KeyResultOutcome


@dataclass(frozen=True)
class StreamReport:
    """What one stream did in one run; every record read is in exactly one bucket."""

    entity: str | None = None  # what its records become: the key results reading it are touched
    read: int = 0
    loaded: int = 0  # passed validation (new, changed or unchanged)
    duplicates: int = 0  # loaded, but read before in this run: stored once
    written: int = 0  # new or changed in the mirror
    deleted: int = 0  # tombstones written
    quarantined: int = 0
    batches: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    attempts: int = 0
    retries: int = 0
    requests: int = 0  # HTTP requests sent to the source, retries and logins included
    quota: str | None = None  # the source's own account of its quota, when it gives one
    stopped: str | None = None  # why the stream ended before its end, if it did
    failed: str | None = None  # a fatal source error (bad credentials, rejected query)
    notes: tuple[str, ...] = ()  # what the source could not give, and why (Page.notes)
    advice: tuple[str, ...] = ()  # what the operator should know; no record left out
    skipped: str | None = None  # the source lacks the stream's object: why, and what it costs
    gaps: tuple[Gap, ...] = ()  # canonical fields the source cannot fill, each with why
    error: FatalSourceError | None = field(default=None, compare=False, repr=False)
    """The exception behind ``failed``: returned by the task (one log line, no traceback)
    and raised by the flow as it is. Not part of the stored counts."""

    @property
    def whole(self) -> bool:
        """Read to its end with nothing left out: no object missing, no list unreadable.
        Only such a stream's unseen records can be taken for deleted."""
        return self.skipped is None and not self.notes

    def to_dict(self) -> dict[str, Any]:
        """The counts as stored on the run and shown by `okr-sync runs`; gaps as need: why."""
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "error"}
        counts["notes"] = list(self.notes)  # as JSON stores it and reads it back
        counts["advice"] = list(self.advice)
        counts["gaps"] = {gap.need: gap.reason for gap in self.gaps}
        return counts


def source_gaps(
    streams: Mapping[str, StreamReport], earlier: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, tuple[str, ...]]:
    """Each canonical field some source lacks (``entity.field``), with every source's why.

    ``earlier`` holds, per stream this run did not read (a sync of some sources only),
    the gaps its latest read reported (``need: why``, as stored): they still hold.
    """
    found: dict[str, tuple[str, ...]] = {}
    unread = {name: gaps for name, gaps in (earlier or {}).items() if name not in streams}
    pairs = [(gap.need, gap.reason) for report in streams.values() for gap in report.gaps]
    pairs += [(need, why) for gaps in unread.values() for need, why in gaps.items()]
    for need, why in pairs:
        if why not in found.get(need, ()):
            found[need] = (*found.get(need, ()), why)
    return found


@dataclass(frozen=True)
class RunReport:
    """One sync run: its outcome, each stream's counts, and what measuring found."""

    run_id: str
    status: RunStatus
    reason: str | None
    store: str  # the store's display URL (password masked)
    started_at: str
    streams: Mapping[str, StreamReport] = field(default_factory=dict)
    customers: MatchReport | None = None
    findings: tuple[str, ...] = ()
    tombstoned: Mapping[str, int] = field(default_factory=dict)
    key_results: tuple[KeyResultOutcome, ...] = ()
    unreconciled: Mapping[str, str] = field(default_factory=dict)  # source -> why: untouched
    changed: tuple[str, ...] | None = None  # a targeted measuring pass: the entities changed

    def stream_counts(self) -> dict[str, dict[str, Any]]:
        return {name: stream.to_dict() for name, stream in self.streams.items()}

    def details(self) -> dict[str, Any]:
        """What the run keeps beside its stream counts."""
        return {
            "customers": asdict(self.customers) if self.customers else {},
            "findings": list(self.findings),
            "tombstoned": dict(self.tombstoned),
            "unreconciled": dict(self.unreconciled),
            "key_result_errors": {o.key_result_id: o.error for o in self.key_results if o.error},
            "measuring": self.measuring(),
        }

    def measuring(self) -> dict[str, Any]:
        """Which key results were computed and which kept their value (inputs unchanged),
        and which the store's latest measurement holds whole: a later targeted pass reuses
        only those every run since has left current."""
        return {
            "changed": None if self.changed is None else list(self.changed),
            "remeasured": [o.key_result_id for o in self.key_results if not o.reused],
            "reused": [o.key_result_id for o in self.key_results if o.reused],
            "current": [o.key_result_id for o in self.key_results if o.current],
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready plain data (the shape the flow used to return)."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "reason": self.reason,
            "store": self.store,
            "started_at": self.started_at,
            "streams": self.stream_counts(),
            **self.details(),
            "key_results": [asdict(outcome) for outcome in self.key_results],
        }


def latest_gaps(store: Store) -> dict[str, dict[str, str]]:
    """Per stream, the gaps its latest read reported (``need: why``), as the store keeps them."""
    return {
        name: dict(counts.get("gaps") or {}) for name, counts in latest_stream_counts(store).items()
    }
