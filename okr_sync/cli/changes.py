"""``okr-sync changes``: each key result's movement between two dates, and why."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from okr_sync.cli.console import err, fail, out
from okr_sync.cli.options import StoreOption, open_store
from okr_targets.changes import (
    Changes,
    WindowError,
    changes_json,
    changes_lines,
    org_calendar,
    parse_window,
    what_changed,
)


def load_changes(
    store: str | None, since: str | None, days: int | None, until: str | None
) -> Changes:
    """What changed in the window given, its dates read in the organisation's time zone."""
    opened = open_store(store)
    try:
        with opened.session() as session:
            start, end = parse_window(since, days, until, datetime.now(UTC), org_calendar(session))
            return what_changed(session, start, end)
    except WindowError as exc:
        raise fail(str(exc)) from None
    finally:
        opened.dispose()


def changes(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="from this date or date-time (the OKR calendar's time zone when it has no offset)",
        ),
    ] = None,
    days: Annotated[
        int | None, typer.Option("--days", help="the last N days up to --until (default 7)")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="through the end of this date, or to this date-time (default now)"
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--format", help="text, json, markdown or html (a self-contained page)")
    ] = "text",
    destination: Annotated[
        Path | None, typer.Option("--output", help="write to this file instead of stdout")
    ] = None,
    store: StoreOption = None,
) -> None:
    """What changed and why: each key result's movement between two dates, with the records
    added, removed or edited at the source and any restated past period."""
    if output not in ("text", "json", "markdown", "html"):
        raise fail(f"unknown format {output!r}: use text, json, markdown or html")
    found = load_changes(store, since, days, until)
    if output == "text" and destination is None:
        for line in changes_lines(found):
            out.print(line, highlight=False, soft_wrap=True)
        return
    if output == "html":
        from okr_targets.changes_page import render_changes_html  # Jinja: only when asked

        text = render_changes_html(found)
    elif output == "json":
        text = json.dumps(changes_json(found), indent=2, ensure_ascii=False) + "\n"
    else:
        text = "\n".join(changes_lines(found, markdown=output == "markdown")) + "\n"
    if destination is None:
        sys.stdout.write(text)
        return
    try:
        destination.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {destination}: {exc.strerror or exc}") from None
    err.print(f"wrote what changed ({output}) to {destination}", highlight=False)
