"""HTTP sessions for connectors."""

from __future__ import annotations

from typing import Any

import requests

from connectors.errors import parse_retry_after


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
        self.last_retry_after = parse_retry_after(response.headers.get("Retry-After"))

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """Merge as requests does, but keep a session-level verify over the environment's."""
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if (verify is None or verify is True) and self.verify is not True:
            settings["verify"] = self.verify
        return settings
