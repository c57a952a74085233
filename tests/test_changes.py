"""What changed and why: movements between two instants, explained from the lineage.

The store is tests/okr_fixture.py's (as of its ``NOW``) plus a later run written here by
hand, so every record's fate is known independently of the code under test:

- ``revenue`` 600k → 710k USD: deal 006-3 is new at the source (250k), 006-1 (150k) is
  deleted at the source, 006-2 is edited at the source (200k → 210k), 006-0 is untouched;
- ``q3-revenue`` (2026-Q3, closed) 100k → 112,345.67 USD: a restatement, deal 006-10
  (created in September) marked won late;
- ``alice-deals`` first measured inside the window; ``win-rate``, ``new-customers`` and
  ``first-response`` unchanged; nothing else measured.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from connectors.salesforce.sandbox.data import SalesforceOrg, generate_org
from okr_sync.cli import app
from okr_sync.serve import ServeSettings, create_app
from okr_targets.changes import (
    Changes,
    MovementKind,
    RecordChangeKind,
    changes_lines,
    parse_window,
    signed_change,
    what_changed,
)
from okr_targets.models import Deal, KeyResult, Measurement, MeasurementRecord, SyncRun
from okr_targets.periods import Calendar
from okr_targets.store import Store
from tests.conftest import AS_OF
from tests.okr_fixture import NOW, fill_store, key_result

LATER = NOW + timedelta(days=1)  # the second run
SINCE, UNTIL = NOW, NOW + timedelta(days=2)


def _deal(n: int, amount: str, modified: datetime, created: datetime, close: date) -> Deal:
    return Deal(
        source="salesforce",
        source_id=f"006-{n}",
        source_modified_at=modified,
        run_id="run-2",
        name=f"Deal {n}",
        customer_id=f"001-{n}",
        owner_id="005-1",
        amount=Decimal(amount),
        currency="USD",
        stage="Closed Won",
        outcome="won",
        pipeline=None,
        deal_type=None,
        created_at=created,
        close_on=close,
    )


def _measure(
    session: Session, kr: str, at: datetime, value: float, keys: list[str], **extra: object
) -> Measurement:
    measurement = Measurement(
        key_result_id=kr,
        run_id=str(extra.pop("run", "run-2")),
        measured_at=at,
        value=value,
        unit=str(extra.pop("unit", "USD" if "revenue" in kr else "deals")),
        progress=None,
        progress_raw=None,
        expected_progress=0.0,
        status=str(extra.pop("status", "on_track")),
        metric=str(extra.pop("metric", "won_revenue")),
        params={},
        details={},
        record_count=len(keys),
        code_version="0.1.0",
        data_cutoff=at - timedelta(minutes=1),
        **extra,
    )
    session.add(measurement)
    session.flush()
    for source_id in keys:
        session.add(
            MeasurementRecord(
                measurement_id=measurement.id,
                entity="deal",
                source="salesforce",
                source_id=source_id,
            )
        )
    return measurement


def later_changes(url: str) -> None:
    """The second run: the sources changed between the fixture's run and this one."""
    store = Store.open(url)
    with store.session() as session:
        session.add(
            key_result(
                "q3-revenue",
                "grow",
                "Book 100k in Q3",
                period="2026-Q3",
                metric="won_revenue",
                target=100_000,
                unit="USD",
            )
        )
        session.add(
            SyncRun(
                id="run-2",
                started_at=LATER,
                finished_at=LATER,
                status="complete",
                code_version="0.1.0",
            )
        )
        session.flush()
        september = datetime(2026, 9, 1, tzinfo=UTC)
        session.add(_deal(9, "100000", september, september, date(2026, 9, 10)))
        session.add(_deal(10, "12345.67", NOW + timedelta(hours=5), september, date(2026, 9, 15)))
        session.add(
            _deal(
                3, "250000", NOW + timedelta(hours=3), NOW + timedelta(hours=3), date(2026, 11, 20)
            )
        )
        edited = session.get(Deal, ("salesforce", "006-2"))
        deleted = session.get(Deal, ("salesforce", "006-1"))
        assert edited is not None
        assert deleted is not None
        edited.amount, edited.source_modified_at = Decimal("210000"), NOW + timedelta(hours=6)
        deleted.deleted_at = deleted.source_modified_at = NOW + timedelta(hours=12)
        # The Q3 value was final on October 2nd (run-1 then), restated in the later run.
        final = _measure(
            session,
            "q3-revenue",
            datetime(2026, 10, 2, tzinfo=UTC),
            100_000.0,
            ["006-9"],
            run="run-1",
        )
        _measure(
            session, "q3-revenue", LATER, 112_345.67, ["006-9", "006-10"], restates_id=final.id
        )
        _measure(session, "revenue", LATER, 710_000.0, ["006-0", "006-2", "006-3"])
        _measure(session, "alice-deals", NOW + timedelta(hours=1), 1.0, ["006-3"])
        session.commit()
    store.dispose()


@pytest.fixture
def changed_store(store_url: str) -> str:
    fill_store(store_url)
    later_changes(store_url)
    return store_url


def test_each_movement_says_which_records_came_went_or_changed(changed_store: str) -> None:
    store = Store.open(changed_store)
    with store.session() as session:
        changes = what_changed(session, SINCE, UNTIL)
    store.dispose()
    by_id = {m.key_result_id: m for m in changes.movements}
    assert changes.counts == {"moved": 2, "new": 1, "unchanged": 3, "no_data": 0}
    assert [m.key_result_id for m in changes.movements][:3] == [
        "q3-revenue",
        "revenue",
        "alice-deals",
    ]

    revenue = by_id["revenue"]
    assert revenue.kind is MovementKind.MOVED
    assert (revenue.value_then, revenue.value_now) == (600_000.0, 710_000.0)
    assert revenue.change == 110_000.0
    assert revenue.headline == "600k USD → 710k USD (+110k USD)"
    assert revenue.measurements == 1
    diff = revenue.records
    assert diff is not None
    assert (diff.added, diff.removed, diff.changed, diff.new, diff.deleted) == (1, 1, 1, 1, 1)
    fates = {(r.change, r.source_id): (r.why, r.at) for r in diff.records}
    assert fates == {
        (RecordChangeKind.ADDED, "006-3"): ("new at the source", NOW + timedelta(hours=3)),
        (RecordChangeKind.REMOVED, "006-1"): ("deleted at the source", NOW + timedelta(hours=12)),
        (RecordChangeKind.CHANGED, "006-2"): ("edited at the source", NOW + timedelta(hours=6)),
    }
    edited = next(r for r in diff.records if r.source_id == "006-2")
    assert edited.now == "won, 210,000.00 USD, closed 2026-11-03"
    assert revenue.reasons == [
        "deals: 1 added (1 new at the source), 1 removed (1 deleted at the source),"
        " 1 edited at the source"
    ]

    q3 = by_id["q3-revenue"]
    assert q3.change == pytest.approx(12_345.67)
    [restated] = q3.restatements
    assert (restated.old_value, restated.value) == (100_000.0, 112_345.67)
    assert (restated.added, restated.removed, restated.changed) == (1, 0, 0)
    late = q3.records.records if q3.records else []
    assert [(r.change, r.source_id, r.why) for r in late] == [
        (RecordChangeKind.ADDED, "006-10", "edited at the source")  # created in September
    ]
    assert q3.reasons == [
        "deals: 1 added (1 edited at the source)",
        "restated 2026-Q3 (closed): was 100k USD, final since 2026-10-02; late data moved it"
        " +12.3k USD",
    ]

    assert by_id["alice-deals"].kind is MovementKind.NEW
    assert by_id["alice-deals"].headline == "first measured in the window: 1 deals"
    for unchanged in ("win-rate", "new-customers", "first-response"):
        assert by_id[unchanged].kind is MovementKind.UNCHANGED
        assert by_id[unchanged].records is None


def test_a_window_before_the_later_run_sees_no_movement(changed_store: str) -> None:
    store = Store.open(changed_store)
    with store.session() as session:
        changes = what_changed(session, NOW - timedelta(days=5), NOW)
    store.dispose()
    by_id = {m.key_result_id: m for m in changes.movements}
    # revenue moved 500k -> 600k on the fixture's run, whose lineage the 500k lacks
    assert by_id["revenue"].headline == "500k USD → 600k USD (+100k USD)"
    assert by_id["alice-deals"].kind is MovementKind.NO_DATA
    assert by_id["q3-revenue"].kind is MovementKind.UNCHANGED  # final since October


def test_changes_have_a_sign_and_a_percentage_moves_in_points() -> None:
    assert signed_change(110_000.0, "USD") == "+110k USD"
    assert signed_change(12_345.67, "USD") == "+12.3k USD"
    assert signed_change(-2.5, "%") == "−2.5 pts"
    assert signed_change(None, "USD") == "—"


def invoke(*args: str) -> Result:
    with time_machine.travel(UNTIL, tick=False):
        return CliRunner().invoke(app, list(args))


def changes_page(store_url: str, tmp_path: Path) -> str:
    """The last two days' What changed page, as ``okr-sync changes --format html`` writes it."""
    page = tmp_path / "changes.html"
    written = invoke(
        "changes", "--days", "2", "--store", store_url, "--format", "html", "--output", str(page)
    )
    assert written.exit_code == 0, written.output
    return page.read_text(encoding="utf-8")


def test_the_changes_command_prints_text_json_markdown_and_html(
    changed_store: str, tmp_path: Path
) -> None:
    text = invoke("changes", "--days", "2", "--store", changed_store)
    assert text.exit_code == 0, text.output
    output = text.stdout
    assert "2 moved, 1 first measured, 3 unchanged, 0 not measured yet" in output
    assert "Book 1M in won revenue: 600k USD → 710k USD (+110k USD)" in output
    assert 'removed: salesforce deal 006-1 "Deal 1" (deleted at the source 2026-11-28' in output

    as_json = invoke(
        "changes",
        "--since",
        "2026-11-27T12:00:00+00:00",
        "--until",
        "2026-11-29",
        "--store",
        changed_store,
        "--format",
        "json",
    )
    found = json.loads(as_json.stdout)
    revenue = next(m for m in found["movements"] if m["key_result_id"] == "revenue")
    assert revenue["change"] == 110_000.0
    assert revenue["change_text"] == "+110k USD"
    assert {r["source_id"] for r in revenue["records"]["records"]} == {"006-1", "006-2", "006-3"}

    markdown = invoke("changes", "--days", "2", "--store", changed_store, "--format", "markdown")
    assert "- **Book 1M in won revenue**: 600k USD → 710k USD (+110k USD)" in markdown.stdout

    html = changes_page(changed_store, tmp_path)
    assert "600k USD → 710k USD" in html
    assert "http" not in html.replace("http-equiv", "")  # self-contained: no links out

    for bad, message in (
        (("--days", "0"), "days must be at least 1"),
        (("--since", "yesterday"), "since 'yesterday' is not an ISO date"),
        (("--since", "2026-11-29", "--until", "2026-11-28"), "is not before"),
        (("--days", "2", "--since", "2026-11-01"), "either since or days"),
        (("--format", "yaml"), "unknown format 'yaml'"),
    ):
        refused = invoke("changes", *bad, "--store", changed_store)
        assert refused.exit_code == 1
        assert refused.stderr.startswith("error: ")
        assert message in refused.stderr


def test_serve_shows_what_changed_as_a_page_and_json_behind_the_same_auth(
    changed_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_SERVE_TOKEN", "s3cret-token")
    store = Store.open(changed_store)
    client = TestClient(create_app(store, ServeSettings(), clock=lambda: UNTIL))
    assert client.get("/changes").status_code == 401
    assert client.get("/api/v1/changes").status_code == 401
    client.headers["Authorization"] = "Bearer s3cret-token"

    page = client.get("/changes", params={"days": "2"})
    assert page.status_code == 200
    html = page.text
    assert "default-src 'none'" in html  # loads nothing, like the dashboard
    assert "<strong>2</strong> moved, <strong>1</strong> first measured" in html
    assert "600k USD → 710k USD" in html
    assert '<tr data-record="006-1"><td>removed</td>' in html
    assert "deleted at the source" in html
    assert 'href="mailto:alice@example.com" title="alice@example.com">Alice Adams</a>' in html
    assert "restated 2026-Q3 (closed): was 100k USD" in html
    assert '(<span class="change-better">+110k USD</span>)' in html
    assert 'data-kr="win-rate">Raise the win rate from 25% to 35%: 26%</li>' in html
    assert "s3cret-token" not in html

    api = client.get(
        "/api/v1/changes", params={"since": "2026-11-27T12:00:00+00:00", "until": "2026-11-29"}
    )
    found = api.json()
    assert (found["version"], found["timezone"]) == (1, "UTC")
    assert found["counts"] == {"moved": 2, "new": 1, "unchanged": 3, "no_data": 0}
    assert found["until"] == "2026-11-30T00:00:00+00:00"  # through the whole of that day
    revenue = next(m for m in found["movements"] if m["key_result_id"] == "revenue")
    assert revenue["headline"] == "600k USD → 710k USD (+110k USD)"

    refused = client.get("/api/v1/changes", params={"days": "x"})
    assert refused.status_code == 400
    assert refused.json() == {"error": "days 'x' is not a whole number of days"}
    assert client.get("/changes", params={"since": "2026-12-01"}).status_code == 400
    store.dispose()


# --- a real sync of the Salesforce sandbox, changed between two runs -------------------------

REAL_OKRS = """\
company: Changes Test Inc.
sources:
  salesforce: [customer, deal, rep, fx_rate]
money: {currency: USD}
objectives:
  - id: revenue
    title: Grow revenue
    owner: ceo@example.com
    period: 2026-Q4
    key_results:
      - id: q4-revenue
        title: Book 2M in won revenue in Q4
        metric: won_revenue
        params: {currency: USD}
        target: 2000000
        unit: USD
"""


@pytest.fixture
def live_org() -> SalesforceOrg:
    """An org this test may change (the session's sandbox org must stay as generated)."""
    return generate_org(seed=8, as_of=AS_OF, accounts=60, opportunities=400)


@pytest.mark.usefixtures("prefect_harness", "live_sandbox")
def test_a_real_sync_explains_a_deal_won_one_deleted_one_edited_and_one_new(
    live_org: SalesforceOrg,
    store_url: str,
    tmp_path: Path,
    clock: time_machine.Traveller,
) -> None:
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(REAL_OKRS, encoding="utf-8")
    sync = ["sync", "--okr-file", str(okr_file), "--store", store_url]
    first = CliRunner().invoke(app, sync)
    assert first.exit_code == 0, first.output
    between = datetime.now(UTC)
    clock.shift(timedelta(minutes=5))

    opportunities = live_org.records("Opportunity")
    won_q4 = [
        o
        for o in opportunities
        if o["IsWon"] and o["CloseDate"] >= "2026-10-01" and o.get("CurrencyIsoCode") == "USD"
    ]
    deleted, edited = won_q4[0], won_q4[1]
    won_late = next(
        o for o in opportunities if not o["IsClosed"] and o.get("CurrencyIsoCode") == "USD"
    )
    live_org.delete("Opportunity", deleted["Id"])
    live_org.upsert("Opportunity", {"Id": edited["Id"], "Amount": edited["Amount"] + 1000})
    live_org.upsert(
        "Opportunity",
        {
            "Id": won_late["Id"],
            "StageName": "Closed Won",
            "IsClosed": True,
            "IsWon": True,
            "CloseDate": "2026-11-20",
            "Amount": 5000.0,
        },
    )
    copied = {
        key: value
        for key, value in edited.items()
        if key not in ("Id", "attributes", "CreatedDate", "LastModifiedDate", "SystemModstamp")
    }
    new = live_org.upsert(
        "Opportunity",
        {**copied, "Name": "Brand new deal", "Amount": 700.0, "CloseDate": "2026-11-26"},
    )
    clock.shift(timedelta(minutes=5))
    second = CliRunner().invoke(app, sync)
    assert second.exit_code == 0, second.output

    store = Store.open(store_url)
    with store.session() as session:
        changes = what_changed(session, between, datetime.now(UTC))
    store.dispose()
    [movement] = changes.movements
    assert movement.kind is MovementKind.MOVED
    assert movement.change == pytest.approx(1000 + 5000 + 700 - deleted["Amount"])
    diff = movement.records
    assert diff is not None
    fates = {(r.change, r.source_id): r.why for r in diff.records}
    assert fates == {
        (RecordChangeKind.ADDED, won_late["Id"]): "edited at the source",
        (RecordChangeKind.ADDED, new["Id"]): "new at the source",
        (RecordChangeKind.REMOVED, deleted["Id"]): "deleted at the source",
        (RecordChangeKind.CHANGED, edited["Id"]): "edited at the source",
    }
    late = next(r for r in diff.records if r.source_id == won_late["Id"])
    assert late.now == "won, 5,000.00 USD, closed 2026-11-20"


def test_dates_are_read_and_shown_in_the_organisations_time_zone() -> None:
    berlin = Calendar(timezone="Europe/Berlin")
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    since, until = parse_window("2026-11-28", None, "2026-11-28", now, berlin)
    assert (since, until) == (
        datetime(2026, 11, 27, 23, 0, tzinfo=UTC),  # local midnight, CET = UTC+1
        datetime(2026, 11, 28, 23, 0, tzinfo=UTC),  # through the end of that local day
    )
    assert parse_window("2026-11-28T08:00", None, None, now, berlin)[0] == datetime(
        2026, 11, 28, 7, 0, tzinfo=UTC
    )
    assert parse_window(None, 3, None, now)[0] == now - timedelta(days=3)
    shown = changes_lines(Changes(since, until, [], "Europe/Berlin"))
    assert shown[0].startswith("What changed from 2026-11-28 00:00 CET to 2026-11-29 00:00 CET")


def test_titles_and_names_stay_text_in_every_output(changed_store: str, tmp_path: Path) -> None:
    title, deal = "Revenue [beta] <b>up</b> | *fast*", "Acme [/bold] <script>x</script>"
    store = Store.open(changed_store)
    with store.session() as session:
        session.execute(update(KeyResult).where(KeyResult.id == "revenue").values(title=title))
        session.execute(update(Deal).where(Deal.source_id == "006-3").values(name=deal))
        session.commit()
    store.dispose()
    text = invoke("changes", "--days", "2", "--store", changed_store)
    assert f"{title}: 600k USD → 710k USD" in text.stdout
    assert f'"{deal}"' in text.stdout
    markdown = invoke("changes", "--days", "2", "--store", changed_store, "--format", "markdown")
    assert (
        r"- **Revenue \[beta\] \<b\>up\</b\> \| \*fast\***: 600k USD → 710k USD" in markdown.stdout
    )
    html = changes_page(changed_store, tmp_path)
    assert "<script>x" not in html
    assert "Acme [/bold] &lt;script&gt;x&lt;/script&gt;" in html
    assert "Revenue [beta] &lt;b&gt;up&lt;/b&gt; | *fast*" in html


def test_a_status_that_moved_while_the_value_held_says_so(changed_store: str) -> None:
    store = Store.open(changed_store)
    with store.session() as session:
        keys = ["006-0", "006-1", "006-2"]  # the fixture's lineage of win-rate
        _measure(
            session, "win-rate", LATER, 26.0, keys, status="off_track", metric="win_rate", unit="%"
        )
        session.commit()
        changes = what_changed(session, SINCE, UNTIL)
    store.dispose()
    [win_rate] = [m for m in changes.movements if m.key_result_id == "win-rate"]
    assert win_rate.kind is MovementKind.MOVED
    assert win_rate.change == 0
    assert win_rate.headline == "26%, status on track → off track"
    assert win_rate.reasons[-1] == (
        "the value held; its status moved with the time passed in the period"
    )
    assert not any("definition" in reason for reason in win_rate.reasons)
