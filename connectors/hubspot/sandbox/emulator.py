"""A local emulator of the HubSpot API subset okr-sync uses, for the real hubspot-api-client.

CRM search (filterGroups, sorts, numeric ``hs_object_id`` filters, ``after`` paging, the
200-per-page and 10,000-result caps, a per-token requests-per-second limit), live and
archived listings, owners, pipelines, property definitions, v4 association batch reads and
account details, with
HubSpot's JSON error shapes, a private-app bearer token, a 10-second burst limit and a daily
limit on every call, and the ``X-HubSpot-RateLimit-*`` headers that report them.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.hubspot.sandbox.data import (
    DATE_PROPERTIES,
    DATETIME_PROPERTIES,
    NUMBER_PROPERTIES,
    OBJECT_TYPES,
    HubSpotPortal,
    Record,
    iso_ms,
    now_ms,
    tie_modified,
    to_ms,
)
from connectors.sandbox.server import install_faults

SANDBOX_ACCESS_TOKEN = "pat-sandbox-0b1d6c2e-okr-sync"  # noqa: S105 - a published sandbox token
SEARCH_PAGE_MAX = 200
SEARCH_RESULT_CAP = 10_000
LIST_PAGE_MAX = 100
OWNERS_PAGE_MAX = 500
ASSOCIATION_BATCH_MAX = 1000
MAX_FILTER_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18

DEFAULT_PROPERTIES = {
    "companies": ("name", "domain"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
    "tickets": (
        "content",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_category",
        "hs_ticket_priority",
        "subject",
    ),
}
_ALWAYS = ("createdate", "hs_lastmodifieddate", "hs_object_id")
_OBJECT_ALIASES = {
    **{name: name for name in OBJECT_TYPES},
    "company": "companies",
    "0-2": "companies",
    "deal": "deals",
    "0-3": "deals",
    "ticket": "tickets",
    "0-5": "tickets",
}
_PRIMARY_TYPE_IDS = {"deals": 5, "tickets": 339}  # "… with Primary Company"
_UNLABELED_TYPE_IDS = {"deals": 341, "tickets": 26}
_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status, headers=dict(headers or {}), media_type="application/json"
    )


def _error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def _error(status: int, category: str, message: str) -> Response:
    return _json(_error_body(category, message), status)


class SearchError(ValueError):
    """A search body HubSpot would refuse with 400 VALIDATION_ERROR."""


@dataclass
class EmulatorState:
    """What the app remembers between requests: token, rate windows, usage and a search log."""

    portal: HubSpotPortal
    access_token: str
    search_requests_per_second: int
    requests_per_ten_seconds: int = 100
    daily_limit: int = 250_000
    search_log: list[float] = field(default_factory=list)  # monotonic arrival of searches
    rate_limited: int = 0  # requests refused by either rate limit
    requests: int = 0  # every HTTP request received, faulted or not: the daily usage
    last_object_type: str = "deals"  # what ``mutate`` changes: the object last paged
    windows: dict[str, deque[float]] = field(default_factory=dict)
    unreturned: set[str] = field(default_factory=set)  # ids search counts but never returns
    burst_windows: dict[str, deque[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit_search(self, token: str) -> bool:
        """Sliding one-second window per token, as HubSpot's SECONDLY search policy."""
        now = time.monotonic()
        with self.lock:
            self.search_log.append(now)
            return self._admit(self.windows, token, now, 1.0, self.search_requests_per_second)

    def admit(self, token: str) -> tuple[bool, int]:
        """Count one request; refuse it past the 10-second burst window of its token.

        Returns whether it is admitted and what is left of the window (for the headers).
        """
        now = time.monotonic()
        with self.lock:
            self.requests += 1
            ok = self._admit(self.burst_windows, token, now, 10.0, self.requests_per_ten_seconds)
            left = self.requests_per_ten_seconds - len(self.burst_windows[token])
            return ok, max(0, left)

    def _admit(
        self, windows: dict[str, deque[float]], token: str, now: float, span: float, limit: int
    ) -> bool:
        window = windows.setdefault(token, deque())
        while window and window[0] <= now - span:
            window.popleft()
        if len(window) >= limit:
            self.rate_limited += 1
            return False
        window.append(now)
        return True

    def mutate(self, count: int) -> list[str]:
        """Change ``count`` live records of the object last paged, as users editing them now.

        Spread over the modified-time order (some already read by a sync under way, some
        not); each gets a new value and an ``hs_lastmodifieddate`` of now, or just after
        the portal's newest change when the sandbox data is dated ahead of the clock.
        """
        object_type = self.last_object_type
        keys, ordered = self.portal.live_index(object_type)
        if not ordered:
            return []
        stamp = max(now_ms(), keys[-1] + 1)
        step = max(1, len(ordered) // count)
        chosen = ordered[::step][:count]
        changed = []
        for record in chosen:
            name = _MUTATED[object_type]
            value = record["properties"].get(name) or ""
            try:
                new = str(Decimal(value) + 1) if value else "1"
            except InvalidOperation:
                new = f"{value} (edited)"
            change = {name: new, "hs_lastmodifieddate": iso_ms(stamp)}
            self.portal.update(object_type, record["id"], change)
            changed.append(str(record["id"]))
        return changed


_MUTATED = {"deals": "amount", "companies": "name", "tickets": "subject"}


# ---------------------------------------------------------------------------
# Search semantics


def _kind(name: str) -> str:
    if name == "hs_object_id":
        return "id"
    if name in DATETIME_PROPERTIES or name in DATE_PROPERTIES:
        return "time"
    return "number" if name in NUMBER_PROPERTIES else "string"


def _key(kind: str, value: str) -> Any:
    """A property value (or filter value) as something that compares like HubSpot does."""
    if kind == "time":
        return to_ms(value)
    if kind == "id":  # numeric, as HubSpot compares and sorts object ids
        return int(value)
    if kind == "number":
        return Decimal(value)
    return value.casefold()


def _value(record: Record, name: str) -> str | None:
    if name == "hs_object_id":
        return str(record["id"])
    value = record["properties"].get(name)
    return None if value in (None, "") else str(value)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": lambda a, b: a == b,
    "NEQ": lambda a, b: a != b,
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
}


def _predicate(spec: Mapping[str, Any]) -> Callable[[Record], bool]:
    """One filter as a test on a record; bad operators or values raise SearchError."""
    name = spec.get("propertyName")
    operator = str(spec.get("operator", "")).upper()
    if not isinstance(name, str) or not name:
        raise SearchError("filter has no propertyName")
    kind = _kind(name)
    if operator == "HAS_PROPERTY":
        return lambda r: _value(r, name) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda r: _value(r, name) is None

    def parse(raw: Any) -> Any:
        try:
            return _key(kind, str(raw))
        except (ValueError, InvalidOperation):
            raise SearchError(f"{raw!r} is not a valid value for property {name}") from None

    if operator in ("IN", "NOT_IN"):
        targets = {parse(v) for v in spec.get("values") or []}
        inside = operator == "IN"

        def member(r: Record) -> bool:
            v = _value(r, name)
            return (v is not None and _key(kind, v) in targets) == inside

        return member
    if operator == "BETWEEN":
        low, high = parse(spec.get("value")), parse(spec.get("highValue"))

        def between(r: Record) -> bool:
            v = _value(r, name)
            return v is not None and low <= _key(kind, v) <= high

        return between
    test = _COMPARE.get(operator)
    if test is None:
        raise SearchError(f"operator {operator!r} is not supported")
    target = parse(spec.get("value"))

    def compare(r: Record) -> bool:
        v = _value(r, name)
        if v is None:
            return operator == "NEQ"
        return test(_key(kind, v), target)

    return compare


_RANGE_OPERATORS = frozenset({"GTE", "GT", "EQ", "BETWEEN", "LT", "LTE"})


def _is_range(spec: Mapping[str, Any], name: str = "hs_lastmodifieddate") -> bool:
    """A filter the (modified time, id) index answers (a bisect instead of a scan)."""
    operator = str(spec.get("operator", "")).upper()
    return spec.get("propertyName") == name and operator in _RANGE_OPERATORS


def _bounds(
    filters: Iterable[Mapping[str, Any]], name: str = "hs_lastmodifieddate"
) -> tuple[int | None, int | None]:
    """The ``[low, high)`` integer range (epoch ms, or object id) the group allows for ``name``."""
    parse = to_ms if name == "hs_lastmodifieddate" else int
    low: int | None = None
    high: int | None = None
    for spec in filters:
        if not _is_range(spec, name):
            continue
        op = str(spec.get("operator", "")).upper()
        value = parse(str(spec.get("value")))
        lows = {"GTE": value, "GT": value + 1, "EQ": value, "BETWEEN": value}
        highs = {"LT": value, "LTE": value + 1, "EQ": value + 1}
        if op == "BETWEEN":
            highs["BETWEEN"] = parse(str(spec.get("highValue"))) + 1
        if op in lows:
            low = lows[op] if low is None else max(low, lows[op])
        if op in highs:
            high = highs[op] if high is None else min(high, highs[op])
    return low, high


def _record_id(record: Record) -> int:
    return int(record["id"])


def _slice(
    keys: list[int], ordered: list[Record], filters: list[Mapping[str, Any]]
) -> tuple[int, int, list[Callable[[Record], bool]]]:
    """Index positions ``[start, end)`` a filter group can match, and its other tests.

    Modified-time bounds are a bisect; inside a single millisecond (a tie block, ordered by
    id) the object-id bounds are one too, so a keyset page of a huge tie is no scan.
    """
    low, high = _bounds(filters)
    start = 0 if low is None else bisect.bisect_left(keys, low)
    end = max(start, len(keys) if high is None else bisect.bisect_left(keys, high))
    indexed = [f for f in filters if _is_range(f)]
    ids = [f for f in filters if _is_range(f, "hs_object_id")]
    if ids and start < end and keys[start] == keys[end - 1]:
        id_low, id_high = _bounds(ids, "hs_object_id")
        if id_low is not None:
            start = bisect.bisect_left(ordered, id_low, start, end, key=_record_id)
        if id_high is not None:
            end = max(start, bisect.bisect_left(ordered, id_high, start, end, key=_record_id))
        indexed += ids
    rest = [_predicate(f) for f in filters if not any(f is i for i in indexed)]
    return start, end, rest


def _sort_rules(sorts: Any) -> list[tuple[str, bool]]:
    """Sort rules as (property, descending); HubSpot takes objects or "-name" strings."""
    rules = []
    for rule in sorts or []:
        if isinstance(rule, str):
            rules.append((rule.lstrip("-"), rule.startswith("-")))
        elif isinstance(rule, dict) and isinstance(rule.get("propertyName"), str):
            direction = str(rule.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise SearchError(f"direction {direction!r} is not ASCENDING or DESCENDING")
            rules.append((rule["propertyName"], direction == "DESCENDING"))
        else:
            raise SearchError(f"invalid sort {rule!r}")
    return rules


def _int_param(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise SearchError(f"{name} must be an integer, got {value!r}") from None
    if number < 0:
        raise SearchError(f"{name} must not be negative")
    return number


_MODIFIED_ASC = [("hs_lastmodifieddate", False)]


def _matching(
    portal: HubSpotPortal,
    object_type: str,
    body: Mapping[str, Any],
    groups: list[Mapping[str, Any]],
    after: int,
    limit: int,
) -> tuple[int, list[Record]]:
    """The total count and one page of matching records, in result order.

    Groups are ORed. When the result order is the index's own, (modified time, id) — sorted
    by modified time, or by id inside one millisecond — each group is a bisected slice of
    the index and the page is a merge of slices: incremental and keyset pages stay cheap
    even at a million records.
    """
    rules = _sort_rules(body.get("sorts"))
    keys, ordered = portal.live_index(object_type)
    query = str(body.get("query") or "").casefold()
    slices = [
        _slice(keys, ordered, list(g.get("filters") or [])) for g in (groups or [{"filters": []}])
    ]
    spans = [(start, end) for start, end, _ in slices if start < end]
    one_instant = len({keys[i] for start, end in spans for i in (start, end - 1)}) <= 1
    by_id = rules in ([], [("hs_object_id", False)])
    if not query and (rules == _MODIFIED_ASC or (by_id and one_instant)):
        positions: list[Sequence[int]] = [
            range(start, end)
            if not rest
            else [i for i in range(start, end) if all(p(ordered[i]) for p in rest)]
            for start, end, rest in slices
        ]
        if len(positions) == 1:
            total = len(positions[0])
            chosen: Iterable[int] = itertools.islice(positions[0], after, after + limit)
        else:
            disjoint = all(a[1] <= b[0] for a, b in itertools.pairwise(sorted(spans)))
            total = sum(map(len, positions)) if disjoint else len(set().union(*positions))
            merged = (i for i, _ in itertools.groupby(heapq.merge(*positions)))
            chosen = itertools.islice(merged, after, after + limit)
        return total, [ordered[i] for i in chosen]
    seen: set[int] = set()
    for start, end, rest in slices:
        seen.update(i for i in range(start, end) if all(p(ordered[i]) for p in rest))
    rows = [ordered[i] for i in sorted(seen)]
    if query:
        names = DEFAULT_PROPERTIES[object_type]
        rows = [r for r in rows if any(query in (_value(r, n) or "").casefold() for n in names)]
    if rules != _MODIFIED_ASC:
        rows.sort(key=_record_id)
        for name, descending in reversed(rules):
            kind = _kind(name)
            present = [r for r in rows if _value(r, name) is not None]
            missing = [r for r in rows if _value(r, name) is None]
            present.sort(key=lambda r: _key(kind, _value(r, name) or ""), reverse=descending)
            rows = present + missing
    return len(rows), rows[after : after + limit]


def run_search(
    portal: HubSpotPortal,
    object_type: str,
    body: Mapping[str, Any],
    unreturned: Collection[str] = (),
) -> dict[str, Any]:
    """POST /crm/v3/objects/{type}/search as HubSpot answers it (raises SearchError on 400s).

    Ties are always broken by object id, so pages are stable. The incremental shape
    (an hs_lastmodifieddate range sorted by it) is a bisect and a slice, even at a million.
    Records in ``unreturned`` are counted and paged over but not returned, as records
    HubSpot's search index holds and cannot serve yet: a page of them alone comes back
    empty with a ``paging.next``.
    """
    limit = _int_param(body.get("limit"), "limit", 10)
    after = _int_param(body.get("after"), "after", 0)
    if limit > SEARCH_PAGE_MAX:
        raise SearchError(f"limit must be at most {SEARCH_PAGE_MAX}, got {limit}")
    if after + limit > SEARCH_RESULT_CAP:
        raise SearchError(
            f"The search endpoints are limited to {SEARCH_RESULT_CAP} total results for any "
            f"given query; after {after} + limit {limit} pages beyond it"
        )
    groups = body.get("filterGroups") or []
    filters = [f for g in groups for f in (g.get("filters") or [])]
    if len(groups) > MAX_FILTER_GROUPS or len(filters) > MAX_FILTERS:
        raise SearchError(f"at most {MAX_FILTER_GROUPS} filterGroups and {MAX_FILTERS} filters")
    if any(len(g.get("filters") or []) > MAX_FILTERS_PER_GROUP for g in groups):
        raise SearchError(f"at most {MAX_FILTERS_PER_GROUP} filters per filterGroup")
    try:
        total, page = _matching(portal, object_type, body, groups, after, limit)
    except (ValueError, InvalidOperation) as exc:
        raise SearchError(str(exc)) from None
    names = body.get("properties") or DEFAULT_PROPERTIES[object_type]
    selected = tuple(dict.fromkeys([*names, *_ALWAYS]))
    answer: dict[str, Any] = {
        "total": total,
        "results": [_project(r, selected) for r in page if r["id"] not in unreturned],
    }
    if after + limit < total:
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer


def _project(record: Record, names: Iterable[str]) -> dict[str, Any]:
    """A record as the API returns it for the requested properties (unset ones: null)."""
    props = record["properties"]
    out: dict[str, Any] = {
        "id": record["id"],
        "properties": {
            name: record["id"] if name == "hs_object_id" else props.get(name) for name in names
        },
        "createdAt": record.get("createdAt"),
        "updatedAt": record.get("updatedAt"),
        "archived": bool(record.get("archived")),
    }
    if record.get("archived"):
        out["archivedAt"] = record.get("archivedAt")
    return out


def _property_names(request: Request) -> list[str]:
    names = []
    for value in request.query_params.getlist("properties"):
        names += [name.strip() for name in value.split(",") if name.strip()]
    return names


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


# ---------------------------------------------------------------------------
# The app


def create_app(
    portal: HubSpotPortal,
    *,
    access_token: str = SANDBOX_ACCESS_TOKEN,
    search_requests_per_second: int = 4,
    requests_per_ten_seconds: int = 100,
    daily_limit: int = 250_000,
) -> Starlette:
    """The emulator as an ASGI app; its state lives in ``app.state.emulator``.

    ``search_requests_per_second`` is the per-token search limit (HubSpot documents four
    or five) and ``requests_per_ten_seconds`` the burst limit on every call (100 for a
    Free/Starter portal); tests make them strict to prove the connector's limiters, or lax
    to go fast. Every answer carries HubSpot's daily and burst usage headers.
    ``app.state.mutate(n)`` changes records now (the ``mutate:N`` fault), ``app.state.tie(n)``
    gives ``n`` deals one modified time (the ``tie:N`` fault), and ids added to
    ``app.state.emulator.unreturned`` are counted by search but never returned; there is no
    ``expire_sessions``: private-app tokens do not expire.
    """
    state = EmulatorState(
        portal, access_token, search_requests_per_second, requests_per_ten_seconds, daily_limit
    )

    def authorize(request: Request) -> Response | str:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if token != state.access_token:
            return _error(401, "INVALID_AUTHENTICATION", _AUTH_MESSAGE)
        return token

    def object_type_of(request: Request) -> str | None:
        object_type = _OBJECT_ALIASES.get(request.path_params["object_type"].lower())
        if object_type is not None:
            state.last_object_type = object_type
        return object_type

    async def search(request: Request) -> Response:
        token = authorize(request)
        if isinstance(token, Response):
            return token
        object_type = object_type_of(request)
        if object_type is None:
            return _error(404, "OBJECT_NOT_FOUND", "Unable to infer object type")
        if not state.admit_search(token):
            return _json(_rate_limit_body(), 429)
        try:
            body = orjson.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise SearchError("request body must be a JSON object")
            return _json(run_search(state.portal, object_type, body, state.unreturned))
        except (SearchError, orjson.JSONDecodeError) as exc:
            return _error(400, "VALIDATION_ERROR", str(exc))

    def list_objects(request: Request) -> Response:
        """GET /crm/v3/objects/{type}?archived=…: pages ordered by id, ``after`` = next id."""
        token = authorize(request)
        if isinstance(token, Response):
            return token
        object_type = object_type_of(request)
        if object_type is None:
            return _error(404, "OBJECT_NOT_FOUND", "Unable to infer object type")
        params = request.query_params
        try:
            limit = min(LIST_PAGE_MAX, _int_param(params.get("limit"), "limit", 10))
            after = _int_param(params.get("after"), "after", 0)
        except SearchError as exc:
            return _error(400, "VALIDATION_ERROR", str(exc))
        archived = _flag(params.get("archived"))
        records = state.portal.by_id(object_type, archived=archived)
        start = bisect.bisect_left(records, after, key=lambda r: int(r["id"]))
        page = records[start : start + limit]
        names = _property_names(request) or DEFAULT_PROPERTIES[object_type]
        selected = tuple(dict.fromkeys([*names, *_ALWAYS]))
        body: dict[str, Any] = {"results": [_project(r, selected) for r in page]}
        if start + limit < len(records):
            next_id = str(records[start + limit]["id"])
            link = f"{request.url.path}?after={next_id}&archived={str(archived).lower()}"
            body["paging"] = {"next": {"after": next_id, "link": link}}
        return _json(body)

    def owners(request: Request) -> Response:
        """GET /crm/v3/owners/: active owners, or deactivated ones with ``archived=true``."""
        token = authorize(request)
        if isinstance(token, Response):
            return token
        params = request.query_params
        try:
            limit = min(OWNERS_PAGE_MAX, _int_param(params.get("limit"), "limit", 100))
            after = _int_param(params.get("after"), "after", 0)
        except SearchError as exc:
            return _error(400, "VALIDATION_ERROR", str(exc))
        archived = _flag(params.get("archived"))
        email = (params.get("email") or "").casefold()
        rows = [
            o
            for o in state.portal.owners
            if bool(o.get("archived")) == archived
            and (not email or str(o.get("email", "")).casefold() == email)
        ]
        body: dict[str, Any] = {"results": rows[after : after + limit]}
        if after + limit < len(rows):
            link = f"{request.url.path}?after={after + limit}"
            body["paging"] = {"next": {"after": str(after + limit), "link": link}}
        return _json(body)

    def pipelines(request: Request) -> Response:
        token = authorize(request)
        if isinstance(token, Response):
            return token
        object_type = object_type_of(request)
        if object_type not in state.portal.pipelines:
            return _error(400, "VALIDATION_ERROR", "Unable to infer object type")
        return _json({"results": state.portal.pipelines[object_type]})

    async def associations(request: Request) -> Response:
        """POST /crm/v4/associations/{from}/{to}/batch/read (207 when some have none)."""
        token = authorize(request)
        if isinstance(token, Response):
            return token
        source = object_type_of(request)
        target = _OBJECT_ALIASES.get(request.path_params["to_type"].lower())
        if source not in _PRIMARY_TYPE_IDS or target != "companies":
            return _error(400, "VALIDATION_ERROR", "association type not supported here")
        try:
            body = orjson.loads(await request.body() or b"{}")
            inputs = [str(item["id"]) for item in body.get("inputs", [])]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return _error(400, "VALIDATION_ERROR", "inputs must be a list of {id}")
        if len(inputs) > ASSOCIATION_BATCH_MAX:
            return _error(400, "VALIDATION_ERROR", f"at most {ASSOCIATION_BATCH_MAX} inputs")
        started = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        results, errors = [], []
        for object_id in inputs:
            companies = state.portal.company_of(source, object_id)
            if not companies:
                errors.append(
                    _error_body(
                        "OBJECT_NOT_FOUND",
                        f"No {target} is associated with {source[:-1]} {object_id}.",
                        subCategory="crm.associations.NO_ASSOCIATIONS_FOUND",
                        context={"fromObjectId": [object_id]},
                    )
                )
                continue
            to = []
            for position, company in enumerate(companies):
                kinds = [{"category": "HUBSPOT_DEFINED", "typeId": _UNLABELED_TYPE_IDS[source]}]
                if position == 0:
                    primary = {"typeId": _PRIMARY_TYPE_IDS[source], "label": "Primary"}
                    kinds.insert(0, {"category": "HUBSPOT_DEFINED", **primary})
                to.append({"toObjectId": int(company), "associationTypes": kinds})
            results.append({"from": {"id": object_id}, "to": to})
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": started,
        }
        if errors:
            answer |= {"numErrors": len(errors), "errors": errors}
        return _json(answer, 207 if errors else 200)

    def account(request: Request) -> Response:
        token = authorize(request)
        if isinstance(token, Response):
            return token
        return _json(state.portal.account)

    def properties(request: Request) -> Response:
        """GET /crm/v3/properties/{object_type}: the portal's property definitions."""
        token = authorize(request)
        if isinstance(token, Response):
            return token
        object_type = _OBJECT_ALIASES.get(request.path_params["object_type"].lower())
        if object_type is None:
            return _error(400, "VALIDATION_ERROR", "Unable to infer object type")
        return _json({"results": state.portal.properties.get(object_type, [])})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return _error(404, "OBJECT_NOT_FOUND", "Resource not found")
        if status == 405:
            return _error(405, "VALIDATION_ERROR", f"HTTP method {request.method} not allowed")
        return _error(status, "INTERNAL_ERROR", "internal error")

    routes = [
        Route("/crm/v3/objects/{object_type}/search", search, methods=["POST"]),
        Route("/crm/v3/objects/{object_type}", list_objects, methods=["GET"]),
        Route("/crm/v3/owners/", owners, methods=["GET"]),
        Route("/crm/v3/owners", owners, methods=["GET"]),
        Route("/crm/v3/pipelines/{object_type}", pipelines, methods=["GET"]),
        Route(
            "/crm/v4/associations/{object_type}/{to_type}/batch/read",
            associations,
            methods=["POST"],
        ),
        Route("/account-info/v3/details", account, methods=["GET"]),
        Route("/crm/v3/properties/{object_type}", properties, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.emulator = state
    app.state.mutate = state.mutate
    app.state.tie = lambda count: tie_modified(state.portal, "deals", count)  # the tie:N fault
    install_faults(app, _fault_body)
    app.add_middleware(UsageMiddleware, state=state)  # outermost: sees every request
    return app


class UsageMiddleware:
    """Counts every request, enforces the burst and daily limits, adds the usage headers.

    HubSpot answers with ``X-HubSpot-RateLimit-Daily`` / ``-Daily-Remaining`` (the
    portal's daily quota) and ``-Max`` / ``-Remaining`` / ``-Interval-Milliseconds`` (the
    10-second burst window); past either limit it answers 429 with the policy's name.
    """

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        admitted, left = state.admit(auth[7:].strip())
        headers = [
            (b"x-hubspot-ratelimit-daily", str(state.daily_limit).encode()),
            (
                b"x-hubspot-ratelimit-daily-remaining",
                str(max(0, state.daily_limit - state.requests)).encode(),
            ),
            (b"x-hubspot-ratelimit-max", str(state.requests_per_ten_seconds).encode()),
            (b"x-hubspot-ratelimit-remaining", str(left).encode()),
            (b"x-hubspot-ratelimit-interval-milliseconds", b"10000"),
        ]
        if state.requests > state.daily_limit:
            admitted = False
            policy = "DAILY"
        else:
            policy = "TEN_SECONDLY_ROLLING"
        if not admitted:
            body = orjson.dumps(_rate_limit_body(policy))
            start = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 429, "headers": start + headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _rate_limit_body(policy: str = "SECONDLY") -> dict[str, Any]:
    return {
        "status": "error",
        "message": f"You have reached your {policy.lower()} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }


_FAULTS = {
    401: ("INVALID_AUTHENTICATION", _AUTH_MESSAGE),
    403: ("MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call."),
}


def _fault_body(status: int) -> bytes:
    """An injected fault in HubSpot's JSON error shape."""
    if status == 429:
        return orjson.dumps(_rate_limit_body())
    category, message = _FAULTS.get(status, ("INTERNAL_ERROR", "internal error"))
    return orjson.dumps(_error_body(category, message))
