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

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import SAWarning
from typer.testing import CliRunner, Result

from okr_sync.cli import DEMO_OKRS, app
from okr_targets.store import MIGRATIONS, Store, StoreBusyError, normalize_url
from tests.conftest import PG_ADMIN_DSN, fresh_postgres_database

pytestmark = pytest.mark.usefixtures("prefect_harness")

# the newest migration's revision, as Alembic finds it (a new migration needs no edit here)
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()

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


# --- the writer lock is the file's, whatever the URL's spelling -------------------------------


def test_a_symlinked_store_shares_the_writer_lock(tmp_path: Path) -> None:
    real = tmp_path / "real" / "okr.db"
    real.parent.mkdir()
    link = tmp_path / "link.db"
    link.symlink_to(real)
    holder = Store.open(f"sqlite:///{real}")
    try:
        through_link = Store(f"sqlite:///{link}")
        with holder.writer_lock(), pytest.raises(StoreBusyError), through_link.writer_lock():
            pass  # pragma: no cover - the lock is held
    finally:
        holder.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.db", "real"]  # no link.db.…


def test_a_uri_store_url_locks_its_file_not_a_file_colon_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    real = tmp_path / "okr.db"
    holder = Store.open(f"sqlite:///{real}")
    try:
        with holder.writer_lock():
            uri = Store(f"sqlite:///file:{real}?uri=true")
            with pytest.raises(StoreBusyError), uri.writer_lock():
                pass  # pragma: no cover - the lock is held
            relative = Store("sqlite:///okr.db")  # the same file from the working directory
            with pytest.raises(StoreBusyError), relative.writer_lock():
                pass  # pragma: no cover - the lock is held
    finally:
        holder.dispose()
    assert not (tmp_path / "file:").exists()
    assert (tmp_path / "okr.db.writer.lock").exists()


# --- one error line for a store or a setting that cannot work --------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("OKR_SYNC_BATCH_SIZE", "lots", "Input should be a valid integer"),
        ("OKR_SYNC_BATCH_SIZE", "0", "Input should be greater than or equal to 1"),
        ("OKR_SYNC_LOOKBACK_SECONDS", "-5", "Input should be greater than or equal to 0"),
        ("OKR_SYNC_RETRY_BUDGET_SECONDS", "soon", "Input should be a valid number"),
    ],
)
def test_a_refused_setting_is_one_line_naming_its_variable(
    variable: str, value: str, why: str, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'okr.db'}"
    result = invoke("sync", "--okr-file", str(DEMO_OKRS), "--store", store, env={variable: value})
    assert_one_error_line(result, f"{variable}={value!r}: {why}")
    assert not (tmp_path / "okr.db").exists()  # refused before any work


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"these are my meeting notes, not a database\n" * 100)
    for args in (("db", "upgrade"), ("sync", "--okr-file", str(DEMO_OKRS))):
        result = invoke(*args, "--store", f"sqlite:///{garbage}")
        assert_one_error_line(result, f"cannot open store sqlite:///{garbage}", "not a database")


def test_a_read_only_store_is_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "okr.db"
    assert invoke("db", "upgrade", "--store", f"sqlite:///{path}").exit_code == 0
    before = path.read_bytes()
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    result = invoke("sync", "--okr-file", str(DEMO_OKRS), "--store", read_only)
    assert_one_error_line(result, "cannot write to store", "attempt to write a readonly database")
    assert path.read_bytes() == before
    assert invoke("report", "--store", read_only).exit_code == 0  # reading it still works


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_admin")
@pytest.mark.parametrize("how", ["read-only-database", "select-only-role"])
def test_a_read_only_postgres_store_is_one_line_and_left_as_it_was(how: str) -> None:
    """The PostgreSQL twin of the read-only file (issue 22 #12): a database whose
    transactions are read-only, or a role that may only connect and read."""
    with fresh_postgres_database("okr_permerr_ro") as name:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        assert invoke("db", "upgrade", "--store", url).exit_code == 0
        role = f"{name}_reader"
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
        try:
            if how == "read-only-database":
                admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
                read_only = url
            else:
                admin.execute(f'CREATE ROLE "{role}" LOGIN')
                with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as owner:
                    owner.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
                read_only = url.replace("postgres@", f"{role}@", 1)
            before = schema(url), _rows(url)
            result = invoke("sync", "--okr-file", str(DEMO_OKRS), "--store", read_only)
            assert_one_error_line(
                result,
                f"cannot write to store {read_only}",
                "read-only transaction" if how == "read-only-database" else "permission denied",
            )
            assert (schema(url), _rows(url)) == before
            assert invoke("report", "--store", read_only).exit_code == 0  # reading still works
        finally:
            if how == "select-only-role":
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')
            admin.close()


def _rows(url: str) -> dict[str, int]:
    """How many rows each table holds."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                for table in inspect(connection).get_table_names()
            }
    finally:
        engine.dispose()


@pytest.mark.usefixtures("sources_env")
def test_a_missing_ca_bundle_is_one_line_naming_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_CA_BUNDLE", str(tmp_path / "nowhere" / "ca.pem"))
    result = invoke(
        "sync", "--okr-file", str(DEMO_OKRS), "--store", f"sqlite:///{tmp_path / 'o.db'}"
    )
    assert_one_error_line(result, "OKR_SYNC_SALESFORCE_CA_BUNDLE", "does not point to a file")


def test_a_store_torn_by_an_older_first_migration_is_named_in_one_line(tmp_path: Path) -> None:
    """What a kill left before migrations were atomic: a table, and no schema revision."""
    path = tmp_path / "okr.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE customer_links (source TEXT)")
    engine.dispose()
    result = invoke("db", "upgrade", "--store", f"sqlite:///{path}")
    assert_one_error_line(
        result,
        "holds okr-sync tables but no schema revision",
        "its first migration was interrupted",
    )
