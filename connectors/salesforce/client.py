"""A simple-salesforce client from typed settings, and the one place its errors are mapped.

Login is the OAuth 2.0 client-credentials flow against ``login_url`` (a My Domain URL, or
the sandbox), done with the same trusted session the client then uses, so a CA given in
settings is honoured even where ``REQUESTS_CA_BUNDLE`` is exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceError

from connectors.base import Bookmark, Page, Rejected, StreamInfo
from connectors.errors import (
    FatalSourceError,
    QuotaGuardError,
    RetriableSourceError,
    is_retriable_status,
)
from connectors.http import TrustedSession, retry_after, transport_errors
from connectors.salesforce.mapping import SOURCE, MappingError
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.streams import STREAMS
from okr_sync.secrets import MissingSecretError


@contextmanager
def translate_errors(action: str, session: TrustedSession) -> Iterator[None]:
    """Turn client and transport exceptions into the connector error taxonomy."""
    with transport_errors(SOURCE, action, "OKR_SYNC_SALESFORCE_CA_BUNDLE"):
        try:
            yield
        except SalesforceError as exc:
            content = exc.content
            if isinstance(content, list) and content and isinstance(content[0], dict):
                detail = f"{content[0].get('errorCode')}: {content[0].get('message')}"
            else:
                detail = str(content)[:200]
            message = f"{action} failed ({exc.status} {detail})"
            if is_retriable_status(exc.status):
                raise RetriableSourceError(
                    SOURCE, message, status=exc.status, retry_after=session.last_retry_after
                ) from None
            raise FatalSourceError(SOURCE, message, status=exc.status) from None


def _login(session: TrustedSession, settings: SalesforceSettings) -> dict[str, Any]:
    try:
        secret = settings.secret()
    except MissingSecretError as exc:
        raise FatalSourceError(SOURCE, f"{exc}; set OKR_SYNC_SALESFORCE_CLIENT_SECRET") from None
    url = settings.login_url.rstrip("/") + "/services/oauth2/token"
    with translate_errors(f"login at {settings.login_url}", session):
        response = session.post(
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": secret,
            },
            timeout=settings.timeout,
        )
        if response.status_code in (400, 401):
            reason = _oauth_error(response)
            raise FatalSourceError(
                SOURCE,
                f"login at {settings.login_url} refused: {reason}",
                status=response.status_code,
            )
        if response.status_code != 200:
            status = response.status_code
            message = f"login at {settings.login_url} failed with HTTP {status}"
            if is_retriable_status(status):
                raise RetriableSourceError(
                    SOURCE, message, status=status, retry_after=retry_after(response)
                )
            raise FatalSourceError(SOURCE, message, status=status)
        token: dict[str, Any] = response.json()
    return token


def _oauth_error(response: requests.Response) -> str:
    """The reason in an OAuth error body (a dict) or a REST error body (a list)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or f"HTTP {response.status_code}"
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict):
        return response.reason or f"HTTP {response.status_code}"
    return str(
        body.get("error_description") or body.get("error") or body.get("message") or response.reason
    )


class SalesforceReader:
    """Reads SObject streams page by page; the whole result is never held in memory."""

    def __init__(self, settings: SalesforceSettings) -> None:
        self.settings = settings
        self.session = TrustedSession(str(settings.ca_bundle) if settings.ca_bundle else None)
        token = _login(self.session, settings)
        self.client = Salesforce(
            instance_url=token["instance_url"],
            session_id=token["access_token"],
            session=self.session,
            version=settings.api_version,
            parse_float=Decimal,
            object_pairs_hook=dict,
        )

    def soql(self, stream: StreamInfo, since: datetime | None, until: datetime | None) -> str:
        """SELECT … ORDER BY SystemModstamp, Id; bounds are inclusive below, exclusive above."""
        sobject = STREAMS[stream.name]
        query = format_soql(
            "SELECT {:literal} FROM {:literal}",
            ", ".join(sobject.select_fields(self.settings)),
            stream.name,
        )
        conditions = []
        if since is not None:
            conditions.append(format_soql("{:literal} >= {}", stream.cursor_field, since))
        if until is not None:
            conditions.append(format_soql("{:literal} < {}", stream.cursor_field, until))
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        return query + format_soql(" ORDER BY {:literal}, Id", stream.cursor_field)

    def read(
        self, stream: StreamInfo, since: Bookmark | None, until: datetime | None = None
    ) -> Iterator[Page]:
        sobject = STREAMS[stream.name]
        if stream.name == "DatedConversionRate" and not self.settings.dated_rates:
            return
        timeout = self.settings.timeout
        with translate_errors(f"query {stream.name}", self.session):
            result = self.client.query(
                self.soql(stream, since.at if since else None, until),
                include_deleted=sobject.deletable,
                timeout=timeout,
            )
        while True:
            page = Page(rows=[], bookmark=None, total=result.get("totalSize"))
            for record in result["records"]:
                try:
                    row = sobject.mapper(record, self.settings)
                except MappingError as exc:
                    reason = f"mapping: {exc}"
                    page.rejected.append(Rejected(SOURCE, record.get("Id"), record, [reason]))
                    continue
                page.rows.append(row)
                page.bookmark = Bookmark(row["source_modified_at"])
            yield page
            if result.get("done", True):
                return
            self._guard_quota(stream)
            with translate_errors(f"query {stream.name} (next page)", self.session):
                result = self.client.query_more(
                    result["nextRecordsUrl"], identifier_is_url=True, timeout=timeout
                )

    def _guard_quota(self, stream: StreamInfo) -> None:
        """Stop before the org's daily API quota runs out (from Sforce-Limit-Info)."""
        usage = self.client.api_usage.get("api-usage")
        if usage is None or not usage.total:
            return
        if usage.used >= self.settings.quota_stop_fraction * usage.total:
            raise QuotaGuardError(
                SOURCE,
                f"query {stream.name} stopped: {usage.used}/{usage.total} daily API calls used, "
                f"at or past the {self.settings.quota_stop_fraction:.0%} guard",
            )

    def close(self) -> None:
        self.session.close()
