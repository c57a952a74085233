"""The ``okr-sync`` command line: demo, sync, report, lint, sandbox, db.

Every expected failure ends with one line on stderr and exit status 1; tracebacks are
for bugs only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.sandbox.server import FAULT_SPEC_HELP
from okr_sync.automations import automations_app
from okr_sync.connectors_cli import connectors_app
from okr_sync.settings import Settings
from okr_sync.webhooks import webhooks_app

# No telemetry from the embedded Prefect server or Great Expectations: the machines this runs
# on may have no route out, and a sync should not phone home. Users can still override.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

if TYPE_CHECKING:
    from okr_targets.store import Store

DEMO_OKRS = Path(__file__).parent / "demo" / "okrs.yaml"
SANDBOX_DIR = Path(".okr-sync")  # where `okr-sync sandbox` keeps its CA certificate

app = typer.Typer(
    help="Keep OKR key-result numbers true, automatically.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the OKR store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
runs_app = typer.Typer(help="Recent sync runs and what each one did.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(automations_app, name="automations")
app.add_typer(connectors_app, name="connectors")

# Piped output is not cut to 80 columns; a terminal keeps its own width.
out = Console(width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="SQLAlchemy URL of the OKR store "
        "[default: $OKR_SYNC_STORE_URL or sqlite:///okr-sync.db]",
    ),
]
OkrFileOption = Annotated[
    Path | None,
    typer.Option(
        "--okr-file", help="OKRs-as-code YAML file [default: $OKR_SYNC_OKR_FILE or okrs.yaml]"
    ),
]


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _store_url(store: str | None) -> str:
    return store or Settings().store_url


@contextmanager
def _progress_bar() -> Iterator[None]:
    """A progress bar per stream, fed by the flow through okr_sync.progress."""
    from okr_sync.progress import watching

    tasks: dict[str, Any] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:

        def update(label: str, done: int, total: int | None) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], advance=done, total=total)

        with watching(update):
            yield


def _run_sync(
    okr_file: Path, store_url: str, full_refresh: bool = False, reconcile: bool = False
) -> dict[str, Any]:
    from flows.sync import sync_okrs
    from okr_targets.store import has_password

    if has_password(store_url):
        # Prefect keeps flow parameters in its database: hand credentials over privately.
        os.environ["OKR_SYNC_STORE_URL"], store_url = store_url, ""
    try:
        with _progress_bar():
            state = sync_okrs(
                okr_file=str(okr_file),
                store_url=store_url or None,
                full_refresh=full_refresh,
                reconcile=reconcile,
                return_state=True,
            )
    except RuntimeError as exc:
        if "ephemeral Prefect API server" not in str(exc):
            raise
        raise fail(  # no server configured, and the temporary one did not come up in time
            "Prefect's temporary API server did not start in time; set PREFECT_API_URL to a "
            "running Prefect server, or give it longer with "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (default 20)"
        ) from None
    if not state.is_completed():
        raise fail((state.message or "the sync failed").strip().splitlines()[0])
    report = state.result()
    assert isinstance(report, dict)
    return report


PARTIAL_EXIT_CODE = 3
"""A run that stopped early is not a success: exit 0 complete, 1 failed, 3 partial."""


def _exit_if_partial(report: dict[str, Any]) -> None:
    if report["status"] != "complete":
        err.print(f"[yellow]the run is {report['status']}:[/] {report['reason']}", highlight=False)
        raise typer.Exit(PARTIAL_EXIT_CODE)


COUNT_COLUMNS = ("read", "written", "deleted", "quarantined", "duplicates", "requests", "retries")


def _streams_table(streams: dict[str, dict[str, Any]], title: str | None = None) -> Table:
    """Per stream: what it read and wrote, what it cost, and why it stopped, if it did."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("stream")
    for column in COUNT_COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("stopped", overflow="fold")
    for name, counts in streams.items():
        cells = [f"{counts.get(column, 0):,}" for column in COUNT_COLUMNS]
        table.add_row(name, *cells, counts.get("stopped") or counts.get("failed") or "")
    return table


def _unmatched_count(customers: dict[str, Any]) -> int:
    """How many customers matched nothing (runs before the count listed them all)."""
    return int(customers.get("unmatched_count", len(customers["unmatched"])))


def _print_run(report: dict[str, Any]) -> None:
    out.print(_streams_table(report["streams"], f"Run {report['run_id']} — {report['status']}"))
    for name, gone in (report.get("tombstoned") or {}).items():
        if gone:
            out.print(f"{name}: {gone:,} deleted at the source, tombstoned", highlight=False)
    customers = report.get("customers") or {}
    if customers:
        out.print(
            f"Customers matched to {customers['primary']} by {customers['match_by']}: "
            f"{customers['matched']:,}; unmatched: {_unmatched_count(customers):,}",
            highlight=False,
        )
        for item in customers["unmatched"][:10]:
            err.print(f"[yellow]unmatched customer:[/] {item}", highlight=False, soft_wrap=True)
    for finding in report.get("findings", []):
        err.print(f"[yellow]finding:[/] {finding}", highlight=False, soft_wrap=True)


@app.command()
def sync(
    okr_file: OkrFileOption = None,
    store: StoreOption = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="ignore saved cursors and re-read everything")
    ] = False,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help="also list every live id at each source and tombstone the ones it lost",
        ),
    ] = False,
) -> None:
    """Sync the sources named in the OKR file and measure every key result."""
    settings = Settings()
    report = _run_sync(okr_file or settings.okr_file, _store_url(store), full_refresh, reconcile)
    _print_run(report)
    _print_report(_store_url(store), "table")
    _exit_if_partial(report)


@app.command()
def demo(
    store: StoreOption = None,
    seed: Annotated[int, typer.Option(help="seed of the generated sample org")] = 7,
    okr_file: Annotated[Path, typer.Option("--okr-file", help="OKR file to sync")] = DEMO_OKRS,
) -> None:
    """Start the Salesforce and Zendesk sandboxes, sync the sample company's OKRs, report."""
    from okr_sync.demo import demo_sandboxes

    store_url = _store_url(store)
    # The sample company is generated up to the start of today (UTC): the same all day.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with ExitStack() as stack:
        with err.status("Generating the sample company and starting its sandboxes…"):
            world = stack.enter_context(demo_sandboxes(seed, today))
        for name, server in world.servers.items():
            err.print(f"Sandbox {name} API at {server.base_url}", highlight=False)
        err.print(f"Store: {_redacted(store_url)}", highlight=False)
        os.environ.update(world.env)
        # Every demo serves a freshly generated company, so it re-reads everything.
        report = _run_sync(okr_file, store_url, full_refresh=True)
    _print_run(report)
    _print_report(store_url, "table")
    err.print(
        f"The store stays at {_redacted(store_url)}: see it as a page with "
        "`okr-sync report --format html --output okrs.html` or live with `okr-sync serve`."
    )
    _exit_if_partial(report)


def _redacted(url: str) -> str:
    from okr_targets.store import redact

    return redact(url)


def _export(store_url: str, output: str, destination: Path | None) -> None:
    """JSON, CSV or the HTML dashboard, all from the one summary (okr_targets/summary.py)."""
    from okr_targets.dashboard import render_html
    from okr_targets.summary import build_summary, summary_csv

    store = _open_store(store_url)
    with store.session() as session:
        summary = build_summary(session, datetime.now(UTC), store.display_url)
    store.dispose()
    if output == "json":
        text = json.dumps(summary, indent=2) + "\n"
    elif output == "csv":
        text = summary_csv(summary)
    else:
        text = render_html(summary)
    if destination is None:
        sys.stdout.write(text)
        return
    try:  # a BOM tells spreadsheet programs the CSV is UTF-8
        destination.write_text(text, encoding="utf-8-sig" if output == "csv" else "utf-8")
    except OSError as exc:
        raise fail(f"cannot write {destination}: {exc.strerror or exc}") from None
    err.print(f"wrote the {output} report to {destination}", highlight=False)


def _print_report(store_url: str, output: str) -> None:
    from okr_targets.report import build_report, walk

    store = _open_store(store_url)
    now = datetime.now(UTC)
    with store.session() as session:
        lines = build_report(session, now)
    store.dispose()
    table = Table(title="OKRs", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("objective / key result", overflow="ellipsis", no_wrap=True, max_width=44)
    table.add_column("value", justify="right", no_wrap=True, min_width=6)
    table.add_column("target", justify="right", no_wrap=True, min_width=13)
    table.add_column("progress", no_wrap=True, min_width=13)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("forecast", justify="right", no_wrap=True, min_width=8)
    table.add_column("updated", no_wrap=True, min_width=12)
    notes = []
    for depth, line in walk(lines):
        indent = "  " * depth
        progress = "" if line.progress is None else f"{line.progress:>4.0%}"
        table.add_row(f"{indent}[bold]{line.title}[/]", "", "", f"[bold]{progress}[/]", "", "", "")
        for kr in line.key_results:
            updated = datetime.fromisoformat(kr.as_of).strftime("%b %d %H:%M") if kr.as_of else ""
            status = _STATUS.get(kr.status, kr.status)
            if kr.final_score is not None:
                status = f"closed {kr.final_score:.2f}"
            table.add_row(
                f"{indent}  {kr.title}",
                _number(kr.value, kr.unit, with_unit=False),
                _number(kr.target, kr.unit),
                _bar(kr.progress),
                status,
                _number(kr.forecast, kr.unit, with_unit=False) if kr.final_score is None else "",
                updated,
            )
            if kr.stale_reason:
                notes.append(f"[magenta]stale[/] {kr.id}: {kr.stale_reason}")
    out.print(table)
    for note in notes:
        out.print(note, highlight=False, soft_wrap=True)


_STATUS = {
    "on_track": "[green]on track[/]",
    "at_risk": "[yellow]at risk[/]",
    "off_track": "[red]off track[/]",
    "no_data": "[dim]no data[/]",
    "stale": "[magenta]stale[/]",
}


def _number(value: float | None, unit: str, with_unit: bool = True) -> str:
    """Short, human numbers: 1.2M, 612k, 5, -10.6% (the dashboard's, a unit column aside)."""
    from okr_targets.summary import format_value

    return format_value(value, unit if with_unit or unit == "%" else "")


def _bar(progress: float | None, width: int = 8) -> str:
    if progress is None:
        return ""
    filled = round(progress * width)
    return f"{'█' * filled}{'░' * (width - filled)} {progress:>4.0%}"


@app.command()
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
        _print_report(_store_url(store), output)
        return
    _export(_store_url(store), output, destination)


@app.command()
def serve(
    store: StoreOption = None,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0 picks a free one)")] = 8000,
) -> None:
    """Serve the dashboard and its JSON API (/api/v1) live from the store, read-only.

    Set OKR_SYNC_SERVE_TOKEN (bearer token) and/or OKR_SYNC_SERVE_USER and
    OKR_SYNC_SERVE_PASSWORD (basic auth) to require credentials.
    """
    import socket

    import uvicorn
    from pydantic import ValidationError

    from okr_sync.serve import ServeSettings, create_app

    try:
        settings = ServeSettings()
    except ValidationError as exc:
        raise fail(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    opened = _open_store(store)
    if not settings.protected and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"[yellow]warning:[/] anyone who reaches {host}:{port} can read the dashboard; "
            "set OKR_SYNC_SERVE_TOKEN or OKR_SYNC_SERVE_USER/OKR_SYNC_SERVE_PASSWORD",
            highlight=False,
        )
    # Bind here so a busy port is one clear error and --port 0 can say which port it got.
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        opened.dispose()
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = listener.getsockname()[1]
    err.print(f"Serving {opened.display_url} read-only on http://{host}:{bound}/", highlight=False)
    server = uvicorn.Server(uvicorn.Config(create_app(opened, settings), log_level="warning"))
    try:
        server.run(sockets=[listener])
    finally:
        opened.dispose()


@app.command("lint")
def lint_command(okr_file: OkrFileOption = None) -> None:
    """Check the OKR file: structure, metrics, and that every key result is SMART."""
    from okr_targets.config import ConfigError, lint, load_okrs

    path = okr_file or Settings().okr_file
    try:
        config = load_okrs(path)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    findings = lint(config)
    for finding in findings:
        err.print(f"[yellow]{finding}[/]", highlight=False, soft_wrap=True)
    if findings:
        raise fail(f"{len(findings)} problem(s) in {path}")
    count = sum(1 for _ in config.key_results())
    out.print(f"{path}: {len(config.spec.objectives)} objectives, {count} key results, all SMART")


@app.command()
def sandbox(
    source: Annotated[str, typer.Option(help="salesforce, zendesk or hubspot")] = "salesforce",
    seed: Annotated[int, typer.Option(help="seed of the generated data")] = 7,
    data: Annotated[
        Path | None, typer.Option(help="serve this directory of JSON Lines files instead")
    ] = None,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0 picks a free one)")] = 8443,
    faults: Annotated[str | None, typer.Option(help=FAULT_SPEC_HELP)] = None,
) -> None:
    """Serve one source's API emulator on loopback over TLS until Ctrl-C."""
    from connectors.sandbox.server import RunningServer, parse_faults, serve_tls_forever
    from okr_sync.demo import sandbox_app, sandbox_env

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        emulator = sandbox_app(source, seed, today, data)
        emulator.state.faults.extend(parse_faults(faults or ""))
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None

    def announce(server: RunningServer) -> None:
        out.print(f"{source} sandbox at {server.base_url} (CA certificate: {server.ca_file})")
        out.print("Point okr-sync at it with:")
        for name, value in sandbox_env(source, server).items():
            out.print(f"  export {name}={value}", highlight=False, soft_wrap=True)
        out.print("Press Ctrl-C to stop.")

    try:
        serve_tls_forever(emulator, port=port, cert_dir=SANDBOX_DIR, on_ready=announce)
    except (OSError, RuntimeError) as exc:
        raise fail(f"cannot serve on 127.0.0.1:{port}: {exc}") from None
    out.print("sandbox stopped")


def _open_store(store: str | None) -> Store:
    """Open (and migrate) the store, or end with its one-line error."""
    from okr_targets.store import Store, StoreError

    try:
        return Store.open(_store_url(store))
    except StoreError as exc:
        raise fail(str(exc)) from None


@runs_app.callback()
def runs(
    ctx: typer.Context,
    store: StoreOption = None,
    limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20,
) -> None:
    """List recent sync runs: when, how they ended and what they read."""
    if ctx.invoked_subcommand is not None:
        return
    from sqlalchemy import select

    from okr_targets.models import SyncRun

    opened = _open_store(store)
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


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="the run's id")], store: StoreOption = None
) -> None:
    """One run: its status and reason, and per stream the records and cursors."""
    from okr_targets.models import SyncRun

    opened = _open_store(store)
    with opened.session() as session:
        run = session.get(SyncRun, run_id)
    opened.dispose()
    if run is None:
        raise fail(f"no run {run_id!r} in {opened.display_url}; `okr-sync runs` lists them")
    out.print(f"Run {run.id}: [bold]{run.status}[/]" + (f" — {run.reason}" if run.reason else ""))
    finished = run.finished_at.isoformat() if run.finished_at else "not finished"
    out.print(f"started {run.started_at.isoformat()}, finished {finished}, code {run.code_version}")
    out.print(_streams_table(run.stream_counts))
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
    customers = run.details.get("customers") or {}
    if customers:
        out.print(
            f"customers matched: {customers['matched']}, unmatched: {_unmatched_count(customers)}"
        )
    for finding in run.details.get("findings", []):
        out.print(f"finding: {finding}", highlight=False)


def _as_of(text: str | None) -> datetime | None:
    """``--at``: an ISO date (the end of that day, UTC) or a date-time (UTC when naive)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--at {text!r} is not an ISO date or date-time, e.g. 2026-11-30") from None
    if len(text) <= 10:  # a date: as it stood at the end of that day
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def explain(
    key_result: Annotated[str, typer.Argument(help="the key result's id")],
    at: Annotated[
        str | None, typer.Option("--at", help="as it stood at this date or date-time")
    ] = None,
    records: Annotated[
        bool, typer.Option("--records", help="also list the records behind the number")
    ] = False,
    output: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    store: StoreOption = None,
) -> None:
    """How a key result's number was computed, from which records, and how it changed."""
    from dataclasses import asdict

    from okr_targets.lineage import ExplainError, contributing_records
    from okr_targets.lineage import explain as explain_number

    opened = _open_store(store)
    try:
        with opened.session() as session:
            found = explain_number(session, key_result, _as_of(at))
            rows = contributing_records(session, found.measurement_id) if records else []
    except ExplainError as exc:
        raise fail(str(exc)) from None
    finally:
        opened.dispose()
    if output == "json":
        out.print_json(json.dumps({**asdict(found), "records": rows}, default=str))
        return
    if output != "text":
        raise fail(f"unknown format {output!r}: use text or json")
    for line in _explanation_lines(found):
        out.print(line, highlight=False, soft_wrap=True)
    if records:
        table = Table(title=f"{len(rows):,} records", title_justify="left", box=box.SIMPLE_HEAD)
        columns = sorted({key for row in rows for key in row}, key=_record_column_order)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(str(row.get(column, "")) for column in columns))
        out.print(table)


def _record_column_order(name: str) -> tuple[int, str]:
    first = ("entity", "source", "source_id", "name", "amount", "currency", "status")
    return (first.index(name), name) if name in first else (len(first), name)


def _exact(value: float | None) -> str:
    """1,322,735.27 and 3,400,000: every digit (explain is for checking numbers)."""
    return "no value" if value is None else f"{value:,.2f}".removesuffix(".00")


def _explanation_lines(found: Any) -> list[str]:
    """The explanation as a leader reads it: number, method, inputs, freshness, changes."""
    value = f"{_exact(found.value)} {found.unit}".strip()
    progress = "—" if found.progress is None else f"{found.progress:.0%}"
    params = ", ".join(f"{k}={v}" for k, v in found.params.items()) or "no parameters"
    inputs = ", ".join(f"{name} {count:,}" for name, count in found.records_by_kind.items())
    lines = [
        f"[bold]{found.key_result_id}[/] — {found.title}",
        f"  value: {value} (target {_exact(found.target)}, baseline {_exact(found.baseline)}; "
        f"{found.kind.replace('_', ' ')}, period {found.period})",
        f"  progress {progress}, status {found.status.replace('_', ' ')}",
        f"  computed by metric {found.metric} ({params})",
        f"  from {found.record_count:,} records" + (f": {inputs}" if inputs else ""),
        f"  measured {found.measured_at} by run {found.run_id} ({found.run_status or '?'}"
        + (f", Prefect flow run {found.flow_run_id}" if found.flow_run_id else "")
        + f"), okr-sync {found.code_version}",
    ]
    if found.details.get("custom") == "sql":  # a data team's metric: show what it ran
        lines.insert(4, "  its query: " + escape(" ".join(str(found.details["query"]).split())))
    elif found.details.get("custom") == "python":
        lines.insert(4, f"  its function: {escape(str(found.details.get('function', '?')))}")
    if found.data_cutoff:
        lines.append(f"  source data as of {found.data_cutoff} (later changes are not in it)")
    for source, read_at in found.sources_read_at.items():
        lines.append(f"  {source} last read in full with data as of {read_at}")
    for frozen in found.baselines:
        lines.append(
            f"  baseline {frozen['period']}: {_exact(frozen['value'])} from {frozen['records']:,} "
            f"records, frozen at {frozen['computed_at']}"
        )
        if frozen["refrozen_from"] is not None:
            lines.append(f"    re-frozen by a full refresh (was {_exact(frozen['refrozen_from'])})")
        if frozen["now"] is not None:
            lines.append(
                f"    its period's data has changed since and now gives {_exact(frozen['now'])}:"
                " not applied (a frozen baseline is never recomputed silently)"
            )
    restated = found.restatement
    if restated is not None:
        change = "" if restated.difference is None else f" ({restated.difference:+,.2f})"
        lines.append(
            f"  restated: was {_exact(restated.old_value)} (measured {restated.old_measured_at}), "
            f"now {value}{change}: {len(restated.added)} record(s) added, "
            f"{len(restated.removed)} removed, {len(restated.changed)} changed since"
        )
        for label, keys in (
            ("added", restated.added),
            ("removed", restated.removed),
            ("changed", restated.changed),
        ):
            for entity, source, source_id in keys[:10]:
                lines.append(f"    {label}: {source} {entity} {source_id}")
    restatements = sum(1 for m in found.history if m["restates"])
    lines.append(
        f"  history: {len(found.history)} measurement(s)"
        + (f", {restatements} restatement(s)" if restatements else "")
    )
    return lines


@app.command()
def doctor(store: StoreOption = None, okr_file: OkrFileOption = None) -> None:
    """Health checks: store and schema, credentials, sources reachable, last sync per source."""
    from okr_sync.doctor import diagnose

    findings = diagnose(_store_url(store), okr_file or Settings().okr_file)
    for found in findings:
        mark = "[green]ok[/]  " if found.ok else "[red]FAIL[/]"
        out.print(f"{mark} {found.check}: {found.detail}", highlight=False, soft_wrap=True)
        if found.fix:
            out.print(f"       fix: {found.fix}", highlight=False, soft_wrap=True)
    problems = sum(1 for found in findings if not found.ok)
    if problems:
        raise fail(f"{problems} problem(s) found")
    out.print("all checks passed")


@db_app.command("upgrade")
def db_upgrade(store: StoreOption = None) -> None:
    """Apply the Alembic migrations to the store (also done on first use)."""
    opened = _open_store(store)
    out.print(f"{opened.display_url} is at schema revision {opened.revision()}")
    opened.dispose()


if __name__ == "__main__":
    app()
