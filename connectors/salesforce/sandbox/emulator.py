"""A local emulator of the Salesforce REST API (OAuth token, query, queryAll, paging).

It speaks the same wire format as a real org so the real simple-salesforce client can
be exercised end to end: Salesforce error shapes, query locators with snapshotted
results, ``Sforce-Query-Options`` batch sizes and ``Sforce-Limit-Info`` usage headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.salesforce.sandbox.data import ID_PREFIXES, SalesforceOrg, sf_id
from connectors.salesforce.sandbox.soql import Query, SoqlError, parse_soql
from connectors.sandbox.server import install_faults

ORG_ID = "00D5g000004SANDAAB"
SANDBOX_CLIENT_ID = "okr-sync-sandbox"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - a published sandbox credential
MAX_OPEN_CURSORS = 50
_STATUS_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status,
        headers=dict(headers or {}),
        media_type="application/json;charset=UTF-8",
    )


def _sf_error(
    status: int, error_code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return _json([{"message": message, "errorCode": error_code}], status, headers)


@dataclass
class _Cursor:
    query: Query
    rows: list[Mapping[str, Any]]
    batch: int


@dataclass
class EmulatorState:
    """Everything the app remembers between requests (tokens, API usage, open cursors)."""

    org: SalesforceOrg
    client_id: str
    client_secret: str
    page_size: int
    daily_api_limit: int
    tokens: set[str] = field(default_factory=set)
    api_usage: int = 0
    cursors: OrderedDict[str, _Cursor] = field(default_factory=OrderedDict)
    touched: int = 0  # records changed by the mutate/tie faults so far
    lock: threading.Lock = field(default_factory=threading.Lock)
    _cursor_seq: int = 0

    def open_cursor(self, cursor: _Cursor) -> str:
        """Register a result snapshot; the oldest cursors are dropped like Salesforce does."""
        with self.lock:
            self._cursor_seq += 1
            locator = sf_id("01g", self._cursor_seq)
            self.cursors[locator] = cursor
            while len(self.cursors) > MAX_OPEN_CURSORS:
                self.cursors.popitem(last=False)
            return locator


def _client_credentials(request: Request, form: Mapping[str, list[str]]) -> tuple[str, str]:
    """Credentials from the form body or, as simple-salesforce sends them, HTTP Basic."""
    client_id = form.get("client_id", [""])[0]
    client_secret = form.get("client_secret", [""])[0]
    header = request.headers.get("authorization", "")
    if not client_id and header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return "", ""
        client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret


def create_app(
    org: SalesforceOrg,
    *,
    client_id: str = SANDBOX_CLIENT_ID,
    client_secret: str = SANDBOX_CLIENT_SECRET,
    page_size: int = 2000,
    daily_api_limit: int = 15000,
) -> Starlette:
    """The emulator as an ASGI app; its state lives in ``app.state.emulator``."""
    state = EmulatorState(org, client_id, client_secret, page_size, daily_api_limit)

    async def token(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "client_credentials":
            return _json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                400,
            )
        given_id, given_secret = _client_credentials(request, form)
        if not (
            hmac.compare_digest(given_id, client_id)
            and hmac.compare_digest(given_secret, client_secret)
        ):
            return _json(
                {"error": "invalid_client", "error_description": "invalid client credentials"}, 400
            )
        access_token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        with state.lock:
            state.tokens.add(access_token)
        instance_url = f"{request.url.scheme}://{request.url.netloc}"
        issued_at = str(int(time.time() * 1000))
        users = org.records("User")
        identity = f"{instance_url}/id/{ORG_ID}/{users[0]['Id'] if users else sf_id('005', 0)}"
        digest = hmac.new(client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
        return _json(
            {
                "access_token": access_token,
                "instance_url": instance_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": base64.b64encode(digest.digest()).decode(),
            }
        )

    def authorize(request: Request) -> Response | dict[str, str]:
        """Check the bearer token and count the call; an error response or the usage header."""
        header = request.headers.get("authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else ""
        with state.lock:
            if bearer not in state.tokens:
                return _sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            state.api_usage += 1
            usage = state.api_usage
        headers = {"Sforce-Limit-Info": f"api-usage={usage}/{daily_api_limit}"}
        if usage > daily_api_limit:
            return _sf_error(
                403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", headers
            )
        return headers

    def batch_size(request: Request) -> int:
        options = request.headers.get("sforce-query-options", "")
        for option in options.split(","):
            name, _, value = option.partition("=")
            if name.strip().lower() == "batchsize" and value.strip().isdigit():
                return min(2000, max(200, int(value)))
        return page_size

    def page(
        version: str,
        endpoint: str,
        locator: str,
        cursor: _Cursor,
        offset: int,
        headers: Mapping[str, str],
    ) -> Response:
        end = offset + cursor.batch
        body: dict[str, Any] = {
            "totalSize": len(cursor.rows),
            "done": end >= len(cursor.rows),
            "records": [cursor.query.project(row) for row in cursor.rows[offset:end]],
        }
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/v{version}/{endpoint}/{locator}-{end}"
        return _json(body, headers=headers)

    def run_query(request: Request) -> Response:
        """GET .../query?q= and .../queryAll?q= (runs in a worker thread: big orgs are slow)."""
        auth = authorize(request)
        if isinstance(auth, Response):
            return auth
        endpoint = request.url.path.rstrip("/").rsplit("/", 1)[1]
        text = request.query_params.get("q")
        if not text:
            return _sf_error(400, "MALFORMED_QUERY", "A query string is required (q=...)", auth)
        try:
            query = parse_soql(text, org.schema)
        except SoqlError as exc:
            return _sf_error(400, exc.error_code, exc.located(text), auth)
        rows = query.select(org.records(query.sobject, include_deleted=endpoint == "queryAll"))
        if query.count_only:
            return _json({"totalSize": len(rows), "done": True, "records": []}, headers=auth)
        cursor = _Cursor(query, rows, batch_size(request))
        locator = state.open_cursor(cursor) if len(rows) > cursor.batch else ""
        return page(request.path_params["version"], endpoint, locator, cursor, 0, auth)

    def query_more(request: Request) -> Response:
        """GET .../query/01gXXXX-2000: the next page of a snapshotted result."""
        auth = authorize(request)
        if isinstance(auth, Response):
            return auth
        locator, _, offset = request.path_params["locator"].rpartition("-")
        cursor = state.cursors.get(locator)
        if cursor is None or not offset.isdigit() or int(offset) >= len(cursor.rows):
            return _sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator", auth)
        endpoint = request.url.path.split("/")[4]
        return page(request.path_params["version"], endpoint, locator, cursor, int(offset), auth)

    def global_describe(request: Request) -> Response:
        """GET .../sobjects: the objects this org has (a profile lacks some)."""
        auth = authorize(request)
        if isinstance(auth, Response):
            return auth
        names = sorted({*org.schema, "Organization"})
        return _json(
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [_object_summary(name, org.api_version) for name in names],
            },
            headers=auth,
        )

    def describe(request: Request) -> Response:
        """GET .../sobjects/X/describe: the object's fields, as its schema has them."""
        auth = authorize(request)
        if isinstance(auth, Response):
            return auth
        wanted = request.path_params["sobject"].lower()
        name = next((n for n in org.schema if n.lower() == wanted), None)
        if name is None:
            return _sf_error(404, "NOT_FOUND", "The requested resource does not exist", auth)
        fields = [
            {
                "name": field,
                "type": kind,
                "custom": field.endswith("__c"),
                "nillable": field not in ("Id", "CreatedDate", "LastModifiedDate"),
            }
            for field, kind in org.schema[name].items()
        ]
        return _json({**_object_summary(name, org.api_version), "fields": fields}, headers=auth)

    async def soap(request: Request) -> Response:
        """POST /services/Soap/u/N: getUserInfo, the one SOAP call the connector makes."""
        body = (await request.body()).decode("utf-8", "replace")
        token = re.search(r"<(?:\w+:)?sessionId>([^<]*)</", body)
        with state.lock:
            known = token is not None and html.unescape(token[1]) in state.tokens
        if not known:
            return _soap_fault("sf:INVALID_SESSION_ID", "INVALID_SESSION_ID: Invalid Session ID")
        if "getUserInfo" not in body:
            return _soap_fault("sf:UNKNOWN_EXCEPTION", "only getUserInfo is emulated")
        multi = "CurrencyType" in org.schema
        # As documented: the org's currency only without multiple currencies, the user's
        # only with them; the other is nil.
        company = _xml("orgDefaultCurrencyIsoCode", None if multi else org.currency)
        user = _xml("userDefaultCurrencyIsoCode", org.currency if multi else None)
        result = (
            f"{company}<organizationId>{ORG_ID}</organizationId>"
            f"<organizationMultiCurrency>{str(multi).lower()}</organizationMultiCurrency>{user}"
        )
        return Response(
            _SOAP.format(
                body=f"<getUserInfoResponse><result>{result}</result></getUserInfoResponse>"
            ),
            media_type="text/xml;charset=UTF-8",
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            message = "The requested resource does not exist"
        elif status == 405:
            message = f"HTTP Method '{request.method}' not allowed. Allowed are GET"
        else:
            message = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return _sf_error(status, _STATUS_CODES.get(status, "UNKNOWN_EXCEPTION"), message)

    base = "/services/data/v{version}"
    routes = [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/Soap/u/{version}", soap, methods=["POST"]),
        Route(f"{base}/sobjects", global_describe, methods=["GET"]),
        Route(f"{base}/sobjects/", global_describe, methods=["GET"]),
        Route(f"{base}/sobjects/{{sobject}}/describe", describe, methods=["GET"]),
        Route(f"{base}/sobjects/{{sobject}}/describe/", describe, methods=["GET"]),
    ]
    for endpoint in ("query", "queryAll"):
        routes += [
            Route(f"{base}/{endpoint}", run_query, methods=["GET"]),
            Route(f"{base}/{endpoint}/", run_query, methods=["GET"]),
            Route(f"{base}/{endpoint}/{{locator}}", query_more, methods=["GET"]),
        ]

    def expire_sessions() -> None:
        """Every access token stops working, as when a session times out mid-run."""
        with state.lock:
            state.tokens.clear()

    def mutate(count: int) -> None:
        """Users edit ``count`` opportunities now: the amount moves, SystemModstamp too."""
        for record in _next_opportunities(state, count):
            amount = record.get("Amount")
            org.upsert("Opportunity", {"Id": record["Id"], "Amount": (amount or 0) + 1})

    def tie(count: int) -> None:
        """``count`` opportunities are touched at one instant (a mass update, an import)."""
        stamp = org.upsert("Opportunity", {"Id": _next_opportunities(state, 1)[0]["Id"]})
        shared = {name: stamp[name] for name in ("LastModifiedDate", "SystemModstamp")}
        for record in _next_opportunities(state, count - 1):
            org.upsert("Opportunity", {"Id": record["Id"], **shared})

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.emulator = state
    app.state.expire_sessions, app.state.mutate, app.state.tie = expire_sessions, mutate, tie
    install_faults(app, _fault_body)
    return app


_SOAP = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns="urn:partner.soap.sforce.com" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{body}'
    "</soapenv:Body></soapenv:Envelope>"
)


def _xml(name: str, value: str | None) -> str:
    return f'<{name} xsi:nil="true"/>' if value is None else f"<{name}>{value}</{name}>"


def _soap_fault(code: str, message: str) -> Response:
    """A SOAP fault as Salesforce sends one: HTTP 500, the code and the message."""
    fault = f"<soapenv:Fault><faultcode>{code}</faultcode><faultstring>{message}</faultstring>"
    return Response(
        _SOAP.format(body=fault + "</soapenv:Fault>"), 500, media_type="text/xml;charset=UTF-8"
    )


def _object_summary(name: str, api_version: str) -> dict[str, Any]:
    """An object's entry in the global describe (the part of it a reader looks at)."""
    base = f"/services/data/v{api_version}/sobjects/{name}"
    return {
        "name": name,
        "label": name,
        "custom": name.endswith("__c"),
        "keyPrefix": ID_PREFIXES.get(name),
        "queryable": True,
        "urls": {"sobject": base, "describe": f"{base}/describe"},
    }


def _next_opportunities(state: EmulatorState, count: int) -> list[dict[str, Any]]:
    """The next ``count`` live opportunities in Id order, round-robin across calls."""
    live = sorted(state.org.records("Opportunity"), key=lambda r: str(r["Id"]))
    if not live:
        return []
    with state.lock:
        start, state.touched = state.touched, state.touched + count
    return [live[(start + i) % len(live)] for i in range(min(count, len(live)))]


_FAULT_CODES = {
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests"),
}


def _fault_body(status: int) -> bytes:
    """An injected fault in Salesforce's JSON error shape."""
    code, message = _FAULT_CODES.get(status, ("UNKNOWN_EXCEPTION", "An unexpected error occurred"))
    return orjson.dumps([{"message": message, "errorCode": code}])
