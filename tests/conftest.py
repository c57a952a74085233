"""Shared fixtures: stores on SQLite and PostgreSQL, the Salesforce sandbox, one Prefect harness.

PostgreSQL tests need the server at 127.0.0.1:5432 (database ``test``). In CI
(``CI=true``) a missing server fails those tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import time_machine
from hypothesis import settings

from connectors.base import get_connector
from connectors.salesforce.sandbox import sandbox_env as salesforce_env_vars
from connectors.salesforce.sandbox.data import SalesforceOrg, customer_seeds, generate_org
from connectors.salesforce.sandbox.emulator import create_app
from connectors.sandbox.server import RunningServer, serve_tls
from connectors.zendesk.sandbox import sandbox_env as zendesk_env_vars
from connectors.zendesk.sandbox.data import generate_helpdesk
from connectors.zendesk.sandbox.emulator import create_app as create_helpdesk_app
from expectations import Validator
from flows.extract import sync_stream
from flows.settings import Settings
from okr_sync.demo import write_finance_export
from okr_targets.status import RunStatus
from okr_targets.store import Store, begin_run, finish_run

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Task logic tested through .fn() logs outside a flow run; those lines stay local.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

# Third-party packages the tests install; their own tests run in subprocesses, not here.
collect_ignore = ["fixtures"]

PG_ADMIN_DSN = os.environ.get("OKR_SYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
# "Now" for every test whose answer depends on the date: an hour after the sandbox data
# ends, 62.5 % into 2026-Q4 (a not-done Q4 milestone is still on track, Q3 has closed).
NOW = AS_OF + timedelta(hours=1)


def running_in_ci() -> bool:
    """CI sets ``CI=true``: there a missing service fails its tests instead of skipping them."""
    return os.environ.get("CI", "").lower() == "true"


# Hypothesis: ``dev`` (the default) keeps the randomized tests that run whole syncs, which
# take their example count from here, small enough for ``make test`` on a laptop; ``ci``
# (CI=true, or HYPOTHESIS_PROFILE=ci) draws more. Tests that name max_examples keep theirs.
# A failing example prints a blob that replays it (@reproduce_failure).
settings.register_profile("dev", max_examples=2, print_blob=True)
settings.register_profile("ci", max_examples=4, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if running_in_ci() else "dev"))


def _postgres_error() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    error = _postgres_error()
    if error is not None:
        message = f"PostgreSQL at {PG_ADMIN_DSN} is not reachable: {error}"
        if running_in_ci():
            pytest.fail(f"{message} (required when CI=true)")
        pytest.skip(message)
    return PG_ADMIN_DSN


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards; yields its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_postgres_database("okr_test") as name:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'okr.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """Pin this process's clock (the flow's, the store's, the emulators') to ``NOW``.

    It ticks on from there, so time-outs, rate limits and successive runs behave as usual;
    ``clock.shift(...)`` moves it on. Subprocesses (Prefect's test server) keep real time.
    """
    with time_machine.travel(NOW, tick=True) as coordinates:
        yield coordinates


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


# --- the Salesforce sandbox ------------------------------------------------------------------

SMALL_ORG = {"seed": 11, "as_of": AS_OF, "accounts": 150, "opportunities": 900}


@pytest.fixture(scope="session")
def sandbox_org() -> SalesforceOrg:
    """A small generated org, the same for every test in the session (never mutate it)."""
    return generate_org(**SMALL_ORG)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sandbox_app(sandbox_org: SalesforceOrg) -> Any:
    """The session's Salesforce emulator; tests inject faults through ``state.faults``."""
    return create_app(sandbox_org)


@pytest.fixture(scope="session")
def sandbox(sandbox_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_tls(sandbox_app, cert_dir=tmp_path_factory.mktemp("ca")) as server:
        yield server


@pytest.fixture
def faults(sandbox_app: Any) -> Iterator[Any]:
    """The session Salesforce emulator's fault queue, emptied after the test."""
    yield sandbox_app.state.faults
    sandbox_app.state.faults.clear()


HELPDESK_EXPORTS, HELPDESK_CALLS = 10_000, 100_000  # a minute: limits are not under test


@pytest.fixture(scope="session")
def helpdesk_app(sandbox_org: SalesforceOrg) -> Any:
    """The Zendesk helpdesk of the sandbox org's customers (the demo's second source)."""
    helpdesk = generate_helpdesk(seed=11, as_of=AS_OF, companies=customer_seeds(sandbox_org))
    # Zendesk's real limits (10 exports, 700 calls a minute) would throttle a test session.
    return create_helpdesk_app(
        helpdesk, export_rate_limit=HELPDESK_EXPORTS, rate_limit=HELPDESK_CALLS
    )


@pytest.fixture(scope="session")
def helpdesk_sandbox(helpdesk_app: Any) -> Iterator[RunningServer]:
    with serve_tls(helpdesk_app) as server:
        yield server


@pytest.fixture(scope="session")
def finance_export(sandbox_org: SalesforceOrg, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The finance system's export of the sandbox org's won deals (the demo's third source)."""
    directory = tmp_path_factory.mktemp("finance")
    write_finance_export(sandbox_org, SMALL_ORG["seed"], directory)  # type: ignore[arg-type]
    return directory


@pytest.fixture
def sources_env(
    sandbox: RunningServer,
    helpdesk_sandbox: RunningServer,
    finance_export: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, RunningServer]:
    """Point the demo's sources (Salesforce, Zendesk, the finance export) at the session's
    sandboxes."""
    helpdesk_env = zendesk_env_vars(
        helpdesk_sandbox, export_rate_limit=HELPDESK_EXPORTS, rate_limit=HELPDESK_CALLS
    )
    monkeypatch.setenv("OKR_SYNC_FILES_DIRECTORY", str(finance_export))
    for name, value in (salesforce_env_vars(sandbox) | helpdesk_env).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OKR_SYNC_RETRY_INITIAL_SECONDS", "0.05")
    return {"salesforce": sandbox, "zendesk": helpdesk_sandbox}


@pytest.fixture
def salesforce_env(sandbox: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """Point the Salesforce connector at the session's sandbox through its environment."""
    for name, value in salesforce_env_vars(sandbox).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OKR_SYNC_RETRY_INITIAL_SECONDS", "0.05")
    return sandbox


@contextmanager
def serve_org(org: SalesforceOrg, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    """Serve an org of the test's own (one it may change, unlike the session's) and point
    the Salesforce connector at it."""
    with serve_tls(create_app(org)) as server:
        for name, value in salesforce_env_vars(server).items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def live_sandbox(
    live_org: SalesforceOrg, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningServer]:
    """The test module's own ``live_org`` (a fixture it defines), served: see serve_org."""
    with serve_org(live_org, monkeypatch) as server:
        yield server


@pytest.fixture(scope="session")
def validator() -> Validator:
    """One Great Expectations context per session (importing GX takes seconds)."""
    return Validator()


def sync_sources(store_url: str, validator: Validator, batch_size: int = 500) -> str:
    """Run every Salesforce stream into the store through the task logic (no Prefect run)."""
    store = Store.open(store_url)
    run_id = begin_run(store, "test")
    lookback = timedelta(seconds=Settings().lookback_seconds)
    counts = {
        stream.name: asdict(
            sync_stream.fn(
                store, "salesforce", stream, run_id, validator, batch_size, lookback=lookback
            )
        )
        for stream in get_connector("salesforce").streams
    }
    finish_run(store, run_id, RunStatus.COMPLETE, None, counts)
    store.dispose()
    return run_id


@pytest.fixture
def synced_store(store_url: str, salesforce_env: RunningServer, validator: Validator) -> str:
    """A store (SQLite or PostgreSQL) whose mirror holds the whole sandbox org."""
    sync_sources(store_url, validator)
    return store_url
