"""The last sync's trouble for a key result (okr_targets/last_sync.py): which key results a
failed or partial run touched, and what each is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from okr_targets.last_sync import last_finished_run, trouble_for
from okr_targets.models import KeyResult, SyncRun
from okr_targets.store import Store

AT = datetime(2026, 11, 27, 4, 30, tzinfo=UTC)
STOPPED = "zendesk: tickets export failed (503 Service Unavailable) (gave up after 3 attempts)"


def _run(status: str, reason: str | None = None, **fields: Any) -> SyncRun:
    return SyncRun(
        id=f"run-{status}",
        started_at=AT,
        finished_at=AT + timedelta(minutes=1),
        status=status,
        reason=reason,
        code_version="test",
        stream_counts=fields.get("stream_counts", {}),
        details=fields.get("details", {}),
    )


def _kr(id: str, reads: list[str] | None) -> KeyResult:
    return KeyResult(id=id, reads=reads)


PARTIAL = _run(
    "partial",
    "1 stream(s) stopped early: zendesk.tickets: …",
    stream_counts={
        "salesforce.Opportunity": {"entity": "deal", "read": 10, "stopped": None},
        "zendesk.tickets": {"entity": "ticket", "read": 4, "stopped": STOPPED},
    },
    details={"key_result_errors": {"revenue": "no exchange rate for EUR on 2026-11-02"}},
)


@pytest.mark.parametrize(
    ("kr", "reason"),
    [
        (_kr("tickets", ["ticket"]), f"zendesk.tickets: {STOPPED}"),  # reads the stopped stream
        (_kr("first-response", ["customer", "ticket"]), f"zendesk.tickets: {STOPPED}"),
        (_kr("win-rate", ["deal"]), None),  # its stream read to the end
        (_kr("custom", None), f"zendesk.tickets: {STOPPED}"),  # says nothing: may read it
        (_kr("launch", []), None),  # a milestone set by hand reads no records
        (_kr("revenue", ["deal", "fx_rate"]), "no exchange rate for EUR on 2026-11-02"),
    ],
)
def test_a_partial_run_touches_the_key_results_reading_what_stopped(
    kr: KeyResult, reason: str | None
) -> None:
    trouble = trouble_for(PARTIAL, kr)
    if reason is None:
        assert trouble is None
        return
    assert trouble is not None
    assert (trouble.run_id, trouble.status, trouble.reason) == ("run-partial", "partial", reason)
    assert trouble.text() == f"last sync partial: {reason}"


def test_a_failed_run_touches_every_key_result_with_its_reason() -> None:
    failed = _run("failed", "salesforce: login failed (401 invalid credentials)")
    for kr in (_kr("win-rate", ["deal"]), _kr("launch", []), _kr("custom", None)):
        trouble = trouble_for(failed, kr)
        assert trouble is not None
        assert (
            trouble.text() == "last sync failed: salesforce: login failed (401 invalid credentials)"
        )
        assert trouble.finished_at == (AT + timedelta(minutes=1)).isoformat()


def test_a_complete_run_touches_nothing() -> None:
    assert trouble_for(_run("complete"), _kr("win-rate", ["deal"])) is None
    assert trouble_for(None, _kr("win-rate", ["deal"])) is None


def test_the_last_sync_is_the_newest_that_ended(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    with store.session() as session, session.begin():
        for n, status in enumerate(("failed", "complete", "running")):
            session.add(
                SyncRun(
                    id=f"run-{n}",
                    started_at=AT + timedelta(hours=n),
                    status=status,
                    code_version="test",
                )
            )
    with store.session() as session:
        last = last_finished_run(session)
        assert last is not None
        assert (last.id, last.status) == ("run-1", "complete")  # the running one is not done
    store.dispose()
