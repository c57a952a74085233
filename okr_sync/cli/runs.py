"""``okr-sync runs``, ``runs show`` and ``quarantine``, and how a run's report is shown
after a sync.

Everything that reads a run's report (the flow's return value, or a stored run's
counts) is here, so a change to the report's shape is made in one place.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from okr_sync.cli.console import err, fail, out
from okr_sync.cli.options import StoreOption, open_store
from okr_targets.models import SyncRun
from okr_targets.quarantine import (
    QuarantineLine,
    RunLookupError,
    find_run,
    held_now,
    quarantined_in_run,
)
from okr_targets.status import RunStatus

if TYPE_CHECKING:
    from flows.report import RunReport

runs_app = typer.Typer(help="Recent sync runs and what each one did.", invoke_without_command=True)

PARTIAL_EXIT_CODE = 3
"""A run that stopped early is not a success: exit 0 complete, 1 failed, 3 partial."""

COUNT_COLUMNS = ("read", "written", "deleted", "quarantined", "duplicates", "requests", "retries")


def streams_table(streams: dict[str, dict[str, Any]], title: str | None = None) -> Table:
    """Per stream: what it read and wrote, what it cost, and why it stopped, if it did."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("stream")
    for column in COUNT_COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("stopped", overflow="fold")
    for name, counts in streams.items():
        cells = [f"{counts.get(column, 0):,}" for column in COUNT_COLUMNS]
        why = counts.get("stopped") or counts.get("failed") or "; ".join(counts.get("notes", ()))
        table.add_row(name, *cells, why)
    return table


def _unmatched_count(customers: dict[str, Any]) -> int:
    """How many customers matched nothing (runs before the count listed them all)."""
    return int(customers.get("unmatched_count", len(customers["unmatched"])))


def print_run(report: RunReport) -> None:
    """The report of the run a sync just made: streams, tombstones, customers, findings."""
    out.print(streams_table(report.stream_counts(), f"Run {report.run_id} — {report.status}"))
    for name, gone in report.tombstoned.items():
        if gone:
            out.print(f"{name}: {gone:,} deleted at the source, tombstoned", highlight=False)
    for source, why in report.unreconciled.items():
        out.print(f"{source}: not reconciled, nothing tombstoned: {why}", highlight=False)
    customers = report.customers
    if customers:
        out.print(
            f"Customers matched to {customers.primary} by {customers.match_by}: "
            f"{customers.matched:,}; unmatched: {customers.unmatched_count:,}",
            highlight=False,
        )
        for item in customers.unmatched[:10]:
            err.print(
                Text.assemble(("unmatched customer:", "yellow"), f" {item}"),
                highlight=False,
                soft_wrap=True,
            )
    for finding in report.findings:
        err.print(
            Text.assemble(("finding:", "yellow"), f" {finding}"), highlight=False, soft_wrap=True
        )


def exit_if_partial(report: RunReport) -> None:
    if report.status != RunStatus.COMPLETE:
        err.print(
            Text.assemble((f"the run is {report.status}:", "yellow"), f" {report.reason}"),
            highlight=False,
        )
        raise typer.Exit(PARTIAL_EXIT_CODE)


@runs_app.callback()
def runs(
    ctx: typer.Context,
    store: StoreOption = None,
    limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20,
) -> None:
    """List recent sync runs: when, how they ended and what they read."""
    if ctx.invoked_subcommand is not None:
        return
    opened = open_store(store)
    with opened.session() as session:
        rows = session.scalars(
            select(SyncRun).order_by(SyncRun.started_at.desc()).limit(limit)
        ).all()
    opened.dispose()
    table = Table(
        title=f"Sync runs in {opened.display_url}", title_justify="left", box=box.SIMPLE_HEAD
    )
    for column in ("run", "started", "took", "status", "read", "quarantined", "reason"):
        table.add_column(column, no_wrap=column != "reason", overflow="fold")
    for run in rows:
        counts = run.stream_counts.values()
        took = (
            f"{(run.finished_at - run.started_at).total_seconds():.1f}s" if run.finished_at else ""
        )
        table.add_row(
            run.id,
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            took,
            run.status,
            f"{sum(c.get('read', 0) for c in counts):,}",
            f"{sum(c.get('quarantined', 0) for c in counts):,}",
            run.reason or "",
        )
    out.print(table)


FormatOption = Annotated[str, typer.Option("--format", help="table or json")]


def _check_format(output: str) -> None:
    if output not in ("table", "json"):
        raise fail(f"unknown format {output!r}; use table or json")


def quarantine_table(lines: list[QuarantineLine], title: str) -> Table:
    """Quarantined records: source, id, the field at fault and why (a line per reason)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("source", "entity", "id", "field", "reason", "run"):
        table.add_column(column, overflow="fold", no_wrap=column in ("source", "entity"))
    for line in lines:
        table.add_row(
            line.source,
            line.entity,
            line.source_id or "—",
            line.field or "—",
            line.reason,
            line.run_id[:8],
        )
    return table


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="the run's id, or any unique start of it")],
    store: StoreOption = None,
    quarantined: Annotated[
        bool, typer.Option("--quarantined", help="list the records the run quarantined, and why")
    ] = False,
    output: FormatOption = "table",
) -> None:
    """One run: its status and reason, and per stream the records and cursors."""
    _check_format(output)
    opened = open_store(store)
    try:
        with opened.session() as session:
            try:
                run = find_run(session, run_id)
            except RunLookupError as exc:
                raise fail(f"{exc} (in {opened.display_url})") from None
            lines = quarantined_in_run(session, run.id) if quarantined else []
    finally:
        opened.dispose()
    if output == "json":
        shown: dict[str, Any] = {
            "id": run.id,
            "status": run.status,
            "reason": run.reason,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "code_version": run.code_version,
            "streams": run.stream_counts,
            "details": run.details,
        }
        if quarantined:
            shown["quarantined"] = [line.to_dict() for line in lines]
        sys.stdout.write(json.dumps(shown, indent=2, default=str) + "\n")
        return
    out.print(
        Text.assemble(
            f"Run {run.id}: ", (run.status, "bold"), f" — {run.reason}" if run.reason else ""
        )
    )
    finished = run.finished_at.isoformat() if run.finished_at else "not finished"
    out.print(f"started {run.started_at.isoformat()}, finished {finished}, code {run.code_version}")
    out.print(streams_table(run.stream_counts))
    positions = Table(box=box.SIMPLE_HEAD)
    for column in ("stream", "cursor before", "cursor after", "quota"):
        positions.add_column(column, overflow="fold")
    for name, counts in run.stream_counts.items():
        cells = [counts.get(key) or "—" for key in ("cursor_before", "cursor_after", "quota")]
        positions.add_row(name, *cells)
    out.print(positions)
    for name, gone in (run.details.get("tombstoned") or {}).items():
        if gone:
            out.print(f"{name}: {gone:,} deleted at the source, tombstoned", highlight=False)
    for source, why in (run.details.get("unreconciled") or {}).items():
        out.print(f"{source}: not reconciled, nothing tombstoned: {why}", highlight=False)
    customers = run.details.get("customers") or {}
    if customers:
        out.print(
            f"customers matched: {customers['matched']}, unmatched: {_unmatched_count(customers)}"
        )
    for finding in run.details.get("findings", []):
        out.print(f"finding: {finding}", highlight=False)
    if quarantined:
        title = (
            f"Quarantined by run {run.id[:8]}: {len({(q.source, q.source_id) for q in lines}):,}"
        )
        out.print(quarantine_table(lines, title))


def quarantine(store: StoreOption = None, output: FormatOption = "table") -> None:
    """The records validation holds back now, across runs: source, id, field and reason.

    A record leaves the list when a sync reads a good copy of it (fixed at the source).
    """
    _check_format(output)
    opened = open_store(store)
    try:
        with opened.session() as session:
            lines = held_now(session)
    finally:
        opened.dispose()
    if output == "json":
        sys.stdout.write(json.dumps({"held": [line.to_dict() for line in lines]}, indent=2) + "\n")
        return
    records = len({(line.entity, line.source, line.source_id) for line in lines})
    out.print(quarantine_table(lines, f"Held back by validation now: {records:,} record(s)"))
