"""A hubspot-api-client reader from typed settings, and the one place its errors are mapped.

Requests are built by the client's own API classes, but bodies are read raw
(``_preload_content=False``) and parsed with orjson: the client's model objects take ~100x
longer to build (64 ms against 0.65 ms for a 200-deal page, measured here). The client speaks
urllib3, which never reads ``REQUESTS_CA_BUNDLE`` and, without ``ssl_ca_cert``, verifies
against the system store (no certifi fallback), so the settings' CA is the only extra trust.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiError
from hubspot.crm.objects import Filter, FilterGroup, PublicObjectSearchRequest
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiError
from hubspot.crm.owners.exceptions import ApiException as OwnersApiError
from hubspot.crm.pipelines.exceptions import ApiException as PipelinesApiError
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiError
from pyrate_limiter import Duration, Limiter, Rate
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry

from connectors.base import ApiUsage, Bookmark, Gap, Page, Rejected, StreamInfo
from connectors.errors import (
    FatalSourceError,
    HttpFailure,
    SourceErrors,
    classified,
    parse_retry_after,
)
from connectors.hubspot.mapping import (
    CURSOR_FIELD,
    OWNER_CURSOR_FIELD,
    SOURCE,
    Context,
    MappingError,
    Record,
    Stage,
    owner_to_rep,
    parse_timestamp,
    stages_of,
)
from connectors.hubspot.settings import HubSpotSettings
from connectors.hubspot.streams import STREAMS, HubSpotStream
from connectors.secrets import MissingSecretError

PAGE_SIZE = 200  # the search API's maximum
SEARCH_RESULT_CAP = 10_000  # results one search query can page through
ASSOCIATION_BATCH = 1000  # the v4 association batch read's maximum inputs
ARCHIVED_PAGE_SIZE = 100
IDS_PAGE_SIZE = 100  # the objects list API's maximum
OWNERS_PAGE_SIZE = 500
PRIMARY_COMPANY_TYPE_IDS = {"deals": 5, "tickets": 339}
_POLICY_WAIT = {"SECONDLY": 1.0, "TEN_SECONDLY_ROLLING": 10.0}
_API_ERRORS = (
    ObjectsApiError,
    OwnersApiError,
    PipelinesApiError,
    AssociationsApiError,
    PropertiesApiError,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


ERRORS = SourceErrors(
    SOURCE,
    ca_setting="OKR_SYNC_HUBSPOT_CA_BUNDLE",
    # private-app tokens never expire: logging in again cannot help
    auth_hint="the access token is wrong or revoked, check OKR_SYNC_HUBSPOT_ACCESS_TOKEN",
    refused=frozenset({401}),  # a 403 is a missing scope, named in the answer
)


def _answer(exc: Exception) -> HttpFailure | None:
    """The client's ApiException as an HTTP answer (status 0 wraps a transport failure)."""
    if not isinstance(exc, _API_ERRORS) or not exc.status:
        return None
    try:
        body = orjson.loads(exc.body or b"{}")
        body = body if isinstance(body, dict) else {}
    except orjson.JSONDecodeError:
        body = {}
    kind = body.get("category") or body.get("errorType") or exc.reason
    message = str(body.get("message") or "").replace("\n", " ")[:200]
    headers = getattr(exc, "headers", None) or {}
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if retry_after is None and exc.status == 429:  # what HubSpot's rate-limit policy implies
        retry_after = _POLICY_WAIT.get(str(body.get("policyName")))
    return HttpFailure(int(exc.status), f"{kind}: {message}" if message else str(kind), retry_after)


def _body(response: Any) -> Any:
    """The parsed JSON of a raw (``_preload_content=False``) urllib3 response.

    Bytes that are not UTF-8 become U+FFFD (as requests decodes for the other sources),
    so the validator quarantines the one record holding them instead of the whole page
    failing. orjson also refuses what the standard parser reads (a lone surrogate escape
    such as ``\\ud800`` in a name): then the standard parser reads the page, and the
    validator quarantines that record. A body that still does not parse raises as before.
    """
    try:
        data = response.data
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            text = data.decode("utf-8", errors="replace")
            try:
                return json.loads(text)
            except ValueError:
                raise orjson.JSONDecodeError("the body is not JSON", text, 0) from None
    finally:
        response.release_conn()


def _floor_ms(at: datetime) -> int:
    return (at - _EPOCH) // _MS


def _ceil_ms(at: datetime) -> int:
    return -((_EPOCH - at) // _MS)


def _modified_ms(record: Record) -> int | None:
    value = (record.get("properties") or {}).get(CURSOR_FIELD) or record.get("updatedAt")
    try:
        return _floor_ms(parse_timestamp(str(value))) if value else None
    except (ValueError, OverflowError):
        return None


def _numeric_id(value: Any) -> int | None:
    """A HubSpot object id as the number it is compared and sorted as."""
    text = str(value)
    return int(text) if text.isdigit() else None


def _next_after(body: dict[str, Any]) -> str | None:
    after = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


_TRANSPORT_RETRY = Retry(
    total=3, connect=3, read=2, status=0, other=0, redirect=0, respect_retry_after_header=False
)
"""urllib3 retries only what never reached the API; by default it would also sleep through a
429/503's Retry-After on GETs, hiding the wait the flow should schedule."""

_LIMITERS: dict[tuple[str, str, str, int], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()


def _shared_limiter(kind: str, settings: HubSpotSettings, token: str, rate: Rate) -> Limiter:
    digest = hashlib.sha256(token.encode()).hexdigest()
    key = (kind, settings.base_url, digest, rate.limit)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = Limiter(rate)
        return _LIMITERS[key]


def search_limiter(settings: HubSpotSettings, token: str) -> Limiter:
    """One search limiter per portal token in the process.

    HubSpot counts search calls per token, and a sync opens one reader per stream, so a
    limiter per reader would let back-to-back streams burst past the limit.
    """
    rate = Rate(settings.search_requests_per_second, Duration.SECOND)
    return _shared_limiter("search", settings, token, rate)


def request_limiter(settings: HubSpotSettings, token: str) -> Limiter:
    """One limiter for every call per portal token in the process (HubSpot's 10-second burst
    limit counts all of them, whichever reader sends them)."""
    rate = Rate(settings.requests_per_ten_seconds, Duration.SECOND * 10)
    return _shared_limiter("requests", settings, token, rate)


class _Meter:
    """Paces and counts every HTTP attempt of one reader, and keeps the quota it reports."""

    def __init__(self, limiter: Limiter, usage: ApiUsage) -> None:
        self.limiter, self.usage = limiter, usage

    def before(self) -> None:
        self.limiter.try_acquire("request")
        self.usage.requests += 1

    def after(self, response: BaseHTTPResponse) -> None:
        headers = response.headers
        limit = headers.get("X-HubSpot-RateLimit-Daily")
        if limit is not None:
            left = headers.get("X-HubSpot-RateLimit-Daily-Remaining", "?")
            self.usage.quota = f"{left}/{limit} daily API calls remaining"


def _metered_pools(meter: _Meter) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes whose ``urlopen`` goes through ``meter``.

    Pool level, not client level, so urllib3's own transport retries (which re-enter
    ``urlopen``) are paced and counted too, and every API class is covered alike.
    """
    pools: dict[str, type[HTTPConnectionPool]] = {}
    for scheme, base in (("http", HTTPConnectionPool), ("https", HTTPSConnectionPool)):

        def urlopen(
            self: HTTPConnectionPool,
            *args: Any,
            _base: type[HTTPConnectionPool] = base,
            **kwargs: Any,
        ) -> BaseHTTPResponse:
            meter.before()
            response = _base.urlopen(self, *args, **kwargs)
            meter.after(response)
            return response

        pools[scheme] = type(f"Metered{base.__name__}", (base,), {"urlopen": urlopen})
    return pools


@dataclass(frozen=True)
class Account:
    """What the account-info API says about the portal (None: not said, or not readable)."""

    time_zone: str | None = None
    company_currency: str | None = None


class HubSpotReader:
    """Reads CRM objects through the search API, page by page, oldest change first.

    Before it reads an object it learns the portal's schema (the properties API: which
    properties exist and which are dates) and its account details (time zone, company
    currency), each once per reader; a sync opens one reader per stream.
    """

    usage: ApiUsage

    def __init__(self, settings: HubSpotSettings) -> None:
        self.settings = settings
        self.usage = ApiUsage()
        try:
            token = settings.token()
        except MissingSecretError as exc:
            raise FatalSourceError(SOURCE, f"{exc}; set OKR_SYNC_HUBSPOT_ACCESS_TOKEN") from None
        options: dict[str, Any] = {
            "access_token": token,
            "host": settings.base_url.rstrip("/"),
            "retry": _TRANSPORT_RETRY,
        }
        if settings.ca_bundle is not None:
            options["ssl_ca_cert"] = str(settings.ca_bundle)
        client = HubSpot(**options)
        # Each discovery attribute builds a new API client and pool: build them once.
        self._search = client.crm.objects.search_api
        self._objects = client.crm.objects.basic_api
        self._owners = client.crm.owners.owners_api
        self._pipelines = client.crm.pipelines.pipelines_api
        self._associations = client.crm.associations.v4.batch_api
        self._properties = client.crm.properties.core_api
        self._limiter = search_limiter(settings, token)
        pools = _metered_pools(_Meter(request_limiter(settings, token), self.usage))
        for api in self._apis():
            api.api_client.rest_client.pool_manager.pool_classes_by_scheme = pools
        self._stages: dict[str, tuple[dict[str, Stage], dict[str, str]]] = {}
        self._account: tuple[Account, list[str]] | None = None
        self._schemas: dict[str, tuple[dict[str, str] | None, list[str]]] = {}

    # --- reference data, read once per reader ----------------------------------------------

    def stages(self, object_type: str) -> tuple[dict[str, Stage], dict[str, str]]:
        """Stage id -> Stage and pipeline id -> label for deals or tickets."""
        if object_type not in self._stages:
            with classified(ERRORS, f"read {object_type} pipelines", _answer):
                body = _body(
                    self._pipelines.get_all(
                        object_type,
                        _preload_content=False,
                        _request_timeout=self.settings.timeout,
                    )
                )
            self._stages[object_type] = stages_of(body.get("results") or [])
        return self._stages[object_type]

    def account(self) -> tuple[Account, list[str]]:
        """The portal's time zone and company currency (account-info, which the client has
        no class for), and notes on what could not be read. A token the account-info API
        refuses (403) costs the company currency, not the sync."""
        if self._account is None:
            try:
                with classified(ERRORS, "read account details", _answer):
                    body = _body(
                        self._owners.api_client.call_api(
                            "/account-info/v3/details",
                            "GET",
                            header_params={"Accept": "application/json"},
                            auth_settings=["oauth2"],
                            response_types_map={},
                            _return_http_data_only=True,
                            _preload_content=False,
                            _request_timeout=self.settings.timeout,
                        )
                    )
            except FatalSourceError as exc:
                if exc.status != 403:
                    raise
                note = f"{exc}: the portal's company currency and time zone are unknown"
                self._account = (Account(), [note])
            else:
                account = Account(
                    time_zone=str(body.get("timeZone") or "") or None,
                    company_currency=str(body.get("companyCurrency") or "") or None,
                )
                self._account = (account, [])
        return self._account

    def home_currency(self) -> str | None:
        """The portal's company currency, as account-info gives it."""
        return self.account()[0].company_currency

    def property_types(self, object_type: str) -> tuple[dict[str, str] | None, list[str]]:
        """Property name -> HubSpot type (``date``, ``datetime``, ``string``, …) of every
        property the portal has on the object, and notes; None when the token may not read
        the schema (403, the ``crm.schemas.<object>.read`` scope): every property is then
        asked for as before, and date properties are taken for the instants they look like.
        """
        if object_type not in self._schemas:
            try:
                with classified(ERRORS, f"read {object_type} properties", _answer):
                    body = _body(
                        self._properties.get_all(
                            object_type,
                            archived=False,
                            _preload_content=False,
                            _request_timeout=self.settings.timeout,
                        )
                    )
            except FatalSourceError as exc:
                if exc.status != 403:
                    raise
                note = (
                    f"{exc}: every property is asked for unchecked and date properties are "
                    "read as instants (grant the scope to fix both)"
                )
                self._schemas[object_type] = (None, [note])
            else:
                types = {
                    str(item["name"]): str(item.get("type") or "")
                    for item in body.get("results") or []
                    if isinstance(item, dict) and item.get("name")
                }
                self._schemas[object_type] = (types, [])
        return self._schemas[object_type]

    def selected(
        self, spec: HubSpotStream
    ) -> tuple[list[str], dict[str, str], list[str], tuple[Gap, ...]]:
        """The properties to ask for (those the portal has), their types, notes on what could
        not be learnt, and a gap for each wanted property the portal lacks: that field stays
        empty, the key results that need it say so, and the sync goes on."""
        wanted = spec.property_names(self.settings)
        types, notes = self.property_types(str(spec.object_type))
        if types is None:
            return wanted, {}, list(notes), ()
        gaps = tuple(
            Gap(
                spec.field_of(name, self.settings),
                f"HubSpot {spec.object_type} property {name!r} does not exist in this portal"
                + _setting_hint(spec, name, self.settings),
            )
            for name in wanted
            if name not in types
        )
        return [name for name in wanted if name in types], types, list(notes), gaps

    def companies_of(self, object_type: str, ids: list[str]) -> dict[str, str]:
        """Record id -> its (primary) company id, through one v4 batch read."""
        if not ids:
            return {}
        # The API client's configuration: by default each model deep-copies one (~50 µs).
        config = self._associations.api_client.configuration
        inputs = [
            PublicFetchAssociationsBatchRequest(id=i, local_vars_configuration=config) for i in ids
        ]
        batch = BatchInputPublicFetchAssociationsBatchRequest(
            inputs=inputs, local_vars_configuration=config
        )
        with classified(ERRORS, f"read {object_type} company associations", _answer):
            body = _body(
                self._associations.get_page(
                    object_type,
                    "companies",
                    batch,
                    _preload_content=False,
                    _request_timeout=self.settings.timeout,
                )
            )
        primary = PRIMARY_COMPANY_TYPE_IDS.get(object_type)
        found = {}
        for item in body.get("results") or []:
            targets = item.get("to") or []
            chosen = next(
                (
                    t
                    for t in targets
                    if any(k.get("typeId") == primary for k in t.get("associationTypes") or [])
                ),
                targets[0] if targets else None,
            )
            if chosen is not None:
                found[str(item["from"]["id"])] = str(chosen["toObjectId"])
        return found

    # --- streams ----------------------------------------------------------------------------

    def read(
        self, stream: StreamInfo, since: Bookmark | None, until: datetime | None = None
    ) -> Iterator[Page]:
        spec = STREAMS[stream.name]
        if spec.object_type is None:
            yield from self._read_owners(since, until)
            return
        properties, types, notes, gaps = self.selected(spec)
        context = Context(self.settings, types=types)
        if spec.pipelines:
            context.stages, context.pipelines = self.stages(spec.object_type)
        if spec.home_currency or spec.local_days:
            account, account_notes = self.account()
            context.home_currency = account.company_currency if spec.home_currency else None
            notes += account_notes
            if spec.local_days:
                notes += _zone_notes(account, self.settings)
        owed = _archived_since(since)
        pages = _owing(self._search_then_archived(spec, properties, since, until, owed), owed)
        for page in self._mapped(spec, context, pages):
            # said once, with the stream's first page; none of it leaves a record out
            page.advice, notes = notes, []
            page.gaps, gaps = gaps, ()
            yield page

    def _search_then_archived(
        self,
        spec: HubSpotStream,
        properties: list[str],
        since: Bookmark | None,
        until: datetime | None,
        owed: Bookmark | None,
    ) -> Iterator[_RawPage]:
        """The live search from ``since``, then the archived listing from ``owed``."""
        bookmark = since
        for page in self._search_all(spec, properties, since, until):
            bookmark = page.bookmark or bookmark
            yield page
        yield from self._archived(spec, properties, owed, until, bookmark)

    def _search_page(
        self,
        object_type: str,
        properties: list[str],
        groups: list[list[tuple[str, str, int]]],
        sort: str,
        after: str = "0",
    ) -> dict[str, Any]:
        """One keyset page: the first PAGE_SIZE matches (``after`` only past a page that
        gave no record to move the keyset on)."""
        config = self._search.api_client.configuration
        request = PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(
                    filters=[
                        Filter(
                            property_name=name,
                            operator=op,
                            value=str(value),
                            local_vars_configuration=config,
                        )
                        for name, op, value in group
                    ],
                    local_vars_configuration=config,
                )
                for group in groups
                if group
            ],
            sorts=[{"propertyName": sort, "direction": "ASCENDING"}],
            properties=properties,
            limit=PAGE_SIZE,
            after=after,
            local_vars_configuration=config,
        )
        self._limiter.try_acquire("search")
        with classified(ERRORS, f"search {object_type}", _answer):
            body: dict[str, Any] = _body(
                self._search.do_search(
                    object_type,
                    request,
                    _preload_content=False,
                    _request_timeout=self.settings.timeout,
                )
            )
        return body

    def _search_all(
        self,
        spec: HubSpotStream,
        properties: list[str],
        since: Bookmark | None,
        until: datetime | None,
    ) -> Iterator[_RawPage]:
        """Live records in (modified time, id) order, each page a fresh keyset query.

        Every page after the first asks for what follows the newest (modified, id) read:
        ``modified = T and id > last`` OR ``modified > T``. No query pages by offset, so
        records edited mid-read (they move to the end) never shift one past the reader,
        and the 10,000-result cap of one query is never met. A page wholly inside one
        millisecond switches to the exact tie query (``modified = T and id > last``, sorted
        by id) until the tie is read, so any number of records may share one instant.

        HubSpot may answer a page with no record (or none that can be a position) and a
        ``paging.next``: results its index counts but cannot return yet. That is no end
        and no loop: the same query goes on at ``paging.next.after``, as HubSpot's paging
        documents, until a record moves the keyset on, within the 10,000-result cap. A
        ``paging.next`` that leads back to the page just read is a fatal error.
        """
        object_type = str(spec.object_type)
        upper = [(CURSOR_FIELD, "LT", _ceil_ms(until))] if until else []
        start: list[tuple[str, str, int]] = []
        cursor: tuple[int, int] | None = None  # the greatest (modified ms, id) read
        in_tie = False
        if since is not None and since.last_id is not None and since.last_id.isdigit():
            cursor, in_tie = (_floor_ms(since.at), int(since.last_id)), True
        elif since is not None:
            start = [(CURSOR_FIELD, "GTE", _floor_ms(since.at))]
        bookmark, read, whole = since, 0, None
        offset = "0"  # a page of the same query, past results that moved nothing
        while True:
            if cursor is None:
                groups, sort = [start + upper], CURSOR_FIELD
            else:
                at, last = cursor
                tie = [(CURSOR_FIELD, "EQ", at), ("hs_object_id", "GT", last), *upper]
                groups = [tie] if in_tie else [tie, [(CURSOR_FIELD, "GT", at), *upper]]
                sort = "hs_object_id" if in_tie else CURSOR_FIELD
            body = self._search_page(object_type, properties, groups, sort, offset)
            records: list[Record] = body.get("results") or []
            before, instants = cursor, set()
            for record in records:
                modified, record_id = _modified_ms(record), _numeric_id(record.get("id"))
                if modified is None or record_id is None:
                    continue  # kept for the mapping to reject; it cannot be a position
                instants.add(modified)
                if cursor is None or (modified, record_id) > cursor:
                    cursor = (modified, record_id)
            if cursor is not None and cursor != before:
                bookmark = Bookmark(_EPOCH + _MS * cursor[0], last_id=str(cursor[1]))
            if body.get("total") is not None:  # what is read, plus what this query has left
                estimate = read + int(body["total"])
                whole = estimate if whole is None or not in_tie else max(whole, estimate)
            read += len(records)
            yield _RawPage(records, bookmark, whole)
            following = _next_after(body)
            more = following is not None
            if following is not None and cursor == before:
                if not _beyond(following, offset):  # the same page again: it would never end
                    raise FatalSourceError(
                        SOURCE, f"search {object_type}: paging went nowhere at {cursor}"
                    )
                if following.isdigit() and int(following) + PAGE_SIZE > SEARCH_RESULT_CAP:
                    raise FatalSourceError(
                        SOURCE,
                        f"search {object_type}: no readable record in the first "
                        f"{SEARCH_RESULT_CAP:,} results after {cursor}; try again later",
                    )
                offset = following
                continue
            offset = "0"
            if in_tie:
                in_tie = more  # the tie is read: go on with what follows it
            elif not more:
                return
            else:
                in_tie = len(instants) == 1 and len(records) >= PAGE_SIZE

    def _archived(
        self,
        spec: HubSpotStream,
        properties: list[str],
        since: Bookmark | None,
        until: datetime | None,
        bookmark: Bookmark | None,
    ) -> Iterator[_RawPage]:
        """Archived (deleted) records archived at or after ``since`` (the listing's own
        owed start, see :func:`_owing`) and before ``until``, as tombstones.

        The listing cannot filter by time, so it is read whole and filtered here. The
        bookmark only moves forward, to the newest change among them.
        """
        object_type = str(spec.object_type)
        after: str | None = None
        while True:
            with classified(ERRORS, f"list archived {object_type}", _answer):
                body = _body(
                    self._objects.get_page(
                        object_type,
                        limit=ARCHIVED_PAGE_SIZE,
                        after=after,
                        properties=properties,
                        archived=True,
                        _preload_content=False,
                        _request_timeout=self.settings.timeout,
                    )
                )
            records = [r for r in body.get("results") or [] if _archived_in(r, since, until)]
            if records:
                bookmark = _forward(bookmark, records)
                yield _RawPage(records, bookmark, None)
            after = _next_after(body)
            if after is None:
                return

    def _mapped(
        self, spec: HubSpotStream, context: Context, pages: Iterable[_RawPage]
    ) -> Iterator[Page]:
        """Map raw pages; deals and tickets get their companies in one association read per
        ASSOCIATION_BATCH records (five search pages) instead of one per page.

        A page is yielded only once its companies are read, and pages keep their order, so
        each page's bookmark still covers exactly the rows yielded up to it.
        """
        size = ASSOCIATION_BATCH if spec.associated and spec.object_type else 0
        for group in _groups(pages, size):
            if size:
                ids = [str(r.get("id")) for page in group for r in page.records]
                context.companies = self.companies_of(str(spec.object_type), ids)
            for page in group:
                yield self._page(spec, context, page)

    def _page(self, spec: HubSpotStream, context: Context, raw: _RawPage) -> Page:
        page = Page(rows=[], bookmark=raw.bookmark, total=raw.total)
        for record in raw.records:
            try:
                page.rows.append(spec.mapper(record, context))
            except MappingError as exc:
                reason = f"mapping: {exc}"
                page.rejected.append(Rejected(SOURCE, str(record.get("id")), record, [reason]))
        return page

    def _owner_pages(self, archived: bool) -> Iterator[list[Record]]:
        """Active owners, or deactivated ones (``archived``), a listing page at a time."""
        after: str | None = None
        while True:
            with classified(ERRORS, "list owners", _answer):
                body = _body(
                    self._owners.get_page(
                        limit=OWNERS_PAGE_SIZE,
                        after=after,
                        archived=archived,
                        _preload_content=False,
                        _request_timeout=self.settings.timeout,
                    )
                )
            yield body.get("results") or []
            after = _next_after(body)
            if after is None:
                return

    def _read_owners(self, since: Bookmark | None, until: datetime | None) -> Iterator[Page]:
        """Owners have no search: list them all (few), keep the window, sort by updatedAt.

        Ordered by (updatedAt, numeric id) like the searched objects, with the same
        bookmarks: a resume from one with ``last_id`` skips what it covers at ``at``.
        """
        owners: dict[str, Record] = {}
        for archived in (False, True):
            for results in self._owner_pages(archived):
                for owner in results:
                    owners.setdefault(str(owner.get("id")), owner)
        after = None
        if since is not None and since.last_id is not None and since.last_id.isdigit():
            after = (since.at, int(since.last_id))
        keyed = []
        for owner_id, owner in owners.items():
            try:
                updated: datetime | None = parse_timestamp(str(owner[OWNER_CURSOR_FIELD]))
            except (KeyError, ValueError, OverflowError):
                updated = None  # kept, so the mapping rejects it with the reason
            number = _numeric_id(owner_id)
            if updated is not None:
                if not _within(updated, since, until):
                    continue
                if after is not None and number is not None and (updated, number) <= after:
                    continue
            keyed.append((updated or _EPOCH, -1 if number is None else number, owner_id, owner))
        keyed.sort(key=lambda item: (item[0], item[1]))
        context = Context(self.settings)
        bookmark = since
        for start in range(0, len(keyed), PAGE_SIZE):
            page = Page(rows=[], bookmark=bookmark, total=len(keyed))
            for updated, number, owner_id, owner in keyed[start : start + PAGE_SIZE]:
                try:
                    page.rows.append(owner_to_rep(owner, context))
                except MappingError as exc:
                    page.rejected.append(Rejected(SOURCE, owner_id, owner, [f"mapping: {exc}"]))
                if updated > _EPOCH and number >= 0:
                    page.bookmark = Bookmark(updated, last_id=str(number))
            bookmark = page.bookmark
            yield page

    # --- ids, for the reconcile -------------------------------------------------------------

    def ids(self, stream: StreamInfo) -> Iterator[list[str]]:
        """Every live record's id, through the plain objects list (no search, no cap).

        Owners are never deleted here, only deactivated (``active = false``): both the
        active and the deactivated listings count as live, so no rep is tombstoned.
        """
        spec = STREAMS[stream.name]
        if spec.object_type is None:
            for archived in (False, True):
                for results in self._owner_pages(archived):
                    if results:
                        yield [str(owner["id"]) for owner in results]
            return
        object_type = spec.object_type
        after: str | None = None
        while True:
            with classified(ERRORS, f"list {object_type} ids", _answer):
                body = _body(
                    self._objects.get_page(
                        object_type,
                        limit=IDS_PAGE_SIZE,
                        after=after,
                        properties=["hs_object_id"],  # nothing beyond what always comes
                        archived=False,
                        _preload_content=False,
                        _request_timeout=self.settings.timeout,
                    )
                )
            found = [str(record["id"]) for record in body.get("results") or []]
            if found:
                yield found
            after = _next_after(body)
            if after is None:
                return

    def _apis(self) -> tuple[Any, ...]:
        return (
            self._search,
            self._objects,
            self._owners,
            self._pipelines,
            self._associations,
            self._properties,
        )

    def close(self) -> None:
        for api in self._apis():
            api.api_client.rest_client.pool_manager.clear()


@dataclass(frozen=True)
class _RawPage:
    """One response's records, not yet mapped, and where the stream stands after them."""

    records: list[Record]
    bookmark: Bookmark | None
    total: int | None


def _groups(pages: Iterable[_RawPage], size: int) -> Iterator[list[_RawPage]]:
    """Consecutive pages, together holding at most ``size`` records (0: one page each)."""
    group: list[_RawPage] = []
    count = 0
    for page in pages:
        if group and count + len(page.records) > size:
            yield group
            group, count = [], 0
        group.append(page)
        count += len(page.records)
    if group:
        yield group


def _forward(bookmark: Bookmark | None, records: list[Record]) -> Bookmark | None:
    """The bookmark moved to the records' newest change, if that is later (never back)."""
    newest = max((m for m in map(_modified_ms, records) if m is not None), default=None)
    if newest is None:
        return bookmark
    at = _EPOCH + _MS * newest
    return Bookmark(at) if bookmark is None or at > bookmark.at else bookmark


def _beyond(following: str, offset: str) -> bool:
    """Whether a search's ``paging.next.after`` leads past the page just read."""
    if following.isdigit() and offset.isdigit():
        return int(following) > int(offset)
    return following != offset


def _setting_hint(spec: HubSpotStream, name: str, settings: HubSpotSettings) -> str:
    """Which setting names the property, when one does."""
    for key in spec.custom_properties:
        if getattr(settings, key) == name:
            return f"; set OKR_SYNC_HUBSPOT_{key.upper()} to the property that holds it"
    return ""


def _zone_notes(account: Account, settings: HubSpotSettings) -> list[str]:
    """A note when the portal keeps another time zone than the OKR calendar: its users see
    close dates in theirs, okr-sync counts them in the calendar's."""
    if account.time_zone is None:
        return []
    try:
        portal = ZoneInfo(account.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [f"the portal's time zone {account.time_zone!r} is not an IANA zone"]
    calendar = settings.calendar_zone
    year = datetime.now(UTC).year
    instants = [datetime(year, month, 1, tzinfo=UTC) for month in (1, 7)]  # both DST sides
    if all(
        at.astimezone(portal).utcoffset() == at.astimezone(calendar).utcoffset() for at in instants
    ):
        return []
    return [
        f"the portal's time zone is {account.time_zone}, the OKR calendar's is "
        f"{settings.calendar_timezone}: close and lifecycle dates are counted on the "
        "calendar's days (set calendar.timezone in the OKR file to count the portal's)"
    ]


ARCHIVED_SINCE = "archived since "
"""A bookmark's token while the archived listing is still owed: the instant its read must
start from. The search's cursor moves past archives it cannot see; a retry or a killed
run resumes from that cursor, so the listing keeps its own position in the token."""


def _archived_since(since: Bookmark | None) -> Bookmark | None:
    """Where the archived listing starts: the owed position a cut-short read saved, else
    the search's own start (the listing was read through when that cursor was saved)."""
    if since is None or since.token is None:
        return since
    if since.token.startswith(ARCHIVED_SINCE):
        try:
            return Bookmark(datetime.fromisoformat(since.token.removeprefix(ARCHIVED_SINCE)))
        except ValueError:
            pass
    return None  # a token this reader never wrote: read every archived record again


def _owing(pages: Iterable[_RawPage], owed: Bookmark | None) -> Iterator[_RawPage]:
    """The pages, each bookmark holding the archived listing's owed start, except the last
    one's: it is yielded once the listing has been read through, and clears the token."""
    token = ARCHIVED_SINCE + (owed.at if owed is not None else _EPOCH).isoformat()
    held: _RawPage | None = None
    for page in pages:
        if held is not None:
            yield _tokened(held, token)
        held = page
    if held is not None:
        yield _tokened(held, None)


def _tokened(page: _RawPage, token: str | None) -> _RawPage:
    if page.bookmark is None:
        return page
    return _RawPage(page.records, replace(page.bookmark, token=token), page.total)


def _within(at: datetime, since: Bookmark | None, until: datetime | None) -> bool:
    return (since is None or at >= since.at) and (until is None or at < until)


def _archived_in(record: Record, since: Bookmark | None, until: datetime | None) -> bool:
    value = record.get("archivedAt") or record.get("updatedAt")
    try:
        return _within(parse_timestamp(str(value)), since, until) if value else True
    except (ValueError, OverflowError):
        return True  # kept, so the mapping rejects it with the reason
