"""The CLI's two consoles and its one way to end with an expected error.

Every expected failure ends with one ``error:`` line on stderr and exit status 1;
tracebacks are for bugs only. Command modules raise ``fail(...)`` for that.

Neither console reads markup: titles, names and reasons come from OKR files and sources,
and ``[/]`` or ``[beta]`` in them must print as written, not crash or vanish. Style is
given as ``rich.text.Text`` (``Text.assemble((label, style), data)``), never as markup.
"""

from __future__ import annotations

import socket
import sys

import typer
from rich.console import Console
from rich.text import Text

# Piped output is not cut to 80 columns; a terminal keeps its own width.
out = Console(width=None if sys.stdout.isatty() else 132, markup=False)
err = Console(stderr=True, markup=False)


def fail(message: str) -> typer.Exit:
    """Print the one error line, the message's every line folded onto it; the caller
    raises what this returns (exit status 1)."""
    folded = " ".join(line.strip() for line in message.splitlines() if line.strip())
    err.print(Text.assemble(("error:", "bold red"), " ", folded), highlight=False, soft_wrap=True)
    return typer.Exit(1)


def valid_port(port: int) -> int:
    """The ``--port`` callback: 0 (any free port) to 65535, or one error line (a port out of
    range is an OverflowError deep in the socket call otherwise)."""
    if not 0 <= port <= 65535:
        raise fail(f"--port {port} is not a port: use 0 (any free one) to 65535")
    return port


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for a server to serve on (``serve``, ``webhooks serve``,
    ``sandbox``): a taken port or an address not on this machine is one error line here,
    not uvicorn's logged error and exit or a traceback later; ``--port 0`` is bound to a
    free port the server can then print."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listener
