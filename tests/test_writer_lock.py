"""Two syncs never both write to one store, and a killed sync never leaves it locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from flows.sync import sync_okrs
from okr_sync.cli import DEMO_OKRS
from okr_targets.models import SyncRun
from okr_targets.store import Store, StoreBusyError

HOLD_LOCK = """
import sys, time
from okr_targets.store import Store
store = Store.open(sys.argv[1])
with store.writer_lock():
    print("locked", flush=True)
    time.sleep(60)
"""


def runs(store_url: str) -> int:
    store = Store.open(store_url)
    with store.session() as session:
        count = int(session.scalar(select(func.count()).select_from(SyncRun)) or 0)
    store.dispose()
    return count


@pytest.mark.usefixtures("prefect_harness")
def test_a_second_sync_does_not_start_while_one_writes(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_LOCK_WAIT_SECONDS", "0.1")  # queues, briefly, then gives up
    holder = Store.open(store_url)
    with holder.writer_lock():
        state = sync_okrs(okr_file=str(DEMO_OKRS), store_url=store_url, return_state=True)
        assert state.is_failed()
        assert "another sync is writing" in (state.message or "")
        assert "waited 0.1s for it and did not start" in (state.message or "")
        with pytest.raises(StoreBusyError), Store.open(store_url).writer_lock():
            pass  # pragma: no cover - the lock is held
    holder.dispose()
    assert runs(store_url) == 0, "the refused sync wrote a run"


def test_a_killed_sync_releases_the_lock(store_url: str) -> None:
    Store.open(store_url).dispose()  # migrate before the child races for it
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, store_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(StoreBusyError), Store.open(store_url).writer_lock():
            pass  # pragma: no cover - the child holds the lock
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        # the server notices the dead connection within moments: a bounded wait sees it
        with Store.open(store_url).writer_lock(wait_seconds=10):
            pass
    finally:
        child.kill()
        child.wait(timeout=10)
