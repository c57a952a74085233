"""One error taxonomy for every connector: retriable (try again later) or fatal (fix something).

Connectors translate their client library's exceptions here, in one place each, so flows
decide about retries from the class alone and users read one clear line, never a traceback.
"""

from __future__ import annotations


class SourceError(Exception):
    """A source system refused or failed a request; ``str()`` is safe to show and log."""

    def __init__(self, source: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.status = status


class RetriableSourceError(SourceError):
    """Worth retrying: rate limited (429), server errors (5xx), timeouts, dropped connections."""

    def __init__(
        self,
        source: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(source, message, status=status)
        self.retry_after = retry_after


class FatalSourceError(SourceError):
    """Retrying cannot help: bad credentials, a rejected query, a missing object."""


class QuotaGuardError(SourceError):
    """The source's API quota is (nearly) used up: stop now, keep what is written.

    Not retried (the quota refills on the source's clock, not ours); the run ends partial.
    """


def is_retriable_status(status: int) -> bool:
    return status == 429 or status >= 500


def is_retriable(error: BaseException) -> bool:
    return isinstance(error, RetriableSourceError)
