"""Custom metrics: a named SQL query or a Python function, from the OKR file.

The mirror is filled by a real sync of the SQL source's sample billing database; every
expected number is computed here from the sample rows, independently of SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from connectors.sandbox.tabular import sample_tables, utc
from connectors.sql.sandbox import create_fixture_database
from connectors.tabular import STREAMS
from expectations import Validator
from flows.extract import sync_stream
from okr_sync.cli import app
from okr_sync.doctor import Finding, check_metrics_role
from okr_targets.config import ConfigError
from okr_targets.lineage import explain
from okr_targets.models import Deal, SyncRun
from okr_targets.periods import Period
from okr_targets.store import METRICS_ROLE, Store, begin_run
from transforms.catalog import BUILT_IN, load
from transforms.measure import measure_key_results, save_okrs
from transforms.metric import Metric, MetricError

NOW = datetime(2026, 12, 1, tzinfo=UTC)

WON_DEALS_SQL = """\
SELECT count(*) FROM mirror_deals
WHERE deleted_at IS NULL AND outcome = 'won'
  AND close_on >= :period_start_date AND close_on < :period_end_date"""

HEADER = """\
company: Billing Co.
sources:
  sql: [deal, customer, rep, fx_rate]
"""

OBJECTIVES = """\
objectives:
  - id: growth
    title: Grow
    owner: ceo@billing.example
    period: "2026"
    key_results:
"""


def key_result(
    ident: str, metric: str, target: float = 10, params: str = "{}", period: str = "2026"
) -> str:
    return (
        f"      - id: {ident}\n        title: {ident}\n        metric: {metric}\n"
        f"        params: {params}\n        target: {target}\n        period: '{period}'\n"
    )


def write_okrs(tmp_path: Path, metrics: str, key_results: str) -> Path:
    path = tmp_path / "okrs.yaml"
    path.write_text(HEADER + metrics + OBJECTIVES + key_results)
    return path


def won_in(start: date, end: date) -> list[dict[str, Any]]:
    return [
        d
        for d in sample_tables()["deals"]
        if d["outcome"] == "won" and d["deleted_at"] is None and start <= d["close_on"] < end
    ]


@pytest.fixture
def billing_store(
    store_url: str, tmp_path: Path, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A store whose mirror holds the sample billing company, read by the SQL source."""
    return fill_billing(store_url, tmp_path, validator, monkeypatch)


def fill_billing(
    store_url: str, tmp_path: Path, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> str:
    source = f"sqlite:///{tmp_path / 'billing.db'}"
    create_fixture_database(source)
    monkeypatch.setenv("OKR_SYNC_SQL_URL", source)
    store = Store.open(store_url)
    run_id = begin_run(store, "test")
    for stream in STREAMS:
        if stream.entity in ("deal", "customer", "rep", "fx_rate"):
            sync_stream.fn(store, "sql", stream, run_id, validator, 500)
    store.dispose()
    return store_url


def measure(store_url: str, okr_file: Path) -> tuple[dict[str, Any], Store]:
    config, catalog = load(okr_file)
    store = Store.open(store_url)
    run_id = begin_run(store, "test")
    with store.session() as session, session.begin():
        save_okrs(session, config, NOW)
        outcomes = measure_key_results(session, config, catalog, run_id, NOW, "test")
    return {o.key_result_id: o for o in outcomes}, store


def test_a_sql_metric_is_measured_with_lineage_and_explained(
    billing_store: str, tmp_path: Path
) -> None:
    metrics = f"""\
metrics:
  won_deals:
    description: Won subscriptions closed in the period
    unit: deals
    sql: |
{_indent(WON_DEALS_SQL, 6)}
    records: |
{_indent(WON_DEALS_SQL.replace("count(*)", "source, source_id"), 6)}
    entity: deal
"""
    okrs = write_okrs(
        tmp_path,
        metrics,
        key_result("won", "won_deals")
        + key_result("won-change", "pct_change", 5, "{metric: won_deals}", period="2026-H2"),
    )
    outcomes, store = measure(billing_store, okrs)
    expected = won_in(date(2026, 1, 1), date(2027, 1, 1))
    assert 0 < len(expected) < 40
    assert outcomes["won"].value == len(expected)
    assert outcomes["won"].records == len(expected)
    assert outcomes["won"].unit == "deals"
    first_half = len(won_in(date(2026, 1, 1), date(2026, 7, 1)))
    second_half = len(won_in(date(2026, 7, 1), date(2027, 1, 1)))
    assert first_half > 0
    assert outcomes["won-change"].value == pytest.approx(
        100 * (second_half - first_half) / first_half
    )
    with store.session() as session:
        explanation = explain(session, "won")
    store.dispose()
    assert explanation.metric == "won_deals"
    assert explanation.details["custom"] == "sql"
    assert explanation.details["query"].startswith("SELECT count(*) FROM mirror_deals")
    assert explanation.record_count == len(expected)
    shown = CliRunner().invoke(app, ["explain", "won", "--store", billing_store])
    assert shown.exit_code == 0, shown.output
    assert "computed by metric won_deals" in shown.stdout
    assert "its query: SELECT count(*) FROM mirror_deals WHERE deleted_at IS NULL AND" in (
        shown.stdout.replace("\n  ", " ")
    )
    assert f"from {len(expected)} records: sql.deal {len(expected)}" in shown.stdout


def test_a_python_metric_with_a_parameter(billing_store: str, tmp_path: Path) -> None:
    metrics = """\
metrics:
  open_pipeline:
    python: tests.custom_metric_functions:open_pipeline
    params: {min_amount: 0}
    unit: deals
"""
    okrs = write_okrs(
        tmp_path,
        metrics,
        key_result("big-open", "open_pipeline", 3, "{min_amount: 25000}")
        + key_result("all-open", "open_pipeline", 3),
    )
    outcomes, store = measure(billing_store, okrs)
    store.dispose()
    deals = [d for d in sample_tables()["deals"] if d["outcome"] == "open" and not d["deleted_at"]]
    created_2026 = [d for d in deals if utc(d["created_at"]).year == 2026]
    assert outcomes["all-open"].value == len(created_2026)
    assert outcomes["big-open"].value == len([d for d in created_2026 if d["amount"] >= 25000])
    assert outcomes["big-open"].value < outcomes["all-open"].value


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM mirror_deals", "its SQL must be a SELECT, not DELETE"),
        ("SELECT 1; DROP TABLE mirror_deals", "must be one SELECT statement, not 2"),
        ("SELECT count(*) INTO copy FROM mirror_deals", "may only read; it contains INTO"),
        ("SELECT count(*) FROM mirror_deals FOR UPDATE", "may only read; it contains LOCK"),
        (
            "WITH gone AS (DELETE FROM mirror_deals RETURNING 1) SELECT count(*) FROM gone",
            "may only read; it contains DELETE",
        ),
        ("SELECT count(*) FROM mirror_deals WHERE owner_id = ?", "use named parameters"),
        (
            "SELECT count(*) FROM mirror_deals WHERE pipeline = :region",
            "unknown parameter(s) :region; available: :owner, :period_end",
        ),
        ("SELECT count(*) FROM (", "its SQL cannot be parsed"),
        ("ATTACH DATABASE '/etc/passwd' AS p", "its SQL cannot be parsed"),
        # a superuser's SET ROLE is undone by set_config; the others run SQL from text
        ("SELECT set_config('role', 'postgres', true)", "may not call set_config"),
        ("SELECT pg_catalog.SET_CONFIG('role', 'postgres', true)", "may not call SET_CONFIG"),
        ("SELECT length(query_to_xml('SELECT 1', true, true, '')::text)", "call query_to_xml"),
        ("SELECT count(*) FROM ts_stat('SELECT 1')", "may not call ts_stat"),
        ("SELECT dblink_exec('dbname=x', 'SELECT 1')", "may not call dblink_exec"),
    ],
)
def test_sql_that_is_not_one_read_only_select_is_refused_on_load(
    tmp_path: Path, sql: str, message: str
) -> None:
    okrs = write_okrs(
        tmp_path, f"metrics:\n  bad_one:\n    sql: {sql!r}\n", key_result("k", "bad_one")
    )
    with pytest.raises(ConfigError) as caught:
        load(okrs)
    text = str(caught.value)
    assert text.startswith(f"{okrs}:6: metric 'bad_one': "), text
    assert message in text


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("win_rate:\n    sql: SELECT 1", "metric 'win_rate' is a built-in metric"),
        (
            "both:\n    sql: SELECT 1\n    python: tests.custom_metric_functions:a_word",
            "exactly one of `sql:` or `python:`",
        ),
        ("gone:\n    python: tests.nowhere:metric", "metric 'gone': cannot import"),
        ("listed:\n    sql: SELECT 1\n    records: SELECT 1", "`records` needs `entity:`"),
    ],
)
def test_bad_definitions_are_refused_on_load(tmp_path: Path, definition: str, message: str) -> None:
    okrs = write_okrs(tmp_path, f"metrics:\n  {definition}\n", key_result("k", "win_rate"))
    with pytest.raises(ConfigError, match=message):
        load(okrs)


def test_a_metric_that_does_not_return_one_number_fails_by_name(
    billing_store: str, tmp_path: Path
) -> None:
    """Each failure is that key result's error; the others are still measured."""
    metrics = (
        """\
metrics:
  two_columns: {sql: "SELECT count(*), sum(amount) FROM mirror_deals"}
  many_rows: {sql: "SELECT amount FROM mirror_deals"}
  no_rows: {sql: "SELECT amount FROM mirror_deals WHERE 1 = 0"}
  a_name: {sql: "SELECT name FROM mirror_deals WHERE source_id = '1'"}
  no_table: {sql: "SELECT count(*) FROM mirror_invoices"}
  words: {python: "tests.custom_metric_functions:a_word"}
  won_deals:
    sql: |
"""
        + _indent(WON_DEALS_SQL, 6)
        + "\n"
    )
    names = ["two_columns", "many_rows", "no_rows", "a_name", "no_table", "words", "won_deals"]
    okrs = write_okrs(tmp_path, metrics, "".join(key_result(n, n) for n in names))
    outcomes, store = measure(billing_store, okrs)
    store.dispose()
    errors = {name: outcomes[name].error for name in names}
    assert errors["two_columns"] == (
        "metric 'two_columns' must return one row with one number; "
        "its query returned 1 row(s) of 2 column(s)"
    )
    assert errors["many_rows"] == (
        "metric 'many_rows' must return one row with one number; "
        "its query returned 40 row(s) of 1 column(s)"  # tombstones included
    )
    assert errors["no_rows"] is not None
    assert "returned 0 row(s)" in errors["no_rows"]
    assert errors["a_name"] == (
        "metric 'a_name' returned str 'Subscription 1'; "
        "it must return one number (or NULL when there is nothing to measure)"
    )
    assert errors["no_table"] is not None
    assert errors["no_table"].startswith("metric 'no_table': the database refused its query:")
    assert "mirror_invoices" in errors["no_table"]
    assert errors["words"] is not None
    assert errors["words"].startswith("metric 'words' returned str 'plenty'")
    assert errors["won_deals"] is None
    assert outcomes["won_deals"].value == len(won_in(date(2026, 1, 1), date(2027, 1, 1)))


def test_the_database_refuses_a_metric_that_writes(billing_store: str) -> None:
    """Past the parser (a Python metric), the read-only session still refuses the write."""
    from tests.custom_metric_functions import sneaky_delete
    from transforms.custom import python_metric

    metric = python_metric("sneaky", sneaky_delete)
    store = Store.open(billing_store)
    try:
        with store.session() as session, session.begin():
            with pytest.raises(MetricError, match=r"metric 'sneaky': the database refused"):
                metric.run(session, Period.parse("2026"), {})
            # the sync's own transaction goes on, and the deals are all there
            assert session.scalar(select(func.count()).select_from(Deal)) == 40
            assert BUILT_IN.find("win_rate").run(session, Period.parse("2026"), {}).value
    finally:
        store.dispose()


def test_values_are_bound_never_interpolated(billing_store: str, tmp_path: Path) -> None:
    """An owner that looks like SQL is just a value that matches nobody: a finding, never
    a query that counts every deal."""
    metrics = """\
metrics:
  deals_of:
    sql: >-
      SELECT count(*) FROM mirror_deals d JOIN mirror_reps r
      ON r.source = d.source AND r.source_id = d.owner_id
      WHERE lower(r.email) = lower(:owner)
"""
    okrs = write_okrs(
        tmp_path,
        metrics,
        key_result("rep1", "deals_of", 3, "{owner: REP1@billing.example}")
        + key_result("inject", "deals_of", 3, "{owner: \"x' OR '1'='1\"}"),
    )
    outcomes, store = measure(billing_store, okrs)
    store.dispose()
    rep1 = [d for d in sample_tables()["deals"] if d["owner_id"] == "1"]
    assert outcomes["rep1"].value == len(rep1)
    emails = ", ".join(sorted(rep["email"] for rep in sample_tables()["reps"]))
    assert (outcomes["inject"].value, outcomes["inject"].error) == (
        None,
        f"owner \"x' OR '1'='1\" matches no rep's e-mail; known: {emails}",
    )


RUNS_SQL = "SELECT count(*) FROM sync_runs"
CONFINED_TO = (
    " (custom metrics may read only customer_links, mirror_customers, mirror_deals, "
    "mirror_finance_lines, mirror_fx_rates, mirror_ratings, mirror_reps, mirror_tickets)"
)


def test_the_confinement_holds_for_the_metric_and_ends_with_it(billing_store: str) -> None:
    """The metric, its ``records`` and a Python metric read the mirror only, even when the
    sync prepared the same statement just before; after them the sync reads and writes its
    own tables again, in the same transaction, as the store's user."""
    from tests.custom_metric_functions import role_reset, sync_runs
    from transforms.custom import python_metric, sql_metric

    postgresql = billing_store.startswith("postgresql")
    refusal = "permission denied for table sync_runs" if postgresql else "not authorized"
    column = (
        "permission denied for table sync_runs"
        if postgresql
        else "access to sync_runs.id is prohibited"
    )
    refused: dict[Metric[Any], str | None] = {
        sql_metric("runs", RUNS_SQL): refusal,
        sql_metric(
            "listed", WON_DEALS_SQL, records="SELECT 'sql', id FROM sync_runs", entity="deal"
        ): column,
        python_metric("python_runs", sync_runs): refusal,
    }
    if postgresql:  # a superuser's RESET ROLE (or set_config) leaves it: caught, not measured
        refused[python_metric("reset", role_reset)] = None
    period = Period.parse("2026")
    store = Store.open(billing_store)
    try:
        with store.session() as session, session.begin():
            user = session.scalar(text("SELECT current_user")) if postgresql else None
            assert session.scalar(text(RUNS_SQL)) == 1  # the same text, prepared unconfined
            for metric, reason in refused.items():
                with pytest.raises(MetricError) as caught:
                    metric.run(session, period, {})
                assert str(caught.value) == (
                    f"metric {metric.name!r}: the database refused its query: {reason}{CONFINED_TO}"
                    if reason
                    else f"metric {metric.name!r} left the role {METRICS_ROLE}: not measured"
                )
            session.add(SyncRun(id="after", started_at=NOW, status="running", code_version="t"))
            session.flush()
            assert session.scalar(text(RUNS_SQL)) == 2
            if postgresql:
                assert session.scalar(text("SELECT current_user")) == user == "postgres"
            won = sql_metric("won", WON_DEALS_SQL).run(session, period, {})
            assert won.value == len(won_in(date(2026, 1, 1), date(2027, 1, 1)))
    finally:
        store.dispose()


@pytest.fixture
def owned_store(postgres_admin: str) -> Iterator[tuple[str, str]]:
    """A PostgreSQL store whose user owns its database but is no superuser and may not
    create or grant roles, as a careful operator sets it up; yields its URL and user."""
    user = f"okr_test_owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_admin, autocommit=True) as admin:
        # the role an administrator creates once for the cluster (another test may have)
        with suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            admin.execute(f"CREATE ROLE {METRICS_ROLE} NOLOGIN")
        admin.execute(f'CREATE ROLE "{user}" LOGIN')
        admin.execute(f'CREATE DATABASE "{user}" OWNER "{user}"')
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:5432/{user}", user
    finally:
        with psycopg.connect(postgres_admin, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{user}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{user}"')


def doctor(url: str, okr_file: Path) -> list[Finding]:
    store = Store(url)
    try:
        return check_metrics_role(store, *load(okr_file))
    finally:
        store.dispose()


@pytest.mark.postgres
def test_a_store_user_that_may_not_grant_the_role_gets_the_way_out(
    owned_store: tuple[str, str],
    postgres_admin: str,
    tmp_path: Path,
    validator: Validator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Until an administrator grants the metrics role to the store's user, a custom metric
    fails saying so (never runs as the store's user), and ``doctor`` says what to grant;
    then it is measured, confined."""
    url, user = owned_store
    fill_billing(url, tmp_path, validator, monkeypatch)
    metrics = f"""\
metrics:
  won_deals:
    sql: |
{_indent(WON_DEALS_SQL, 6)}
  runs: {{sql: "{RUNS_SQL}"}}
"""
    okrs = write_okrs(
        tmp_path, metrics, key_result("won", "won_deals") + key_result("runs", "runs")
    )
    outcomes, store = measure(url, okrs)
    store.dispose()
    way_out = (
        f"cannot run as the role {METRICS_ROLE} that may read the mirror only (permission "
        f'denied to set role "{METRICS_ROLE}"); the store\'s user lacks the rights to set it '
        "up: see docs/custom-metrics.md"
    )
    assert {k: (o.value, o.error) for k, o in outcomes.items()} == {
        "won": (None, f"metric 'won_deals': {way_out}"),
        "runs": (None, f"metric 'runs': {way_out}"),
    }
    assert doctor(url, okrs) == [
        Finding(
            "custom metrics",
            False,
            f"runs, won_deals cannot run: the role {METRICS_ROLE} is not granted to {user}",
            f'a database administrator runs `GRANT {METRICS_ROLE} TO "{user}";` '
            "(docs/custom-metrics.md)",
        )
    ]
    with psycopg.connect(postgres_admin, autocommit=True) as admin:
        admin.execute(f'GRANT {METRICS_ROLE} TO "{user}"')  # as docs/custom-metrics.md says
    assert doctor(url, okrs) == [
        Finding("custom metrics", True, f"run as {METRICS_ROLE}, reading the mirror only")
    ]
    outcomes, store = measure(url, okrs)
    store.dispose()
    assert {k: (o.value, o.error) for k, o in outcomes.items()} == {
        "won": (len(won_in(date(2026, 1, 1), date(2027, 1, 1))), None),
        "runs": (
            None,
            "metric 'runs': the database refused its query: permission denied for table "
            f"sync_runs{CONFINED_TO}",
        ),
    }
