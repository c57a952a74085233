"""Plain-HTTP access to the Zendesk Support API, and the one place its errors are mapped.

One :class:`~connectors.http.TrustedSession` carries the credentials and honours a CA
given in settings even where ``REQUESTS_CA_BUNDLE`` is exported. Nothing is retried
here: a 429 becomes a retriable error carrying ``Retry-After`` and the flow decides when to
try again. The only waits are proactive: process-wide limiters keep the reader under the
account's per-minute limits so it seldom meets a 429 at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests
from pyrate_limiter import Limiter, Rate

from connectors.base import ApiUsage, Bookmark, Page, Rejected, StreamInfo
from connectors.errors import (
    FatalSourceError,
    HttpFailure,
    RetriableSourceError,
    SourceErrors,
    classified,
    parse_retry_after,
)
from connectors.http import TrustedSession
from connectors.secrets import MissingSecretError
from connectors.zendesk.mapping import SOURCE, MappingError, parse_time
from connectors.zendesk.settings import ZendeskSettings
from connectors.zendesk.streams import LIST_PAGE_SIZE, STREAMS, Mapper, ZendeskStream

Record = dict[str, Any]


class StartTimeTooRecentError(FatalSourceError):
    """The export refused a ``start_time`` within the last minute: nothing to read yet."""


def _detail(response: requests.Response) -> str:
    """Zendesk's ``error: description`` on one short line (never a request header)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        error, description = body.get("error"), body.get("description")
        text = f"{error}: {description}" if description else str(error)
    else:
        text = response.reason or "no detail"
    return " ".join(text.split())[:200]


def _answer(response: requests.Response) -> HttpFailure:
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return HttpFailure(response.status_code, _detail(response), retry_after)


BASIC_AUTH_HINT = "check OKR_SYNC_ZENDESK_EMAIL and the API token"
BEARER_HINT = (
    "check the OAuth token in OKR_SYNC_ZENDESK_API_TOKEN: it may have been revoked, "
    "expired or lack the read scope"
)
ERRORS = SourceErrors(SOURCE, ca_setting="OKR_SYNC_ZENDESK_CA_BUNDLE", auth_hint=BASIC_AUTH_HINT)


def _reject(record: Record, exc: MappingError) -> Rejected:
    source_id = record.get("id")
    return Rejected(
        SOURCE, None if source_id is None else str(source_id), record, [f"mapping: {exc}"]
    )


def _changed(record: Record, since: Bookmark | None, until: datetime | None) -> bool:
    """Whether a listed record was updated inside [since, until); unreadable ones are kept
    so the mapping rejects them with a reason."""
    try:
        updated = parse_time(record.get("updated_at"))
    except ValueError:
        return True
    return (since is None or updated >= since.at) and (until is None or updated < until)


def _export_time(record: Record) -> datetime | None:
    """Where a ticket sits in the export: ``generated_timestamp``, else ``updated_at``."""
    stamp = record.get("generated_timestamp")
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        return datetime.fromtimestamp(stamp, tz=UTC)
    try:
        return parse_time(record.get("updated_at"))
    except ValueError:
        return None


def _source_id(record: Record) -> str | None:
    """A record's canonical ``source_id``, as ``mapping`` makes it (None when it has none)."""
    value = record.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


_LIMITERS: dict[tuple[str, str, int, int], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()
LIMIT_MARGIN_MS = 250
"""Extra wait before a call that would fill the window. Zendesk counts a call when it
arrives, the limiter when it leaves: a slow call (the first one's TLS handshake) would
otherwise land one call too many inside Zendesk's minute."""


def account_limiter(base_url: str, kind: str, calls: int, window_seconds: float) -> Limiter:
    """One blocking limiter per account and kind of call in the process.

    Zendesk counts calls per account, and a sync opens one reader per stream, so a limiter
    per reader would let back-to-back streams burst past the limit.
    """
    window_ms = max(1, round(window_seconds * 1000))
    key = (base_url.rstrip("/").lower(), kind, calls, window_ms)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = Limiter(Rate(calls, window_ms), buffer_ms=LIMIT_MARGIN_MS)
        return _LIMITERS[key]


def _quota(response: requests.Response) -> str | None:
    """Zendesk's account of its per-minute limit, from the ``X-Rate-Limit`` headers."""
    limit = response.headers.get("X-Rate-Limit")
    remaining = response.headers.get("X-Rate-Limit-Remaining")
    if limit is None or remaining is None:
        return None
    return f"{remaining}/{limit} requests left this minute"


class MeteredSession(TrustedSession):
    """Counts every request it sends into ``usage``, unanswered ones too (a response hook
    never sees a timeout), and keeps the quota the last response reported."""

    def __init__(self, ca_bundle: str | None, usage: ApiUsage) -> None:
        super().__init__(ca_bundle)
        self.usage = usage

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.usage.requests += 1
        response = super().send(request, **kwargs)
        self.usage.quota = _quota(response) or self.usage.quota
        return response


def _moved(sent: Any, given: Any, action: str) -> None:
    """A next-page cursor equal to the one just sent would ask for the same page forever."""
    if sent is not None and given == sent:
        raise FatalSourceError(
            SOURCE, f"{action}: paging went nowhere (the after_cursor {given!r} repeats)"
        )


class ZendeskReader:
    """Reads Zendesk streams page by page; the whole result is never held in memory."""

    def __init__(self, settings: ZendeskSettings) -> None:
        if not settings.base_url:
            raise FatalSourceError(
                SOURCE, "OKR_SYNC_ZENDESK_BASE_URL is not set (https://{subdomain}.zendesk.com)"
            )
        try:
            token = settings.token()
        except MissingSecretError as exc:
            raise FatalSourceError(SOURCE, f"{exc}; set OKR_SYNC_ZENDESK_API_TOKEN") from None
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.usage = ApiUsage()
        ca_bundle = str(settings.ca_bundle) if settings.ca_bundle else None
        self.session = MeteredSession(ca_bundle, self.usage)
        self.session.headers["Accept"] = "application/json"
        if settings.email:
            self.session.auth = (f"{settings.email}/token", token)
            self.errors = ERRORS
        else:
            self.session.headers["Authorization"] = f"Bearer {token}"
            self.errors = replace(ERRORS, auth_hint=BEARER_HINT)
        window = settings.rate_window_seconds
        self.limiter = account_limiter(self.base_url, "all", settings.requests_per_minute, window)
        self.export_limiter = account_limiter(
            self.base_url, "export", settings.export_requests_per_minute, window
        )

    def get(
        self, path: str, params: dict[str, Any], action: str, *, export: bool = False
    ) -> Record:
        """One GET returning the JSON object body, or a connector error.

        Waits first if the call would pass the account's limit (and, for an incremental
        export call, the export limit): a 429 costs a whole retry, a short wait does not.
        """
        if export:
            self.export_limiter.try_acquire("export")
        self.limiter.try_acquire("all")
        with classified(self.errors, action):
            response = self.session.get(
                self.base_url + path, params=params, timeout=self.settings.timeout
            )
            if not response.ok:
                failure = _answer(response)
                if failure.status == 400 and "Too recent start_time" in failure.detail:
                    raise StartTimeTooRecentError(
                        SOURCE, f"{action} failed (400 {failure.detail})", status=400
                    )
                raise self.errors.for_status(action, failure)
            try:
                body = orjson.loads(response.content)  # several times faster than .json()
            except orjson.JSONDecodeError:  # stricter than json (e.g. integers past 64 bits)
                body = response.json()
        if not isinstance(body, dict):
            raise RetriableSourceError(SOURCE, f"{action} failed: the body is not a JSON object")
        return body

    def read(
        self, stream: StreamInfo, since: Bookmark | None, until: datetime | None = None
    ) -> Iterator[Page]:
        table = _table(stream)
        if table.paging == "cursor_export":
            return self._tickets(table, since, until)
        if table.paging == "time_export":
            return self._organizations(table, since, until)
        params: dict[str, Any] = {}
        if since is not None:  # a rating changes without its list order: look back
            start = since.at - timedelta(days=self.settings.rating_lookback_days)
            params["start_time"] = max(0, int(start.timestamp()))
        return self._listed(table, params, since, until)

    def _tickets(
        self, table: ZendeskStream, since: Bookmark | None, until: datetime | None
    ) -> Iterator[Page]:
        """The cursor-based incremental export: ``start_time`` once, then ``after_cursor``.

        Every page's bookmark holds its ``after_cursor``, so a resumed sync starts right
        after the last page saved. A bounded read (``until``) stops at the first ticket
        exported at or after it and saves no cursor (that cursor would skip the rest);
        the next read then restarts from the newest ``updated_at`` it saved.
        """
        params: dict[str, Any] = {"include": "metric_sets"}
        if since is not None and since.token:
            params["cursor"] = since.token
        else:
            params["start_time"] = int(since.at.timestamp()) if since else 0
        newest = since.at if since else None
        emitted = False
        while True:
            try:
                body = self.get(table.path, params, "tickets export", export=True)
            except StartTimeTooRecentError:
                return  # the bookmark is within the last minute: nothing new yet
            metric_sets = {
                m.get("ticket_id"): m for m in body.get("metric_sets") or [] if isinstance(m, dict)
            }
            page = Page(rows=[], bookmark=None)
            stopped = False
            for record in body.get(table.key) or []:
                exported = _export_time(record)
                if until is not None and exported is not None and exported >= until:
                    stopped = True
                    break
                try:
                    row = table.mapper(record, metric_sets.get(record.get("id")))
                except MappingError as exc:
                    page.rejected.append(_reject(record, exc))
                    continue
                page.rows.append(row)
                modified = row["source_modified_at"]
                newest = modified if newest is None else max(newest, modified)
            emitted = emitted or bool(page.rows)
            cursor = body.get("after_cursor")
            if newest is not None and not stopped:
                page.bookmark = Bookmark(newest, cursor)
            elif newest is not None and emitted:
                page.bookmark = Bookmark(newest)
            yield page
            if stopped or body.get("end_of_stream", True) or not cursor:
                return
            _moved(params.get("cursor"), cursor, "tickets export")
            params = {"cursor": cursor, "include": "metric_sets"}

    def _organizations(
        self, table: ZendeskStream, since: Bookmark | None, until: datetime | None
    ) -> Iterator[Page]:
        """The time-based incremental export, oldest change first, 1000 a page.

        ``start_time`` is inclusive (the bookmark's second is read again) and each
        ``next_page`` restarts at ``end_time``, so organizations sharing the boundary second
        come twice rather than never. Pages are in update order, so each carries the
        newest ``updated_at`` kept so far. Deleted organizations are not exported: the
        reconcile finds them through the list.
        """
        newest = since.at if since else None
        start = int(since.at.timestamp()) if since else 0
        while True:
            try:
                body = self.get(
                    table.path,
                    {"start_time": start},
                    "organizations export",
                    export=True,
                )
            except StartTimeTooRecentError:
                return  # the bookmark is within the last minute: nothing new yet
            records = [r for r in body.get(table.key) or [] if isinstance(r, dict)]
            page = _mapped([r for r in records if _changed(r, since, until)], table.mapper)
            for row in page.rows:
                modified = row["source_modified_at"]
                newest = modified if newest is None else max(newest, modified)
            page.bookmark = Bookmark(newest) if newest is not None else None
            yield page
            end_time = body.get("end_time")
            if body.get("end_of_stream", True) or not isinstance(end_time, int):
                return
            if until is not None and end_time >= until.timestamp():
                return  # everything later is past the flow's cap
            if end_time <= start:
                raise FatalSourceError(
                    SOURCE, f"organizations export: paging went nowhere (end_time {end_time})"
                )
            start = end_time

    def _listed(
        self,
        table: ZendeskStream,
        params: dict[str, Any],
        since: Bookmark | None,
        until: datetime | None,
    ) -> Iterator[Page]:
        """A cursor-paginated list in id order, keeping records changed in [since, until).

        Ids are not update order, so only the last page carries a bookmark (the newest
        ``updated_at`` read): a sync cut short re-reads the list rather than skip records.
        """
        newest = since.at if since else None
        params = {**params, "page[size]": LIST_PAGE_SIZE}
        key = table.key
        while True:
            body = self.get(table.path, params, f"{key} list")
            records = [r for r in body.get(key) or [] if isinstance(r, dict)]
            page = _mapped([r for r in records if _changed(r, since, until)], table.mapper)
            for row in page.rows:
                modified = row["source_modified_at"]
                newest = modified if newest is None else max(newest, modified)
            meta = body.get("meta") or {}
            after = meta.get("after_cursor") if meta.get("has_more") else None
            if after is None:
                page.bookmark = Bookmark(newest) if newest is not None else None
            yield page
            if after is None:
                return
            _moved(params.get("page[after]"), after, f"{key} list")
            params["page[after]"] = after

    def ids(self, stream: StreamInfo) -> Iterator[list[str]]:
        """The ``source_id`` of every live record, a page at a time, for the reconcile.

        Tickets come from the incremental export with ``exclude_deleted``, not from the
        tickets list: that list leaves out archived tickets (closed for 120 days), which
        are live, and the reconcile would tombstone them. A ticket changed while the
        export pages may be listed twice, never missed.
        """
        table = _table(stream)
        if table.paging == "cursor_export":
            return self._export_ids(table)
        return self._list_ids(table.ids_path, table.key)

    def _export_ids(self, table: ZendeskStream) -> Iterator[list[str]]:
        params: dict[str, Any] = {"start_time": 0, "exclude_deleted": "true"}
        while True:
            body = self.get(table.ids_path, params, "tickets export (ids)", export=True)
            yield _ids(body.get(table.key), skip_deleted=True)
            cursor = body.get("after_cursor")
            if body.get("end_of_stream", True) or not cursor:
                return
            _moved(params.get("cursor"), cursor, "tickets export (ids)")
            params = {"cursor": cursor, "exclude_deleted": "true"}

    def _list_ids(self, path: str, key: str) -> Iterator[list[str]]:
        params: dict[str, Any] = {"page[size]": LIST_PAGE_SIZE}
        while True:
            body = self.get(path, params, f"{key} list (ids)")
            yield _ids(body.get(key))
            meta = body.get("meta") or {}
            after = meta.get("after_cursor") if meta.get("has_more") else None
            if after is None:
                return
            _moved(params.get("page[after]"), after, f"{key} list (ids)")
            params["page[after]"] = after

    def close(self) -> None:
        self.session.close()


def _ids(records: Any, *, skip_deleted: bool = False) -> list[str]:
    """Canonical ids of listed records; a deleted ticket (should the source send one) is
    not live, and a record without an integer id never reached the mirror."""
    found: list[str] = []
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict) or (skip_deleted and record.get("status") == "deleted"):
            continue
        source_id = _source_id(record)
        if source_id is not None:
            found.append(source_id)
    return found


def _table(stream: StreamInfo) -> ZendeskStream:
    if stream.name not in STREAMS:
        raise FatalSourceError(SOURCE, f"unknown stream {stream.name!r}")
    return STREAMS[stream.name]


def _mapped(records: list[Record], mapper: Mapper) -> Page:
    page = Page(rows=[], bookmark=None)
    for record in records:
        try:
            page.rows.append(mapper(record, None))
        except MappingError as exc:
            page.rejected.append(_reject(record, exc))
    return page
