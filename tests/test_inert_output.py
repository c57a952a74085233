"""Output is inert (issue 22, items 5, 7, 8, 9): text from OKR files and sources never
becomes terminal markup or a spreadsheet formula, a store password is masked wherever the
URL shows (user info or query), and key results removed from the OKR file leave the live
views while their history stays.

The store is the row-by-row one of tests/okr_fixture.py, so every number is known.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner, Result

from okr_sync.cli import DEMO_OKRS, app
from okr_targets.config import load_okrs
from okr_targets.lineage import explain
from okr_targets.models import Deal, KeyResult, Measurement, Objective
from okr_targets.store import Store, has_password, redact
from okr_targets.summary import key_results, summary_csv
from tests.okr_fixture import NOW, fill_store, summary_of
from tests.test_store_password import assert_recorded_without_password, sync_runs_since
from transforms.measure import save_okrs

SECRET = "s3cret-in-the-query"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def filled(store_url: str) -> str:
    fill_store(store_url)
    return store_url


def retitle(url: str, objective: str, key_result: str, deal: str) -> None:
    """Give the ``sales`` objective, the ``win-rate`` key result and deal 006-0 new text."""
    store = Store.open(url)
    with store.session() as session:
        session.execute(update(Objective).where(Objective.id == "sales").values(title=objective))
        session.execute(
            update(KeyResult).where(KeyResult.id == "win-rate").values(title=key_result)
        )
        session.execute(update(Deal).where(Deal.source_id == "006-0").values(name=deal))
        session.commit()
    store.dispose()


# --- 5: square brackets are text, not markup -----------------------------------------------


def test_square_brackets_in_titles_and_names_print_as_written(filled: str) -> None:
    retitle(filled, "Sales [/] team", "Win rate [beta]", "Acme [/bold] [red]deal")

    table = invoke("report", "--store", filled)
    assert table.exit_code == 0, table.output
    assert "Sales [/] team" in table.stdout
    assert "Win rate [beta]" in table.stdout

    explained = invoke("explain", "win-rate", "--records", "--store", filled)
    assert explained.exit_code == 0, explained.output
    assert "win-rate — Win rate [beta]" in explained.stdout
    assert "Acme [/bold] [red]deal" in explained.stdout


def test_a_runs_printout_keeps_square_brackets_in_findings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.report import RunReport
    from okr_sync.cli.runs import print_run
    from okr_targets.status import RunStatus

    report = RunReport(
        "run-1",
        RunStatus.COMPLETE,
        None,
        "sqlite:///okr.db",
        "",
        findings=("Org [/] GmbH matched no customer",),
        unreconciled={"hubspot": "listing [beta] refused"},
    )
    print_run(report)
    printed = capsys.readouterr()
    assert "finding: Org [/] GmbH matched no customer" in printed.err
    assert "hubspot: not reconciled, nothing tombstoned: listing [beta] refused" in printed.out


def test_an_error_line_keeps_its_square_brackets() -> None:
    result = invoke("report", "--format", "[/]")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: unknown format '[/]'; use table, json, csv or html"


# --- 7: a password in the URL's query is masked like the user info's ------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://okr:pw@db/okr", "postgresql://okr:***@db/okr"),
        (f"postgresql://okr@db/okr?password={SECRET}", "postgresql://okr@db/okr?password=***"),
        (
            f"postgresql://db/okr?sslmode=require&sslpassword={SECRET}&PASSWORD={SECRET}",
            "postgresql://db/okr?PASSWORD=***&sslmode=require&sslpassword=***",
        ),
        (f"postgresql://db/okr?token={SECRET}", "postgresql://db/okr?token=***"),
        (
            "postgresql://okr@db/okr?sslkey=/etc/okr.key&sslmode=require",
            "postgresql://okr@db/okr?sslkey=%2Fetc%2Fokr.key&sslmode=require",
        ),
        ("sqlite:///okr-sync.db", "sqlite:///okr-sync.db"),
    ],
)
def test_every_password_in_a_url_is_masked(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert has_password(url) == ("***" in shown)


def test_a_query_password_stays_out_of_the_error_line() -> None:
    result = invoke("report", "--store", f"postgresql://okr@127.0.0.1:1/okr?password={SECRET}")
    assert result.exit_code == 1
    assert "error: cannot open store postgresql://okr@127.0.0.1:1/okr?password=***" in (
        result.stderr
    )
    assert SECRET not in result.output


@pytest.mark.postgres
def test_a_query_password_stays_out_of_reports_and_runs(postgres_url: str) -> None:
    url = f"{postgres_url}?password={SECRET}"  # the test server trusts local connections
    fill_store(url)
    for args in (["--format", "json"], ["--format", "html"], ["--format", "csv"], []):
        result = invoke("report", "--store", url, *args)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
    document = json.loads(invoke("report", "--store", url, "--format", "json").stdout)
    assert document["ops"]["store"].endswith("?password=***")
    runs = invoke("runs", "--store", url)
    assert runs.exit_code == 0, runs.output
    assert SECRET not in runs.output
    assert "password=***" in runs.output


@pytest.mark.usefixtures("prefect_harness")
def test_a_query_password_never_reaches_prefects_database(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.sync import StorePasswordError, sync_okrs

    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    url = f"postgresql://okr@127.0.0.1:1/okr?password={SECRET}"
    with pytest.raises(StorePasswordError, match="carries a password") as refused:
        sync_okrs(okr_file=str(DEMO_OKRS), store_url=url, return_state=True)
    assert SECRET not in str(refused.value)

    started = datetime.now(UTC)
    result = invoke("sync", "--okr-file", str(DEMO_OKRS), "--store", url)
    assert result.exit_code == 1, result.output
    assert "password=***" in result.stderr
    assert SECRET not in result.output
    [run] = sync_runs_since(started)
    assert SECRET not in json.dumps(run.parameters, default=str)
    assert_recorded_without_password(run)


# --- 8: a carriage return cannot smuggle a formula past the CSV guard ------------------------


def test_a_carriage_return_cannot_start_a_formula_line(filled: str) -> None:
    retitle(filled, "\r=2+2", "\r=1+1", "Deal 0")
    text = summary_csv(summary_of(filled))

    # A spreadsheet that ends a row at any CR or LF outside quotes: no line is a formula.
    outside_quotes = text.split('"')[::2]
    for part in outside_quotes:
        for line in part.replace("\r", "\n").split("\n"):
            assert not line.startswith(("=", "+", "-", "@")), repr(line)
    # A reader that honours quotes gets each title back whole, marked as text.
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(text, newline=""))}
    assert len(rows) == 5
    assert rows["win-rate"]["title"] == "'\r=1+1"
    assert rows["win-rate"]["objective"] == "'\r=2+2"


# --- 9: a key result removed from the OKR file leaves the live views --------------------------

OKRS = """
company: Fixture Inc.
sources:
  salesforce: [deal]
  zendesk: [ticket]
objectives:
  - id: grow
    title: Grow objective
    period: 2026-Q4
    key_results:
      - {id: revenue, title: Book 1M in won revenue, metric: won_revenue, target: 1000000,
         unit: USD}
  - id: sales
    title: Sales objective
    parent: grow
    period: 2026-Q4
    key_results:
      - {id: new-customers, title: Win 10 new customers, metric: new_customers_won,
         target: 10, unit: customers}
#removed
  - id: alice
    title: Alice objective
    parent: sales
    period: 2026-Q4
    key_results:
      - {id: alice-deals, title: Alice closes 5 deals, metric: won_deals, target: 5,
         unit: deals}
"""
REMOVED = """\
      - {id: win-rate, title: Raise the win rate, metric: win_rate, baseline: 25, target: 35,
         unit: "%"}
  - id: support
    title: Support objective
    parent: grow
    period: 2026-Q4
    key_results:
      - {id: first-response, title: Answer within 4 hours, metric: median_first_response_hours,
         baseline: 8, target: 4, unit: hours}"""


def save(url: str, tmp_path: Path, text: str) -> None:
    path = tmp_path / "okrs.yaml"
    path.write_text(text, encoding="utf-8")
    store = Store.open(url)
    with store.session() as session, session.begin():
        save_okrs(session, load_okrs(path), NOW)
    store.dispose()


def test_a_removed_key_result_leaves_the_live_views_and_stays_in_history(
    filled: str, tmp_path: Path
) -> None:
    save(filled, tmp_path, OKRS.replace("#removed", REMOVED))
    before = summary_of(filled)
    assert {kr["id"] for _o, kr in key_results(before)} == {
        "revenue",
        "win-rate",
        "new-customers",
        "first-response",
        "alice-deals",
    }

    save(filled, tmp_path, OKRS)
    after = summary_of(filled)
    live = {"revenue", "new-customers", "alice-deals"}
    assert {kr["id"] for _o, kr in key_results(after)} == live
    assert {o["id"] for o in after["objectives"]} == {"grow", "sales", "alice"}
    rows = list(csv.DictReader(io.StringIO(summary_csv(after), newline="")))
    assert {row["id"] for row in rows} == live
    table = invoke("report", "--store", filled)
    assert "win rate" not in table.stdout.lower()
    assert "Support objective" not in table.stdout
    # The roll-up: sales is new-customers alone now (4.5 of 10), alice has no data.
    sales = {o["id"]: o for o in after["objectives"]}["sales"]
    assert sales["progress"] == pytest.approx(0.45)

    # Its history and explanation stay.
    store = Store.open(filled)
    with store.session() as session:
        assert explain(session, "win-rate").value == 26.0
        kept = select(func.count()).where(Measurement.key_result_id == "win-rate")
        assert session.scalar(kept) == 1
    store.dispose()
    explained = invoke("explain", "win-rate", "--store", filled)
    assert explained.exit_code == 0, explained.output

    # Put back in the file, it is live again.
    save(filled, tmp_path, OKRS.replace("#removed", REMOVED))
    assert {kr["id"] for _o, kr in key_results(summary_of(filled))} == live | {
        "win-rate",
        "first-response",
    }
