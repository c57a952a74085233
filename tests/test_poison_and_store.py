"""The store under accident (issue 22): migrations a kill cannot tear, one writer lock per
file whatever the URL's spelling, and one ``error:`` line for a store or a setting that
cannot work. (Text the store cannot hold is in tests/test_bad_inputs.py's catalogue.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import warnings
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import SAWarning
from typer.testing import CliRunner, Result

from okr_sync.cli import app
from okr_targets.store import normalize_url
from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.usefixtures("prefect_harness")

HEAD = "0008"  # the newest migration's revision

# A `db upgrade` killed (SIGKILL: no cleanup, no rollback by Python) before its Nth SQL
# statement; with N = 0 it runs to the end and prints how many statements it sent.
MIGRATE_AND_DIE = """
import os, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

limit, sent = int(sys.argv[1]), 0

@event.listens_for(Engine, "before_cursor_execute")
def count(*_):
    global sent
    sent += 1
    if sent == limit:
        os.kill(os.getpid(), signal.SIGKILL)

from okr_sync.cli import app
try:
    app(["db", "upgrade", "--store", sys.argv[2]])
finally:
    print(f"statements={sent}", file=sys.stderr, flush=True)
"""


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def assert_one_error_line(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.output
    assert lines[-1].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def migrate(url: str, kill_before: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", MIGRATE_AND_DIE, str(kill_before), url],
        capture_output=True,
        text=True,
        timeout=120,
    )


def schema(url: str) -> dict[str, list[tuple[str, str]]]:
    """Every table's columns and types, and its indexes: what a migration builds."""
    engine = create_engine(normalize_url(url))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)  # SQLite expression indexes: skipped
            found = inspect(engine)
            return {
                table: sorted((c["name"], str(c["type"])) for c in found.get_columns(table))
                + sorted(("index", str(i["name"])) for i in found.get_indexes(table))
                for table in sorted(found.get_table_names())
            }
    finally:
        engine.dispose()


# --- migrations: a kill at any statement leaves a store the next upgrade completes ----------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_migration_killed_at_any_statement_is_completed_by_the_next_upgrade(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    databases = ExitStack()
    request.addfinalizer(databases.close)

    def fresh(label: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{label}.db'}"
        name = databases.enter_context(fresh_postgres_database(f"okr_kill_{label}"))
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    if backend == "postgresql":
        request.getfixturevalue("postgres_admin")  # skips (or fails in CI) without a server
    complete = fresh("complete")
    whole = migrate(complete)
    assert whole.returncode == 0, whole.stderr
    total = int(whole.stderr.rsplit("statements=", 1)[1])
    expected = schema(complete)
    assert len(expected) > 10
    assert total > 30
    # eight kill points spread over the whole run, from the first statements to the last
    points = sorted({1, 2, total - 1, *(round(total * k / 6) for k in range(1, 6))})
    for point in points:
        url = fresh(f"k{point}")
        killed = migrate(url, point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        result = invoke("db", "upgrade", "--store", url)
        assert result.exit_code == 0, (point, result.output)
        assert f"is at schema revision {HEAD}" in result.stdout
        assert schema(url) == expected, f"killed before statement {point} of {total}"
