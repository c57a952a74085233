"""``okr-sync doctor``: print each health check and its fix; exit 1 when one fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from okr_sync.cli.console import fail, out
from okr_sync.cli.options import OkrFileOption, StoreOption, okr_file_or_default, store_url

PrefectFileOption = Annotated[
    Path,
    typer.Option(
        "--prefect-file", help="the prefect.yaml deployed, naming the work pool and deployments"
    ),
]


def doctor(
    store: StoreOption = None,
    okr_file: OkrFileOption = None,
    prefect_file: PrefectFileOption = Path("prefect.yaml"),
) -> None:
    """Health checks: store and schema, credentials, sources reachable, last sync per source,
    and the Prefect server's work pool, workers, deployments and automation."""
    from okr_sync.doctor import diagnose  # the connectors and metrics: not for --help

    findings = diagnose(store_url(store), okr_file_or_default(okr_file), prefect_file)
    for found in findings:
        if found.note:
            mark = Text("info", style="yellow")
        else:
            mark = Text("ok  ", style="green") if found.ok else Text("FAIL", style="red")
        out.print(
            Text.assemble(mark, f" {found.check}: {found.detail}"), highlight=False, soft_wrap=True
        )
        if found.fix:
            out.print(f"       fix: {found.fix}", highlight=False, soft_wrap=True)
    problems = sum(1 for found in findings if not found.ok)
    if problems:
        raise fail(f"{problems} problem(s) found")
    out.print("all checks passed")
