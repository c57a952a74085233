"""``okr-sync report`` and ``serve``: the store's OKRs as a table, a file or a live page.

The web server and the dashboard's templates load in the commands that use them: ``sync``
prints its report through this module too.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from okr_sync.cli.console import err, fail, listen, out, valid_port
from okr_sync.cli.options import StoreOption, open_store, settings_of, store_url
from okr_targets.changes import recent_changes
from okr_targets.formatting import (
    format_change,
    format_percent,
    format_standing,
    format_value,
    freshness_text,
    short_time,
)
from okr_targets.report import build_report, walk
from okr_targets.status import status_label
from okr_targets.summary import build_summary, counts_text, summary_csv, summary_outline, title_text


def report(
    store: StoreOption = None,
    output: Annotated[str, typer.Option("--format", help="table, json, csv or html")] = "table",
    destination: Annotated[
        Path | None,
        typer.Option("--output", help="write json, csv or html to this file instead of stdout"),
    ] = None,
) -> None:
    """Every objective and key result with its value, target, progress and status.

    ``html`` is the dashboard as one self-contained page; ``json`` follows the schema in
    okr_targets/schemas/.
    """
    if output not in ("table", "json", "csv", "html"):
        raise fail(f"unknown format {output!r}; use table, json, csv or html")
    if output == "table":
        if destination is not None:
            raise fail("--output needs --format json, csv or html")
        print_report(store_url(store))
        return
    _export(store_url(store), output, destination)


def _export(url: str, output: str, destination: Path | None) -> None:
    """JSON, CSV or the HTML dashboard, all from the one summary (okr_targets/summary.py)."""
    from okr_targets.dashboard import render_html

    store = open_store(url)
    now = datetime.now(UTC)
    with store.session() as session:
        summary = build_summary(session, now, store.display_url)
        changes = recent_changes(session, now) if output == "html" else None
    store.dispose()
    if output == "json":
        text = json.dumps(summary, indent=2) + "\n"
    elif output == "csv":
        text = summary_csv(summary)
    else:
        text = render_html(summary, changes=changes)
    if destination is None:
        sys.stdout.write(text)
        return
    try:  # a BOM tells spreadsheet programs the CSV is UTF-8
        destination.write_text(text, encoding="utf-8-sig" if output == "csv" else "utf-8")
    except OSError as exc:
        raise fail(f"cannot write {destination}: {exc.strerror or exc}") from None
    err.print(f"wrote the {output} report to {destination}", highlight=False)


def print_report(url: str) -> None:
    """The answer first, as on the page (company, periods, counts by status, what needs
    attention), then the OKR tree as a table: per key result its value, target, progress
    and status, per objective its roll-up and status (the weakest below it); owners by name."""
    store = open_store(url)
    now = datetime.now(UTC)
    with store.session() as session:
        head = summary_outline(session, now, store.display_url)
        lines = build_report(session, now)
    store.dispose()
    total, by_status = counts_text(head)
    out.print(Text(title_text(head), style="bold"), highlight=False)
    out.print(f"{total}: {by_status}", highlight=False)
    out.print(f"Needs attention ({len(head['attention'])})", style="bold", highlight=False)
    for item in head["attention"]:
        standing = format_standing(
            item["value"], item["target"], item["unit"], item["baseline_period"]
        )
        out.print(
            Text.assemble(
                (f"  {status_label(item['status'])}", "bold"),
                f"  {item['title']} · {item['owner_name']} · {standing} — {item['reason']}",
            ),
            highlight=False,
            soft_wrap=True,
        )
    if not head["attention"]:
        out.print("  Nothing is off track, at risk, stale or failing.", highlight=False)
    out.print()
    table = Table(title="OKRs", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("objective / key result", overflow="ellipsis", no_wrap=True, max_width=44)
    table.add_column("value", justify="right", no_wrap=True, min_width=6)
    table.add_column("target", justify="right", no_wrap=True, min_width=13)
    table.add_column("progress", no_wrap=True, min_width=13)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("owner", overflow="ellipsis", no_wrap=True, max_width=18)
    table.add_column("forecast", justify="right", min_width=8, max_width=11)
    table.add_column("checked", min_width=13)
    notes = []
    for depth, line in walk(lines):
        indent = "  " * depth
        progress = "" if line.progress is None else f"{format_percent(line.progress):>4}"
        table.add_row(
            Text(indent + line.title, style="bold"),
            "",
            "",
            Text(progress, style="bold"),
            Text(line.status.label, style=line.status.colour),
            line.owner_name,
            "",
            "",
        )
        for kr in line.key_results:
            checked = freshness_text(kr.checked_at, kr.as_of, kr.timezone, short_time(now))
            status = Text(kr.status.label, style=kr.status.colour)
            if kr.final_score is not None:
                status.append(f" {kr.final_score:.2f}")
            forecast = format_value(kr.forecast, _bare(kr.unit))
            if kr.baseline_period and kr.forecast is not None:  # the value column names it
                forecast = format_change(kr.forecast, kr.unit)
            if kr.forecast is None and kr.forecast_note:
                forecast = kr.forecast_note.split(":")[0]
            table.add_row(
                f"{indent}  {kr.title}",
                format_value(kr.value, _bare(kr.unit), kr.baseline_period),
                format_value(kr.target, kr.unit, kr.baseline_period),
                _bar(kr.progress),
                status,
                kr.owner_name,
                forecast if kr.final_score is None else "",
                checked,
            )
            if kr.error:
                notes.append(Text.assemble(("error", "red"), f" {kr.id}: {kr.error}"))
            if kr.stale_reason:
                notes.append(Text.assemble(("stale", "magenta"), f" {kr.id}: {kr.stale_reason}"))
    out.print(table)
    for note in notes:
        out.print(note, highlight=False, soft_wrap=True)


def _bare(unit: str) -> str:
    """A value column's unit: only ``%``, which sticks to the number; the target shows any other."""
    return unit if unit == "%" else ""


def _bar(progress: float | None, width: int = 8) -> str:
    if progress is None:
        return ""
    filled = round(progress * width)
    return f"{'█' * filled}{'░' * (width - filled)} {format_percent(progress):>4}"


def serve(
    store: StoreOption = None,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="port (0 picks a free one)", callback=valid_port)
    ] = 8000,
) -> None:
    """Serve the dashboard and its JSON API (/api/v2; /api/v1 in the old shape) live, read-only.

    Set OKR_SYNC_SERVE_TOKEN (bearer token) and/or OKR_SYNC_SERVE_USER and
    OKR_SYNC_SERVE_PASSWORD (basic auth) to require credentials. An open page asks every
    OKR_SYNC_SERVE_REFRESH_SECONDS (15) whether the store changed and refreshes itself.
    """
    import uvicorn

    from okr_sync.serve import ServeSettings, create_app

    settings = settings_of(ServeSettings)
    opened = open_store(store)
    if not settings.protected and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            Text.assemble(
                ("warning:", "yellow"),
                f" anyone who reaches {host}:{port} can read the dashboard; "
                "set OKR_SYNC_SERVE_TOKEN or OKR_SYNC_SERVE_USER/OKR_SYNC_SERVE_PASSWORD",
            ),
            highlight=False,
        )
    try:
        listener = listen(host, port)  # --port 0: says which port it got
    except typer.Exit:
        opened.dispose()
        raise
    bound = listener.getsockname()[1]
    err.print(f"Serving {opened.display_url} read-only on http://{host}:{bound}/", highlight=False)
    server = uvicorn.Server(uvicorn.Config(create_app(opened, settings), log_level="warning"))
    try:
        server.run(sockets=[listener])
    finally:
        opened.dispose()
