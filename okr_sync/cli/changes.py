"""``okr-sync changes``: each key result's movement between two dates, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from okr_sync.cli.console import fail, out
from okr_sync.cli.options import StoreOption, open_store
from okr_targets.changes import Changes, changes_json, changes_lines, what_changed


def moment(option: str, text: str, end_of_day: bool) -> datetime:
    """An ISO date (the start of that day, UTC; with ``end_of_day`` its end) or date-time
    (UTC when naive), or the one error line."""
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {text!r} is not an ISO date or date-time, e.g. 2026-11-30") from None
    if len(text) <= 10 and end_of_day:
        found += timedelta(days=1)  # through the whole of that day
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def window(since: str | None, days: int | None, until: str | None) -> tuple[datetime, datetime]:
    """``--since``/``--days``/``--until`` as two instants (default: the last 7 days)."""
    if since is not None and days is not None:
        raise fail("give either --since or --days, not both")
    if days is not None and days < 1:
        raise fail(f"--days must be at least 1, not {days}")
    end = moment("--until", until, end_of_day=True) if until else datetime.now(UTC)
    start = moment("--since", since, end_of_day=False) if since else None
    start = start or end - timedelta(days=days or 7)
    if start >= end:
        raise fail(f"the window is empty: {start.isoformat()} is not before {end.isoformat()}")
    return start, end


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
    start, end = window(since, days, until)
    found = load_changes(store, start, end)
    if output == "json":
        out.print_json(json.dumps(changes_json(found)))
        return
    for line in changes_lines(found, markdown=output == "markdown"):
        out.print(line, highlight=False, soft_wrap=True)
