"""``okr-sync serve``: the dashboard and its JSON API, live from the store, read-only.

Every view renders the one summary ``build_summary`` makes, so the page, the API and the
exports show the same numbers; the page adds what changed in the week up to it
(``recent_changes``). Building them takes a few hundred milliseconds, so they are
built once per store change (``SummaryCache``): each request asks the store one cheap
question (has anything the summary reads changed?) and is answered from the cache.

Only GET (and HEAD) routes exist. Protection is optional: a bearer token
(``OKR_SYNC_SERVE_TOKEN``) and/or HTTP basic auth (``OKR_SYNC_SERVE_USER`` +
``OKR_SYNC_SERVE_PASSWORD``), read from the environment so they never appear on a command
line, in a page or in a log. The API is described in docs/dashboard.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from flows.settings import OneLineSettings
from okr_targets.changes import (
    Changes,
    WindowError,
    changes_json,
    org_calendar,
    parse_window,
    recent_changes,
    what_changed,
)
from okr_targets.changes_page import render_changes_html
from okr_targets.dashboard import Refresh, render_html
from okr_targets.models import (
    KeyResult,
    Measurement,
    Objective,
    Organisation,
    SourceRead,
    SyncRun,
    utcnow,
)
from okr_targets.store import Store
from okr_targets.summary import (
    SCHEMA_FILE,
    SCHEMA_FILE_V1,
    build_summary,
    key_results,
    summary_csv,
    summary_v1,
)

API = "/api/v1"  # version 1's shape (summary_v1), kept for tools written for it
API_V2 = "/api/v2"  # the summary as the page shows it: header, names, objective status


class ServeSettings(OneLineSettings):
    """Who may read the dashboard; nothing set means anyone who can reach the port."""

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_SERVE_", env_file=".env", extra="ignore")

    token: SecretStr | None = None
    user: str | None = None
    password: SecretStr | None = None
    # How often an open page asks whether the store changed (GET /api/v1/version).
    refresh_seconds: float = Field(default=15.0, ge=0.5, le=3600)

    @model_validator(mode="after")
    def _both_or_neither(self) -> ServeSettings:
        if (self.user is None) != (self.password is None):
            raise ValueError(
                "set both OKR_SYNC_SERVE_USER and OKR_SYNC_SERVE_PASSWORD for basic auth, "
                "or neither"
            )
        return self

    @property
    def protected(self) -> bool:
        return self.token is not None or self.user is not None


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


class _Credentials(AuthenticationBackend):
    """Accept the configured bearer token or basic-auth pair; refuse everything else."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        token, user, password = self.settings.token, self.settings.user, self.settings.password
        if scheme.lower() == "bearer" and token is not None:
            if not _same(value.strip(), token.get_secret_value()):
                raise AuthenticationError("missing or wrong credentials")
            return AuthCredentials(["read"]), SimpleUser("token")
        if scheme.lower() == "basic" and user is not None and password is not None:
            try:
                given_user, _, given_password = (
                    base64.b64decode(value.strip(), validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                raise AuthenticationError("malformed basic credentials") from None
            if _same(given_user, user) & _same(given_password, password.get_secret_value()):
                return AuthCredentials(["read"]), SimpleUser(given_user)
        raise AuthenticationError("missing or wrong credentials")


def _refused(settings: ServeSettings) -> Callable[[HTTPConnection, Exception], Response]:
    challenge = 'Basic realm="okr-sync"' if settings.user is not None else 'Bearer realm="okr-sync"'

    def on_error(_conn: HTTPConnection, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, 401, headers={"WWW-Authenticate": challenge})

    return on_error


def _json(summary: dict[str, Any]) -> str:
    """What ``JSONResponse`` would send: NaN and Infinity are refused, not sent."""
    return json.dumps(
        summary, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    )


# Nothing but the page itself: no scripts, styles or images from elsewhere.
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def store_version(store: Store) -> tuple[Any, ...]:
    """What changes whenever the summary's numbers or OKRs can: a new measurement, a run
    begun or finished, a source read, a key result or objective edited, confirmed, added or
    removed, the company or people renamed. One query of scalar subqueries, cheap enough
    for every request."""
    parts = (
        func.max(Measurement.id),
        func.count(SyncRun.id),
        func.max(SyncRun.finished_at),
        func.max(SourceRead.read_at),
        func.count(KeyResult.id),
        func.max(KeyResult.updated_at),
        func.max(KeyResult.checked_at),
        func.count(Objective.id),
        func.max(Objective.updated_at),
        func.max(Organisation.updated_at),
    )
    with store.session() as session:
        row = session.execute(select(*(select(part).scalar_subquery() for part in parts))).one()
    return tuple(row)


def version_tag(version: tuple[Any, ...]) -> str:
    """A short opaque tag of a store version: what the page compares to see a change."""
    return hashlib.sha256(repr(version).encode()).hexdigest()[:16]


def last_change(version: tuple[Any, ...]) -> datetime | None:
    """The newest moment in a store version: when the store last changed what the page shows."""
    return max((part for part in version if isinstance(part, datetime)), default=None)


@dataclass
class Snapshot:
    """One built summary, what changed in the week up to it (the page's "what changed"
    section), and the views rendered from them, each rendered once."""

    version: tuple[Any, ...]
    built_at: datetime
    summary: dict[str, Any]
    changes: Changes
    views: dict[str, str] = field(default_factory=dict)

    def view(self, name: str, render: Callable[[dict[str, Any]], str]) -> str:
        if name not in self.views:  # a race renders twice, harmlessly: the same text
            self.views[name] = render(self.summary)
        return self.views[name]


@dataclass
class SummaryCache:
    """The summary as of the store's last change, rebuilt at most once per change.

    Scoring reads the clock too (expected progress, staleness, data age), so a snapshot
    is also rebuilt once it is ``max_age`` old; within that it is exactly what
    ``build_summary`` gives at its ``generated_at``. The lock makes concurrent requests
    after a change wait for one build rather than each start their own.
    """

    store: Store
    clock: Callable[[], datetime] = utcnow
    max_age: timedelta = timedelta(seconds=60)
    _current: Snapshot | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> Snapshot:
        version = store_version(self.store)
        with self._lock:
            now, current = self.clock(), self._current
            if (
                current is None
                or current.version != version
                or not current.built_at <= now < current.built_at + self.max_age
            ):
                with self.store.session() as session:
                    summary = build_summary(session, now, self.store.display_url)
                    changes = recent_changes(session, now)
                current = self._current = Snapshot(version, now, summary, changes)
            return current


def create_app(
    store: Store,
    settings: ServeSettings | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Starlette:
    """The read-only dashboard app over ``store``; ``clock`` is "now" for scoring."""
    settings = settings or ServeSettings()
    cache = SummaryCache(store, clock)

    def summary() -> dict[str, Any]:
        return cache.get().summary

    def page(_request: Request) -> Response:
        snapshot = cache.get()
        refresh = Refresh(version_tag(snapshot.version), settings.refresh_seconds)
        html = snapshot.view(
            "html",
            lambda summary: render_html(summary, changes=snapshot.changes, refresh=refresh),
        )
        return HTMLResponse(html, headers=_HEADERS)

    def version(_request: Request) -> Response:
        """What the open page polls: one cheap query, no summary built."""
        current = store_version(store)
        changed = last_change(current)
        return JSONResponse(
            {
                "version": version_tag(current),
                "updated_at": changed.isoformat() if changed else None,
                "checked_at": clock().isoformat(),
            },
            headers=_HEADERS,
        )

    def summary_json(_request: Request) -> Response:
        body = cache.get().view("json", _json)
        return Response(body, media_type="application/json", headers=_HEADERS)

    def summary_json_v1(_request: Request) -> Response:
        body = cache.get().view("json-v1", lambda summary: _json(summary_v1(summary)))
        return Response(body, media_type="application/json", headers=_HEADERS)

    def summary_table(_request: Request) -> Response:
        return Response(
            cache.get().view("csv", summary_csv),
            media_type="text/csv; charset=utf-8",
            headers={**_HEADERS, "Content-Disposition": 'attachment; filename="okr-summary.csv"'},
        )

    def key_result(request: Request) -> Response:
        wanted = request.path_params["key_result_id"]
        shown = summary() if request.url.path.startswith(API_V2) else summary_v1(summary())
        for objective, kr in key_results(shown):
            if kr["id"] == wanted:
                return JSONResponse({"objective_id": objective["id"], **kr}, headers=_HEADERS)
        return JSONResponse({"error": f"no key result {wanted!r}"}, 404, headers=_HEADERS)

    def changes(request: Request) -> Response:
        """What changed between ``since`` and ``until`` (or in the last ``days``)."""
        wanted = request.query_params
        days = wanted.get("days") or None
        with store.session() as session:
            try:
                if days is not None and not days.isdigit():
                    raise WindowError(f"days {days!r} is not a whole number of days")
                since, until = parse_window(
                    wanted.get("since") or None,
                    int(days) if days else None,
                    wanted.get("until") or None,
                    clock(),
                    org_calendar(session),
                )
            except WindowError as exc:
                return JSONResponse({"error": str(exc)}, 400, headers=_HEADERS)
            found = what_changed(session, since, until)
        if request.url.path.startswith("/api/"):
            return JSONResponse(changes_json(found), headers=_HEADERS)
        return HTMLResponse(render_changes_html(found, live=True), headers=_HEADERS)

    def schema(request: Request) -> Response:
        path = SCHEMA_FILE if request.url.path.startswith(API_V2) else SCHEMA_FILE_V1
        return FileResponse(path, media_type="application/schema+json", headers=_HEADERS)

    def index(request: Request) -> Response:
        version, api = (2, API_V2) if request.url.path.startswith(API_V2) else (1, API)
        return JSONResponse(
            {
                "version": version,
                "endpoints": {
                    f"{api}/summary": "every objective and key result (see the schema)",
                    f"{api}/summary.csv": "the same, one row per key result",
                    f"{api}/key-results/{{id}}": "one key result with its history and lineage",
                    f"{api}/schema": "the JSON Schema of the summary",
                    f"{api}/version": "a tag that changes whenever the store does (for polling)",
                    f"{api}/changes": "each key result's movement and why "
                    "(?since=DATE&until=DATE or ?days=N; default the last 7 days)",
                },
            },
            headers=_HEADERS,
        )

    middleware = []
    if settings.protected:
        middleware.append(
            Middleware(
                AuthenticationMiddleware,
                backend=_Credentials(settings),
                on_error=_refused(settings),
            )
        )
    both_versions = {  # under /api/v1 and /api/v2 alike; a handler that differs reads the path
        "": index,
        "/summary.csv": summary_table,
        "/key-results/{key_result_id}": key_result,
        "/schema": schema,
        "/version": version,
        "/changes": changes,
    }
    routes = [
        Route("/", page),
        Route("/changes", changes),
        Route(f"{API}/summary", summary_json_v1),
        Route(f"{API_V2}/summary", summary_json),
        *(
            Route(api + path, handler)
            for api in (API, API_V2)
            for path, handler in both_versions.items()
        ),
    ]
    return Starlette(routes=routes, middleware=middleware)
