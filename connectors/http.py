"""HTTP sessions for connectors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from connectors.errors import FatalSourceError, RetriableSourceError


class TrustedSession(requests.Session):
    """A session whose CA bundle survives ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.

    requests lets those variables replace ``Session.verify`` whenever a request
    does not pass ``verify`` itself, which simple-salesforce never does; that would
    silently drop a sandbox CA. Here an explicitly set ``self.verify`` wins, while
    proxies and the rest still come from the environment.
    """

    def __init__(self, ca_bundle: str | None = None) -> None:
        super().__init__()
        if ca_bundle is not None:
            self.verify = str(ca_bundle)
        self.last_retry_after: float | None = None
        self.hooks["response"].append(self._remember_retry_after)

    def _remember_retry_after(self, response: requests.Response, *_: Any, **__: Any) -> None:
        """Keep the last Retry-After, for clients (simple-salesforce) whose errors drop headers."""
        self.last_retry_after = retry_after(response)

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """Merge as requests does, but keep a session-level verify over the environment's."""
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if (verify is None or verify is True) and self.verify is not True:
            settings["verify"] = self.verify
        return settings


def retry_after(response: requests.Response) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds form), if any."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@contextmanager
def transport_errors(source: str, action: str, ca_setting: str) -> Iterator[None]:
    """Map the transport failures every requests-based connector meets the same way.

    An untrusted certificate is fatal (and says which setting fixes it); a refused, reset,
    timed-out or dropped-mid-body connection and a truncated or non-JSON body are retriable.
    """
    try:
        yield
    except requests.exceptions.SSLError:
        raise FatalSourceError(
            source,
            f"{action} failed: the server's TLS certificate is not trusted; "
            f"set {ca_setting} to its CA file",
        ) from None
    except (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,  # the connection dropped mid-body
    ) as exc:
        raise RetriableSourceError(
            source, f"{action} failed: cannot reach the server ({type(exc).__name__})"
        ) from None
    except ValueError as exc:  # a truncated or non-JSON body
        raise RetriableSourceError(
            source, f"{action} failed: unreadable response ({type(exc).__name__})"
        ) from None
