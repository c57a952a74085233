"""The webhook receiver: a source says something changed, Prefect hears it at once.

``okr-sync webhooks serve`` runs a small ASGI app. Each ``POST /webhooks/{source}`` must
carry that source's signature over the exact body and a timestamp; a verified request
becomes one Prefect event, ``okr-sync.source.changed``, whose resource names the source
and whose payload lists the changed objects (for automations and the UI), and a sync of
the streams the objects' changes touch (the connector's ``CHANGES`` table; all of the
source's when a type is not in it): a Prefect background task (flows/background.py) that
``okr-sync worker`` runs at once. A burst coalesces: while a sync of those streams (or
of the whole source) is still queued (Scheduled or Pending at the Prefect server), it
will read the new change too, so nothing more is submitted; once it is Running a new one
is queued behind it.

Answers: 202 accepted (the sync submitted or coalesced); 401 unsigned (a signature or
timestamp header is missing); 403 the signature does not match (tampered body, wrong
secret); 409 a replay (the timestamp is outside the window, or this signature was
already accepted); 400 a signed body that is not the JSON the source sends; 404 a source
with no secret configured, or one the OKR file does not read (its sync would fail); 413 a
body over the size limit; 503 the event or the sync could not be handed to Prefect, or the
OKR file could not be read (the source retries). The accepted-signature memory is per
process: behind several replicas the timestamp window still bounds a replay. Each
accepted webhook is one log line: source, event id, and the sync it submitted or was
coalesced into (never the body or a secret); each refused one too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import socket
import time
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import uvicorn
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.secrets import resolve_secret
from flows.settings import OneLineSettings
from okr_targets.config import ConfigError, load_okrs

if TYPE_CHECKING:  # Prefect is imported when a request comes, not for `okr-sync --help`
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import StateType
    from prefect.events import Event

    from connectors.base import Connector

SOURCE_CHANGED = "okr-sync.source.changed"
SOURCES = ("hubspot", "zendesk", "salesforce")
MAX_OBJECTS_IN_EVENT = 100  # a burst of thousands still makes one small event
MAX_RELATED = 20

logger = logging.getLogger("okr_sync.webhooks")


class WebhookSettings(OneLineSettings):
    """Per-source signing secrets (or Prefect Secret block names) and the replay window."""

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_WEBHOOK_", extra="ignore")

    hubspot_secret: SecretStr | None = Field(default=None, description="the app's client secret")
    hubspot_secret_block: str | None = None
    zendesk_secret: SecretStr | None = Field(default=None, description="the webhook's secret")
    zendesk_secret_block: str | None = None
    salesforce_secret: SecretStr | None = Field(default=None, description="the shared secret")
    salesforce_secret_block: str | None = None
    tolerance_seconds: float = Field(default=300.0, gt=0, description="accepted clock skew/age")
    public_url: str | None = Field(
        default=None,
        description="the base URL the sources call (https://hooks.example.com) when a proxy "
        "sits in front: HubSpot signs the URL it called",
    )
    max_body_bytes: int = Field(default=1_000_000, gt=0)

    def secrets(self) -> dict[str, str]:
        """The secret of each source that has one configured (env variable or block)."""
        found = {}
        for source in SOURCES:
            value: SecretStr | None = getattr(self, f"{source}_secret")
            block: str | None = getattr(self, f"{source}_secret_block")
            if value is not None or block:
                found[source] = resolve_secret(f"the {source} webhook secret", value, block)
        return found


class RefusedError(Exception):
    """A request the receiver turns away, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _hmac_b64(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _header(headers: Any, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise RefusedError(401, f"unsigned: no {name} header")
    return str(value)


def _check(expected: str, given: str) -> None:
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise RefusedError(
            403, "the signature does not match the request (tampered, or wrong secret)"
        )


def _fresh(sent_at: float, now: float, tolerance: float) -> None:
    age = now - sent_at
    if not abs(age) <= tolerance:  # written so that a NaN age is refused too
        raise RefusedError(
            409,
            f"replayed: the request was signed {age:.0f}s ago, outside the {tolerance:.0f}s "
            "window (or the clocks disagree)",
        )


# HubSpot signs the URI with these escapes decoded (its "Validate the v3 request signature").
HUBSPOT_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip


def verify_hubspot(
    secret: str, method: str, url: str, body: bytes, headers: Any, now: float, tolerance: float
) -> str:
    """HubSpot v3: base64 HMAC-SHA256 of method + URL + body + timestamp (ms), 5-min window."""
    signature = _header(headers, "x-hubspot-signature-v3")
    stamp = _header(headers, "x-hubspot-request-timestamp")
    try:
        sent_at = int(stamp) / 1000
    except (ValueError, OverflowError):  # 400 digits: too large for a float
        raise RefusedError(
            401, f"unsigned: timestamp {stamp!r} is not epoch milliseconds"
        ) from None
    for escaped, char in HUBSPOT_DECODED.items():
        url = url.replace(escaped, char).replace(escaped.lower(), char)
    _check(_hmac_b64(secret, f"{method}{url}".encode() + body + stamp.encode()), signature)
    _fresh(sent_at, now, tolerance)
    return signature


def verify_zendesk(secret: str, body: bytes, headers: Any, now: float, tolerance: float) -> str:
    """Zendesk: base64 HMAC-SHA256 of timestamp + body."""
    signature = _header(headers, "x-zendesk-webhook-signature")
    stamp = _header(headers, "x-zendesk-webhook-signature-timestamp")
    _check(_hmac_b64(secret, stamp.encode() + body), signature)
    try:
        signed_at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise RefusedError(401, f"unsigned: timestamp {stamp!r} is not ISO 8601") from None
    if signed_at.tzinfo is None:  # Zendesk sends UTC; never read it as local time
        signed_at = signed_at.replace(tzinfo=UTC)
    sent_at = signed_at.timestamp()
    _fresh(sent_at, now, tolerance)
    return signature


def verify_salesforce(secret: str, body: bytes, headers: Any, now: float, tolerance: float) -> str:
    """okr-sync's shared-secret variant: base64 HMAC-SHA256 of ``timestamp + "." + body``.

    Salesforce outbound messages carry no signature, so a Flow or Apex callout signs
    instead (docs/operations.md has the Apex); the timestamp is epoch seconds.
    """
    signature = _header(headers, "x-okr-sync-signature")
    stamp = _header(headers, "x-okr-sync-timestamp")
    _check(_hmac_b64(secret, stamp.encode() + b"." + body), signature)
    try:
        sent_at = float(stamp)
    except ValueError:
        sent_at = math.nan
    if not math.isfinite(sent_at):  # "nan", "inf", "1e999": no moment, never fresh
        raise RefusedError(401, f"unsigned: timestamp {stamp!r} is not epoch seconds")
    _fresh(sent_at, now, tolerance)
    return signature


def changed_objects(source: str, payload: Any) -> list[dict[str, str]]:
    """The objects a source's webhook body names: ``{"type", "id", "change"}`` each."""
    items = payload if isinstance(payload, list) else [payload]
    objects = []
    for item in items:
        if not isinstance(item, dict):
            raise RefusedError(
                400, f"a {source} webhook body holds objects, not {type(item).__name__}"
            )
        if source == "hubspot":  # {"subscriptionType": "deal.propertyChange", "objectId": 1}
            kind, _, change = str(item.get("subscriptionType", "")).partition(".")
            object_id = item.get("objectId")
        elif source == "zendesk":  # {"type": "zen:event-type:ticket.created", "detail": {...}}
            kind, _, change = str(item.get("type", "")).rpartition(":")[2].partition(".")
            detail = item.get("detail")
            object_id = detail.get("id") if isinstance(detail, dict) else None
        else:  # {"objects": [{"type": "Opportunity", "id": "006…", "change": "updated"}]}
            for inner in item.get("objects") or []:
                if isinstance(inner, dict) and inner.get("id"):
                    objects.append(
                        {
                            "type": str(inner.get("type", "")),
                            "id": str(inner["id"]),
                            "change": str(inner.get("change", "")),
                        }
                    )
            continue
        if object_id is not None:
            objects.append({"type": kind, "id": str(object_id), "change": change})
    return objects


def source_event(source: str, objects: list[dict[str, str]]) -> dict[str, Any]:
    """The ``emit_event`` arguments for one verified webhook."""
    related = [
        {
            "prefect.resource.id": f"okr-sync.{source}.{o['type'] or 'object'}.{o['id']}",
            "prefect.resource.role": "changed-object",
        }
        for o in objects[:MAX_RELATED]
    ]
    return {
        "event": SOURCE_CHANGED,
        "resource": {
            "prefect.resource.id": f"okr-sync.source.{source}",
            "prefect.resource.name": source,
            "okr-sync.source": source,
        },
        "related": related,
        "payload": {
            "source": source,
            "object_count": len(objects),
            "objects": objects[:MAX_OBJECTS_IN_EVENT],
        },
    }


class ReplayGuard:
    """Signatures accepted within the window: the same request twice is a replay."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.seen: dict[str, float] = {}

    def admit(self, signature: str, now: float) -> None:
        self.seen = {s: t for s, t in self.seen.items() if now - t <= self.window}
        if signature in self.seen:
            raise RefusedError(409, "replayed: this signed request was already accepted")
        self.seen[signature] = now


Streams = tuple[str, ...] | None  # "source.stream" names a sync reads; None: every one
Submit = Callable[[str, Streams, datetime], Awaitable[UUID]]
StateOf = Callable[[UUID], Awaitable["StateType | None"]]


def still_queued(state: StateType | None) -> bool:
    """A task run that has not started: whatever it reads, it reads after now (the task
    waits, before reading, until the server knows it is Running: flows/background.py)."""
    return state is not None and state.value in ("SCHEDULED", "PENDING")


@cache
def _connector(source: str) -> Connector:
    from connectors.base import get_connector

    return get_connector(source)


def changed_streams(source: str, objects: list[dict[str, str]]) -> Streams:
    """The streams the named objects' changes touch, as the connector's table says; None
    (every stream of the source, logged) when an object's type is not in it, or none is named."""
    touched = _connector(source).streams_changed((o["type"], o["change"]) for o in objects)
    if touched is None:
        kinds = sorted({o["type"] or "?" for o in objects})
        why = (
            f"not every type of {', '.join(kinds)} is in its table" if kinds else "no object named"
        )
        logger.info("%s webhook: %s; every stream of %s is read", source, why, source)
        return None
    return tuple(f"{source}.{name}" for name in touched)


@dataclass
class SyncQueue:
    """At most one queued-but-not-started sync per source and streams; later changes to
    those streams ride on it, or on a queued sync of every stream of the source.

    A sync already Running may have read the source before this change, so then a new
    one is queued (the task worker runs them one at a time). So is one when the queued
    sync waited over ``max_wait`` seconds: no task worker is taking it, or the Prefect
    server restarted and lost its in-memory task queue, and it may never run. A queued
    sync of other streams does not read this change. The lock keeps two webhooks of one
    source arriving together from both submitting.
    """

    submit: Submit
    state_of: StateOf
    max_wait: float = 60.0
    clock: Callable[[], float] = time.monotonic
    queued: dict[tuple[str, Streams], tuple[UUID, float]] = field(default_factory=dict)
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    async def request(
        self, source: str, received_at: datetime, streams: Streams = None
    ) -> tuple[UUID, bool]:
        """The task run that will read this change, and whether it was already queued."""
        async with self.locks[source]:
            for key in dict.fromkeys([(source, streams), (source, None)]):
                if key in self.queued:
                    last, submitted = self.queued[key]
                    fresh = self.clock() - submitted <= self.max_wait
                    if fresh and still_queued(await self.state_of(last)):
                        return last, True
            task_run_id = await self.submit(source, streams, received_at)
            self.queued[(source, streams)] = (task_run_id, self.clock())
            return task_run_id, False


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PrefectClient] = (
    weakref.WeakKeyDictionary()
)


async def prefect_client() -> PrefectClient:
    """One open Prefect client per event loop: a new one per request costs tens of ms
    (its TLS context), a burst of webhooks thousands of them."""
    from prefect.client.orchestration import get_client

    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = await get_client().__aenter__()
    return _clients[loop]


async def submit_sync(source: str, streams: Streams, received_at: datetime) -> UUID:
    """Submit the background sync of one source's streams (flows/background.py) to
    Prefect: what ``Task.apply_async`` does, awaited on this loop rather than in a thread."""
    from flows.background import sync_changed_source

    parameters = {
        "source": source,
        "received_at": received_at,
        "streams": None if streams is None else list(streams),
    }
    client = await prefect_client()
    task_run = await sync_changed_source.create_run(client, parameters=parameters, deferred=True)
    return task_run.id


async def task_run_state(task_run_id: UUID) -> StateType | None:
    run = await (await prefect_client()).read_task_run(task_run_id)
    return run.state.type if run.state else None


@dataclass
class OkrSources:
    """The sources the OKR file reads, read again when the file changes: a webhook of
    any other source would start a sync that fails, so it is refused instead."""

    path: Path
    _read: tuple[int, frozenset[str]] | None = None

    def __call__(self) -> frozenset[str]:
        """Raises OSError or ConfigError when the file cannot be read."""
        changed = self.path.stat().st_mtime_ns
        if self._read is None or self._read[0] != changed:
            self._read = (changed, frozenset(load_okrs(self.path).spec.sources))
        return self._read[1]


@dataclass
class Receiver:
    secrets: dict[str, str]
    tolerance: float = 300.0
    public_url: str | None = None
    max_body_bytes: int = 1_000_000
    clock: Callable[[], float] = time.time
    syncs: SyncQueue = field(default_factory=lambda: SyncQueue(submit_sync, task_run_state))
    okr_sources: OkrSources | None = None  # None: every source with a secret is synced

    def __post_init__(self) -> None:
        # Signatures older than the window are refused by their timestamp anyway.
        self.guard = ReplayGuard(2 * self.tolerance)

    def signed_url(self, request: Request) -> str:
        if not self.public_url:
            return str(request.url)
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{self.public_url.rstrip('/')}{request.url.path}{query}"

    def verify(self, source: str, request: Request, body: bytes) -> str:
        secret, now, window = self.secrets[source], self.clock(), self.tolerance
        if source == "hubspot":
            url = self.signed_url(request)
            return verify_hubspot(secret, request.method, url, body, request.headers, now, window)
        if source == "zendesk":
            return verify_zendesk(secret, body, request.headers, now, window)
        return verify_salesforce(secret, body, request.headers, now, window)

    def check_okr_file(self, source: str) -> None:
        """Refuse (404) a verified webhook of a source the OKR file does not read."""
        if self.okr_sources is None:
            return
        path = self.okr_sources.path
        try:
            read = self.okr_sources()
        except (OSError, ConfigError) as exc:  # the source retries once the file is fixed
            logger.error("the OKR file %s cannot be read: %s", path, exc)
            raise RefusedError(503, f"the OKR file {path} cannot be read") from None
        if source not in read:
            raise RefusedError(
                404,
                f"{source} is not a source of the OKR file {path} (its sources: "
                f"{', '.join(sorted(read)) or 'none'}): nothing would sync this change",
            )

    async def receive(self, request: Request) -> JSONResponse:
        from prefect.events import Event

        source = request.path_params["source"]
        try:
            if source not in self.secrets:
                configured = ", ".join(sorted(self.secrets))
                raise RefusedError(
                    404, f"no webhook secret for {source!r}; configured: {configured}"
                )
            body = await _read_body(request, self.max_body_bytes)
            signature = self.verify(source, request, body)
            self.check_okr_file(source)
            try:
                payload = json.loads(body)
            except ValueError:
                raise RefusedError(400, f"the {source} webhook body is not JSON") from None
            objects = changed_objects(source, payload)
            self.guard.admit(signature, self.clock())
        except RefusedError as refused:
            logger.warning("%s webhook refused (%d): %s", source, refused.status, refused)
            return JSONResponse({"error": str(refused)}, status_code=refused.status)
        received_at = datetime.fromtimestamp(self.clock(), UTC)
        event = Event(**source_event(source, objects))
        try:
            await send_event(event)
        except Exception as exc:  # any failure to deliver: the source must retry
            self.guard.seen.pop(signature, None)  # let that retry through
            logger.error("%s webhook: Prefect did not take the event: %s", source, exc)
            return JSONResponse({"error": "the event could not be sent to Prefect"}, 503)
        streams = changed_streams(source, objects)
        try:
            task_run_id, coalesced = await self.syncs.request(source, received_at, streams)
        except Exception as exc:
            self.guard.seen.pop(signature, None)
            logger.error("%s webhook: Prefect did not take the sync: %s", source, exc)
            return JSONResponse({"error": "the sync could not be submitted to Prefect"}, 503)
        # the access line: what came and what it started, never the body or a secret
        logger.info(
            "%s webhook accepted (202): event %s, %d object(s); %s sync %s of %s",
            source,
            event.id,
            len(objects),
            "coalesced into queued" if coalesced else "submitted",
            task_run_id,
            ", ".join(streams) if streams else "every stream",
        )
        return JSONResponse(
            {
                "event_id": str(event.id),
                "source": source,
                "objects": len(objects),
                "sync": str(task_run_id),
                "streams": list(streams) if streams is not None else None,
                "coalesced": coalesced,
            },
            202,
        )


async def _read_body(request: Request, limit: int) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RefusedError(413, f"the body is over {limit:,} bytes")
    return body


async def _health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def send_event(event: Event) -> None:
    """Hand one event to the Prefect server and wait until it has it (a checkpoint).

    Answering 202 only after this means an accepted webhook is never an event lost in a
    queue: when Prefect is unreachable the source gets a 503 and sends it again.
    """
    from prefect.events.clients import get_events_client

    async with get_events_client(reconnection_attempts=2, checkpoint_every=1) as client:
        await client.emit(event)


def create_app(receiver: Receiver) -> Starlette:
    return Starlette(
        routes=[
            Route("/webhooks/{source}", receiver.receive, methods=["POST"]),
            Route("/healthz", _health, methods=["GET"]),
        ]
    )


def serve(app: Starlette, listener: socket.socket, on_ready: Callable[[str], None]) -> None:
    """Serve on a bound socket (``okr_sync.cli.console.listen``) until Ctrl-C or SIGTERM;
    ``on_ready`` gets the URL."""
    host, port = listener.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))

    async def main() -> None:
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        if server.started:
            on_ready(f"http://{f'[{host}]' if ':' in host else host}:{port}")
        await serving

    asyncio.run(main())
