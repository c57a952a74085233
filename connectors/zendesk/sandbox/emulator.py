"""A local emulator of the Zendesk Support API subset okr-sync reads, over the real wire format.

Served endpoints: the cursor-based incremental ticket export (with the ``metric_sets``
sideload, ``exclude_deleted``, the 10 requests/minute limit and the "too recent
start_time" refusal), the organizations and satisfaction-ratings lists with cursor
pagination (``page[size]``, ``page[after]``, ``meta``/``links``), the time-based
incremental organization export (``next_page``/``end_time``/``end_of_stream``, sharing the
exports' limit), and ``tickets/show_many``. Every answer carries the account's per-minute limit in
``X-Rate-Limit``/``X-Rate-Limit-Remaining``, and calls beyond it get a 429. Authentication
is an API token (``{email}/token:{token}`` basic auth) or an OAuth bearer token; errors use
Zendesk's ``{"error": …, "description": …}`` shape. The ``mutate`` fault has agents change
tickets mid-sync (:meth:`EmulatorState.mutate`); ``expire`` does not apply, API tokens do
not expire.

Modelling choices (documented where Zendesk's are not): the sandbox's clock runs at least
a minute past its newest change, so data generated for a later ``as_of`` is readable; every
edit is stamped after all earlier ones, which gives a saved ``after_cursor`` the guarantee
Zendesk gets by leaving the last minute out of an export; ``before_cursor`` is always null;
``start_time`` on satisfaction ratings compares ``created_at``.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import math
import random
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.sandbox.server import install_faults
from connectors.zendesk.sandbox.data import Helpdesk, epoch, iso

SANDBOX_EMAIL = "okr-sync@sandbox.example"
SANDBOX_API_TOKEN = "sandbox-api-token"  # noqa: S105 - a published sandbox credential
SANDBOX_OAUTH_TOKEN = "sandbox-oauth-token"  # noqa: S105 - a published sandbox credential
EXPORT_PREFIX = "/api/v2/incremental/"
_NEWEST = 2**63 - 1
_WORKED_ON = {"new": "open", "open": "pending", "pending": "open", "hold": "open"}
"""Status a ticket an agent works on moves to (solved and closed ones are left alone)."""
_PRIORITIES = ("low", "normal", "high", "urgent")


class _BadRequestError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status,
        headers=dict(headers or {}),
        media_type="application/json; charset=utf-8",
    )


def _error(status: int, error: str, description: str | None = None) -> Response:
    body = {"error": error} if description is None else {"error": error, "description": description}
    return _json(body, status)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(token: str) -> str:
    try:
        return base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _BadRequestError("InvalidPaginationParameter", "Invalid cursor") from None


def export_cursor(position: tuple[int, int]) -> str:
    """An export position as Zendesk encodes it (base64 of ``"<time>.0||<id>|"``)."""
    return _b64(f"{position[0]}.0||{position[1]}|")


def _export_position(cursor: str) -> tuple[int, int]:
    stamp, _, rest = _unb64(cursor).partition("||")
    try:
        return int(float(stamp)), int(rest.rstrip("|"))
    except ValueError:
        raise _BadRequestError("InvalidPaginationParameter", "Invalid cursor") from None


def _list_cursor(last_id: int) -> str:
    return _b64(orjson.dumps({"o": "id", "v": last_id}).decode())


def _text_position(cursor: str) -> str:
    """A list cursor's last id, for lists whose ids are text (survey responses' ULIDs)."""
    try:
        value = orjson.loads(_unb64(cursor))["v"]
    except (ValueError, KeyError, TypeError):
        raise _BadRequestError("InvalidPaginationParameter", "Invalid cursor") from None
    if not isinstance(value, str):
        raise _BadRequestError("InvalidPaginationParameter", "Invalid cursor")
    return value


def _list_position(cursor: str) -> int:
    try:
        value = orjson.loads(_unb64(cursor))["v"]
    except (ValueError, KeyError, TypeError):
        raise _BadRequestError("InvalidPaginationParameter", "Invalid cursor") from None
    if not isinstance(value, int):
        raise _BadRequestError("InvalidPaginationParameter", "Invalid cursor")
    return value


def _int_param(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequestError("InvalidValue", f"{name} must be an integer") from None


def _admit(calls: collections.deque[float], limit: int, window: float) -> int | None:
    """Count one call in a sliding window; seconds to wait instead when it is full."""
    clock = time.monotonic()
    while calls and calls[0] <= clock - window:
        calls.popleft()
    if len(calls) >= limit:
        return max(1, math.ceil(calls[0] + window - clock))
    calls.append(clock)
    return None


@dataclass
class EmulatorState:
    """What the app remembers between requests: the helpdesk and the recent calls.

    ``requests_received`` counts every request that reached the server, whatever its
    answer, so tests can check a client's own count.
    """

    helpdesk: Helpdesk
    export_page_size: int
    export_rate_limit: int
    list_page_size: int
    rate_limit: int = 700
    rate_window: float = 60.0
    requests_received: int = 0
    export_calls: collections.deque[float] = field(default_factory=collections.deque)
    account_calls: collections.deque[float] = field(default_factory=collections.deque)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> int:
        """Wall clock, but never less than a minute past the newest change."""
        return max(int(time.time()), self.helpdesk.latest_change() + 60)

    def export_retry_after(self) -> int | None:
        """Count one export call; seconds to wait when over the per-minute limit."""
        with self.lock:
            return _admit(self.export_calls, self.export_rate_limit, self.rate_window)

    def account_call(self) -> tuple[int, int | None]:
        """Count one request against the account limit: (calls left, seconds to wait)."""
        with self.lock:
            self.requests_received += 1
            wait = _admit(self.account_calls, self.rate_limit, self.rate_window)
            return max(0, self.rate_limit - len(self.account_calls)), wait

    def mutate(self, count: int) -> list[int]:
        """Agents at work: ``count`` unsolved tickets change status and priority now.

        The ``mutate`` fault calls this, so a sync paging through the export sees tickets
        change mid-read: each edit gets a fresh ``updated_at``/``generated_timestamp``
        and moves to the end of the export. Returns the changed tickets' ids.
        """
        candidates = self.helpdesk.ticket_ids(_WORKED_ON)
        chosen = sorted(self.rng.sample(candidates, min(count, len(candidates))))
        for ticket_id in chosen:
            ticket = self.helpdesk.tickets[ticket_id]
            priority = ticket.get("priority")
            step = _PRIORITIES.index(priority) + 1 if priority in _PRIORITIES else 1
            self.helpdesk.upsert_ticket(
                {
                    "id": ticket_id,
                    "status": _WORKED_ON[ticket["status"]],
                    "priority": _PRIORITIES[step % len(_PRIORITIES)],
                }
            )
        return chosen


class AccountRateLimit:
    """Pure ASGI middleware, outermost: counts every request against the account's limit,
    answers 429 beyond it, and reports the limit on every answer as Zendesk does."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        remaining, wait = self.state.account_call()
        headers = [
            (b"x-rate-limit", str(self.state.rate_limit).encode()),
            (b"x-rate-limit-remaining", str(remaining).encode()),
        ]
        if wait is not None:
            body = _fault_body(429)
            start_headers = [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(wait).encode()),
                *headers,
            ]
            await send({"type": "http.response.start", "status": 429, "headers": start_headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    helpdesk: Helpdesk,
    *,
    email: str = SANDBOX_EMAIL,
    api_token: str = SANDBOX_API_TOKEN,
    oauth_token: str = SANDBOX_OAUTH_TOKEN,
    export_page_size: int = 1000,
    export_rate_limit: int = 10,
    list_page_size: int = 100,
    rate_limit: int = 700,
    rate_window: float = 60.0,
    csat_off: bool = False,
    too_recent_status: int = 400,
    export_omits: Collection[str] = (),
) -> Starlette:
    """The emulator as an ASGI app; its state lives in ``app.state.emulator``.

    The account's CSAT follows its data: the current CSAT when the helpdesk has an enabled
    survey (:func:`~connectors.zendesk.sandbox.data.add_current_csat`), else the legacy
    one. ``csat_off`` plays an account without CSAT (off, or not on its plan): both CSAT
    APIs answer 403.

    Quirks real accounts show: ``too_recent_status`` is the status of the "Too recent
    start_time" refusal (400 as documented; some accounts answer 422), and
    ``export_omits`` names fields the export pages leave out (``end_time``,
    ``end_of_stream``, ``next_page``).

    ``export_page_size`` (1000 in Zendesk), ``export_rate_limit`` (10 a minute) and
    ``rate_limit`` (the account's calls a minute: 700, Zendesk's documented example, an
    Enterprise plan) are parameters so tests can page small data and hit the limits
    quickly; ``rate_window`` (60 s) shortens the "minute" both limits count over.
    """
    state = EmulatorState(
        helpdesk,
        export_page_size,
        export_rate_limit,
        list_page_size,
        rate_limit=rate_limit,
        rate_window=rate_window,
    )
    basic = "Basic " + _b64(f"{email}/token:{api_token}")
    bearer = f"Bearer {oauth_token}"

    def authorized(request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given, basic) or hmac.compare_digest(given, bearer)

    def base_url(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    def endpoint(handler: Any) -> Any:
        """Authenticate, then turn a handler's bad-request exceptions into Zendesk's 400s."""

        def wrapped(request: Request) -> Response:
            if not authorized(request):
                return _error(401, "Couldn't authenticate you")
            try:
                result: Response = handler(request)
            except _BadRequestError as exc:
                return _error(exc.status, exc.error, exc.description)
            return result

        return wrapped

    def export_refusal() -> Response | None:
        """The 429 once the incremental exports' shared per-minute limit is spent."""
        wait = state.export_retry_after()
        if wait is None:
            return None
        return _json(
            {
                "error": "APIRateLimitExceeded",
                "description": "Number of allowed incremental export API requests "
                "per minute exceeded",
            },
            429,
            {"Retry-After": str(wait)},
        )

    def export_start(request: Request) -> int:
        """``start_time``: required, and at least a minute old."""
        start = _int_param(request, "start_time")
        if start is None:
            raise _BadRequestError("InvalidValue", "start_time or cursor is required")
        if start > state.now() - 60:
            raise _BadRequestError(
                "InvalidValue",
                "Too recent start_time. Use a start_time older than 1 minute",
                status=too_recent_status,
            )
        return start

    def export_body(body: dict[str, Any]) -> Response:
        return _json({k: v for k, v in body.items() if k not in export_omits})

    @endpoint
    def ticket_export(request: Request) -> Response:
        """GET /api/v2/incremental/tickets/cursor.json?start_time=… or ?cursor=…

        ``exclude_deleted=true`` leaves deleted tickets out (the cursor still moves past
        them, so a page may hold fewer tickets than asked for).
        """
        refused = export_refusal()
        if refused is not None:
            return refused
        cursor = request.query_params.get("cursor")
        # a start_time means every ticket with generated_timestamp >= it
        after = _export_position(cursor) if cursor else (export_start(request), 0)
        per_page = _int_param(request, "per_page", export_page_size) or export_page_size
        tickets, metrics, last, more = helpdesk.ticket_page(after, min(per_page, export_page_size))
        carried = ("include", "exclude_deleted")  # what after_url repeats
        kept = {k: v for k, v in request.query_params.items() if k in carried}
        if kept.get("exclude_deleted") == "true":
            tickets = [t for t in tickets if t.get("status") != "deleted"]
            live = {t["id"] for t in tickets}
            metrics = [m for m in metrics if m.get("ticket_id") in live]
        include = kept.get("include", "")
        after_cursor = export_cursor(last)
        query = {"cursor": after_cursor, **kept}
        body: dict[str, Any] = {
            "tickets": tickets,
            "after_url": f"{base_url(request)}{request.url.path}?{urlencode(query)}",
            "after_cursor": after_cursor,
            "before_url": None,
            "before_cursor": None,
            "end_of_stream": not more,
        }
        if "metric_sets" in include.split(","):
            body["metric_sets"] = metrics
        return export_body(body)

    def list_page(
        request: Request, key: str, records: list[dict[str, Any]], more: bool
    ) -> Response:
        after = _list_cursor(records[-1]["id"]) if records else None
        before = _list_cursor(records[0]["id"]) if records else None
        kept = [(k, v) for k, v in request.query_params.multi_items() if not k.startswith("page")]
        size = [("page[size]", str(len(records) or list_page_size))]

        def link(name: str, cursor: str | None) -> str | None:
            if cursor is None:
                return None
            query = urlencode([*kept, *size, (f"page[{name}]", cursor)])
            return f"{base_url(request)}{request.url.path}?{query}"

        return _json(
            {
                key: records,
                "meta": {"has_more": more, "after_cursor": after, "before_cursor": before},
                "links": {
                    "next": link("after", after) if more else None,
                    "prev": link("before", before),
                },
            }
        )

    def page_size(request: Request) -> int:
        size = _int_param(request, "page[size]", list_page_size) or list_page_size
        if not 0 < size <= list_page_size:
            raise _BadRequestError(
                "InvalidPaginationParameter",
                f"page[size] must be between 1 and {list_page_size}",
            )
        return size

    def page_after(request: Request) -> int:
        cursor = request.query_params.get("page[after]")
        return _list_position(cursor) if cursor else 0

    @endpoint
    def organizations(request: Request) -> Response:
        """GET /api/v2/organizations.json?page[size]=…&page[after]=…"""
        found, more = helpdesk.organization_page(page_after(request), page_size(request))
        return list_page(request, "organizations", found, more)

    @endpoint
    def organization_export(request: Request) -> Response:
        """GET /api/v2/incremental/organizations.json?start_time=… (time-based export).

        ``next_page`` restarts at ``end_time`` (the last organization's second), so the
        organizations at that second come again on the next page, as Zendesk documents.
        """
        refused = export_refusal()
        if refused is not None:
            return refused
        start = export_start(request)
        per_page = _int_param(request, "per_page", export_page_size) or export_page_size
        found, more = helpdesk.organization_export(start, min(per_page, export_page_size))
        end_time = epoch(str(found[-1]["updated_at"])) if found else start
        if more and end_time == start:
            end_time += 1  # the page holds every organization of that second
        query = urlencode({"start_time": end_time})
        return export_body(
            {
                "organizations": found,
                "count": len(found),
                "end_time": end_time,
                "next_page": f"{base_url(request)}{request.url.path}?{query}",
                "end_of_stream": not more,
            }
        )

    @endpoint
    def satisfaction_ratings(request: Request) -> Response:
        """GET /api/v2/satisfaction_ratings.json?start_time=…&page[size]=…&page[after]=…"""
        refused = csat_refusal()
        if refused is not None:
            return refused
        start = _int_param(request, "start_time")
        created_from = None if start is None else iso(start)
        found, more = helpdesk.rating_page(page_after(request), page_size(request), created_from)
        return list_page(request, "satisfaction_ratings", found, more)

    def csat_refusal() -> Response | None:
        if not csat_off:
            return None
        return _json(_FAULTS[403], 403)

    @endpoint
    def csat_surveys(request: Request) -> Response:
        """GET /api/v2/guide/{locale}/surveys: the account's CSAT surveys (none on the
        legacy CSAT; the sandbox's modelling choice, Zendesk does not say)."""
        refused = csat_refusal()
        if refused is not None:
            return refused
        surveys = sorted(helpdesk.surveys.values(), key=lambda survey: str(survey["id"]))
        return _json(
            {
                "surveys": surveys,
                "meta": {"has_more": False, "after_cursor": None, "before_cursor": None},
                "links": {"next": None, "prev": None},
            }
        )

    @endpoint
    def survey_responses(request: Request) -> Response:
        """GET /api/v2/guide/survey_responses?filter[created_at_start]=…&page[size]=…
        &page[after]=… (creation order; ``created_at_start`` in epoch seconds, compared
        with when the response was created, which its ULID tells)."""
        refused = csat_refusal()
        if refused is not None:
            return refused
        cursor = request.query_params.get("page[after]")
        after = _text_position(cursor) if cursor else ""
        start = _int_param(request, "filter[created_at_start]")
        found, more = helpdesk.survey_response_page(after, page_size(request), start)
        return list_page(request, "survey_responses", found, more)

    @endpoint
    def show_many(request: Request) -> Response:
        """GET /api/v2/tickets/show_many.json?ids=1,2,3 (at most 100 ids)."""
        text = request.query_params.get("ids", "")
        try:
            ids = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise _BadRequestError("InvalidValue", "ids must be a comma-separated list") from None
        if len(ids) > 100:
            raise _BadRequestError("InvalidValue", "at most 100 ids are allowed")
        return _json({"tickets": helpdesk.show_tickets(ids)})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return _error(404, "InvalidEndpoint", "Not found")
        if status == 405:
            return _error(405, "MethodNotAllowed", f"{request.method} is not allowed here")
        return _error(status, "InternalError", "Something went wrong")

    routes = []
    for path, handler in (
        ("/api/v2/incremental/tickets/cursor", ticket_export),
        ("/api/v2/organizations", organizations),
        ("/api/v2/incremental/organizations", organization_export),
        ("/api/v2/satisfaction_ratings", satisfaction_ratings),
        ("/api/v2/tickets/show_many", show_many),
        ("/api/v2/guide/{locale}/surveys", csat_surveys),
        ("/api/v2/guide/survey_responses", survey_responses),
    ):
        routes += [Route(f"{path}.json", handler, methods=["GET"]), Route(path, handler)]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.emulator = state
    app.state.mutate = state.mutate
    install_faults(app, _fault_body)
    app.add_middleware(AccountRateLimit, state=state)  # outermost: faulted calls count too
    return app


_FAULTS: dict[int, dict[str, str]] = {
    400: {"error": "InvalidValue", "description": "Invalid request"},
    401: {"error": "Couldn't authenticate you"},
    403: {
        "error": "Forbidden",
        "description": "You do not have access to this page. Please contact the account "
        "owner of this help desk for further help.",
    },
    404: {"error": "InvalidEndpoint", "description": "Not found"},
    429: {
        "error": "APIRateLimitExceeded",
        "description": "Number of allowed API requests per minute exceeded",
    },
}


def _fault_body(status: int) -> bytes:
    """An injected fault in Zendesk's JSON error shape."""
    default = {"error": "InternalError", "description": "Something went wrong"}
    return orjson.dumps(_FAULTS.get(status, default))
