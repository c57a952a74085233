"""``okr-sync sandbox``: one source's API emulator on loopback, for trying okr-sync out."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from connectors.sandbox.faults import FAULT_SPEC_HELP
from okr_sync.cli.console import fail, listen, out, valid_port

if TYPE_CHECKING:
    from connectors.sandbox.server import RunningServer

SANDBOX_DIR = Path(".okr-sync")  # where `okr-sync sandbox` keeps its CA, one file a sandbox


def sandbox(
    source: Annotated[
        str,
        typer.Option(
            help="salesforce, zendesk, hubspot or an installed connector with an emulator"
        ),
    ] = "salesforce",
    seed: Annotated[
        int, typer.Option(help="seed of the generated data (the built-in sandboxes)")
    ] = 7,
    data: Annotated[
        Path | None, typer.Option(help="serve this directory of JSON Lines files instead")
    ] = None,
    port: Annotated[
        int, typer.Option(help="port on 127.0.0.1 (0 picks a free one)", callback=valid_port)
    ] = 8443,
    faults: Annotated[str | None, typer.Option(help=FAULT_SPEC_HELP)] = None,
) -> None:
    """Serve one source's API emulator on loopback over TLS until Ctrl-C."""
    from connectors.sandbox.server import parse_faults, serve_tls_forever
    from okr_sync.demo import served_sandbox

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        served = served_sandbox(source, seed, today, data)
        served.app.state.faults.extend(parse_faults(faults or ""))
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None

    def announce(server: RunningServer) -> None:
        out.print(f"{source} sandbox at {server.base_url} (CA certificate: {server.ca_file})")
        out.print("Point okr-sync at it with:")
        for name, value in served.env(server).items():
            out.print(f"  export {name}={shlex.quote(value)}", highlight=False, soft_wrap=True)
        out.print("Press Ctrl-C to stop.")

    listener = listen("127.0.0.1", port)
    try:
        serve_tls_forever(
            served.app, listener=listener, cert_dir=SANDBOX_DIR, name=source, on_ready=announce
        )
    except (OSError, RuntimeError) as exc:
        raise fail(f"cannot serve on 127.0.0.1:{port}: {exc}") from None
    out.print("sandbox stopped")
