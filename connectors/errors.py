"""One error taxonomy for every connector: retriable (try again later) or fatal (fix something).

Connectors translate their client library's exceptions here, through one classifier
(:class:`SourceErrors`, :func:`classified`), so flows decide about retries from the class
alone and users read one clear line, worded alike for every source, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import urllib3


def one_line(text: str) -> str:
    """The whole text on one line: each line trimmed, joined by a space.

    Sources put the cause on later lines (a Salesforce SOQL error begins with a newline,
    then the query, a caret, ``ERROR at Row:1:Column:N`` and the reason): cutting at the
    first line would show nothing of it.
    """
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class SourceError(Exception):
    """A source system refused or failed a request; ``str()`` is safe to show and log,
    and is one line holding the source's whole message."""

    def __init__(self, source: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{source}: {one_line(message)}")
        self.source = source
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        """Copied and pickled whole (a stream report holding one is copied by ``asdict``)."""
        return (_rebuilt, (type(self), str(self), self.__dict__))


def _rebuilt(cls: type[SourceError], text: str, state: dict[str, Any]) -> SourceError:
    error = cls.__new__(cls)
    Exception.__init__(error, text)
    error.__dict__.update(state)
    return error


class RetriableSourceError(SourceError):
    """Worth retrying: rate limited (429), server errors (5xx), timeouts, dropped connections,
    a server that refuses connections or is restarting: what may pass by itself."""

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
    """Retrying cannot help: bad credentials, a rejected query, a missing object, an address
    that is no URL, a database, schema or file that does not exist. Fails at once."""


class MissingObjectError(SourceError):
    """The account lacks what a stream reads (an object its edition or features do not
    bring, e.g. Salesforce's CurrencyType in a single-currency org): the stream is skipped
    and the run goes on; the message says what is missing and what that costs."""


class QuotaGuardError(SourceError):
    """The source's API quota is (nearly) used up: stop now, keep what is written.

    Not retried (the quota refills on the source's clock, not ours); the run ends partial.
    """


def is_retriable_status(status: int) -> bool:
    return status == 429 or status >= 500


def is_retriable(error: BaseException) -> bool:
    return isinstance(error, RetriableSourceError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds form), if any."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


NOT_A_URL = (
    requests.exceptions.MissingSchema
    | requests.exceptions.InvalidSchema
    | requests.exceptions.InvalidURL
    | requests.exceptions.URLRequired
    | urllib3.exceptions.LocationValueError  # no host, a bad host, an unknown scheme
)
"""What requests and urllib3 raise for an address that is no URL: permanent, not a network
failure (they are ``ValueError``s and urllib3 ``HTTPError``s, which would read as one)."""


@dataclass(frozen=True)
class HttpFailure:
    """An HTTP answer that is not a success: its status, a one-line reason, its Retry-After."""

    status: int
    detail: str
    retry_after: float | None = None


@dataclass(frozen=True)
class SourceErrors:
    """How one source's failures are classified and worded.

    ``ca_setting`` is the setting that makes a private CA trusted; ``auth_hint`` says what
    to check when the source refuses the credentials, which it does with a status in
    ``refused`` (e.g. not 403 where that means a missing permission or a used-up quota).
    """

    source: str
    ca_setting: str
    auth_hint: str
    refused: frozenset[int] = frozenset({401, 403})

    def for_status(
        self, action: str, failure: HttpFailure, *, refused: Collection[int] | None = None
    ) -> SourceError:
        """429 and 5xx are retriable (with Retry-After); refused credentials and the rest fatal."""
        status = failure.status
        if is_retriable_status(status):
            return RetriableSourceError(
                self.source,
                f"{action} failed ({status} {failure.detail})",
                status=status,
                retry_after=failure.retry_after,
            )
        if status in (self.refused if refused is None else refused):
            return self.auth_refused(action, status, failure.detail)
        return FatalSourceError(
            self.source, f"{action} failed ({status} {failure.detail})", status=status
        )

    def auth_refused(self, action: str, status: int, detail: str) -> FatalSourceError:
        return FatalSourceError(
            self.source, f"{action} refused ({status} {detail}); {self.auth_hint}", status=status
        )

    def tls_not_trusted(self, action: str) -> FatalSourceError:
        return FatalSourceError(
            self.source,
            f"{action} failed: the server's TLS certificate is not trusted; "
            f"set {self.ca_setting} to its CA file",
        )

    def unreachable(self, action: str, reason: str) -> RetriableSourceError:
        return RetriableSourceError(
            self.source, f"{action} failed: cannot reach the server ({reason})"
        )

    def not_a_url(self, action: str, reason: str) -> FatalSourceError:
        return FatalSourceError(
            self.source,
            f"{action} failed: the address is not an http(s) URL ({reason}); "
            "check the source's URL setting",
        )

    def unreadable(self, action: str, reason: str) -> RetriableSourceError:
        return RetriableSourceError(self.source, f"{action} failed: unreadable response ({reason})")

    def for_transport(self, action: str, exc: BaseException) -> SourceError | None:
        """A transport failure of requests or urllib3 (the HTTP clients connectors use), or
        None when ``exc`` is none. A client's own wrapper of one (hubspot-api-client wraps a
        TLS failure) is classified by the failure it wraps."""
        if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
            return self.tls_not_trusted(action)
        if isinstance(exc, NOT_A_URL):  # before the ValueErrors and urllib3 errors they also are
            return self.not_a_url(action, type(exc).__name__)
        if isinstance(exc, urllib3.exceptions.MaxRetryError):
            if isinstance(exc.reason, urllib3.exceptions.SSLError):
                return self.tls_not_trusted(action)
            return self.unreachable(action, type(exc.reason or exc).__name__)
        if isinstance(
            exc,
            requests.ConnectionError
            | requests.Timeout
            | requests.exceptions.ChunkedEncodingError  # the connection dropped mid-body
            | urllib3.exceptions.HTTPError,  # timeouts, dropped connections
        ):
            return self.unreachable(action, type(exc).__name__)
        if isinstance(exc, ValueError):  # a truncated or non-JSON body
            return self.unreadable(action, type(exc).__name__)
        wrapped = exc.__cause__ or exc.__context__
        if isinstance(wrapped, requests.RequestException | urllib3.exceptions.HTTPError):
            return self.for_transport(action, wrapped)
        return None


def _no_answer(_exc: Exception) -> HttpFailure | None:
    return None


@contextmanager
def classified(
    errors: SourceErrors,
    action: str,
    failure_of: Callable[[Exception], HttpFailure | None] = _no_answer,
) -> Iterator[None]:
    """Turn what the block raises into the taxonomy: an HTTP answer (as ``failure_of`` reads
    it from the client's exception) by its status, a transport failure by its kind.
    Connector errors pass through; anything else is re-raised as it is."""
    try:
        yield
    except SourceError:
        raise
    except Exception as exc:
        failure = failure_of(exc)
        error = errors.for_status(action, failure) if failure else errors.for_transport(action, exc)
        if error is None:
            raise
        raise error from None
