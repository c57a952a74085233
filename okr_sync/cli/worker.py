"""``okr-sync worker``: the long-lived process that runs webhook-triggered syncs warm."""

from __future__ import annotations

import os

import typer

from okr_sync.cli.console import fail
from okr_sync.cli.options import settings


def worker() -> None:
    """Run the syncs `okr-sync webhooks serve` submits, one at a time, in this warm process.

    Great Expectations and the OKR file's metrics load once, here, so each change costs
    only its own sync. The store and the OKR file are this process's OKR_SYNC_STORE_URL
    and OKR_SYNC_OKR_FILE; PREFECT_API_URL names the Prefect server.
    """
    # The sync's own tasks run inside this background task, outside any flow run: their
    # lines stay in this process's log (Prefect's API keeps flow-run logs only).
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    from prefect.settings import PREFECT_API_URL  # Prefect loads here, not for --help

    if not PREFECT_API_URL.value():
        raise fail(
            "PREFECT_API_URL is not set: the worker takes its syncs from your Prefect server"
        )
    from prefect.task_worker import serve

    from flows.background import sync_changed_source, warm_up
    from okr_targets.config import ConfigError
    from transforms.metric import MetricError

    try:
        warm_up(settings())
    except (ConfigError, MetricError) as exc:  # every sync would fail the same way
        raise fail(str(exc)) from None
    typer.echo(f"okr-sync worker: serving {sync_changed_source.name}, one sync at a time")
    serve(sync_changed_source, limit=1)
