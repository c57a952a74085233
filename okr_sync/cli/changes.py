"""``okr-sync changes``: each key result's movement between two dates, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from okr_sync.cli.console import fail, out
from okr_sync.cli.options import StoreOption, open_store
from okr_targets.changes import (
    Changes,
    WindowError,
    changes_json,
    changes_lines,
    parse_window,
    what_changed,
)


def load_changes(store: str | None, since: datetime, until: datetime) -> Changes:
    opened = open_store(store)
    try:
        with opened.session() as session:
            return what_changed(session, since, until)
    finally:
        opened.dispose()


def changes(
    since: Annotated[
        str | None, typer.Option("--since", help="from this date or date-time (UTC when naive)")
    ] = None,
    days: Annotated[
        int | None, typer.Option("--days", help="the last N days up to --until [default: 7]")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="to the end of this date, or this date-time")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="text, json or markdown")] = "text",
    store: StoreOption = None,
) -> None:
    """What changed and why: each key result's movement between two dates, with the records
    added, removed or edited at the source and any restated past period."""
    if output not in ("text", "json", "markdown"):
        raise fail(f"unknown format {output!r}: use text, json or markdown")
    try:
        start, end = parse_window(since, days, until, datetime.now(UTC))
    except WindowError as exc:
        raise fail(str(exc)) from None
    found = load_changes(store, start, end)
    if output == "json":
        out.print_json(json.dumps(changes_json(found)))
        return
    for line in changes_lines(found, markdown=output == "markdown"):
        out.print(line, highlight=False, soft_wrap=True)
