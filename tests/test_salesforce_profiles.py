"""The Salesforce connector against each kind of org the sandbox plays (issue 19).

A Developer-Edition-like org has one currency (no ``CurrencyIsoCode``, no ``CurrencyType``),
no advanced currency management and no custom fields; the others add multiple currencies,
dated rates and the demo's custom fields. Every expected value here is read from the
emulator's own records, not from the connector.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Gap, get_connector, open_reader
from connectors.errors import FatalSourceError, MissingObjectError
from connectors.salesforce.client import SalesforceReader
from connectors.salesforce.sandbox import sandbox_env
from connectors.salesforce.sandbox.data import PROFILES, SalesforceOrg, generate_org
from connectors.salesforce.sandbox.emulator import create_app
from connectors.sandbox.server import RunningServer, serve_tls
from flows.report import RunReport, StreamReport, source_gaps
from flows.sync import sync_okrs
from okr_targets.periods import Calendar
from tests.conftest import AS_OF

SKIPPED = {
    "advanced-currency": set(),
    "multi-currency": {"DatedConversionRate"},
    "single-currency": {"CurrencyType", "DatedConversionRate"},
}


@pytest.fixture(scope="module", params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def org(profile: str) -> SalesforceOrg:
    return generate_org(seed=19, as_of=AS_OF, accounts=30, opportunities=160, profile=profile)


@pytest.fixture(scope="module")
def server(org: SalesforceOrg) -> Iterator[RunningServer]:
    with serve_tls(create_app(org, page_size=200)) as running:
        yield running


def point_at(
    server: RunningServer, profile: str, monkeypatch: pytest.MonkeyPatch, **extra: str
) -> None:
    for name in ("FIELD_MAP", "LOGIN_URL"):
        monkeypatch.delenv(f"OKR_SYNC_SALESFORCE_{name}", raising=False)
    for name, value in (sandbox_env(server, profile) | extra).items():
        monkeypatch.setenv(name, value)


def read_all(stream_name: str) -> tuple[list[dict[str, Any]], list[Gap], int]:
    connector = get_connector("salesforce")
    stream = next(s for s in connector.streams if s.name == stream_name)
    reader = open_reader(connector)
    try:
        rows: list[dict[str, Any]] = []
        gaps: list[Gap] = []
        rejected = 0
        for page in reader.read(stream, None):
            rows += [dict(row) for row in page.rows]
            gaps += page.gaps
            rejected += len(page.rejected)
        return rows, gaps, rejected
    finally:
        reader.close()


def test_every_stream_reads_or_is_skipped_with_why(
    profile: str, org: SalesforceOrg, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(server, profile, monkeypatch)
    for stream in get_connector("salesforce").streams:
        if stream.name in SKIPPED[profile]:
            with pytest.raises(MissingObjectError, match=f"the org has no {stream.name} object"):
                read_all(stream.name)
            continue
        rows, _gaps, rejected = read_all(stream.name)
        expected = org.records(stream.name, include_deleted=True)
        assert (len(rows), rejected) == (len(expected), 0), stream.name


def test_money_keeps_its_currency_or_takes_the_company_one(
    profile: str, org: SalesforceOrg, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(server, profile, monkeypatch)
    deals, _gaps, _ = read_all("Opportunity")
    records = {r["Id"]: r for r in org.records("Opportunity", include_deleted=True)}
    for deal in deals:
        record = records[deal["source_id"]]
        # a single-currency org's records carry no currency: every amount is in USD
        assert deal["currency"] == record.get("CurrencyIsoCode", "USD")
        assert deal["amount"] == Decimal(str(record["Amount"]))
    currencies = {deal["currency"] for deal in deals}
    assert (currencies == {"USD"}) == (profile == "single-currency")
    reps, _gaps, _ = read_all("User")
    assert {rep["quota_currency"] for rep in reps} == {"USD"}


def test_unmapped_fields_are_gaps_that_name_the_setting(
    profile: str, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(server, profile, monkeypatch)
    customers, gaps, _ = read_all("Account")
    needs = {gap.need: gap.reason for gap in gaps}
    if PROFILES[profile].custom_fields:  # the sandbox maps the demo's custom fields
        assert needs == {}
        assert any(customer["churned_on"] for customer in customers)
        return
    assert set(needs) == {"customer.became_customer_on", "customer.churned_on"}
    assert needs["customer.churned_on"] == (
        "Salesforce Account has no churn date field mapped; set "
        'OKR_SYNC_SALESFORCE_FIELD_MAP={"churned_on": "<Account field>"}'
    )
    assert {customer["churned_on"] for customer in customers} == {None}
    assert all(c["segment"] for c in customers)  # Industry, the standard default


def test_a_mapped_field_the_org_lacks_is_an_error_naming_it(
    profile: str, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    field_map = json.dumps({"churned_on": "Churned__c"})
    point_at(server, profile, monkeypatch, OKR_SYNC_SALESFORCE_FIELD_MAP=field_map)
    with pytest.raises(FatalSourceError) as info:
        read_all("Account")
    assert "maps churned_on to Account.Churned__c, which the org's Account describe" in str(
        info.value
    )


def test_no_login_url_is_one_line_asking_for_my_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OKR_SYNC_SALESFORCE_LOGIN_URL", raising=False)
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_CLIENT_SECRET", "x")
    with pytest.raises(FatalSourceError) as info:
        open_reader(get_connector("salesforce"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("salesforce: OKR_SYNC_SALESFORCE_LOGIN_URL is not set")
    assert "My Domain" in message


def test_a_rejected_query_keeps_the_whole_message_on_one_line(
    server: RunningServer, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Salesforce's SOQL errors begin with a newline; the cause comes lines later."""
    if profile != "single-currency":
        pytest.skip("only the single-currency org lacks User.DefaultCurrencyIsoCode")
    point_at(server, profile, monkeypatch)
    reader = open_reader(get_connector("salesforce"))
    soql = "SELECT Id, DefaultCurrencyIsoCode FROM User"
    assert isinstance(reader, SalesforceReader)
    try:
        with pytest.raises(FatalSourceError) as info:
            reader._call("query User", lambda: reader.client.query(soql))
    finally:
        reader.close()
    assert str(info.value) == (
        "salesforce: query User failed (400 INVALID_FIELD: SELECT Id, DefaultCurrencyIsoCode "
        "FROM User ^ ERROR at Row:1:Column:12 No such column 'DefaultCurrencyIsoCode' on "
        "entity 'User'. If you are attempting to use a custom field, be sure to append the "
        "'__c' after the custom field name. Please reference your WSDL or the describe call "
        "for the appropriate names.)"
    )


OKRS = """
company: Single-currency Inc.
sources:
  salesforce: [customer, deal, rep, fx_rate, ticket]
money: {currency: USD}
objectives:
  - id: sales
    title: Sell
    owner: ceo@example.com
    period: 2026-Q4
    key_results:
      - {id: won-revenue, title: Won revenue, metric: won_revenue, params: {currency: USD},
         target: 1000000, unit: USD}
      - {id: win-rate, title: Win rate, metric: win_rate, baseline: 25, target: 35, unit: "%"}
      - {id: new-customers, title: New customers, metric: new_customers_won, target: 10}
      - {id: ramp, title: Ramp, metric: new_rep_quota_attainment, params: {months: 4},
         target: 100, unit: "%"}
      - {id: churn, title: Churn, metric: churn_rate, baseline: 10, target: 5, unit: "%"}
      - {id: tickets, title: Tickets, metric: ticket_volume, baseline: 100, target: 50}
      - {id: first-response, title: First response, metric: median_first_response_hours,
         baseline: 10, target: 4}
"""


@pytest.mark.usefixtures("prefect_harness")
def test_single_currency_org_syncs_and_says_what_it_cannot_measure(
    server: RunningServer,
    profile: str,
    org: SalesforceOrg,
    tmp_path: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if profile != "single-currency":
        pytest.skip("the Developer-Edition-like org is the one under test")
    point_at(server, profile, monkeypatch)
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(OKRS)
    state = sync_okrs(okr_file=str(okr_file), store_url=sqlite_url, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, RunReport)

    assert report.status.value == "complete"
    for name in ("CurrencyType", "DatedConversionRate"):
        assert "the org has no" in (report.streams[f"salesforce.{name}"].skipped or "")
    for name in ("User", "Account", "Opportunity", "Case"):
        counts = report.streams[f"salesforce.{name}"]
        assert counts.read == len(org.records(name, include_deleted=True)), name
        assert counts.failed is None
        assert counts.skipped is None

    outcomes = {kr.key_result_id: kr for kr in report.key_results}
    for measured in ("won-revenue", "win-rate", "new-customers", "tickets"):
        assert outcomes[measured].error is None, outcomes[measured].error
    q4 = Calendar().period("2026-Q4")
    won = sum(
        Decimal(str(r["Amount"]))
        for r in org.records("Opportunity")
        if r["IsWon"] and q4.start <= date.fromisoformat(r["CloseDate"]) < q4.end
    )
    assert outcomes["won-revenue"].value == pytest.approx(float(won))

    errors = {kr: outcomes[kr].error or "" for kr in ("ramp", "churn", "first-response")}
    assert errors["churn"].startswith(
        "needs customer.became_customer_on: Salesforce Account has no customer-since date "
        "field mapped; set OKR_SYNC_SALESFORCE_FIELD_MAP="
    )
    assert "needs customer.churned_on: Salesforce Account has no churn date" in errors["churn"]
    assert errors["ramp"].startswith("needs rep.monthly_quota: Salesforce User has no monthly")
    assert errors["first-response"].startswith("needs ticket.first_response_at: Salesforce Case")
    assert {outcomes[kr].status for kr in errors} == {"error"}


def test_gaps_of_streams_this_run_did_not_read_still_hold() -> None:
    """A sync of some sources only: the others' last-found gaps still block their results."""
    read = {"salesforce.Account": StreamReport(gaps=(Gap("customer.churned_on", "mapped?"),))}
    earlier = {
        "salesforce.Account": {"customer.churned_on": "an older read, superseded"},
        "hubspot.companies": {"customer.churned_on": "no lifecycle date", "customer.segment": "x"},
        "salesforce.Case": {},
    }
    assert source_gaps(read, earlier) == {
        "customer.churned_on": ("mapped?", "no lifecycle date"),
        "customer.segment": ("x",),
    }


def test_a_source_error_copies_whole() -> None:
    """A stream report holding the error is copied (``asdict``) and pickled by Prefect."""
    import copy
    import pickle

    error = FatalSourceError("salesforce", "describe Account failed (403 x)", status=403)
    for copied in (copy.deepcopy(error), pickle.loads(pickle.dumps(error))):  # noqa: S301
        assert type(copied) is FatalSourceError
        assert (str(copied), copied.source, copied.status) == (str(error), "salesforce", 403)


def test_the_company_currency_is_read_again_after_the_session_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """getUserInfo answers a lapsed session with a SOAP fault (HTTP 500): log in again."""
    org = generate_org(seed=3, as_of=AS_OF, accounts=4, opportunities=8, profile="single-currency")
    org.currency = "EUR"
    app = create_app(org)
    with serve_tls(app) as running:
        point_at(running, "single-currency", monkeypatch)
        reader = open_reader(get_connector("salesforce"))
        assert isinstance(reader, SalesforceReader)
        try:
            assert "CurrencyIsoCode" not in reader.fields("Opportunity")
            app.state.expire_sessions()
            assert reader.org().currency == "EUR"
        finally:
            reader.close()


def test_a_default_field_the_org_hides_is_a_gap_and_a_mapped_one_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Field-level security can hide Account.Industry from the integration user."""
    org = generate_org(seed=3, as_of=AS_OF, accounts=4, opportunities=8, profile="single-currency")
    del org.schema["Account"]["Industry"]
    with serve_tls(create_app(org)) as running:
        point_at(running, "single-currency", monkeypatch)
        customers, gaps, rejected = read_all("Account")
        assert (len(customers), rejected) == (len(org.records("Account", include_deleted=True)), 0)
        assert (
            Gap(
                "customer.segment",
                "Salesforce Account has no Industry field; set "
                'OKR_SYNC_SALESFORCE_FIELD_MAP={"segment": "<Account field>"}',
            )
            in gaps
        )
        monkeypatch.setenv("OKR_SYNC_SALESFORCE_FIELD_MAP", '{"segment": "Industry"}')
        with pytest.raises(FatalSourceError, match=r"maps segment to Account\.Industry"):
            read_all("Account")
