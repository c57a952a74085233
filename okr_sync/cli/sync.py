"""``okr-sync sync`` and ``demo``: run the sync here, with a progress bar, and report.

With ``PREFECT_API_URL`` set the sync is a ``sync-okrs`` flow run on that server (events,
artifacts, the run in the UI); without it, it runs in this process with no Prefect run
and publishes no events, rather than start Prefect's temporary server (seconds a run).
Prefect and the sandboxes are imported when a command needs them, not with this module.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import SecretStr
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.progress import watching
from okr_sync.cli.console import err, fail
from okr_sync.cli.options import (
    OkrFileOption,
    StoreOption,
    okr_file_or_default,
    settings,
    store_url,
)
from okr_sync.cli.report import print_report
from okr_sync.cli.runs import exit_if_partial, print_run
from okr_targets.store import has_password, redact

if TYPE_CHECKING:
    from prefect.states import State

    from flows.report import RunReport

DEMO_OKRS = Path(__file__).parent.parent / "demo" / "okrs.yaml"


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
    settings()  # a refused OKR_SYNC_* variable ends here, in one line, before any work
    report = _run_sync(okr_file_or_default(okr_file), store_url(store), full_refresh, reconcile)
    print_run(report)
    print_report(store_url(store))
    exit_if_partial(report)


def demo(
    store: StoreOption = None,
    seed: Annotated[int, typer.Option(help="seed of the generated sample org")] = 7,
    okr_file: Annotated[Path, typer.Option("--okr-file", help="OKR file to sync")] = DEMO_OKRS,
) -> None:
    """Start the Salesforce and Zendesk sandboxes, write the finance export, sync the sample
    company's OKRs, report."""
    from okr_sync.demo import demo_sandboxes

    url = store_url(store)
    # The sample company is generated up to the start of today (UTC): the same all day.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with ExitStack() as stack:
        with err.status("Generating the sample company and starting its sandboxes…"):
            world = stack.enter_context(demo_sandboxes(seed, today))
        for name, server in world.servers.items():
            err.print(f"Sandbox {name} API at {server.base_url}", highlight=False)
        finance = world.env.get("OKR_SYNC_FILES_DIRECTORY")
        if finance:
            err.print(f"Finance export (files connector) in {finance}", highlight=False)
        err.print(f"Store: {redact(url)}", highlight=False)
        # The connectors read where their sandbox is from the environment, for this demo only:
        # its certificate files go with the sandboxes.
        stack.enter_context(_environment(world.env))
        # Every demo serves a freshly generated company, so it re-reads everything.
        report = _run_sync(okr_file, url, full_refresh=True)
    print_run(report)
    print_report(url)
    err.print(
        f"The store stays at {redact(url)}: see it as a page with "
        "`okr-sync report --format html --output okrs.html` or live with `okr-sync serve`."
    )
    exit_if_partial(report)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """These environment variables set inside the block, and as they were after it."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _progress_bar() -> Iterator[None]:
    """A progress bar per stream, fed by the flow through flows.progress."""
    tasks: dict[str, Any] = {}
    columns = (
        TextColumn("{task.description}", markup=False),
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
    okr_file: Path, url: str, full_refresh: bool = False, reconcile: bool = False
) -> RunReport:
    """The sync as a ``sync-okrs`` flow run on the configured Prefect server; with none
    configured, here in this process (no flow run, no temporary server to start)."""
    import flows.sync  # noqa: F401 - Prefect, SQLAlchemy, pydantic: loaded once, here
    from flows.steps import prefect_api

    # Those modules leave several hundred thousand objects that live until the process
    # ends; frozen, the garbage collector stops walking them on every collection and at
    # exit (about 0.6 s of a 3 s no-change sync). Collected first: no garbage is kept.
    gc.collect()
    gc.freeze()
    if prefect_api():
        return _run_flow(okr_file, url, full_refresh, reconcile)
    return _run_here(okr_file, url, full_refresh, reconcile)


def _run_flow(okr_file: Path, url: str, full_refresh: bool, reconcile: bool) -> RunReport:
    from flows.sync import sync_okrs

    # Prefect keeps flow parameters in its database; a SecretStr it records masked.
    store: str | SecretStr = SecretStr(url) if has_password(url) else url
    with _progress_bar():
        state = sync_okrs(
            okr_file=str(okr_file),
            store_url=store,
            full_refresh=full_refresh,
            reconcile=reconcile,
            return_state=True,
        )
    return _report_of(state)


def _run_here(okr_file: Path, url: str, full_refresh: bool, reconcile: bool) -> RunReport:
    """``run_sync`` without Prefect runs: its steps are plain calls, it publishes no events."""
    from prefect.settings import get_current_settings

    from flows.plan import SyncRequest
    from flows.sync import SyncRefusedError, run_sync
    from okr_targets.status import RunStatus

    # The steps log to "okr_sync" here, not to a run's logger: the same level as a run's.
    logging.getLogger("okr_sync").setLevel(get_current_settings().logging.level)
    request = SyncRequest(str(okr_file), full_refresh=full_refresh, reconcile=reconcile)
    try:
        with _progress_bar():
            report = run_sync(request, url, settings())
    except SyncRefusedError as exc:
        raise fail(str(exc)) from None
    if report.status == RunStatus.FAILED:
        raise fail(report.reason or "the sync failed")
    return report


def _report_of(state: State[Any]) -> RunReport:
    """The run's report; a run that failed, crashed or was cancelled ends with its reason."""
    from flows.report import RunReport

    if not state.is_completed():
        raise fail(state.message or "the sync failed")
    report = state.result()
    assert isinstance(report, RunReport)
    return report
