"""Finance lines: mirrored on both stores, read by the SQL and files connectors, checked by
their own suite, and measured as revenue, gross profit and margin against sums done here.

Every expected number below is computed in plain Python from the lines this file writes
(never by the metric SQL), with the quarter bounds written out and the rates applied by
hand, so a wrong period bound, conversion, filter or sign shows up as a mismatch.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from alembic import command
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from connectors.files.sandbox import write_csv, write_exports
from connectors.sandbox.tabular import sample_tables, utc
from connectors.sql.sandbox import create_fixture_database
from connectors.tabular import STREAMS
from expectations import Validator
from flows.extract import sync_stream
from okr_sync.cli import DEMO_OKRS, app
from okr_sync.demo import HOSTING_PER_MONTH, write_finance_export
from okr_targets.changes import RecordChangeKind, _record
from okr_targets.config import KeyResultSpec
from okr_targets.models import Customer, FinanceLine, FxRate, QuarantinedRow
from okr_targets.periods import Calendar, Period
from okr_targets.store import Store, alembic_config, begin_run, upsert_records
from tests.conftest import SMALL_ORG, fresh_postgres_database
from transforms.catalog import BUILT_IN
from transforms.dependencies import key_result_entities
from transforms.held import HeldBack, held_back_for
from transforms.lineage import record_refs
from transforms.metric import MetricError
from transforms.metrics.finance import AmountParams, unknown_customers
from transforms.money import CONFIG_SOURCE

SEED = cast(int, SMALL_ORG["seed"])
LINES = next(stream for stream in STREAMS if stream.name == "finance_lines")
STAMP = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def line(
    ident: str, booked: date, amount: str, cost: str, currency: str = "USD", **more: Any
) -> dict[str, Any]:
    """A mirror row of the ledger; ``more`` sets customer_id, segment or deleted_at."""
    return {
        "source": "ledger",
        "source_id": ident,
        "source_modified_at": STAMP,
        "deleted_at": None,
        "run_id": "r",
        "customer_id": "C1",
        "segment": "smb",
        "amount": Decimal(amount),
        "cost": Decimal(cost),
        "currency": currency,
        "booked_on": booked,
        "description": None,
    } | more


# Lines on both sides of the quarter bounds, in three currencies, a credit note, a
# cost-only line and a deleted line (which never counts).
LEDGER = [
    line("q2-last", date(2026, 6, 30), "1000.00", "400.00"),
    line("q3-first", date(2026, 7, 1), "2000.00", "900.00", "EUR"),
    line("q3-gbp", date(2026, 8, 15), "500.00", "100.00", "GBP", segment="enterprise"),
    line("q3-credit", date(2026, 9, 2), "-200.00", "0.00"),
    line("q3-hosting", date(2026, 9, 1), "0.00", "300.00", customer_id=None, segment=None),
    line("q3-last", date(2026, 9, 30), "1500.00", "600.00", segment="enterprise"),
    line("q4-first", date(2026, 10, 1), "3000.00", "1000.00", "EUR"),
    line("q4-deleted", date(2026, 10, 5), "9999.00", "1.00", deleted_at=STAMP),
    line("q4-mid", date(2026, 11, 10), "1200.00", "500.00", segment="enterprise"),
]
# The ledger's rates (per 1 USD): EUR dated, changing on Oct 1; GBP static.
RATES = [
    ("USD", "1", True, None, None),
    ("EUR", "0.90", False, None, None),
    ("EUR", "0.80", False, date(2026, 1, 1), date(2026, 10, 1)),
    ("EUR", "0.95", False, date(2026, 10, 1), None),
    ("GBP", "0.50", False, None, None),
]


def usd(amount: str, currency: str, booked: date) -> Decimal:
    """A ledger amount in USD, by hand: the dated rate for the day, else the static one."""
    if currency == "USD":
        return Decimal(amount)
    if currency == "GBP":
        return Decimal(amount) / Decimal("0.50")
    rate = "0.80" if booked < date(2026, 10, 1) else "0.95"
    return Decimal(amount) / Decimal(rate)


QUARTERS = {
    "2026-Q2": (date(2026, 4, 1), date(2026, 7, 1)),
    "2026-Q3": (date(2026, 7, 1), date(2026, 10, 1)),
    "2026-Q4": (date(2026, 10, 1), date(2027, 1, 1)),
}


def expected(period: str, segment: str | None = None) -> tuple[Decimal, Decimal, set[str]]:
    """Revenue and cost in USD of the live lines booked in the period, and their ids."""
    start, end = QUARTERS[period]
    revenue, cost, ids = Decimal(0), Decimal(0), set()
    for row in LEDGER:
        if row["deleted_at"] is not None or not start <= row["booked_on"] < end:
            continue
        if segment is not None and row["segment"] != segment:
            continue
        revenue += usd(str(row["amount"]), row["currency"], row["booked_on"])
        cost += usd(str(row["cost"]), row["currency"], row["booked_on"])
        ids.add(row["source_id"])
    return revenue, cost, ids


@pytest.fixture
def ledger_store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    rates = [
        {
            "source": "ledger",
            "source_id": f"{currency}-{valid_from}",
            "source_modified_at": STAMP,
            "deleted_at": None,
            "run_id": "r",
            "currency": currency,
            "rate": Decimal(rate),
            "is_corporate": corporate,
            "valid_from": valid_from,
            "valid_to": valid_to,
        }
        for currency, rate, corporate, valid_from, valid_to in RATES
    ]
    with store.session() as session, session.begin():
        upsert_records(session, FinanceLine, LEDGER)
        upsert_records(session, FxRate, rates)
    yield store
    store.dispose()


def quarter(label: str) -> Period:
    return Calendar().period(label)


def run(store: Store, name: str, label: str, **params: Any) -> Any:
    with store.session() as session:
        result = BUILT_IN.find(name).run(session, quarter(label), params)
        return result, {ref.source_id for ref in record_refs(session, result)}


def close(actual: float | None, wanted: Decimal | float) -> bool:
    return actual is not None and abs(actual - float(wanted)) < 1e-6


def test_the_mirror_keeps_money_with_its_currency_and_the_migration_builds_it(
    store_url: str,
) -> None:
    store = Store.open(store_url)
    try:
        with store.session() as session, session.begin():
            upsert_records(session, FinanceLine, LEDGER[:3])
        with store.session() as session:
            row = session.get(FinanceLine, ("ledger", "q3-first"))
            assert row is not None
            assert (row.amount, row.cost, row.currency) == (Decimal("2000"), Decimal("900"), "EUR")
            assert row.booked_on == date(2026, 7, 1)
            assert row.source_modified_at == STAMP
        command.downgrade(alembic_config(store.engine), "0009")
        assert "mirror_finance_lines" not in inspect(store.engine).get_table_names()
        store.upgrade()
        assert "mirror_finance_lines" in inspect(store.engine).get_table_names()
    finally:
        store.dispose()


@pytest.mark.parametrize("period", ["2026-Q3", "2026-Q4"])
def test_revenue_profit_and_margin_match_sums_done_by_hand(
    ledger_store: Store, period: str
) -> None:
    revenue, cost, ids = expected(period)
    got, lineage = run(ledger_store, "revenue", period, currency="USD")
    assert close(got.value, revenue)
    assert got.unit == "USD"
    assert lineage == ids
    assert got.record_count == len(ids)
    got, lineage = run(ledger_store, "gross_profit", period, currency="USD")
    assert close(got.value, revenue - cost)
    assert lineage == ids
    got, _ = run(ledger_store, "gross_margin", period, currency="USD")
    assert close(got.value, 100 * (revenue - cost) / revenue)
    assert got.unit == "%"


def test_a_segment_narrows_and_another_currency_converts_through_the_base(
    ledger_store: Store,
) -> None:
    revenue, cost, ids = expected("2026-Q3", segment="enterprise")
    assert ids == {"q3-gbp", "q3-last"}
    got, lineage = run(ledger_store, "gross_profit", "2026-Q3", segment="enterprise")
    assert close(got.value, revenue - cost)
    assert lineage == ids
    # In EUR: each line converted from its currency to EUR with the rates of its day.
    eur = sum(
        (
            usd(str(row["amount"] - row["cost"]), row["currency"], row["booked_on"])
            * (Decimal("0.80") if row["booked_on"] < date(2026, 10, 1) else Decimal("0.95"))
            for row in LEDGER
            if row["source_id"] in expected("2026-Q3")[2]
        ),
        Decimal(0),
    )
    got, _ = run(ledger_store, "gross_profit", "2026-Q3", currency="EUR")
    assert got.unit == "EUR"
    assert close(got.value, eur)


def test_profit_change_vs_the_previous_quarter_and_per_day(ledger_store: Store) -> None:
    q3_revenue, q3_cost, q3_ids = expected("2026-Q3")
    q4_revenue, q4_cost, q4_ids = expected("2026-Q4")
    got, lineage = run(ledger_store, "pct_change", "2026-Q4", metric="gross_profit", currency="USD")
    q3, q4 = q3_revenue - q3_cost, q4_revenue - q4_cost
    assert close(got.value, 100 * (q4 - q3) / abs(q3))
    assert lineage == q3_ids | q4_ids
    # Per day: Q3 is whole (92 days); Q4 runs to its last booked day, Nov 10 (41 days).
    got, _ = run(
        ledger_store,
        "pct_change",
        "2026-Q4",
        metric="gross_profit",
        per_day=True,
        currency="USD",
    )
    per_day_q3, per_day_q4 = q3 / 92, q4 / 41
    assert close(got.value, 100 * (per_day_q4 - per_day_q3) / abs(per_day_q3))
    assert got.details["current"] == pytest.approx(float(per_day_q4))


def test_no_lines_no_value_and_an_unknown_currency_is_an_error(ledger_store: Store) -> None:
    got, lineage = run(ledger_store, "revenue", "2026-Q1", currency="USD")
    assert (got.value, lineage) == (None, set())
    with ledger_store.session() as session, session.begin():
        upsert_records(session, FinanceLine, [line("q3-chf", date(2026, 8, 1), "10", "1", "CHF")])
    with pytest.raises(MetricError, match="no exchange rate from CHF to USD for ledger finance"):
        run(ledger_store, "revenue", "2026-Q3", currency="USD")


def test_config_rates_come_first(ledger_store: Store) -> None:
    """The OKR file's ``money.rates`` (mirrored under "config") win over the ledger's."""
    with ledger_store.session() as session, session.begin():
        upsert_records(
            session,
            FxRate,
            [
                {
                    "source": CONFIG_SOURCE,
                    "source_id": currency,
                    "source_modified_at": STAMP,
                    "deleted_at": None,
                    "run_id": "r",
                    "currency": currency,
                    "rate": Decimal(rate),
                    "is_corporate": currency == "USD",
                    "valid_from": None,
                    "valid_to": None,
                }
                for currency, rate in (("USD", "1"), ("EUR", "0.5"), ("GBP", "0.25"))
            ],
        )
    revenue = sum(
        (
            row["amount"]
            / {"USD": 1, "EUR": Decimal("0.5"), "GBP": Decimal("0.25")}[row["currency"]]
            for row in LEDGER
            if row["source_id"] in expected("2026-Q3")[2]
        ),
        Decimal(0),
    )
    got, _ = run(ledger_store, "revenue", "2026-Q3")
    assert got.unit == "USD"
    assert close(got.value, revenue)


def test_profit_reads_finance_lines_and_their_rates() -> None:
    spec = KeyResultSpec(
        id="profit", title="Profit", metric="pct_change", params={"metric": "gross_profit"}
    )
    assert key_result_entities(BUILT_IN, spec) == {"finance_line", "fx_rate"}


# --- the connectors and the suite ---------------------------------------------------------


def test_the_files_source_reads_finance_lines_and_quarantines_bad_ones(
    tmp_path: Path, sqlite_url: str, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = sample_tables()["finance_lines"]
    bad = [
        sample[0] | {"id": 900, "cost": Decimal("-5")},  # a sign flipped in the export
        sample[0] | {"id": 901, "currency": "$"},
        sample[0] | {"id": 902, "booked_on": None},
        sample[0] | {"id": 903, "amount": "12,50"},
    ]
    write_csv(tmp_path / "finance_lines.csv", [*sample, *bad])
    monkeypatch.setenv("OKR_SYNC_FILES_DIRECTORY", str(tmp_path))
    store = Store.open(sqlite_url)
    try:
        counts = sync_stream.fn(store, "files", LINES, begin_run(store, "test"), validator, 100)
        with store.session() as session:
            rows = {row.source_id: row for row in session.scalars(select(FinanceLine))}
            reasons = {
                row.source_id: row.expectations for row in session.scalars(select(QuarantinedRow))
            }
            # Held back, they make the profit of their quarter stale: all four in Q1 (their
            # booking day), and the one without a booking day in every quarter.
            profit, params = BUILT_IN.find("gross_profit"), AmountParams()
            held = {
                label: held_back_for(session, profit, params, quarter(label))
                for label in ("2026-Q1", "2026-Q3")
            }
    finally:
        store.dispose()
    assert sample[0]["booked_on"] < date(2026, 4, 1)
    assert held == {
        "2026-Q1": [HeldBack("finance_line", "files", 4)],
        "2026-Q3": [HeldBack("finance_line", "files", 1)],
    }
    assert counts.quarantined == 4
    assert set(rows) == {str(record["id"]) for record in sample}
    first = rows[str(sample[0]["id"])]
    assert (first.amount, first.cost, first.currency) == (
        sample[0]["amount"],
        sample[0]["cost"],
        sample[0]["currency"],
    )
    assert first.booked_on == sample[0]["booked_on"]
    assert first.customer_id == sample[0]["customer_id"]
    deleted = next(record for record in sample if record["deleted_at"] is not None)
    assert rows[str(deleted["id"])].deleted_at == utc(deleted["deleted_at"])
    assert reasons["900"] == ["expect_column_values_to_be_between(cost)"]
    assert reasons["901"] == ["expect_column_values_to_match_regex(currency)"]
    assert reasons["902"] == ["booked_on is missing"]
    assert reasons["903"] == ["amount '12,50' is not a number"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def billing_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The sample billing database, on SQLite or on its own PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.db'}"
        create_fixture_database(url)
        yield url
        return
    request.getfixturevalue("postgres_admin")  # skipped, with the reason, when it is down
    with fresh_postgres_database("okr_billing") as name:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        create_fixture_database(url)
        yield url


def test_the_sql_source_reads_finance_lines(
    billing_url: str,
    store_url: str,
    validator: Validator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = billing_url
    monkeypatch.setenv("OKR_SYNC_SQL_URL", url)
    monkeypatch.setenv("OKR_SYNC_SQL_PAGE_SIZE", "7")
    sample = sample_tables()["finance_lines"]
    store = Store.open(store_url)
    try:
        counts = sync_stream.fn(store, "sql", LINES, begin_run(store, "test"), validator, 100)
        with store.session() as session:
            rows = {row.source_id: row for row in session.scalars(select(FinanceLine))}
    finally:
        store.dispose()
    assert (counts.read, counts.quarantined) == (len(sample), 0)
    for record in sample:
        row = rows[str(record["id"])]
        assert (row.amount, row.cost, row.currency, row.booked_on, row.segment) == (
            record["amount"],
            record["cost"],
            record["currency"],
            record["booked_on"],
            record["segment"],
        )
        assert row.deleted_at == (
            None if record["deleted_at"] is None else utc(record["deleted_at"])
        )


def test_the_sandboxes_offer_finance_lines(tmp_path: Path) -> None:
    write_exports(tmp_path)
    assert (tmp_path / "finance_lines.csv").exists()
    sample = sample_tables()["finance_lines"]
    assert any(record["amount"] < 0 for record in sample)  # a credit note
    assert any(record["customer_id"] is None for record in sample)  # a cost-only line
    assert {record["currency"] for record in sample} == {"USD", "EUR"}


# --- the demo's finance export ------------------------------------------------------------


def test_the_demo_export_invoices_each_won_deal_of_the_crm(
    sandbox_org: Any, tmp_path: Path
) -> None:
    write_finance_export(sandbox_org, SEED, tmp_path)
    text = (tmp_path / "finance_lines.csv").read_text(encoding="utf-8")
    lines = list(csv.DictReader(io.StringIO(text)))
    won = {opp["Id"]: opp for opp in sandbox_org.records("Opportunity") if opp["IsWon"]}
    accounts = {account["Id"] for account in sandbox_org.records("Account")}
    invoices = [record for record in lines if record["id"].startswith("INV-")]
    assert {record["id"].removeprefix("INV-") for record in invoices} == set(won)
    for record in invoices:
        opp = won[record["id"].removeprefix("INV-")]
        assert record["customer_id"] == opp["AccountId"] in accounts
        assert Decimal(record["amount"]) == Decimal(str(opp["Amount"])).quantize(Decimal("0.01"))
        assert record["currency"] == opp["CurrencyIsoCode"]
        assert record["booked_on"] == opp["CloseDate"]
        share = Decimal(record["cost"]) / Decimal(record["amount"])
        assert Decimal("0.4499") <= share <= Decimal("0.6501")
    hosting = [record for record in lines if record["id"].startswith("HOST-")]
    assert hosting
    assert all(Decimal(record["cost"]) >= HOSTING_PER_MONTH for record in hosting)
    again = tmp_path / "again"
    again.mkdir()
    write_finance_export(sandbox_org, SEED, again)
    assert (again / "finance_lines.csv").read_text(encoding="utf-8") == text  # deterministic


def test_a_timestamp_in_the_period_bounds_is_its_day(ledger_store: Store) -> None:
    """A line booked on a quarter's last day counts in it, its next day in the next one."""
    _, q2 = run(ledger_store, "revenue", "2026-Q2", currency="USD")
    _, q3 = run(ledger_store, "revenue", "2026-Q3", currency="USD")
    assert "q2-last" in q2
    assert "q2-last" not in q3
    assert {"q3-first", "q3-last"} <= q3


@pytest.mark.usefixtures("prefect_harness")
def test_the_demo_profit_key_result_and_its_lineage(
    sqlite_url: str, sources_env: dict[str, Any], finance_export: Path
) -> None:
    """The demo's "Increase profit by 5%": gross profit a day in 2026-Q4 against 2026-Q3,
    computed here from the export's lines and rates, and ``explain`` lists the Q4 lines."""
    runner = CliRunner()
    synced = runner.invoke(app, ["sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url])
    assert synced.exit_code == 0, synced.output
    with (finance_export / "fx_rates.csv").open(encoding="utf-8") as handle:
        rates = list(csv.DictReader(handle))
    with (finance_export / "finance_lines.csv").open(encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))

    def rate(currency: str, day: date) -> Decimal:
        for row in rates:
            start, end = row["valid_from"], row["valid_to"]
            dated = bool(start) and date.fromisoformat(start) <= day
            if row["currency"] == currency and dated and (not end or day < date.fromisoformat(end)):
                return Decimal(row["rate"])
        return next(
            Decimal(r["rate"]) for r in rates if r["currency"] == currency and not r["valid_from"]
        )

    def profit(label: str) -> tuple[Decimal, set[str]]:
        start, end = QUARTERS[label]
        total, ids = Decimal(0), set()
        for row in lines:
            day = date.fromisoformat(row["booked_on"])
            if start <= day < end:
                margin = Decimal(row["amount"]) - Decimal(row["cost"])
                total += margin / rate(row["currency"], day) * rate("USD", day)
                ids.add(row["id"])
        return total, ids

    (q3, _), (q4, q4_ids) = profit("2026-Q3"), profit("2026-Q4")
    last = max(date.fromisoformat(row["booked_on"]) for row in lines)  # the ledger's cutoff
    assert QUARTERS["2026-Q4"][0] <= last < QUARTERS["2026-Q4"][1]  # Q3 is covered whole
    q4_days = (last - QUARTERS["2026-Q4"][0]).days + 1
    wanted = 100 * (q4 / q4_days - q3 / 92) / abs(q3 / 92)

    shown = runner.invoke(
        app, ["explain", "gross-profit", "--store", sqlite_url, "--records", "--format", "json"]
    )
    assert shown.exit_code == 0, shown.output
    explained = json.loads(shown.stdout)
    assert explained["value"] == pytest.approx(float(wanted), abs=1e-6)
    assert explained["details"]["baseline_period"] == "2026-Q3"
    assert {record["source_id"] for record in explained["records"]} == q4_ids
    assert {record["entity"] for record in explained["records"]} == {"finance_line"}
    report = runner.invoke(app, ["report", "--store", sqlite_url])
    assert "Increase profit by 5%" in report.stdout


def test_a_customer_no_source_knows_is_a_finding_not_a_loss(ledger_store: Store) -> None:
    with ledger_store.session() as session:
        assert unknown_customers(session) == [
            "ledger finance lines name 1 customer(s) no source knows (C1); they count in "
            "revenue and profit under no customer (check the export's customer_id: the CRM's "
            "customer id, or a customer the same source provides)"
        ]
    revenue, _, _ = expected("2026-Q3")
    got, _ = run(ledger_store, "revenue", "2026-Q3", currency="USD")
    assert close(got.value, revenue)  # counted all the same
    customer = {
        "source": "crm",
        "source_id": "C1",
        "source_modified_at": STAMP,
        "deleted_at": None,
        "run_id": "r",
        "name": "Customer One",
        "owner_id": None,
        "segment": None,
        "created_at": STAMP,
        "became_customer_on": None,
        "churned_on": None,
    }
    with ledger_store.session() as session, session.begin():
        upsert_records(session, Customer, [customer])
    with ledger_store.session() as session:
        assert unknown_customers(session) == []


def test_a_finance_line_behind_a_movement_reads_as_its_amount_cost_and_booking_day() -> None:
    line = FinanceLine(
        source="files",
        source_id="inv-7",
        amount=Decimal("1234.5"),
        cost=Decimal("600"),
        currency="EUR",
        booked_on=date(2026, 11, 3),
        source_modified_at=datetime(2026, 11, 3, 9, tzinfo=UTC),
        deleted_at=None,
    )
    low, high = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC)
    change = _record(("finance_line", "files", "inv-7"), line, RecordChangeKind.ADDED, low, high)
    assert change.now == "amount 1,234.50 EUR, cost 600.00 EUR, booked 2026-11-03"
