"""Progress of long steps, reported to whoever is watching (the CLI's progress bar).

Flows and tasks call :func:`advance`; the CLI installs a callback with
:func:`watching`. Without one, progress goes to the Prefect logs only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

ProgressCallback = Callable[[str, int, int | None], None]
"""Called with (step label, items just done, expected total if known)."""

_watcher: ContextVar[ProgressCallback | None] = ContextVar("okr_sync_progress", default=None)


@contextmanager
def watching(callback: ProgressCallback) -> Iterator[None]:
    token = _watcher.set(callback)
    try:
        yield
    finally:
        _watcher.reset(token)


def advance(label: str, done: int, total: int | None = None) -> None:
    callback = _watcher.get()
    if callback is not None:
        callback(label, done, total)
