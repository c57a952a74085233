"""One retry policy for every call a sync makes to a source: a stream's reads (extract.py)
and the reconcile's id listing (load.py).

Retriable source errors (429, 5xx, timeouts, dropped connections) are retried by tenacity
with jittered exponential backoff that is never sooner than the source's Retry-After,
within ``Settings.retry_budget_seconds`` in all; each retry logs one warning line, worded
alike for both. The Prefect tasks have no retries of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    wait_exponential_jitter,
)

from connectors.errors import RetriableSourceError, is_retriable
from flows.logs import Logger
from flows.settings import Settings


def retrying(settings: Settings, label: str, logger: Logger) -> Retrying:
    """Retriable errors only, backing off, within the whole retry budget; the last error is
    re-raised as it came when the budget runs out."""
    return Retrying(
        retry=retry_if_exception(is_retriable),
        wait=wait_for(settings),
        stop=stop_before_delay(settings.retry_budget_seconds),
        before_sleep=lambda state: logger.warning(
            "%s: %s; retry %d in %.1fs",
            label,
            state.outcome.exception() if state.outcome else "?",
            state.attempt_number,
            state.upcoming_sleep,
        ),
        reraise=True,
    )


def wait_for(settings: Settings) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter, but never sooner than the source's Retry-After."""
    backoff = wait_exponential_jitter(
        initial=settings.retry_initial_seconds,
        max=settings.retry_max_seconds,
        jitter=settings.retry_initial_seconds,
    )

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return max(float(getattr(error, "retry_after", None) or 0.0), backoff(state))

    return wait


def gave_up(error: RetriableSourceError, attempts: int) -> str:
    """Why a read or a listing stopped once the budget ran out: one line."""
    return f"{error} (gave up after {attempts} attempts)"
