"""Targeted measuring: a sync re-measures only the key results whose entities changed, and
what it keeps is exactly what measuring every key result would have written.

Two real sources (HubSpot for deals, reps and customers, Zendesk for tickets and ratings)
are synced into SQLite; which key result reads which entity is written out below by hand
from the metrics' documented inputs, not taken from the dependency map under test.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.hubspot.sandbox import sandbox_env as hubspot_env_vars
from connectors.hubspot.sandbox.data import customer_seeds, generate_portal
from connectors.hubspot.sandbox.emulator import create_app as create_portal_app
from connectors.sandbox.server import serve_tls
from connectors.zendesk.sandbox import sandbox_env as zendesk_env_vars
from connectors.zendesk.sandbox.data import Helpdesk, generate_helpdesk
from connectors.zendesk.sandbox.emulator import create_app as create_helpdesk_app
from flows.extract import extract_and_load
from flows.measure import measure
from flows.plan import SyncRequest, plan
from flows.report import RunReport, StreamReport
from flows.settings import Settings
from flows.sync import sync_store
from okr_sync.cli import app
from okr_targets.models import DailyValue, Deal, KeyResult, Measurement, MeasurementRecord
from okr_targets.status import RunStatus
from okr_targets.store import Store, begin_run, finish_run
from tests.conftest import AS_OF
from transforms.catalog import load
from transforms.dependencies import ANYTHING, dependencies
from transforms.measure import measure_key_results, save_okrs

LAX = 1000  # requests a second: limits are not under test

OKR_FILE = """\
company: Test Co
sources:
  hubspot: [customer, deal, rep]
  zendesk: [customer, ticket, rating]
customers: {primary: hubspot, match_by: domain}
money: {currency: USD}
objectives:
  - id: grow
    title: Grow revenue and keep customers happy
    owner: olivia.hart@acme-demo.example
    period: 2026-Q4
    key_results:
      - {id: won-revenue, title: Won revenue, metric: won_revenue, params: {}, target: 1000000}
      - {id: win-rate, title: Win rate, metric: win_rate, params: {}, target: 50}
      - {id: retention, title: Retention, metric: retention_rate, params: {}, target: 95}
      - {id: tickets, title: Ticket volume, metric: ticket_volume, params: {}, target: 100}
      - id: first-response
        title: Median first response
        metric: median_first_response_hours
        params: {}
        target: 2
      - {id: csat, title: CSAT, metric: csat, params: {}, target: 90}
      - id: tickets-change
        title: Fewer support requests per day than last quarter
        metric: pct_change
        params: {metric: ticket_volume, per_day: true, baseline_period: previous}
        target: -8
"""

READS = {  # what each key result's metric reads, as the metrics document it
    "won-revenue": {"deal", "fx_rate"},  # won deals' amounts, converted to USD
    "win-rate": {"deal"},
    "retention": {"customer"},
    "tickets": {"ticket"},
    "first-response": {"ticket"},
    "csat": {"rating"},
    "tickets-change": {"ticket"},
}


def reading(*entities: str) -> set[str]:
    return {kr for kr, reads in READS.items() if reads & set(entities)}


@dataclass(frozen=True)
class Sources:
    helpdesk: Helpdesk
    okr_file: Path
    store_url: str


@pytest.fixture
def two_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: time_machine.Traveller
) -> Iterator[Sources]:
    """HubSpot and Zendesk sandboxes this test may change, and the OKR file over both."""
    portal = generate_portal(seed=5, as_of=AS_OF, companies=30, deals=120, tickets=0)
    helpdesk = generate_helpdesk(seed=5, as_of=AS_OF, companies=customer_seeds(portal))
    portal_app = create_portal_app(portal, search_requests_per_second=LAX)
    helpdesk_app = create_helpdesk_app(helpdesk, export_rate_limit=LAX, rate_limit=LAX)
    with serve_tls(portal_app) as hubspot, serve_tls(helpdesk_app) as zendesk:
        for name, value in (
            hubspot_env_vars(hubspot)
            | zendesk_env_vars(zendesk, export_rate_limit=LAX, rate_limit=LAX)
        ).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OKR_SYNC_HUBSPOT_SEARCH_REQUESTS_PER_SECOND", str(LAX))
        okr_file = tmp_path / "okrs.yaml"
        okr_file.write_text(OKR_FILE, encoding="utf-8")
        yield Sources(helpdesk, okr_file, f"sqlite:///{tmp_path / 'store.db'}")


def sync(sources: Sources) -> RunReport:
    store = Store.open(sources.store_url)
    try:
        return sync_store(store, SyncRequest(str(sources.okr_file)), Settings())
    finally:
        store.dispose()


def remeasured(report: RunReport) -> set[str]:
    return {outcome.key_result_id for outcome in report.key_results if not outcome.reused}


def new_ticket(helpdesk: Helpdesk) -> None:
    """A ticket opened at the helpdesk now: this quarter's ticket volume grows."""
    helpdesk.upsert_ticket({"subject": "Cannot log in", "status": "open"})


def snapshot(store_url: str) -> dict[str, Any]:
    """Each key result's latest measurement (every column but its id and run), lineage,
    day point and score: what the store says of it."""
    store = Store.open(store_url)
    found: dict[str, Any] = {}
    with store.session() as session:
        for key_result in session.scalars(select(KeyResult).order_by(KeyResult.id)):
            latest = session.scalars(
                select(Measurement)
                .where(Measurement.key_result_id == key_result.id)
                .order_by(Measurement.measured_at.desc(), Measurement.id.desc())
                .limit(1)
            ).one()
            lineage = set(
                session.execute(
                    select(
                        MeasurementRecord.entity,
                        MeasurementRecord.source,
                        MeasurementRecord.source_id,
                    ).where(MeasurementRecord.measurement_id == latest.id)
                ).tuples()
            )
            columns = {
                c.key: getattr(latest, c.key)
                for c in Measurement.__mapper__.column_attrs
                if c.key not in ("id", "run_id", "restates_id")
            }
            days = session.execute(
                select(DailyValue.day, DailyValue.value, DailyValue.checked_at).where(
                    DailyValue.key_result_id == key_result.id
                )
            ).all()
            score = (key_result.checked_at, key_result.final_score, key_result.scored_at)
            found[key_result.id] = (columns, lineage, sorted(days), score)
    store.dispose()
    return found


def test_a_targeted_pass_leaves_what_a_full_pass_leaves(two_sources: Sources) -> None:
    """One new ticket: on two copies of the same store, the targeted pass re-measures the
    ticket key results only, and both copies end identical, measurement for measurement."""
    first = sync(two_sources)
    assert remeasured(first) == set(READS)  # nothing measured before: everything computed
    new_ticket(two_sources.helpdesk)
    targeted_url = two_sources.store_url
    store = Store.open(targeted_url)
    run_id = begin_run(store, "test")
    planned = plan(store, SyncRequest(str(two_sources.okr_file)))
    streams: dict[str, StreamReport] = {}
    extract_and_load(store, planned, run_id, Settings(), streams)
    store.dispose()
    changed = {r.entity for r in streams.values() if r.entity and r.written + r.deleted}
    assert changed == {"ticket"}
    full_url = targeted_url.replace("store.db", "full.db")
    shutil.copy(targeted_url.removeprefix("sqlite:///"), full_url.removeprefix("sqlite:///"))
    now = datetime.now(AS_OF.tzinfo)
    for url, told in ((targeted_url, changed), (full_url, None)):
        store = Store.open(url)
        measured = measure(store, planned, run_id, now, read_in_full=True, changed=told)
        store.dispose()
        if told is not None:
            computed = {o.key_result_id for o in measured.outcomes if not o.reused}
            assert computed == reading("ticket")
            assert measured.changed == ("ticket",)
        else:
            assert not any(o.reused for o in measured.outcomes)
    assert snapshot(targeted_url) == snapshot(full_url)


def test_a_run_that_stopped_before_measuring_leaves_no_stale_value(
    two_sources: Sources, clock: time_machine.Traveller
) -> None:
    """A run that loaded a new ticket and died before measuring: the next run reads nothing
    new (the cursor moved with the rows), yet measures everything, the new ticket counted."""
    first = sync(two_sources)
    before = next(o.value for o in first.key_results if o.key_result_id == "tickets")
    clock.shift(timedelta(minutes=5))
    new_ticket(two_sources.helpdesk)
    store = Store.open(two_sources.store_url)
    run_id = begin_run(store, "test")
    planned = plan(store, SyncRequest(str(two_sources.okr_file)))
    extract_and_load(store, planned, run_id, Settings(), {})
    store.dispose()  # and the process dies here: the run is never finished
    clock.shift(timedelta(minutes=5))
    report = sync(two_sources)
    assert report.details()["measuring"]["changed"] == []
    assert remeasured(report) == set(READS)
    after = next(o.value for o in report.key_results if o.key_result_id == "tickets")
    assert after == (before or 0) + 1


def test_explain_shows_what_a_number_depends_on(two_sources: Sources) -> None:
    """The key result's line, and the whole map: entity <- its streams, metric -> key results."""
    sync(two_sources)
    cli = CliRunner()
    shown = cli.invoke(app, ["explain", "won-revenue", "--store", two_sources.store_url])
    assert shown.exit_code == 0, shown.output
    assert (
        "depends on: deal <- hubspot.deals; fx_rate <- no stream yet -> won_revenue -> "
        "won-revenue" in " ".join(shown.output.split())
    )
    mapped = cli.invoke(
        app, ["explain", "--dependencies", "--format", "json", "--store", two_sources.store_url]
    )
    assert mapped.exit_code == 0, mapped.output
    table = json.loads(mapped.output)
    by_entity = {
        entity: {kr for krs in shown["metrics"].values() for kr in krs}
        for entity, shown in table.items()
    }
    assert by_entity == {entity: reading(entity) for entity in set().union(*READS.values())}
    assert table["ticket"]["streams"] == ["zendesk.tickets"]
    assert table["ticket"]["metrics"]["pct_change(ticket_volume)"] == ["tickets-change"]
    assert table["customer"]["streams"] == ["hubspot.companies", "zendesk.organizations"]
    bare = cli.invoke(app, ["explain", "--store", two_sources.store_url])
    assert bare.exit_code != 0
    assert "--dependencies" in bare.output


def test_the_dependency_map_leaves_out_a_retired_key_result(
    two_sources: Sources, clock: time_machine.Traveller
) -> None:
    """CSAT removed from the OKR file (issue 22): the map lists only the key results the file
    holds now, as every live view does; ``explain csat`` still shows its history."""
    sync(two_sources)
    csat = "      - {id: csat, title: CSAT, metric: csat, params: {}, target: 90}\n"
    assert csat in OKR_FILE
    two_sources.okr_file.write_text(OKR_FILE.replace(csat, ""), encoding="utf-8")
    clock.shift(timedelta(minutes=5))
    sync(two_sources)
    cli = CliRunner()
    mapped = cli.invoke(
        app, ["explain", "--dependencies", "--format", "json", "--store", two_sources.store_url]
    )
    assert mapped.exit_code == 0, mapped.output
    by_entity = {
        entity: {kr for krs in shown["metrics"].values() for kr in krs}
        for entity, shown in json.loads(mapped.output).items()
    }
    live = {kr: reads for kr, reads in READS.items() if kr != "csat"}
    expected = {e: {kr for kr, r in live.items() if e in r} for e in set().union(*live.values())}
    assert by_entity == expected
    assert "rating" not in by_entity  # only CSAT read ratings
    retired = cli.invoke(app, ["explain", "csat", "--store", two_sources.store_url])
    assert retired.exit_code == 0, retired.output
    assert "depends on: rating <- zendesk.satisfaction_ratings -> csat -> csat" in " ".join(
        retired.output.split()
    )


def test_a_sync_re_measures_only_what_its_change_touches(
    two_sources: Sources, clock: time_machine.Traveller
) -> None:
    """Nothing changed: nothing re-measured. A definition edited: that key result. A new
    ticket: the ticket key results, and the run keeps which. A new day: every one."""
    sync(two_sources)
    clock.shift(timedelta(minutes=5))
    assert remeasured(sync(two_sources)) == set()

    clock.shift(timedelta(minutes=5))
    edited = OKR_FILE.replace("won_revenue, params: {}", "won_revenue, params: {currency: USD}")
    two_sources.okr_file.write_text(edited, encoding="utf-8")
    assert remeasured(sync(two_sources)) == {"won-revenue"}

    clock.shift(timedelta(minutes=5))
    new_ticket(two_sources.helpdesk)
    report = sync(two_sources)
    assert remeasured(report) == reading("ticket")
    assert report.details()["measuring"]["changed"] == ["ticket"]
    assert set(report.details()["measuring"]["reused"]) == set(READS) - reading("ticket")

    clock.shift(timedelta(minutes=5))
    assert remeasured(sync(two_sources)) == set()

    clock.shift(timedelta(days=1))
    assert remeasured(sync(two_sources)) == set(READS)


MONTHLY = """\
company: Month Co.
sources:
  salesforce: [deal]
status: {at_risk_gap: 0.02, off_track_gap: 0.5}
objectives:
  - id: close
    title: Close
    owner: ceo@month.example
    period: 2026-11
    key_results:
      - {id: win-rate, title: Win rate, metric: win_rate, target: 100, baseline: 0}
"""
# Half the deals won is 50% of the way; November is 51.7% gone at noon on the 16th (on
# track within 0.02) and 53.2% gone at 23:00 (at risk): the day's second pass re-scores.
NOON, LATE = (datetime(2026, 11, 16, hour, tzinfo=UTC) for hour in (12, 23))


def test_a_kept_value_that_changes_status_keeps_its_lineage(tmp_path: Path) -> None:
    """Nothing changed but the time: the kept value's new measurement (on track -> at risk)
    carries the records it rests on, as a full pass's would."""
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(MONTHLY, encoding="utf-8")
    config, catalog = load(okr_file)
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    with time_machine.travel(NOON, tick=False):
        store = Store.open(url)
        with store.session() as session, session.begin():  # loaded before: by no run today
            session.add_all(deal(str(n), "won" if n % 2 else "lost", "seed") for n in range(6))
        run_id = begin_run(store, "test")
        with store.session() as session, session.begin():
            save_okrs(session, config, NOON, catalog)
            outcomes = measure_key_results(session, config, catalog, run_id, NOON, "test")
        report = RunReport(run_id, RunStatus.COMPLETE, None, url, "", key_results=tuple(outcomes))
        finish_run(store, run_id, RunStatus.COMPLETE, None, {}, report.details())
        store.dispose()
    assert [o.status for o in outcomes] == ["on_track"]
    with time_machine.travel(LATE, tick=False):
        store = Store.open(url)
        run_id = begin_run(store, "test")
        with store.session() as session, session.begin():
            save_okrs(session, config, LATE, catalog)
        store.dispose()
        full = url.replace("kept.db", "full.db")
        shutil.copy(url.removeprefix("sqlite:///"), full.removeprefix("sqlite:///"))
        for target, changed in ((url, set()), (full, None)):
            store = Store.open(target)
            with store.session() as session, session.begin():
                late = measure_key_results(
                    session, config, catalog, run_id, LATE, "test", changed=changed
                )
            store.dispose()
            assert [(o.status, o.changed, o.reused) for o in late] == [
                ("at_risk", True, changed is not None)
            ]
    assert snapshot(url) == snapshot(full)
    assert len(snapshot(url)["win-rate"][1]) == 6  # every closed deal, won or lost


def deal(source_id: str, outcome: str, run_id: str) -> Deal:
    return Deal(
        source="salesforce",
        source_id=source_id,
        source_modified_at=NOON,
        run_id=run_id,
        name=f"Deal {source_id}",
        currency="USD",
        stage=outcome,
        outcome=outcome,
        pipeline=None,
        deal_type=None,
        created_at=NOON - timedelta(days=30),
        close_on=date(2026, 11, 2),
    )


MAPPED = """\
company: Map Co.
sources:
  salesforce: [customer, deal, rep, fx_rate]
metrics:
  open_deals:
    description: Deals still open
    sql: SELECT count(*) FROM mirror_deals WHERE outcome = 'open' AND deleted_at IS NULL
objectives:
  - id: map
    title: Map
    owner: ceo@map.example
    period: 2026-Q4
    key_results:
      - {id: team-wins, title: T, metric: win_rate, params: {team: Enterprise}, target: 50}
      - {id: value, title: V, metric: pct_change, params: {metric: avg_won_deal_value}, target: 9}
      - {id: churn, title: C, metric: churn_rate, params: {segment: SMB}, target: 2}
      - {id: open, title: O, metric: open_deals, target: 5}
      - {id: launch, title: L, kind: milestone, done: false}
"""


def test_the_map_follows_filters_money_and_undeclared_metrics(tmp_path: Path) -> None:
    """A team filter reads reps, a money metric the exchange rates, a custom SQL metric
    anything (every change re-measures it), a milestone set by hand nothing."""
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(MAPPED, encoding="utf-8")
    config, catalog = load(okr_file)
    mapped = dependencies(config, catalog)
    assert mapped.reads == {
        "team-wins": {"deal", "rep"},
        "value": {"deal", "fx_rate"},
        "churn": {"customer"},
        "open": None,
        "launch": frozenset(),
    }
    assert mapped.touched({"rep"}) == {"team-wins", "open"}
    assert mapped.touched({"rating"}) == {"open"}
    assert mapped.by_entity()["deal"] == {
        "pct_change(avg_won_deal_value)": ["value"],
        "win_rate": ["team-wins"],
    }
    assert mapped.by_entity()[ANYTHING] == {"open_deals": ["open"]}
