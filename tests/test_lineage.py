"""Lineage and restatement: every number says how it was made, and a late change is kept.

A deal of a closed quarter is marked won after the quarter's number was final. The next
sync writes a restated measurement that points at the one it replaces; ``okr-sync
explain`` shows both values, the difference and the deal that caused it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from connectors.salesforce.sandbox.data import SalesforceOrg, generate_org
from okr_sync.cli import app
from okr_targets.models import Measurement, MeasurementRecord, SourceRead
from okr_targets.store import Store
from tests.conftest import AS_OF

pytestmark = pytest.mark.usefixtures("prefect_harness")

OKRS = """\
company: Lineage Test Inc.
sources:
  salesforce: [customer, deal, rep, fx_rate]
money: {currency: USD}
objectives:
  - id: revenue
    title: Grow revenue
    owner: ceo@example.com
    period: 2026-Q4
    key_results:
      - id: q3-revenue
        title: Book 1M in won revenue in Q3
        period: 2026-Q3
        metric: won_revenue
        params: {currency: USD}
        target: 1000000
        unit: USD
      - id: q4-deals
        title: Win 10 new customers in Q4
        metric: new_customers_won
        target: 10
        unit: customers
"""


@pytest.fixture
def live_org() -> SalesforceOrg:
    """An org this test may change (the session's sandbox org must stay as generated)."""
    return generate_org(seed=8, as_of=AS_OF, accounts=60, opportunities=400)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.mark.usefixtures("live_sandbox")
def test_a_late_change_to_a_closed_period_is_restated_and_explained(
    live_org: SalesforceOrg, store_url: str, tmp_path: Path
) -> None:
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(OKRS, encoding="utf-8")
    sync = ("sync", "--okr-file", str(okr_file), "--store", store_url)
    first = invoke(*sync)
    assert first.exit_code == 0, first.output

    store = Store.open(store_url)
    with store.session() as session:
        [final] = session.scalars(
            select(Measurement).where(Measurement.key_result_id == "q3-revenue")
        ).all()
        lineage = session.scalar(
            select(func.count())
            .select_from(MeasurementRecord)
            .where(MeasurementRecord.measurement_id == final.id)
        )
        read = session.get(SourceRead, "salesforce")
    assert final.restates_id is None  # measured after Q3 closed: the final value
    assert final.data_cutoff is not None
    assert final.code_version
    assert final.run_id
    assert final.metric == "won_revenue"
    assert final.params == {"currency": "USD"}
    assert lineage == final.record_count > 0
    assert read is not None
    assert read.read_at == final.data_cutoff

    # A Q3 opportunity still open is marked won, with a Q3 close date, in November.
    late = next(
        o
        for o in live_org.records("Opportunity")
        if not o["IsClosed"]
        and o.get("CurrencyIsoCode") == "USD"
        and o["CreatedDate"] < "2026-09-01"  # it existed in Q3
    )
    live_org.upsert(
        "Opportunity",
        {
            "Id": late["Id"],
            "StageName": "Closed Won",
            "IsClosed": True,
            "IsWon": True,
            "CloseDate": "2026-09-15",
            "Amount": 12345.67,
        },
    )
    second = invoke(*sync)
    assert second.exit_code == 0, second.output

    with store.session() as session:
        history = session.scalars(
            select(Measurement)
            .where(Measurement.key_result_id == "q3-revenue")
            .order_by(Measurement.id)
        ).all()
    store.dispose()
    assert [m.restates_id for m in history] == [None, final.id]
    assert history[1].value == pytest.approx((final.value or 0) + 12345.67)

    explained = invoke("explain", "q3-revenue", "--store", store_url)
    assert explained.exit_code == 0, explained.output
    text = explained.stdout
    assert "restated: was" in text
    assert "(+12,345.67)" in text
    assert f"added: salesforce deal {late['Id']}" in text
    assert "history: 2 measurement(s), 1 restatement(s)" in text
    assert "computed by metric won_revenue (currency=USD)" in text

    before = invoke(
        "explain",
        "q3-revenue",
        "--at",
        history[0].measured_at.isoformat(),
        "--store",
        store_url,
        "--format",
        "json",
        "--records",
    )
    as_json = json.loads(before.stdout)
    assert as_json["measurement_id"] == final.id
    assert as_json["restatement"] is None
    assert len(as_json["records"]) == final.record_count
    assert late["Id"] not in {row["source_id"] for row in as_json["records"]}

    unknown = invoke("explain", "nope", "--store", store_url)
    assert unknown.exit_code == 1
    assert "no key result 'nope'" in unknown.stderr
