"""The ``okr-sync`` command line: this module assembles the commands of its modules.

One module per command group (the report's "module map"): sync.py (sync, demo),
report.py (report, serve), explain.py, changes.py, lint.py, sandbox.py, doctor.py, db.py, runs.py
(runs, runs show), webhooks.py, worker.py, automations.py, secret.py, connectors.py.
console.py holds the consoles, ``fail`` and ``listen``: every expected failure ends with
one ``error:`` line on stderr and exit status 1; tracebacks are for bugs only.

Every command module is imported here, so each keeps its heavy imports (Prefect, Great
Expectations, web servers, sandboxes, the metric catalog) inside the commands that use
them: ``okr-sync --help`` and ``lint`` load none of them (tests/test_cli.py checks).
"""

from __future__ import annotations

import os

import typer

from okr_sync.cli import changes, doctor, explain, lint, report, runs, sandbox, sync, worker
from okr_sync.cli.automations import automations_app
from okr_sync.cli.connectors import connectors_app
from okr_sync.cli.db import db_app
from okr_sync.cli.runs import runs_app
from okr_sync.cli.secret import secret_app
from okr_sync.cli.sync import DEMO_OKRS
from okr_sync.cli.webhooks import webhooks_app

__all__ = ["DEMO_OKRS", "app"]

# No telemetry from the embedded Prefect server or Great Expectations: the machines this runs
# on may have no route out, and a sync should not phone home. Users can still override.
# (The command modules load Prefect and GX only when a command runs, after this.)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

app = typer.Typer(
    help="Keep OKR key-result numbers true, automatically.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# The order here is the order `okr-sync --help` lists them in.
app.command()(sync.sync)
app.command()(sync.demo)
app.command()(report.report)
app.command()(report.serve)
app.command("lint")(lint.lint_command)
app.command("quarantine")(runs.quarantine)
app.command()(sandbox.sandbox)
app.command()(explain.explain)
app.command()(changes.changes)
app.command()(doctor.doctor)
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
app.add_typer(webhooks_app, name="webhooks")
app.command()(worker.worker)
app.add_typer(automations_app, name="automations")
app.add_typer(secret_app, name="secret")
app.add_typer(connectors_app, name="connectors")
