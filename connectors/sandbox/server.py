"""Serve an ASGI app (a source emulator) over real TLS on loopback.

Each run makes a throwaway trustme CA and a certificate for 127.0.0.1/localhost, so
clients verify the emulator exactly as they would a real API, given the CA file.

From a CLI, either block until Ctrl-C::

    serve_tls_forever(app, port=8443, on_ready=lambda s: print(s.base_url, s.ca_file))

or drive it yourself::

    with serve_tls(app, port=8443, cert_dir=Path(".okr-sync"), name="salesforce") as server:
        print(server.base_url, server.ca_file)  # .okr-sync/salesforce-8443-ca.pem, absolute
        wait_for_interrupt()

Each server writes its own CA file, named by ``name`` and the bound port: two sandboxes
sharing a directory must not overwrite each other's CA (the first would then be
untrusted by clients holding its path).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

# the fault grammar, still importable from here
from connectors.sandbox.faults import FAULT_SPEC_HELP as FAULT_SPEC_HELP
from connectors.sandbox.faults import Fault as Fault
from connectors.sandbox.faults import parse_faults as parse_faults

_STARTUP_TIMEOUT = 15.0


@dataclass(frozen=True)
class RunningServer:
    """Where a sandbox server listens and which CA file makes clients trust it."""

    base_url: str
    ca_file: Path
    port: int


@contextmanager
def serve_tls(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    cert_dir: Path | None = None,
    name: str = "sandbox",
    listener: socket.socket | None = None,
) -> Iterator[RunningServer]:
    """Run ``app`` with uvicorn over TLS in a daemon thread until the block exits.

    ``port=0`` picks a free port (read back from the bound socket); ``listener``, a socket
    the caller bound already, replaces ``host`` and ``port``. The CA PEM is written to
    ``cert_dir/{name}-{port}-ca.pem`` (an absolute path), or to a temporary directory
    removed on exit.
    """
    if listener is not None:
        host, port = listener.getsockname()[:2]
    ca = trustme.CA(organization_name="okr-sync sandbox")
    identities = ["127.0.0.1", "localhost"]
    if host not in identities and host not in ("0.0.0.0", "::"):  # noqa: S104 - bind-all check
        identities.append(host)
    leaf = ca.issue_cert(*identities)

    def ssl_context(
        _config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(context)
        return context

    with tempfile.TemporaryDirectory(prefix="okr-sync-ca-") as scratch:
        directory = Path(cert_dir) if cert_dir is not None else Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            ssl_context_factory=ssl_context,
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_until_complete,
            args=(server.serve(sockets=None if listener is None else [listener]),),
            name=f"sandbox-{host}:{port}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(f"sandbox server failed to start on {host}:{port}")
            time.sleep(0.01)
        try:
            bound_port = int(server.servers[0].sockets[0].getsockname()[1])
            url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
            if ":" in url_host:
                url_host = f"[{url_host}]"
            ca_file = directory.resolve() / f"{name}-{bound_port}-ca.pem"
            ca.cert_pem.write_to_path(str(ca_file))
            yield RunningServer(f"https://{url_host}:{bound_port}", ca_file, bound_port)
        finally:
            server.should_exit = True
            thread.join(timeout=0.5)
            if thread.is_alive():
                # Idle keep-alive TLS connections wait for the client's close_notify, which a
                # pooled client never sends; cut them so shutdown doesn't hang.
                loop.call_soon_threadsafe(_abort_connections, server)
                thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()


def _abort_connections(server: uvicorn.Server) -> None:
    for connection in list(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.abort()


def wait_for_interrupt() -> None:
    """Block the calling (main) thread until Ctrl-C."""
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


def serve_tls_forever(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    cert_dir: Path | None = None,
    on_ready: Callable[[RunningServer], None] | None = None,
    name: str = "sandbox",
    listener: socket.socket | None = None,
) -> RunningServer:
    """Serve until Ctrl-C; ``on_ready`` gets the URL/CA (e.g. to print them) once listening.

    Prints nothing itself; returns the server description after a clean shutdown.
    """
    with serve_tls(app, host, port, cert_dir, name, listener) as server:
        if on_ready is not None:
            on_ready(server)
        wait_for_interrupt()
    return server


# --- fault injection (the spec's grammar: faults.py) -------------------------------------

HOOKS = {"expire": "expire_sessions", "mutate": "mutate", "tie": "tie"}
"""Fault kinds an emulator acts out itself, and the ``app.state`` callable that does it."""


class Faults:
    """A queue of forced misbehaviours an emulator shows before serving normally.

    Tests inject them directly (a 401, a 429 with Retry-After); ``okr-sync sandbox
    --faults SPEC`` loads a spec. Each emulator renders forced statuses in its own API's
    error shape. ``served``/``pending`` tell a test whether its schedule was reached: a
    fault left in the queue proves nothing about surviving it.
    """

    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self._served: list[Fault] = []
        self._lock = threading.Lock()

    def inject(
        self, status: int, *, times: int = 1, path: str = "", headers: dict[str, str] | None = None
    ) -> None:
        self.extend([Fault(status, path, tuple((headers or {}).items()))] * times)

    def extend(self, faults: list[Fault]) -> None:
        with self._lock:
            self._queue += faults

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._queue):
                if path.startswith(fault.path):
                    self._served.append(self._queue.pop(index))
                    return fault
        return None

    def served(self) -> list[Fault]:
        """The faults acted out so far, in the order requests met them."""
        with self._lock:
            return list(self._served)

    def pending(self) -> list[Fault]:
        """The faults no request has met yet."""
        with self._lock:
            return list(self._queue)

    def clear(self) -> None:
        """Forget both the faults still queued and those served."""
        with self._lock:
            self._queue.clear()
            self._served.clear()


ErrorBody = Callable[[int], bytes]
"""Renders a status as the emulated API's JSON error body."""


class FaultMiddleware:
    """Pure ASGI middleware: misbehaves as the next matching fault says, else passes through."""

    def __init__(self, app: ASGIApp, faults: Faults, error_body: ErrorBody) -> None:
        self.app, self.faults, self.error_body = app, faults, error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self.faults.take(scope["path"]) if scope["type"] == "http" else None
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
            await self.app(scope, receive, send)
        elif fault.kind == "drop":
            # Promise a body, send none and return: the server closes the connection.
            headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        elif fault.kind == "truncate":
            await self.app(scope, receive, _truncating(send))
        elif fault.kind in HOOKS:
            hook = getattr(scope["app"].state, HOOKS[fault.kind], None)
            if hook is None:
                body = f'{{"error": "this emulator cannot act out {fault.kind!r}"}}'.encode()
                await _answer(send, 501, body)
                return
            hook() if fault.kind == "expire" else hook(fault.count)
            await self.app(scope, receive, send)
        else:
            await _answer(send, fault.status, self.error_body(fault.status), fault.headers)


async def _answer(
    send: Send, status: int, body: bytes, extra: tuple[tuple[str, str], ...] = ()
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _truncating(send: Send) -> Send:
    """Buffer the real answer, then send only the first half of its body (valid headers)."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        half = body[: len(body) // 2]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(half)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": half})

    return wrapped


def install_faults(app: Starlette, error_body: ErrorBody) -> Faults:
    """Give an emulator app a fault queue (``app.state.faults``) and return it."""
    faults = Faults()
    app.state.faults = faults
    app.add_middleware(FaultMiddleware, faults=faults, error_body=error_body)
    return faults
