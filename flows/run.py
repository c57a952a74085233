"""A sync recorded as a run from start to end, whatever happens in between.

:func:`recorded_run` begins the run, hands the flow a :class:`RunRecord` to fill step by
step, and always finishes the run with what the steps got to: complete or partial when
they all ran; failed, with a one-line reason, on an expected error (the flow names them)
or a store that refused a write. An unexpected error is recorded as failed too, and goes
on up with its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prefect.context import FlowRunContext
from sqlalchemy.exc import SQLAlchemyError

from flows.logs import run_logger
from flows.measure import Measured
from flows.report import RunReport, StreamReport
from flows.version import __version__
from okr_targets.models import utcnow
from okr_targets.status import RunStatus
from okr_targets.store import Store, begin_run, finish_run
from transforms.matching import MatchReport
from transforms.measure import KeyResultOutcome


@dataclass
class RunRecord:
    """The run as it goes: each step adds what it did, kept even if a later step fails."""

    run_id: str
    store: str
    started_at: str
    streams: dict[str, StreamReport] = field(default_factory=dict)
    tombstoned: dict[str, int] = field(default_factory=dict)
    unreconciled: dict[str, str] = field(default_factory=dict)  # source -> why it changed nothing
    customers: MatchReport | None = None
    findings: tuple[str, ...] = ()
    key_results: tuple[KeyResultOutcome, ...] = ()
    changed: tuple[str, ...] | None = None  # a targeted measuring pass: what changed
    report: RunReport | None = None  # set when the run is finished

    def add(self, measured: Measured) -> None:
        """What measuring found; a full refresh's tombstones replace the reconciled ones."""
        if measured.tombstoned is not None:
            self.tombstoned = measured.tombstoned
        self.customers, self.findings = measured.customers, measured.findings
        self.key_results, self.changed = measured.outcomes, measured.changed

    def outcome(self) -> tuple[RunStatus, str | None]:
        """Complete, or partial with the first reason: a stream stopped, a reconcile gave
        up (its source's mirror left as it was), a key result failed.

        A key result blocked by a field its source lacks is a finding on it, not a failure:
        the run completes, and every run says it until the mapping is set."""
        stopped = [f"{name}: {s.stopped}" for name, s in self.streams.items() if s.stopped]
        errors = [outcome for outcome in self.key_results if outcome.error and not outcome.blocked]
        if stopped:
            return RunStatus.PARTIAL, f"{len(stopped)} stream(s) stopped early: {stopped[0]}"
        if self.unreconciled:
            source, why = next(iter(self.unreconciled.items()))
            reason = f"{len(self.unreconciled)} source(s) not reconciled: {source}: {why}"
            return RunStatus.PARTIAL, reason
        if errors:
            reason = f"{len(errors)} key result(s) could not be computed: {errors[0].error}"
            return RunStatus.PARTIAL, reason
        return RunStatus.COMPLETE, None

    def finish(self, status: RunStatus, reason: str | None) -> RunReport:
        report = RunReport(
            self.run_id,
            status,
            reason,
            self.store,
            self.started_at,
            streams=dict(self.streams),
            customers=self.customers,
            findings=self.findings,
            tombstoned=dict(self.tombstoned),
            unreconciled=dict(self.unreconciled),
            key_results=self.key_results,
            changed=self.changed,
        )
        self.report = report
        return report


@contextmanager
def recorded_run(store: Store, expected: tuple[type[Exception], ...]) -> Iterator[RunRecord]:
    """Begin a run; on the way out record its end. ``expected`` errors end here, as one line."""
    logger = run_logger()
    context = FlowRunContext.get()
    flow_run_id = str(context.flow_run.id) if context and context.flow_run else None
    run_id = begin_run(store, __version__, flow_run_id)
    run = RunRecord(run_id, store.display_url, utcnow().isoformat())
    status = RunStatus.FAILED
    reason: str | None = "unexpected error; see the flow run's logs"
    try:
        yield run
        status, reason = run.outcome()
    except expected as exc:
        reason = str(exc)
        logger.error("sync failed: %s", exc)
    except SQLAlchemyError as exc:
        # The store refused a write: say which statement class failed, never the bound values.
        first_line = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        reason = f"store write failed: {type(exc).__name__}: {first_line}"
        logger.error("sync failed: %s", reason)
        logger.debug("store error details", exc_info=True)
    finally:
        report = run.finish(status, reason)
        finish_run(store, run.run_id, status, reason, report.stream_counts(), report.details())
