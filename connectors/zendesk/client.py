"""Plain-HTTP access to the Zendesk Support API, and the one place its errors are mapped.

One :class:`~connectors.http.TrustedSession` carries the credentials and honours a CA
given in settings even where ``REQUESTS_CA_BUNDLE`` is exported. Nothing is retried
here: a 429 becomes a retriable error carrying ``Retry-After`` and the flow decides when to
try again. The only waits are proactive: process-wide limiters keep the reader under the
account's per-minute limits so it seldom meets a 429 at all.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

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
from connectors.zendesk.mapping import (
    SOURCE,
    CsatQuestion,
    MappingError,
    csat_questions,
    parse_time,
    survey_response_to_rating,
)
from connectors.zendesk.settings import ZendeskSettings
from connectors.zendesk.streams import (
    LIST_PAGE_SIZE,
    STREAMS,
    SURVEY_RESPONSES_PATH,
    SURVEYS_PATH,
    Mapper,
    ZendeskStream,
)

Record = dict[str, Any]


class StartTimeTooRecentError(FatalSourceError):
    """The export refused a ``start_time`` within the last minute: nothing to read yet."""


class NotAvailableError(FatalSourceError):
    """An optional feature's endpoint answered 403 or 404: off, not on the plan, or not
    readable with this token. Its stream says so and reads the rest."""

    def __init__(self, source: str, message: str, *, status: int, reason: str) -> None:
        super().__init__(source, message, status=status)
        self.reason = reason  # "403 Forbidden: You do not have access to this page…"


TOO_RECENT_STATUSES = (400, 422)
"""Zendesk refuses a ``start_time`` within the last minute with a 400 (documented) and,
on some accounts, a 422; either says "Too recent start_time"."""


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
        self._csat: CsatSetup | None = None

    def get(
        self,
        path: str,
        params: dict[str, Any],
        action: str,
        *,
        export: bool = False,
        optional: bool = False,
    ) -> Record:
        """One GET returning the JSON object body, or a connector error.

        Waits first if the call would pass the account's limit (and, for an incremental
        export call, the export limit): a 429 costs a whole retry, a short wait does not.
        An ``optional`` feature's 403 or 404 is a :class:`NotAvailableError`.
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
                status = failure.status
                if status in TOO_RECENT_STATUSES and "too recent" in failure.detail.lower():
                    raise StartTimeTooRecentError(
                        SOURCE, f"{action} failed ({status} {failure.detail})", status=status
                    )
                if optional and status in (403, 404):
                    reason = f"{status} {failure.detail}"
                    raise NotAvailableError(
                        SOURCE, f"{action}: {reason}", status=status, reason=reason
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
        return self._ratings(table, since, until)

    def csat(self) -> CsatSetup:
        """Which CSAT the account runs, asked once per reader (one per stream and run)."""
        if self._csat is None:
            self._csat = self._detect_csat()
        return self._csat

    def _detect_csat(self) -> CsatSetup:
        """The account's CSAT surveys: an enabled one means the current CSAT.

        Zendesk runs one CSAT at a time; an account that moved to the current one keeps its
        legacy ratings, so both are read. A plan or token without survey access leaves the
        legacy CSAT, and says so (an account on the current CSAT must not look empty).
        """
        path = SURVEYS_PATH.format(locale=self.settings.csat_locale)
        surveys: list[Record] = []
        try:
            for records in self._pages(path, "surveys", {}, "CSAT surveys list"):
                surveys += records
        except NotAvailableError as exc:
            return CsatSetup("legacy", {}, has_surveys=False, surveys_refused=exc.reason)
        enabled = any(survey.get("state") == "enabled" for survey in surveys)
        questions = csat_questions(surveys)
        return CsatSetup("current" if enabled else "legacy", questions, has_surveys=bool(surveys))

    def _pages(
        self, path: str, key: str, params: dict[str, Any], action: str
    ) -> Iterator[list[Record]]:
        """The records of an optional feature's list, page by page.

        Cursor pagination is asked for (``page[size]``); an answer in offset pagination
        (``next_page``, no ``meta``, as older accounts and recordings give) is followed too.
        """
        params = {**params, "page[size]": LIST_PAGE_SIZE}
        while True:
            body = self.get(path, params, action, optional=True)
            yield [r for r in body.get(key) or [] if isinstance(r, dict)]
            meta = body.get("meta")
            if not isinstance(meta, dict):
                next_page = body.get("next_page")
                if not isinstance(next_page, str) or not next_page:
                    return
                url = urlsplit(next_page)
                _moved(f"{path}?{urlencode(params)}", f"{url.path}?{url.query}", action)
                path, params = url.path, dict(parse_qsl(url.query))
                continue
            after = meta.get("after_cursor") if meta.get("has_more") else None
            if after is None:
                return
            _moved(params.get("page[after]"), after, action)
            params["page[after]"] = after

    def _ratings(
        self, table: ZendeskStream, since: Bookmark | None, until: datetime | None
    ) -> Iterator[Page]:
        """Satisfaction ratings of whichever CSAT the account has had: the legacy list and,
        when it has CSAT surveys, their survey responses.

        Neither is in update order, so only the last page carries the bookmark (the newest
        change read). Each is asked from the bookmark less ``RATING_LOOKBACK_DAYS``, since a
        survey is filtered by when it was offered, not answered. What cannot be read is a
        note on the stream, never a silently empty stream.
        """
        setup = self.csat()
        start = None
        if since is not None:
            start = since.at - timedelta(days=self.settings.rating_lookback_days)
        newest = since.at if since else None
        notes: list[str] = []
        sources: list[tuple[str, Iterator[Page]]] = [
            ("legacy", self._legacy_ratings(table, start, since, until))
        ]
        if setup.has_surveys:
            sources.append(("current", self._survey_ratings(setup, start, since, until, notes)))
        unreadable: dict[str, NotAvailableError] = {}
        for generation, pages in sources:
            try:
                for page in pages:
                    for row in page.rows:
                        modified = row["source_modified_at"]
                        newest = modified if newest is None else max(newest, modified)
                    yield page
            except NotAvailableError as exc:
                unreadable[generation] = exc
        yield Page(
            rows=[],
            bookmark=Bookmark(newest) if newest else None,
            notes=_csat_notes(setup, unreadable, len(sources)) + notes,
        )

    def _legacy_ratings(
        self,
        table: ZendeskStream,
        start: datetime | None,
        since: Bookmark | None,
        until: datetime | None,
    ) -> Iterator[Page]:
        params: dict[str, Any] = {}
        if start is not None:
            params["start_time"] = max(0, int(start.timestamp()))
        for records in self._pages(table.path, table.key, params, "satisfaction ratings list"):
            yield _mapped([r for r in records if _changed(r, since, until)], table.mapper)

    def _survey_ratings(
        self,
        setup: CsatSetup,
        start: datetime | None,
        since: Bookmark | None,
        until: datetime | None,
        notes: list[str],
    ) -> Iterator[Page]:
        """Survey responses as ratings, kept when their latest answer is in [since, until).

        ``filter[created_at_start]`` is sent in seconds, as documented ("a Unix epoch
        time"): were Zendesk to read it as milliseconds it would ask from January 1970
        and read more, never less.
        """
        params: dict[str, Any] = {}
        if start is not None:
            params["filter[created_at_start]"] = max(0, int(start.timestamp()))
        unanswered = 0
        for records in self._pages(
            SURVEY_RESPONSES_PATH, "survey_responses", params, "survey responses list"
        ):
            page = Page(rows=[], bookmark=None)
            for record in records:
                if not record.get("answers"):
                    unanswered += 1  # offered, not answered yet: nothing to rate
                    continue
                try:
                    row = survey_response_to_rating(record, setup.questions)
                except MappingError as exc:
                    page.rejected.append(_reject(record, exc))
                    continue
                modified = row["source_modified_at"]
                if (since is None or modified >= since.at) and (until is None or modified < until):
                    page.rows.append(row)
            yield page
        if unanswered:
            notes.append(f"{unanswered} survey response(s) not answered yet: read once answered")

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
            if stopped or _ended(body, bool(body.get(table.key))):
                return
            if not isinstance(cursor, str) or not cursor:
                raise FatalSourceError(
                    SOURCE, f"tickets export: {CANNOT_CONTINUE} (no after_cursor)"
                )
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
            flag = body.get("end_of_stream")
            if flag is True:
                return
            end_time = _next_start(body, records)
            if end_time is None:
                if flag is None and not records:
                    return  # no end_of_stream, and an empty page: the end
                raise FatalSourceError(
                    SOURCE,
                    f"organizations export: {CANNOT_CONTINUE} (no end_time, no next_page "
                    "start_time and no organization time to restart from)",
                )
            if until is not None and end_time >= until.timestamp():
                return  # everything later is past the flow's cap
            if end_time <= start:
                if flag is None:  # without end_of_stream: a page that moves on no further
                    return  # is the last (Zendesk restarts each page at its end_time)
                raise FatalSourceError(
                    SOURCE, f"organizations export: paging went nowhere (end_time {end_time})"
                )
            start = end_time

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
        if table.paging == "csat":
            return self._rating_ids(table)
        return self._list_ids(table.ids_path, table.key)

    def _rating_ids(self, table: ZendeskStream) -> Iterator[list[str]]:
        """Legacy ratings' ids, then survey responses' (answered or not: they are live).

        A list that cannot be read is an error here, not a note: the reconcile would
        tombstone every rating it did not list. The one exception is the legacy list of an
        account on the current CSAT, which may be closed to it, and held none of its
        ratings since.
        """
        setup = self.csat()
        try:
            for records in self._pages(table.ids_path, table.key, {}, "ratings list (ids)"):
                yield _ids(records)
        except NotAvailableError:  # a FatalSourceError: the reconcile stops, naming it
            if setup.generation != "current":
                raise
        if setup.has_surveys:
            path, key = SURVEY_RESPONSES_PATH, "survey_responses"
            for records in self._pages(path, key, {}, "survey responses list (ids)"):
                yield [r["id"] for r in records if isinstance(r.get("id"), str)]

    def _export_ids(self, table: ZendeskStream) -> Iterator[list[str]]:
        params: dict[str, Any] = {"start_time": 0, "exclude_deleted": "true"}
        while True:
            body = self.get(table.ids_path, params, "tickets export (ids)", export=True)
            yield _ids(body.get(table.key), skip_deleted=True)
            cursor = body.get("after_cursor")
            if _ended(body, bool(body.get(table.key))):
                return
            if not isinstance(cursor, str) or not cursor:
                raise FatalSourceError(
                    SOURCE, f"tickets export (ids): {CANNOT_CONTINUE} (no after_cursor)"
                )
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


CANNOT_CONTINUE = "a page says more follow but gives nothing to continue from"


def _ended(body: Record, had_records: bool) -> bool:
    """Whether a cursor-based export page is its stream's last.

    Zendesk documents ``end_of_stream`` on every page; a page without it is not taken as
    the end: the export goes on while pages bring records, and the first empty page ends it.
    """
    flag = body.get("end_of_stream")
    if isinstance(flag, bool):
        return flag
    return not had_records


def _next_start(body: Record, records: list[Record]) -> int | None:
    """Where a time-based export's next page starts: ``end_time``, as Zendesk documents;
    else the ``start_time`` of its ``next_page`` URL; else the newest time in the page,
    which is what Zendesk defines ``end_time`` to be."""
    end_time = body.get("end_time")
    if isinstance(end_time, int) and not isinstance(end_time, bool):
        return end_time
    next_page = body.get("next_page")
    if isinstance(next_page, str):
        found = parse_qs(urlsplit(next_page).query).get("start_time", [""])[0]
        if found.isdigit():
            return int(found)
    times = []
    for record in records:
        with contextlib.suppress(ValueError):
            times.append(int(parse_time(record.get("updated_at")).timestamp()))
    return max(times, default=None)


@dataclass(frozen=True)
class CsatSetup:
    """What the account's CSAT is: ``current`` (survey responses) or ``legacy`` (the
    satisfaction ratings list), its surveys' rating questions, and why its surveys could
    not be read, if they could not."""

    generation: str
    questions: dict[str, CsatQuestion]
    has_surveys: bool
    surveys_refused: str | None = None


def _csat_notes(
    setup: CsatSetup, unreadable: dict[str, NotAvailableError], tried: int
) -> list[str]:
    """What the ratings stream says about the CSAT lists it could not read."""
    if len(unreadable) == tried:  # nothing at all: say every reason once
        reasons = [f"{g} list: {exc.reason}" for g, exc in unreadable.items()]
        if setup.surveys_refused:
            reasons.insert(0, f"CSAT surveys: {setup.surveys_refused}")
        return [
            "no CSAT can be read, so the ratings key results have no data ("
            + "; ".join(reasons)
            + "): CSAT needs the Support Professional or Suite Growth plan or above, "
            "CSAT turned on, and an admin's token"
        ]
    notes = []
    if setup.surveys_refused:
        notes.append(
            f"the current CSAT's surveys cannot be read ({setup.surveys_refused}): if this "
            "account uses it, its ratings are missing; check OKR_SYNC_ZENDESK_CSAT_LOCALE "
            "and that the token is an admin's"
        )
    if "legacy" in unreadable:
        notes.append(
            f"legacy satisfaction ratings cannot be read ({unreadable['legacy'].reason}): "
            "ratings given before the account moved to the current CSAT are missing"
        )
    if "current" in unreadable:
        notes.append(
            "the current CSAT's survey responses cannot be read "
            f"({unreadable['current'].reason}): its ratings are missing"
        )
    return notes


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
