"""A catalogue of bad inputs: each one, served by a source's emulator in that API's own shape
and synced through the real flow, gives a specific finding or a clear error, and changes
nothing else in the store.

Record cases share two worlds per source: a *good* one and a *bad* one, the same generated
data except for the catalogue. A bad record either gets a new id (it must be quarantined
with a reason naming its field and problem) or, for a valid-but-tricky record (``+0000``
beside ``Z``, a HubSpot ``""`` amount, fields the connector has never seen), replaces a
record whose well-formed twin the good world holds (it must load exactly as its twin).
After one sync of each world, the bad store's mirror and measurements must equal the good
store's. Page cases (an empty page with a next link, a record read twice, a body that is
not UTF-8) run their own small syncs.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import orjson
import psycopg
import pytest
import requests
import time_machine
import urllib3
from sqlalchemy import select
from typer.testing import CliRunner

from connectors import canonical
from connectors.base import StreamInfo
from connectors.errors import FatalSourceError, SourceErrors, classified
from connectors.files.sandbox import write_csv
from connectors.hubspot.sandbox import sandbox_env as hubspot_env_vars
from connectors.hubspot.sandbox.data import HubSpotPortal, generate_portal
from connectors.hubspot.sandbox.emulator import create_app as create_portal_app
from connectors.salesforce.sandbox import sandbox_env as salesforce_env_vars
from connectors.salesforce.sandbox.data import (
    SalesforceOrg,
    customer_seeds,
    generate_org,
    sf_id,
)
from connectors.salesforce.sandbox.emulator import create_app as create_org_app
from connectors.salesforce.timestamps import parse_sf_datetime
from connectors.sandbox.server import serve_tls
from connectors.sql.sandbox import create_fixture_database
from connectors.zendesk.mapping import MappingError as ZendeskMappingError
from connectors.zendesk.mapping import ticket_to_ticket
from connectors.zendesk.sandbox import sandbox_env as zendesk_env_vars
from connectors.zendesk.sandbox.data import Helpdesk, generate_helpdesk
from connectors.zendesk.sandbox.emulator import create_app as create_helpdesk_app
from expectations import SUITES, Validator, column_checks, suite_names
from flows.load import Destination, validate_and_load
from flows.plan import SyncRequest
from flows.report import RunReport
from flows.settings import Settings
from flows.sync import sync_okrs, sync_store
from okr_sync.cli import app as cli_app
from okr_targets.dashboard import render_html
from okr_targets.freshness import held_back
from okr_targets.models import (
    MIRROR,
    DailyValue,
    Measurement,
    QuarantinedRow,
    SyncRun,
    storable,
    utcnow,
)
from okr_targets.report import KeyResultLine, build_report, walk
from okr_targets.store import Store, begin_run, upsert_records
from okr_targets.summary import build_summary, summary_csv, summary_markdown
from okr_targets.summary import key_results as summary_key_results
from tests.conftest import AS_OF, NOW, PG_ADMIN_DSN
from tests.test_metrics_correctness import Oracle

pytestmark = pytest.mark.usefixtures("prefect_harness")

LAX = 10_000  # rate limits are not under test here

CRM_OKRS = """\
company: Bad Inputs Co
sources:
  salesforce: [customer, deal, rep, fx_rate]
  zendesk: [customer, ticket, rating]
customers: {primary: salesforce, match_by: external_id}
money: {currency: USD}
objectives:
  - id: grow
    title: Grow and keep customers happy
    owner: ceo@acme-demo.example
    period: 2026-Q4
    key_results:
      - id: won-revenue
        title: Won revenue
        metric: won_revenue
        params: {currency: USD}
        target: 1000000
      - {id: win-rate, title: Win rate, metric: win_rate, params: {}, target: 50}
      - {id: new-customers, title: New customers, metric: new_customers_won, params: {}, target: 10}
      - {id: tickets, title: Ticket volume, metric: ticket_volume, params: {}, target: 100}
      - {id: csat, title: CSAT, metric: csat, params: {}, target: 90}
"""

HUBSPOT_OKRS = """\
company: Bad Inputs Co
sources:
  hubspot: [customer, deal, rep]
customers: {primary: hubspot, match_by: domain}
money: {currency: USD}
objectives:
  - id: grow
    title: Grow revenue
    owner: olivia.hart@acme-demo.example
    period: 2026-Q4
    key_results:
      - {id: won-revenue, title: Won revenue, metric: won_revenue, params: {}, target: 1000000}
      - id: avg-deal
        title: Average deal
        metric: avg_won_deal_value
        params: {currency: USD}
        target: 30000
      - {id: win-rate, title: Win rate, metric: win_rate, params: {}, target: 50}
"""


# --- the worlds ------------------------------------------------------------------------------


def small_org() -> SalesforceOrg:
    return generate_org(seed=31, as_of=AS_OF, accounts=25, opportunities=250)


def small_helpdesk(org: SalesforceOrg) -> Helpdesk:
    return generate_helpdesk(seed=31, as_of=AS_OF, companies=customer_seeds(org))


def small_portal() -> HubSpotPortal:
    return generate_portal(seed=31, as_of=AS_OF, companies=25, deals=260, tickets=0)


@dataclass
class World:
    """One version of every source: the good one, or the same with the catalogue in it."""

    org: SalesforceOrg = field(default_factory=small_org)
    helpdesk: Helpdesk = field(init=False)
    portal: HubSpotPortal = field(default_factory=small_portal)

    def __post_init__(self) -> None:
        self.helpdesk = small_helpdesk(self.org)

    def opportunity(self, n: int, **changes: Any) -> dict[str, Any]:
        """A copy of a closed opportunity under a new Id (catalogue number ``n``)."""
        template = next(o for o in self.org.records("Opportunity") if o["IsClosed"])
        return _copy(template, Id=sf_id("006", 9_000_000 + n)) | changes

    def account(self, n: int, **changes: Any) -> dict[str, Any]:
        template = self.org.records("Account")[0]
        return _copy(template, Id=sf_id("001", 9_000_000 + n)) | changes

    def ticket(self, n: int, **changes: Any) -> dict[str, Any]:
        template = self.helpdesk.tickets[min(self.helpdesk.tickets)]
        return _copy(template, id=9_000_000 + n) | changes

    def organization(self, n: int, **changes: Any) -> dict[str, Any]:
        template = self.helpdesk.organizations[min(self.helpdesk.organizations)]
        return _copy(template, id=9_000_000 + n, external_id=None) | changes

    def deal(self, n: int, **properties: Any) -> dict[str, Any]:
        template = self.portal.records("deals")[0]
        record = _copy(template, id=str(9_000_000 + n))
        record["properties"] = {
            **template["properties"],
            **properties,
            "hs_object_id": record["id"],
        }
        return record


def _copy(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "attributes"}
    return out | changes


def not_utf8(text: str) -> orjson.Fragment:
    """A JSON string whose bytes are Latin-1, not UTF-8: the emulators serialise it raw."""
    return orjson.Fragment(json.dumps(text, ensure_ascii=False).encode("latin-1"))


def z_form(stamp: str) -> str:
    """``2026-01-05T10:00:00.000+0000`` as ``2026-01-05T10:00:00.000Z``."""
    assert stamp.endswith("+0000"), stamp
    return stamp[:-5] + "Z"


def minus_five(stamp: str) -> str:
    """The same instant written with a -05:00 offset."""
    local = parse_sf_datetime(stamp) - timedelta(hours=5)
    return local.replace(tzinfo=None).isoformat(timespec="milliseconds") + "-05:00"


# --- the catalogue of records ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad record: how to put it in a world, and what the sync must say about it.

    ``reasons`` are texts the quarantined row's reasons must contain; an empty tuple marks a
    valid-but-tricky record, which must load exactly as its well-formed twin.
    """

    id: str
    source: str
    entity: str
    stream: str
    source_id: str
    put: Callable[[World, bool], None]
    reasons: tuple[str, ...] = ()

    @property
    def benign(self) -> bool:
        return not self.reasons


def _bad_only(add: Callable[[World], object]) -> Callable[[World, bool], None]:
    def put(world: World, bad: bool) -> None:
        if bad:
            add(world)

    return put


def sf_opp(n: int, **changes: Any) -> Callable[[World, bool], None]:
    return _bad_only(lambda w: w.org.add("Opportunity", w.opportunity(n, **changes)))


def sf_account(n: int, **changes: Any) -> Callable[[World, bool], None]:
    return _bad_only(lambda w: w.org.add("Account", w.account(n, **changes)))


def zd_ticket(n: int, drop: tuple[str, ...] = (), **changes: Any) -> Callable[[World, bool], None]:
    def add(world: World) -> None:
        record = world.ticket(n, **changes)
        for name in drop:
            del record[name]
        world.helpdesk.add_ticket(record)

    return _bad_only(add)


def zd_org(n: int, **changes: Any) -> Callable[[World, bool], None]:
    return _bad_only(lambda w: w.helpdesk.add_organization(w.organization(n, **changes)))


def hs_deal(n: int, **properties: Any) -> Callable[[World, bool], None]:
    return _bad_only(lambda w: w.portal.add("deals", w.deal(n, **properties)))


def opp_id(n: int) -> str:
    return sf_id("006", 9_000_000 + n)


def account_id(n: int) -> str:
    return sf_id("001", 9_000_000 + n)


def _retimed_opportunity(index: int, form: Callable[[str], str]) -> Callable[[World, bool], None]:
    """Bad world: an existing opportunity's timestamps in another (equal) form."""

    def put(world: World, bad: bool) -> None:
        if bad:
            record = world.org.records("Opportunity")[index]
            stamps = ("CreatedDate", "LastModifiedDate", "SystemModstamp")
            world.org.add("Opportunity", record | {name: form(record[name]) for name in stamps})

    return put


def _ticket_with_new_fields(world: World, bad: bool) -> None:
    if bad:
        record = world.helpdesk.tickets[sorted(world.helpdesk.tickets)[3]]
        extra = {"custom_status_id": 4411, "sla_policy": {"id": 7, "title": "Gold"}, "ai_tags": []}
        world.helpdesk.add_ticket({**record, **extra})


def _deal_amount_cleared(world: World, bad: bool) -> None:
    """Good world: deal 2's amount unset (null); bad world: cleared, which HubSpot sends as ""."""
    record = world.portal.records("deals")[2]
    properties = {**record["properties"], "amount": "" if bad else None}
    world.portal.add("deals", {**record, "properties": properties})


REFERENCE = World()  # ids of existing records, the same in every world (the data is seeded)

CASES = [
    # nulls in required fields
    Case("sf-null-created-date", "salesforce", "deal", "Opportunity", opp_id(1),
         sf_opp(1, CreatedDate=None), ("mapping: CreatedDate is missing",)),
    Case("sf-null-account-name", "salesforce", "customer", "Account", account_id(2),
         sf_account(2, Name=None), ("expect_column_values_to_not_be_null(name)",)),
    Case("sf-null-stage", "salesforce", "deal", "Opportunity", opp_id(3),
         sf_opp(3, StageName=None), ("expect_column_values_to_not_be_null(stage)",)),
    Case("zd-null-status", "zendesk", "ticket", "tickets", "9000004",
         zd_ticket(4, status=None), ("mapping: status None is not a Zendesk ticket status",)),
    # negative amounts, unknown currencies
    Case("sf-negative-amount", "salesforce", "deal", "Opportunity", opp_id(5),
         sf_opp(5, Amount=-500.0), ("expect_column_values_to_be_between(amount)",)),
    Case("sf-unknown-currency", "salesforce", "deal", "Opportunity", opp_id(6),
         sf_opp(6, CurrencyIsoCode="QQQ"), ("expect_column_values_to_be_in_set(currency)",)),
    Case("hs-unknown-currency", "hubspot", "deal", "deals", "9000007",
         hs_deal(7, deal_currency_code="ZZZ"), ("expect_column_values_to_be_in_set(currency)",)),
    # (a close date before the create date is a migrated deal, counted: test_migrated_deals)
    # days that do not exist
    Case("sf-close-date-feb-30", "salesforce", "deal", "Opportunity", opp_id(10),
         sf_opp(10, CloseDate="2026-02-30"),
         ("mapping: CloseDate '2026-02-30' is not a real date (day is out of range for month)",)),
    Case("sf-created-feb-30", "salesforce", "deal", "Opportunity", opp_id(11),
         sf_opp(11, CreatedDate="2026-02-30T10:00:00.000+0000"),
         ("CreatedDate '2026-02-30T10:00:00.000+0000' is not a Salesforce datetime "
          "(day is out of range for month)",)),
    Case("hs-closedate-feb-30", "hubspot", "deal", "deals", "9000012",
         hs_deal(12, closedate="2026-02-30"), ("mapping: closedate '2026-02-30' is not a date",)),
    # far-future dates
    Case("sf-close-date-3026", "salesforce", "deal", "Opportunity", opp_id(13),
         sf_opp(13, CloseDate="3026-06-30"), ("expect_column_values_to_be_between(close_on)",)),
    Case("sf-created-2999", "salesforce", "customer", "Account", account_id(14),
         sf_account(14, CreatedDate="2999-01-01T00:00:00.000+0000"),
         ("expect_column_values_to_be_between(created_at)",)),
    Case("sf-created-past-year-9999", "salesforce", "deal", "Opportunity", opp_id(15),
         sf_opp(15, CreatedDate="9999-12-31T23:30:00.000-0100"),
         ("is not a Salesforce datetime (out of range once moved to UTC)",)),
    Case("zd-ticket-created-2999", "zendesk", "ticket", "tickets", "9000016",
         zd_ticket(16, created_at="2999-01-01T00:00:00Z"),
         ("expect_column_values_to_be_between(created_at)",)),
    # missing fields, wrong types
    Case("zd-missing-created-at", "zendesk", "ticket", "tickets", "9000017",
         zd_ticket(17, drop=("created_at",)), ("mapping: created_at is missing",)),
    Case("sf-amount-is-text", "salesforce", "deal", "Opportunity", opp_id(18),
         sf_opp(18, Amount="lots"), ("mapping: Amount 'lots' is not a number",)),
    Case("sf-iswon-is-text", "salesforce", "deal", "Opportunity", opp_id(19),
         sf_opp(19, IsWon="false"), ("mapping: IsWon 'false' is not a boolean",)),
    Case("sf-created-is-epoch-number", "salesforce", "deal", "Opportunity", opp_id(20),
         sf_opp(20, CreatedDate=1767225600000),
         ("mapping: CreatedDate 1767225600000 is not a Salesforce datetime",)),
    Case("sf-name-is-number", "salesforce", "customer", "Account", account_id(21),
         sf_account(21, Name=12345), ("column(name): int is not text",)),
    Case("zd-organization-id-is-text", "zendesk", "ticket", "tickets", "9000022",
         zd_ticket(22, organization_id="acme"),
         ("mapping: organization_id 'acme' is not an integer id",)),
    Case("hs-amount-with-thousands-separator", "hubspot", "deal", "deals", "9000023",
         hs_deal(23, amount="1,000"), ("mapping: amount '1,000' is not a number",)),
    # huge strings
    Case("sf-huge-name", "salesforce", "customer", "Account", account_id(24),
         sf_account(24, Name="Acme " * 40_000),
         ("column(name): 200000 characters, more than the 10000 kept",)),
    Case("sf-huge-industry", "salesforce", "customer", "Account", account_id(25),
         sf_account(25, Industry="Software" * 500),
         ("column(segment): 4000 characters, more than the 100 kept",)),
    # bytes that are not UTF-8
    Case("sf-name-not-utf8", "salesforce", "customer", "Account", account_id(26),
         sf_account(26, Name=not_utf8("Müller Café GmbH")),
         ("column(name): holds U+FFFD: the source sent bytes that are not UTF-8",)),
    Case("zd-organization-name-not-utf8", "zendesk", "customer", "organizations", "9000027",
         zd_org(27, name=not_utf8("Société Générale")),
         ("column(name): holds U+FFFD: the source sent bytes that are not UTF-8",)),
    # a won deal that no period would ever count (issue 22, item 16)
    Case("sf-won-without-close-date", "salesforce", "deal", "Opportunity", opp_id(28),
         sf_opp(28, IsClosed=True, IsWon=True, StageName="Closed Won", CloseDate=None),
         ("expect_column_values_to_not_be_null(close_on)",)),
    # valid but tricky: they load exactly as their well-formed twins
    Case("hs-empty-string-amount", "hubspot", "deal", "deals",
         REFERENCE.portal.records("deals")[2]["id"], _deal_amount_cleared),
    Case("sf-z-beside-plus0000", "salesforce", "deal", "Opportunity",
         REFERENCE.org.records("Opportunity")[4]["Id"], _retimed_opportunity(4, z_form)),
    Case("sf-minus-five-hours-offset", "salesforce", "deal", "Opportunity",
         REFERENCE.org.records("Opportunity")[5]["Id"], _retimed_opportunity(5, minus_five)),
    Case("zd-fields-never-seen", "zendesk", "ticket", "tickets",
         str(sorted(REFERENCE.helpdesk.tickets)[3]), _ticket_with_new_fields),
]  # fmt: skip

# --- text no store can keep (issue 22 #2) -----------------------------------------------------
# A NUL made PostgreSQL refuse the whole batch on every run; a lone surrogate cannot be encoded
# for either store. Each must be quarantined with its reason, on SQLite and PostgreSQL alike.


def lone_surrogate(text: str) -> orjson.Fragment:
    """A JSON string whose escape is a lone surrogate: json.loads accepts it, UTF-8 does not."""
    return orjson.Fragment(json.dumps(text).replace("?", "\\ud800").encode())


NUL_FINDING = "holds a NUL character (U+0000), which the store cannot keep"
SURROGATE_FINDING = "holds a lone surrogate (U+D800), which is not text the store can keep"
CASES += [
    Case("sf-account-name-nul", "salesforce", "customer", "Account", account_id(40),
         sf_account(40, Name="Acme\u0000 Corp"), (f"column(name): {NUL_FINDING}",)),
    Case("sf-opportunity-name-nul", "salesforce", "deal", "Opportunity", opp_id(41),
         sf_opp(41, Name="Big\u0000deal"), (f"column(name): {NUL_FINDING}",)),
    Case("hs-dealname-nul", "hubspot", "deal", "deals", "9000042",
         hs_deal(42, dealname="Renewal\u0000"), (f"column(name): {NUL_FINDING}",)),
    Case("zd-organization-name-nul", "zendesk", "customer", "organizations", "9000043",
         zd_org(43, name="\u0000Initech"), (f"column(name): {NUL_FINDING}",)),
    Case("sf-account-name-lone-surrogate", "salesforce", "customer", "Account", account_id(44),
         sf_account(44, Name=lone_surrogate("Umbrella ? Ltd")),
         (f"column(name): {SURROGATE_FINDING}",)),
    Case("sf-account-id-nul", "salesforce", "customer", "Account",
         storable(account_id(46) + "\u0000"), sf_account(46, Id=account_id(46) + "\u0000"),
         (f"column(source_id): {NUL_FINDING}",)),
    Case("zd-organization-name-lone-surrogate", "zendesk", "customer", "organizations",
         "9000045", zd_org(45, name=lone_surrogate("Globex ?")),
         (f"column(name): {SURROGATE_FINDING}",)),
    Case("hs-dealname-lone-surrogate", "hubspot", "deal", "deals", "9000047",
         hs_deal(47, dealname=lone_surrogate("Renewal ?")),
         (f"column(name): {SURROGATE_FINDING}",)),
]  # fmt: skip


def build_world(bad: bool) -> World:
    world = World()
    for case in CASES:
        case.put(world, bad)
    return world


# --- syncing and reading the store -----------------------------------------------------------


def run_sync(okr_file: Path, store_url: str) -> dict[str, Any]:
    """The real flow; returns the run report (a failed run's comes from the store)."""
    state = sync_okrs(okr_file=str(okr_file), store_url=store_url, return_state=True)
    if state.is_completed():
        report = state.result()
        assert isinstance(report, RunReport)
        return report.to_dict()
    store = Store.open(store_url)
    try:
        with store.session() as session:
            run = session.scalars(select(SyncRun).order_by(SyncRun.started_at.desc())).first()
            assert run is not None, state.message
            return {
                "run_id": run.id,
                "status": run.status,
                "reason": run.reason,
                "streams": run.stream_counts,
            }
    finally:
        store.dispose()


Mirror = dict[str, dict[tuple[str, str], dict[str, Any]]]


def mirror(store_url: str) -> Mirror:
    """Every mirror row by entity and (source, id), without the run that wrote it."""
    store = Store.open(store_url)
    try:
        out: Mirror = {}
        with store.session() as session:
            for entity, model in MIRROR.items():
                rows = {}
                for record in session.scalars(select(model)):
                    row = {c.name: getattr(record, c.name) for c in model.__table__.columns}
                    row.pop("run_id")
                    if row["source"] == "config":  # the OKR file's rates, stamped when saved
                        row.pop("source_modified_at")
                    rows[(row["source"], row["source_id"])] = row
                out[entity] = rows
        return out
    finally:
        store.dispose()


def measurements(store_url: str) -> dict[str, tuple[Any, ...]]:
    store = Store.open(store_url)
    try:
        with store.session() as session:
            return {
                m.key_result_id: (m.value, m.unit, m.status, m.record_count)
                for m in session.scalars(select(Measurement))
            }
    finally:
        store.dispose()


def quarantined(store_url: str) -> list[QuarantinedRow]:
    store = Store.open(store_url)
    try:
        with store.session() as session:
            rows = list(session.scalars(select(QuarantinedRow)))
            session.expunge_all()
            return rows
    finally:
        store.dispose()


@dataclass
class Synced:
    """The good and bad stores after one sync of each world, and their run reports."""

    good_url: str
    bad_url: str
    good: dict[str, dict[str, Any]]  # report by OKR file kind ("crm", "hubspot")
    bad: dict[str, dict[str, Any]]


@contextmanager
def served(
    world: World, wrap: Mapping[str, Callable[[Any], Any]] | None = None
) -> Iterator[dict[str, str]]:
    """Serve the world's three emulators (each maybe wrapped); yields the settings for them.

    Salesforce pages by 200 and Zendesk's export by 50, so every stream has several pages.
    """
    wrap = wrap or {}
    apps = {
        "salesforce": create_org_app(world.org, page_size=200),
        "zendesk": create_helpdesk_app(world.helpdesk, export_page_size=50, export_rate_limit=LAX),
        "hubspot": create_portal_app(world.portal, search_requests_per_second=LAX),
    }
    apps = {name: wrap.get(name, lambda app: app)(app) for name, app in apps.items()}
    with (
        serve_tls(apps["salesforce"]) as salesforce,
        serve_tls(apps["zendesk"]) as zendesk,
        serve_tls(apps["hubspot"]) as hubspot,
    ):
        yield (
            salesforce_env_vars(salesforce)
            | zendesk_env_vars(zendesk)
            | hubspot_env_vars(hubspot)
            | {
                "OKR_SYNC_HUBSPOT_SEARCH_REQUESTS_PER_SECOND": str(LAX),
                "OKR_SYNC_ZENDESK_REQUESTS_PER_MINUTE": str(LAX),
                "OKR_SYNC_ZENDESK_EXPORT_REQUESTS_PER_MINUTE": str(LAX),
                "OKR_SYNC_RETRY_INITIAL_SECONDS": "0.05",
            }
        )
    for name, app in apps.items():  # a bad page that was never served proves nothing
        if isinstance(app, Rewrite):
            assert app.hits > app.skip, f"the {name} rewrite never matched a request"


ZENDESK_OKRS = """\
company: Bad Inputs Co
sources:
  zendesk: [customer, ticket, rating]
objectives:
  - id: support
    title: Support
    owner: ceo@acme-demo.example
    period: 2026-Q4
    key_results:
      - {id: tickets, title: Ticket volume, metric: ticket_volume, params: {}, target: 100}
"""

OKR_FILES = {"crm": CRM_OKRS, "hubspot": HUBSPOT_OKRS, "zendesk": ZENDESK_OKRS}


def _sync_world(
    world: World,
    store_url: str,
    okr_dir: Path,
    kinds: tuple[str, ...] = ("crm", "hubspot"),
    wrap: Mapping[str, Callable[[Any], Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    reports = {}
    with pytest.MonkeyPatch.context() as patch, served(world, wrap) as settings:
        for name, value in {**settings, **(env or {})}.items():
            patch.setenv(name, value)
        for kind in kinds:
            text = OKR_FILES[kind]
            okr_file = okr_dir / f"{kind}.yaml"
            okr_file.write_text(text)
            reports[kind] = run_sync(okr_file, store_url)
    return reports


def _postgres_database(name: str) -> str:
    try:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {PG_ADMIN_DSN} is not reachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (required when CI=true)")
        pytest.skip(message)
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def synced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synced:
    tmp = tmp_path_factory.mktemp(f"bad-inputs-{request.param}")
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp / 'good.db'}", f"sqlite:///{tmp / 'bad.db'}"]
    else:
        urls = [_postgres_database(f"okr_bad_inputs_{side}") for side in ("good", "bad")]
    good = _sync_world(build_world(bad=False), urls[0], tmp)
    bad = _sync_world(build_world(bad=True), urls[1], tmp)
    return Synced(urls[0], urls[1], good, bad)


# --- the record cases ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_record_gives_its_finding_and_changes_nothing_else(synced: Synced, case: Case) -> None:
    key = (case.source, case.source_id)
    mine = [q for q in quarantined(synced.bad_url) if (q.source, q.source_id) == key]
    good_row = mirror(synced.good_url)[case.entity].get(key)
    bad_row = mirror(synced.bad_url)[case.entity].get(key)
    if case.benign:
        assert mine == [], f"a valid record was quarantined: {mine[0].expectations}"
        assert good_row is not None, "the well-formed twin was not loaded"
        assert bad_row == good_row
        return
    assert len(mine) == 1, f"expected one quarantined row for {key}, got {len(mine)}"
    (row,) = mine
    assert row.entity == case.entity
    reasons = " | ".join(row.expectations)
    for reason in case.reasons:
        assert reason in reasons
    assert bad_row is None  # kept out of the mirror
    assert good_row is None


@pytest.mark.parametrize("kind", ["crm", "hubspot"])
def test_bad_world_store_equals_good_world_store(synced: Synced, kind: str) -> None:
    """Every run succeeded; the mirror and the measurements are the good world's exactly."""
    good, bad = synced.good[kind], synced.bad[kind]
    assert good["status"] not in ("partial", "failed"), good["reason"]
    assert (bad["status"], bad["reason"]) == (good["status"], good["reason"])
    assert {kr["key_result_id"]: kr["value"] for kr in bad["key_results"]} == {
        kr["key_result_id"]: kr["value"] for kr in good["key_results"]
    }
    assert bad["findings"] == good["findings"]


def test_mirror_and_measurements_are_the_good_worlds(synced: Synced) -> None:
    assert mirror(synced.bad_url) == mirror(synced.good_url)
    assert measurements(synced.bad_url) == measurements(synced.good_url)


def test_every_record_read_is_accounted_for(synced: Synced) -> None:
    """Each stream read exactly its catalogue's extra records and quarantined exactly the bad
    ones; nothing was quarantined that the catalogue does not name."""
    expected = {(c.source, c.source_id) for c in CASES if not c.benign}
    assert {(q.source, q.source_id) for q in quarantined(synced.bad_url)} == expected
    assert quarantined(synced.good_url) == []
    for kind in ("crm", "hubspot"):
        for name, bad in synced.bad[kind]["streams"].items():
            good = synced.good[kind]["streams"][name]
            source, stream = name.split(".", 1)
            added = [c for c in CASES if (c.source, c.stream) == (source, stream) and not c.benign]
            assert bad["read"] - good["read"] == len(added), name
            assert bad["quarantined"] == len(added), name
            assert bad["loaded"] + bad["quarantined"] == bad["read"], name
            assert bad["loaded"] == good["loaded"], name


def test_catalogue_covers_the_issue() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.source for c in CASES} == {"salesforce", "hubspot", "zendesk"}


def test_every_required_mirror_column_has_a_not_null_expectation() -> None:
    """A null the store refuses would fail a whole batch; the suites must catch it first."""
    for entity in suite_names():
        suite = json.loads((SUITES / f"{entity}.json").read_text())
        guarded = {
            e["kwargs"]["column"]
            for e in suite["expectations"]
            if e["type"] == "expect_column_values_to_not_be_null"
        }
        model = MIRROR[entity]
        required = {
            c.name
            for c in model.__table__.columns
            if not c.nullable and c.name in column_checks(entity) and c.type.python_type is not bool
        } - {"source"}
        assert required <= guarded, f"{entity}: {sorted(required - guarded)}"


# --- page cases --------------------------------------------------------------------------------


class Rewrite:
    """ASGI middleware in front of an emulator: for the first ``times`` requests that
    ``match`` (path, decoded query), run ``before`` and/or replace the JSON body the emulator
    answers with ``rewrite(body, query)``: a bad page in the API's own shape."""

    def __init__(
        self,
        app: Any,
        match: Callable[[str, str], bool],
        rewrite: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
        before: Callable[[], None] | None = None,
        times: int = 1,
        skip: int = 0,
    ) -> None:
        self.app, self.match, self.rewrite, self.before = app, match, rewrite, before
        self.times, self.skip, self.hits = times, skip, 0
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = unquote_plus(scope.get("query_string", b"").decode())
        if not self.match(scope["path"], query):
            await self.app(scope, receive, send)
            return
        self.hits += 1
        if self.hits <= self.skip or self.hits > self.skip + self.times:
            await self.app(scope, receive, send)
            return
        if self.before is not None:
            self.before()
        if self.rewrite is None:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = orjson.dumps(self.rewrite(orjson.loads(b"".join(chunks)), query))
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store synced from the good world, for the page cases to compare with."""
    tmp = tmp_path_factory.mktemp("bad-pages-baseline")
    url = f"sqlite:///{tmp / 'good.db'}"
    reports = _sync_world(World(), url, tmp)
    assert all(r["status"] not in ("partial", "failed") for r in reports.values()), reports
    return url


def _fresh(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'okr.db'}"


def _opportunity_query(path: str, query: str) -> bool:
    return path.rstrip("/").endswith(("/query", "/queryAll")) and "FROM Opportunity" in query


def _first_page_empty(body: dict[str, Any], query: str) -> dict[str, Any]:
    """The first page with no records, linking to the real first page (offset 0)."""
    first = body["nextRecordsUrl"].rsplit("-", 1)[0] + "-0"
    return {"totalSize": body["totalSize"], "done": False, "records": [], "nextRecordsUrl": first}


def test_sf_empty_page_with_next_link_is_followed(baseline: str, tmp_path: Path) -> None:
    """Salesforce: an empty page that is not done links on; the reader follows it."""
    reports = _sync_world(
        World(),
        _fresh(tmp_path),
        tmp_path,
        kinds=("crm",),
        wrap={"salesforce": lambda app: Rewrite(app, _opportunity_query, _first_page_empty)},
    )
    assert reports["crm"]["status"] not in ("partial", "failed"), reports["crm"]["reason"]
    good = {k: v for k, v in mirror(baseline)["deal"].items() if k[0] == "salesforce"}
    assert mirror(_fresh(tmp_path))["deal"] == good


def test_sf_empty_page_linking_to_itself_is_a_clear_error(tmp_path: Path) -> None:
    state: dict[str, str] = {}

    def empty_self_link(body: dict[str, Any], query: str) -> dict[str, Any]:
        link = state.setdefault("link", body["nextRecordsUrl"].rsplit("-", 1)[0] + "-0")
        return {
            "totalSize": body["totalSize"],
            "done": False,
            "records": [],
            "nextRecordsUrl": link,
        }

    def opportunity_pages(path: str, query: str) -> bool:
        return _opportunity_query(path, query) or path.endswith(state.get("link", "\0"))

    reports = _sync_world(
        World(),
        _fresh(tmp_path),
        tmp_path,
        kinds=("crm",),
        wrap={"salesforce": lambda app: Rewrite(app, opportunity_pages, empty_self_link, times=25)},
    )
    assert reports["crm"]["status"] == "failed"
    assert "paging went nowhere" in str(reports["crm"]["reason"])


def test_hs_empty_page_whose_next_link_does_not_move_is_a_clear_error(
    baseline: str, tmp_path: Path
) -> None:
    """HubSpot: an empty search page whose ``after`` does not advance fails the run with a
    reason naming it; the streams before it are kept, the deals are left untouched."""

    def deal_search(path: str, query: str) -> bool:
        return path.endswith("/objects/deals/search")

    def empty(body: dict[str, Any], query: str) -> dict[str, Any]:
        return {"total": body["total"], "results": [], "paging": {"next": {"after": "0"}}}

    url = _fresh(tmp_path)
    reports = _sync_world(
        World(),
        url,
        tmp_path,
        kinds=("hubspot",),
        wrap={"hubspot": lambda app: Rewrite(app, deal_search, empty)},
    )
    report = reports["hubspot"]
    assert report["status"] == "failed"
    assert str(report["reason"]).startswith("hubspot: search deals: paging went nowhere")
    got, good = mirror(url), mirror(baseline)
    assert got["deal"] == {}
    hubspot = {
        entity: {k: v for k, v in rows.items() if k[0] == "hubspot"}
        for entity, rows in good.items()
    }
    assert got["customer"] == hubspot["customer"]
    assert got["rep"] == hubspot["rep"]
    assert quarantined(url) == []


def test_zd_empty_export_page_repeating_its_cursor_is_a_clear_error(tmp_path: Path) -> None:
    def export_by_cursor(path: str, query: str) -> bool:
        return "/incremental/tickets/cursor" in path and "cursor=" in query

    def same_cursor(body: dict[str, Any], query: str) -> dict[str, Any]:
        cursor = parse_qs(query)["cursor"][0]
        return body | {
            "tickets": [],
            "metric_sets": [],
            "after_cursor": cursor,
            "end_of_stream": False,
        }

    reports = _sync_world(
        World(),
        _fresh(tmp_path),
        tmp_path,
        kinds=("crm",),
        wrap={"zendesk": lambda app: Rewrite(app, export_by_cursor, same_cursor, times=25)},
    )
    assert reports["crm"]["status"] == "failed"
    assert "paging went nowhere" in str(reports["crm"]["reason"])


@pytest.fixture(scope="module")
def read_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, int, dict[str, Any], str]:
    """A ticket edited while the export pages: it is read on page 1 and again at the end."""
    tmp = tmp_path_factory.mktemp("read-twice")
    world = World()
    first = min(
        world.helpdesk.tickets, key=lambda i: (world.helpdesk.tickets[i]["generated_timestamp"], i)
    )

    def edit() -> None:
        world.helpdesk.upsert_ticket({"id": first, "priority": "urgent"})

    def export(path: str, query: str) -> bool:
        return "/incremental/tickets/cursor" in path

    url = f"sqlite:///{tmp / 'okr.db'}"
    reports = _sync_world(
        world,
        url,
        tmp,
        kinds=("crm",),
        wrap={"zendesk": lambda app: Rewrite(app, export, before=edit, skip=1)},
    )
    return world, first, reports["crm"], url


def test_record_read_twice_across_pages_is_stored_once_newest_copy(
    read_twice: tuple[World, int, dict[str, Any], str], baseline: str
) -> None:
    world, ticket_id, report, url = read_twice
    counts = report["streams"]["zendesk.tickets"]
    tickets = {k: v for k, v in mirror(url)["ticket"].items() if k[0] == "zendesk"}
    assert len(tickets) == len(world.helpdesk.tickets)  # stored once
    assert counts["read"] == len(world.helpdesk.tickets) + 1  # read twice
    assert counts["loaded"] + counts["quarantined"] == counts["read"]
    assert tickets[("zendesk", str(ticket_id))]["priority"] == "urgent"  # the newest copy
    good = mirror(baseline)["ticket"]
    assert {k: v for k, v in tickets.items() if k[1] != str(ticket_id)} == {
        k: v for k, v in good.items() if k[0] == "zendesk" and k[1] != str(ticket_id)
    }


def test_record_read_twice_is_reported_as_a_duplicate(
    read_twice: tuple[World, int, dict[str, Any], str],
) -> None:
    _, _, report, _ = read_twice
    assert report["streams"]["zendesk.tickets"]["duplicates"] == 1


def test_hs_body_not_utf8_quarantines_the_record(tmp_path: Path) -> None:
    world = World()
    company = world.portal.records("companies")[0]
    name = not_utf8("Müller Café GmbH")
    world.portal.add(
        "companies", {**company, "properties": {**company["properties"], "name": name}}
    )
    url = _fresh(tmp_path)
    reports = _sync_world(
        world, url, tmp_path, kinds=("hubspot",), env={"OKR_SYNC_RETRY_BUDGET_SECONDS": "1"}
    )
    assert reports["hubspot"]["status"] not in ("partial", "failed"), reports["hubspot"]["reason"]
    (row,) = quarantined(url)
    assert row.source_id == company["id"]
    assert row.expectations == [
        "column(name): holds U+FFFD: the source sent bytes that are not UTF-8"
    ]


# --- issue 20: findings instead of silent numbers ------------------------------------------------
#
# A small company exported as files (the files source, read by the real flow), built by hand
# so every expected value is counted here from the rows: two reps in two teams, three won
# deals in November, September's two tickets, October's three tickets and two ratings all
# failing validation, November's two tickets and three good/bad ratings. The clock is pinned
# (``clock``: 2026-11-27 13:00 UTC).

FINDINGS_OKRS = """\
company: Findings Co
sources:
  files: [customer, deal, rep, fx_rate, ticket, rating]
money: {currency: USD}
objectives:
  - id: sell
    title: Sell and support
    owner: ceo@findings.example
    period: 2026-Q4
    key_results:
      - id: team-revenue
        title: Enterprise won revenue
        metric: won_revenue
        params: {team: Enterpise Sales}
        target: 100000
      - id: rep-customers
        title: New customers of one rep
        metric: new_customers_won
        params: {owner: rep3@findings.example}
        target: 5
      - id: good-team-revenue
        title: Mid-market won revenue
        metric: won_revenue
        params: {team: Mid-Market Sales}
        target: 100000
      - {id: october-tickets, title: Tickets in October, period: 2026-10,
         metric: ticket_volume, target: 1, baseline: 10}
      - {id: october-change, title: Fewer tickets in October, period: 2026-10,
         metric: pct_change, params: {metric: ticket_volume}, target: -50, baseline: 0}
      - {id: november-tickets, title: Tickets in November, period: 2026-11,
         metric: ticket_volume, target: 1, baseline: 10}
      - {id: october-csat, title: CSAT in October, period: 2026-10, metric: csat, target: 90}
      - {id: november-mean, title: Mean score in November, period: 2026-11,
         metric: csat_mean_score, target: 4.5}
"""  # fmt: skip

FIX_AT = datetime(2026, 11, 27, 10, 0)  # noqa: DTZ001 - the export's naive UTC wall time


def _findings_tables(fixed: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The company's exports; ``fixed``: October's bad tickets corrected at the source."""
    stamp = datetime(2026, 11, 20, 9, 0)  # noqa: DTZ001

    def when(month: int, day: int) -> datetime:
        return datetime(2026, month, day, 10, 0)  # noqa: DTZ001

    reps = [
        {
            "id": n,
            "name": f"Rep {n}",
            "email": f"rep{n}@findings.example",
            "team": team,
            "started_on": date(2025, 1, 1),
            "monthly_quota": Decimal(10000),
            "quota_currency": "USD",
            "active": True,
            "updated_at": stamp,
            "deleted_at": None,
        }
        for n, team in ((1, "Enterprise Sales"), (2, "Mid-Market Sales"))
    ]
    customers = [
        {
            "id": n,
            "name": f"Customer {n}",
            "owner_id": "1",
            "segment": "smb",
            "created_at": when(1, 5),
            "became_customer_on": None,
            "churned_on": None,
            "domain": f"c{n}.example",
            "external_id": f"C-{n}",
            "updated_at": stamp,
            "deleted_at": None,
        }
        for n in (1, 2, 3)
    ]
    deals = [
        {
            "id": n,
            "name": f"Deal {n}",
            "customer_id": str(n),
            "owner_id": owner,
            "amount": Decimal(amount),
            "currency": "USD",
            "amount_home": None,
            "home_currency": None,
            "stage": "Closed Won",
            "outcome": "won",
            "pipeline": "new",
            "deal_type": "new",
            "created_at": when(9, 1),
            "close_on": date(2026, 11, 3 + n),
            "updated_at": stamp,
            "deleted_at": None,
        }
        for n, owner, amount in ((1, "1", 1000), (2, "2", 2500), (3, "2", 4000))
    ]
    fx_rates = [
        {
            "id": 1,
            "currency": "USD",
            "rate": Decimal(1),
            "is_corporate": True,
            "valid_from": None,
            "valid_to": None,
            "updated_at": stamp,
            "deleted_at": None,
        }
    ]

    def ticket(n: int, created: datetime, status: str, updated: datetime) -> dict[str, Any]:
        return {
            "id": n,
            "customer_id": "1",
            "status": status,
            "priority": "normal",
            "channel": "email",
            "created_at": created,
            "first_response_at": None,
            "solved_at": None,
            "updated_at": updated,
            "deleted_at": None,
        }

    october = "open" if fixed else "reopened"  # not a ticket status: quarantined
    tickets = [
        ticket(1, when(9, 10), "open", stamp),
        ticket(2, when(9, 20), "open", stamp),
        *(ticket(n, when(10, n), october, FIX_AT if fixed else stamp) for n in (3, 4, 5)),
        ticket(6, when(11, 2), "open", stamp),
        ticket(7, when(11, 9), "open", stamp),
    ]

    def rating(n: int, rated: datetime, scale: int, score: int) -> dict[str, Any]:
        return {
            "id": n,
            "ticket_id": str(n),
            "customer_id": "1",
            "score": Decimal(score),
            "scale_max": scale,
            "good": score >= 1,
            "rated_at": rated,
            "updated_at": stamp,
            "deleted_at": None,
        }

    ratings = [
        rating(1, when(10, 4), 7, 3),  # scale_max 7: quarantined
        rating(2, when(10, 5), 7, 2),
        rating(3, when(11, 3), 1, 1),  # good/bad
        rating(4, when(11, 4), 1, 0),
        rating(5, when(11, 5), 1, 1),
    ]
    return {"customers": customers, "deals": deals, "reps": reps, "fx_rates": fx_rates,
            "tickets": tickets, "ratings": ratings}  # fmt: skip


@dataclass
class FindingsStore:
    url: str
    okr_file: Path
    exports: Path
    runs: list[RunReport]


def _sync_files(found: FindingsStore) -> RunReport:
    """One sync of the exports, as the scheduled deployment runs it (incremental)."""
    store = Store.open(found.url)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OKR_SYNC_FILES_DIRECTORY", str(found.exports))
            report = sync_store(store, SyncRequest(str(found.okr_file)), Settings())
    finally:
        store.dispose()
    found.runs.append(report)
    return report


def _findings_synced(url: str, directory: Path) -> FindingsStore:
    exports = directory / "exports"
    exports.mkdir()
    for name, rows in _findings_tables().items():
        write_csv(exports / f"{name}.csv", rows)
    okr_file = directory / "okrs.yaml"
    okr_file.write_text(FINDINGS_OKRS)
    found = FindingsStore(url, okr_file, exports, [])
    _sync_files(found)
    return found


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def findings_synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> FindingsStore:
    """The company synced once at the pinned time, for the tests that only read it."""
    tmp = tmp_path_factory.mktemp(f"findings-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'okr.db'}"
    else:
        url = _postgres_database("okr_bad_inputs_findings")
    with time_machine.travel(NOW, tick=True):
        return _findings_synced(url, tmp)


@pytest.fixture
def findings_store(clock: Any, store_url: str, tmp_path: Path) -> FindingsStore:
    """The company synced once, in a store of the test's own (which it may change)."""
    return _findings_synced(store_url, tmp_path)


def _lines(url: str) -> dict[str, KeyResultLine]:
    store = Store.open(url)
    try:
        with store.session() as session:
            roots = build_report(session, datetime.now(UTC))
    finally:
        store.dispose()
    return {kr.id: kr for _depth, line in walk(roots) for kr in line.key_results}


TEAM_FINDING = "team 'Enterpise Sales' matches no team; known: Enterprise Sales, Mid-Market Sales"
OWNER_FINDING = (
    "owner 'rep3@findings.example' matches no rep's e-mail; "
    "known: rep1@findings.example, rep2@findings.example"
)
MEAN_FINDING = (
    "csat_mean_score needs 1-5 scores (scale_max 5); the period has none, but has ratings "
    "on another scale: 3 on scale_max 1 (good/bad) (csat measures good/bad ratings)"
)


def test_misspelt_team_and_owner_are_errors_never_zero(
    findings_synced: FindingsStore, clock: Any
) -> None:
    (run,) = findings_synced.runs
    outcomes = {kr.key_result_id: kr for kr in run.key_results}
    assert (outcomes["team-revenue"].status, outcomes["team-revenue"].error) == (
        "error",
        TEAM_FINDING,
    )
    assert outcomes["rep-customers"].error == OWNER_FINDING
    # the well-spelt team: deals 2 and 3 (2,500 + 4,000 USD)
    assert (outcomes["good-team-revenue"].value, outcomes["good-team-revenue"].error) == (
        6500.0,
        None,
    )
    lines = _lines(findings_synced.url)
    assert (lines["team-revenue"].value, lines["team-revenue"].error) == (None, TEAM_FINDING)
    assert (lines["rep-customers"].value, lines["rep-customers"].error) == (None, OWNER_FINDING)


def test_lint_with_a_store_names_the_unmatched_filters(
    findings_synced: FindingsStore, clock: Any
) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["lint", "--okr-file", str(findings_synced.okr_file), "--store", findings_synced.url],
    )
    assert result.exit_code == 1
    findings = [line for line in result.stderr.splitlines() if "key result" in line]
    assert [line.split(": ", 1)[1] for line in findings] == [
        f"key result 'team-revenue': {TEAM_FINDING}",
        f"key result 'rep-customers': {OWNER_FINDING}",
        f"key result 'november-mean': {MEAN_FINDING}",
    ]


def test_csat_mean_score_on_good_bad_ratings_says_what_it_needs(
    findings_synced: FindingsStore,
    clock: Any,
) -> None:
    line = _lines(findings_synced.url)["november-mean"]
    assert (line.value, line.error) == (None, MEAN_FINDING)


def test_a_fully_held_back_month_is_stale_with_its_count_and_the_next_is_not(
    findings_synced: FindingsStore,
    clock: Any,
) -> None:
    lines = _lines(findings_synced.url)
    october = lines["october-tickets"]
    held = "3 files ticket record(s) held back by validation in 2026-10 (see okr-sync quarantine)"
    assert (october.value, october.records, october.status) == (0.0, 0, "stale")
    assert october.stale_reason == f"the number rests on 0 records; {held}"
    change = lines["october-change"]  # 0 against September's 2: -100 %, but stale
    assert (change.value, change.status) == (-100.0, "stale")
    assert change.stale_reason == f"the number rests on 0 records; {held}"
    november = lines["november-tickets"]  # tickets 6 and 7; none of November's held back
    assert (november.value, november.stale_reason) == (2.0, None)
    assert november.status != "stale"
    csat = lines["october-csat"]
    assert (csat.value, csat.status) == (None, "stale")
    assert csat.stale_reason == (
        "the number rests on 0 records; 2 files rating record(s) held back by validation "
        "in 2026-10 (see okr-sync quarantine)"
    )


def test_runs_show_by_prefix_lists_the_quarantined_records(
    findings_synced: FindingsStore, clock: Any
) -> None:
    run_id = findings_synced.runs[0].run_id
    result = CliRunner().invoke(
        cli_app,
        ["runs", "show", run_id[:8], "--quarantined", "--format", "json",
         "--store", findings_synced.url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["id"] == run_id
    listed = {(q["entity"], q["source"], q["source_id"], q["field"], q["reason"])
              for q in shown["quarantined"]}  # fmt: skip
    tickets = {("ticket", "files", str(n), "status",
                "expect_column_values_to_be_in_set(status)") for n in (3, 4, 5)}  # fmt: skip
    ratings = {("rating", "files", str(n), "scale_max",
                "expect_column_values_to_be_in_set(scale_max)") for n in (1, 2)}  # fmt: skip
    assert listed == tickets | ratings


def test_an_ambiguous_run_prefix_lists_the_candidates(
    findings_synced: FindingsStore, clock: Any
) -> None:
    store = Store.open(findings_synced.url)
    try:
        with store.session() as session, session.begin():
            for suffix in ("1", "2"):
                session.add(
                    SyncRun(id=f"feedface-{suffix}", started_at=datetime(2026, 11, 2, tzinfo=UTC),
                            status="complete", code_version="test")
                )  # fmt: skip
    finally:
        store.dispose()
    result = CliRunner().invoke(
        cli_app, ["runs", "show", "feedface", "--store", findings_synced.url]
    )
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: run id prefix 'feedface' is ambiguous: feedface-1 (2026-11-02 00:00), "
            "feedface-2 (2026-11-02 00:00); give more of the id"
        )
    )


def test_a_record_fixed_at_the_source_is_readmitted_by_the_next_incremental_sync(
    findings_store: FindingsStore,
) -> None:
    def held() -> set[tuple[str, str | None]]:
        result = CliRunner().invoke(
            cli_app, ["quarantine", "--format", "json", "--store", findings_store.url]
        )
        assert result.exit_code == 0, result.output
        return {(q["entity"], q["source_id"]) for q in json.loads(result.stdout)["held"]}

    assert held() == {("ticket", "3"), ("ticket", "4"), ("ticket", "5"),
                      ("rating", "1"), ("rating", "2")}  # fmt: skip
    write_csv(findings_store.exports / "tickets.csv", _findings_tables(fixed=True)["tickets"])
    _sync_files(findings_store)  # incremental: the three fixed tickets are the changes
    assert findings_store.runs[-1].stream_counts()["files.tickets"]["written"] == 3
    assert held() == {("rating", "1"), ("rating", "2")}
    october = _lines(findings_store.url)["october-tickets"]
    assert (october.value, october.stale_reason) == (3.0, None)


def test_a_timestamp_without_an_offset_is_named_for_what_it_lacks() -> None:
    ticket = {"id": 1, "status": "open", "created_at": "2026-10-05T10:00:00",
              "updated_at": "2026-10-05T10:00:00Z"}  # fmt: skip
    with pytest.raises(ZendeskMappingError) as raised:
        ticket_to_ticket(ticket, None)
    assert str(raised.value) == (
        "created_at '2026-10-05T10:00:00' lacks a time-zone offset (Z or ±HH:MM): "
        "its instant is unknown"
    )


def test_a_good_copy_equal_to_the_mirrors_readmits_the_record(
    clock: Any, sqlite_url: str, validator: Validator
) -> None:
    """A bad edit undone at the source: the good copy read again equals the mirror's, so
    loading writes nothing; the record still leaves the held list."""
    ticket = canonical.Ticket(
        source="files", source_id="9", source_modified_at=datetime(2026, 11, 2, tzinfo=UTC),
        deleted_at=None, customer_id=None, status="open", priority="normal", channel="email",
        created_at=datetime(2026, 11, 1, tzinfo=UTC), first_response_at=None, solved_at=None,
    )  # fmt: skip
    bad = canonical.Ticket(
        **{**ticket, "status": "reopened", "source_modified_at": datetime(2026, 11, 3, tzinfo=UTC)}
    )
    stream = StreamInfo("tickets", "ticket", "updated_at")
    store = Store.open(sqlite_url)
    try:
        held = []
        for row in (ticket, bad, ticket):
            destination = Destination(begin_run(store, "test"), "files", stream, validator)
            loaded = validate_and_load(store, destination, [row], [], None)
            with store.session() as session:
                held.append((loaded.written, held_back(session, "ticket", "files")))
    finally:
        store.dispose()
    assert held == [(1, 0), (0, 1), (0, 0)]


def test_a_reread_row_equal_to_the_mirrors_is_not_validated_again(
    clock: Any, store_url: str, validator: Validator
) -> None:
    """The lookback re-reads rows the mirror holds: equal ones load as good without going
    through the suites (their copy passed when written), changed ones are validated, and a
    full refresh validates every row. The mirror's copy here fails today's suite (as if
    the suite grew stricter since), so only a row that is validated is quarantined."""
    at = datetime(2026, 11, 2, tzinfo=UTC)
    reopened = canonical.Ticket(
        source="files", source_id="9", source_modified_at=at, deleted_at=None,
        customer_id=None, status="reopened", priority="normal", channel="email",
        created_at=datetime(2026, 11, 1, tzinfo=UTC), first_response_at=None, solved_at=None,
    )  # fmt: skip
    changed = canonical.Ticket(**{**reopened, "priority": "high"})
    stream = StreamInfo("tickets", "ticket", "updated_at")
    store = Store.open(store_url)
    try:
        with store.session() as session, session.begin():
            upsert_records(session, MIRROR["ticket"], [{**reopened, "run_id": "earlier"}])
        outcomes = []
        for row, cursor, full_refresh in [
            (reopened, at, False),  # re-read, equal: loads as good, nothing written
            (reopened, at - timedelta(seconds=1), False),  # past the cursor: a change
            (changed, at, False),  # within the lookback, but changed
            (reopened, None, True),  # a full refresh validates everything
        ]:
            run_id = begin_run(store, "test")
            to = Destination(
                run_id, "files", stream, validator, replace=full_refresh, rereads_until=cursor
            )
            loaded = validate_and_load(store, to, [row], [], None)
            outcomes.append((loaded.good, loaded.written, loaded.quarantined))
    finally:
        store.dispose()
    assert outcomes == [(1, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, 1)]


# --- numbers without a reason (issue 20): forecasts, freshness, closed periods, failed syncs ---
#
# Each case syncs the good world through the real flow with the clock pinned (``clock``) and
# reads the summary every view renders (``report --format json|csv|html``).

FOUR_KRS = """\
company: Bad Inputs Co
sources:
  salesforce: [customer, deal, rep, fx_rate]
  zendesk: [customer, ticket, rating]
customers: {primary: salesforce, match_by: external_id}
money: {currency: USD}
objectives:
  - id: grow
    title: Grow
    owner: ceo@acme-demo.example
    period: 2026-Q4
    key_results:
      - {id: won-revenue, title: Won revenue, metric: won_revenue, params: {currency: USD},
         target: 1000000, unit: USD}
      - {id: win-rate, title: Win rate, metric: win_rate, target: 50, unit: "%"}
      - {id: tickets, title: Ticket volume, metric: ticket_volume, target: 100, unit: tickets}
      - {id: launch, title: Launch, kind: milestone, done: false}
      - {id: q3-win-rate, title: Q3 win rate, period: 2026-Q3, metric: win_rate, target: 100,
         unit: "%"}
      - {id: q3-new-customers, title: Q3 new customers, period: 2026-Q3,
         metric: new_customers_won, target: 1, unit: customers}
"""


def _sync_okrs(
    world: World,
    store_url: str,
    okr_dir: Path,
    wrap: Mapping[str, Callable[[Any], Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    okr_file = okr_dir / "four.yaml"
    okr_file.write_text(FOUR_KRS)
    with pytest.MonkeyPatch.context() as patch, served(world, wrap) as settings:
        for name, value in {**settings, **(env or {})}.items():
            patch.setenv(name, value)
        return run_sync(okr_file, store_url)


def _summary(store_url: str) -> dict[str, Any]:
    store = Store.open(store_url)
    try:
        with store.session() as session:
            return build_summary(session, utcnow(), store.display_url)
    finally:
        store.dispose()


def _krs(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kr["id"]: kr for _objective, kr in summary_key_results(summary)}


def _minute(iso: str) -> str:
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M} UTC"


def test_values_minutes_apart_give_no_forecast_not_an_absurd_one(
    tmp_path: Path, clock: time_machine.Traveller
) -> None:
    """The issue's case: two syncs 20 minutes apart, the revenue changed in between, drew a
    line to "618.42M USD" and then "−227.47M USD". One day of values is no trend."""
    world, url = World(), _fresh(tmp_path)
    assert _sync_okrs(world, url, tmp_path)["status"] == "complete"
    won = next(o for o in world.org.records("Opportunity") if o["IsClosed"] and o["IsWon"])
    lost = [o for o in world.org.records("Opportunity") if o["IsClosed"] and not o["IsWon"]]
    world.org.upsert("Opportunity", {"Id": lost[0]["Id"], "StageName": "Closed Won", "IsWon": True})
    assert won["Id"] != lost[0]["Id"]
    clock.shift(timedelta(minutes=20))
    assert _sync_okrs(world, url, tmp_path)["status"] == "complete"
    krs = _krs(_summary(url))
    for kr_id in ("won-revenue", "win-rate", "tickets"):
        assert krs[kr_id]["forecast"] is None, kr_id
        assert (krs[kr_id]["forecast_low"], krs[kr_id]["forecast_high"]) == (None, None)
        assert krs[kr_id]["forecast_note"] == (
            "not enough history: 1 day of values; a forecast needs 5 days over at least 7"
        )
    assert krs["launch"]["forecast_note"] == "a milestone is done or not: there is no trend"


@pytest.mark.usefixtures("clock")
def test_an_absurd_extrapolation_is_impossible(tmp_path: Path) -> None:
    """A win rate that fell 6 points a day for eight days would end the quarter (34.5 days
    on) 207 points lower, below 0 %; revenue that fell 300k USD a day, 10.35M USD lower.
    Forecasts stay in the metric's range: both end at 0."""
    world, url = World(), _fresh(tmp_path)
    report = _sync_okrs(world, url, tmp_path)
    today = {kr["key_result_id"]: kr["value"] for kr in report["key_results"]}
    assert 6 * 34.5 > today["win-rate"] > 0
    assert 3e5 * 34.5 > today["won-revenue"] > 0
    store = Store.open(url)
    with store.session() as session, session.begin():  # the days before, as syncs kept them
        for back in range(1, 9):
            at = utcnow() - timedelta(days=back)
            for kr_id, fall in (("win-rate", 6.0), ("won-revenue", 3e5)):
                session.add(
                    DailyValue(
                        key_result_id=kr_id,
                        day=at.date(),
                        value=today[kr_id] + fall * back,
                        checked_at=at,
                        data_cutoff=at,
                        run_id=report["run_id"],
                    )
                )
    store.dispose()
    krs = _krs(_summary(url))
    assert (krs["win-rate"]["forecast"], krs["win-rate"]["forecast_low"]) == (0.0, 0.0)
    assert krs["win-rate"]["forecast_high"] <= 100
    assert (krs["won-revenue"]["forecast"], krs["won-revenue"]["forecast_low"]) == (0.0, 0.0)
    assert krs["won-revenue"]["forecast_progress"] == 0.0


def test_a_confirmed_unchanged_value_reads_checked_and_unchanged_since(
    tmp_path: Path, clock: time_machine.Traveller
) -> None:
    """Right after a complete sync that confirmed the value: "checked 13:26 · unchanged since
    13:00", and the data is as old as that sync, not 26 minutes."""
    world, url = World(), _fresh(tmp_path)
    first_start = utcnow()
    assert _sync_okrs(world, url, tmp_path)["status"] == "complete"
    first_end = utcnow()
    clock.shift(timedelta(minutes=26))
    second_start = utcnow()
    assert _sync_okrs(world, url, tmp_path)["status"] == "complete"
    second_end = utcnow()
    summary = _summary(url)
    revenue = _krs(summary)["won-revenue"]
    checked, changed = (datetime.fromisoformat(revenue[k]) for k in ("checked_at", "as_of"))
    assert second_start <= checked <= second_end
    assert first_start <= changed <= first_end
    assert revenue["data_age_seconds"] < (utcnow() - second_start).total_seconds() + 1
    text = f"checked {_minute(revenue['checked_at'])} · unchanged since {_minute(revenue['as_of'])}"
    assert text in render_html(summary)
    assert text in summary_markdown(summary)
    assert revenue["status"] != "stale"


@pytest.mark.usefixtures("clock")
def test_a_closed_period_shows_met_or_missed_with_its_final_score(tmp_path: Path) -> None:
    """2026-Q3 has closed at NOW: its key results are met or missed, never "at risk"."""
    world, url = World(), _fresh(tmp_path)
    assert _sync_okrs(world, url, tmp_path)["status"] == "complete"
    oracle = Oracle(world.org)
    win_rate = oracle.win_rate("2026-Q3", {}).value
    customers = oracle.new_customers("2026-Q3", {}).value
    assert win_rate is not None
    assert 0 < win_rate < 100
    assert customers is not None
    assert customers >= 1
    krs = _krs(_summary(url))
    assert (krs["q3-win-rate"]["status"], krs["q3-win-rate"]["final_score"]) == (
        "missed",
        pytest.approx(win_rate / 100),
    )
    assert (krs["q3-new-customers"]["status"], krs["q3-new-customers"]["final_score"]) == (
        "met",
        1.0,
    )
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(summary_csv(_summary(url))))}
    assert (rows["q3-win-rate"]["status"], rows["q3-new-customers"]["status"]) == (
        "missed",
        "met",
    )


def _unavailable(app: Any) -> Any:
    """Every request answered 503: the source is down for the whole sync."""

    async def down(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        body = b'{"message": "service unavailable"}'
        length = str(len(body)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return down


@pytest.mark.usefixtures("clock")
def test_a_failed_sync_shows_on_every_key_result_with_its_reason(tmp_path: Path) -> None:
    """Every stream failed: no key result is a plain ``no_data``; each says the last sync
    failed and why, in JSON and CSV (the table and page read the same summary)."""
    world, url = World(), _fresh(tmp_path)
    report = _sync_okrs(
        world,
        url,
        tmp_path,
        wrap={"salesforce": _unavailable, "zendesk": _unavailable},
        env={"OKR_SYNC_RETRY_BUDGET_SECONDS": "0.3", "OKR_SYNC_RETRY_MAX_SECONDS": "0.1"},
    )
    assert report["status"] == "failed"
    assert re.fullmatch(
        r"salesforce: login at https://127\.0\.0\.1:\d+ failed \(503 service unavailable\) "
        r"\(gave up after \d+ attempts\)",
        report["reason"],
    )
    summary = _summary(url)
    krs = _krs(summary)
    assert set(krs) == {"won-revenue", "win-rate", "tickets", "launch", "q3-win-rate",
                        "q3-new-customers"}  # fmt: skip
    for kr_id, kr in krs.items():
        assert (kr["status"], kr["underlying_status"]) == ("stale", "no_data"), kr_id
        assert (kr["sync_status"], kr["sync_reason"]) == ("failed", report["reason"]), kr_id
        assert kr["stale_reason"] == f"last sync failed: {report['reason']}", kr_id
    rows = list(csv.DictReader(io.StringIO(summary_csv(summary))))
    assert {(row["sync_status"], row["sync_reason"]) for row in rows} == {
        ("failed", report["reason"])
    }


# --- permanent errors fail at once, transient ones are retried (issue 22 #13) ----------------
#
# A configuration no retry can mend (an address that is no URL, refused credentials, a
# database, schema or file that does not exist) is synced through the real flow with a retry
# budget that would allow dozens of quick retries: the source fails in one line naming the
# problem, and the run report counts no retry (nor does the log hold a "retry N in" line).
# A server that refuses connections may be restarting: that one is retried.

RETRYING = {"OKR_SYNC_RETRY_BUDGET_SECONDS": "5", "OKR_SYNC_RETRY_MAX_SECONDS": "0.1"}

TABLE_OKRS = """\
company: Bad Inputs Co
sources:
  {source}: [customer, deal, rep, fx_rate]
money: {{currency: USD}}
objectives:
  - id: grow
    title: Grow revenue
    owner: ceo@acme-demo.example
    period: 2026-Q4
    key_results:
      - {{id: won-revenue, title: Won revenue, metric: won_revenue, params: {{}}, target: 1000}}
"""


@dataclass(frozen=True)
class Permanent:
    """A setting no retry mends: ``source`` synced with it fails with ``reason`` (a regular
    expression over its streams' one-line failure)."""

    id: str
    source: str
    env: Callable[[Path], dict[str, str]]
    reason: str

    @property
    def kind(self) -> str:
        """The OKR file that reads the source."""
        return "crm" if self.source == "salesforce" else self.source


def _env(**values: str) -> Callable[[Path], dict[str, str]]:
    return lambda _tmp: values


def _billing_sqlite(tmp: Path, **values: str) -> dict[str, str]:
    """The sample billing database as a SQLite file, and the settings read with it."""
    url = f"sqlite:///{tmp / 'billing.db'}"
    create_fixture_database(url)
    return {"OKR_SYNC_SQL_URL": url, **values}


def _missing_pg_database(_tmp: Path) -> dict[str, str]:
    name = f"okr_permerr_nosuch_{uuid.uuid4().hex[:8]}"
    return {"OKR_SYNC_SQL_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"}


PG_SOURCE = re.sub(r"^postgresql(\+\w+)?://", "postgresql+psycopg://", PG_ADMIN_DSN)

PERMANENT = [
    Permanent("sf-login-url-without-scheme", "salesforce",
              _env(OKR_SYNC_SALESFORCE_LOGIN_URL="acme.my.salesforce.com"),
              r"^salesforce: OKR_SYNC_SALESFORCE_LOGIN_URL: .*'acme\.my\.salesforce\.com' is not "
              r"an http\(s\) URL"),
    Permanent("sf-login-url-misspelt-scheme", "salesforce",
              _env(OKR_SYNC_SALESFORCE_LOGIN_URL="htps://acme.my.salesforce.com"),
              r"^salesforce: OKR_SYNC_SALESFORCE_LOGIN_URL: .* is not an http\(s\) URL"),
    Permanent("sf-client-secret-refused", "salesforce",
              _env(OKR_SYNC_SALESFORCE_CLIENT_SECRET="wrong"),
              r"^salesforce: login at https://127\.0\.0\.1:\d+ refused \(400 .*"
              r"OKR_SYNC_SALESFORCE_CLIENT_SECRET"),
    Permanent("zd-base-url-without-host", "zendesk", _env(OKR_SYNC_ZENDESK_BASE_URL="https://"),
              r"^zendesk: OKR_SYNC_ZENDESK_BASE_URL: .*'https://' is not an http\(s\) URL"),
    Permanent("zd-token-refused", "zendesk", _env(OKR_SYNC_ZENDESK_API_TOKEN="wrong"),
              r"^zendesk: .* refused \(401 "),
    Permanent("hs-base-url-without-scheme", "hubspot",
              _env(OKR_SYNC_HUBSPOT_BASE_URL="api.hubapi.com"),
              r"^hubspot: OKR_SYNC_HUBSPOT_BASE_URL: .*'api\.hubapi\.com' is not an http\(s\) URL"),
    Permanent("hs-token-refused", "hubspot", _env(OKR_SYNC_HUBSPOT_ACCESS_TOKEN="wrong"),
              r"^hubspot: .* refused \(401 .*OKR_SYNC_HUBSPOT_ACCESS_TOKEN"),
    Permanent("sql-sqlite-file-missing", "sql",
              lambda tmp: {"OKR_SYNC_SQL_URL": f"sqlite:///{tmp / 'nowhere.db'}"},
              r"^sql: reading \w+: no such database file: unable to open database file; "
              r"check OKR_SYNC_SQL_URL$"),
    Permanent("sql-sqlite-unknown-schema", "sql",
              lambda tmp: _billing_sqlite(tmp, OKR_SYNC_SQL_DB_SCHEMA="billing"),
              r"^sql: reading \w+: no schema 'billing' in the database \(it has main\); "
              r"check OKR_SYNC_SQL_DB_SCHEMA$"),
    Permanent("sql-pg-unknown-database", "sql", _missing_pg_database,
              r'^sql: reading \w+: no such database: .*database "okr_permerr_nosuch_\w+" does '
              r"not exist; check OKR_SYNC_SQL_URL$"),
    Permanent("sql-pg-unknown-schema", "sql",
              _env(OKR_SYNC_SQL_URL=PG_SOURCE, OKR_SYNC_SQL_DB_SCHEMA="biling"),
              r"^sql: reading \w+: no schema 'biling' in the database \(it has .*public.*\); "
              r"check OKR_SYNC_SQL_DB_SCHEMA$"),
    Permanent("sql-pg-unknown-role", "sql",
              _env(OKR_SYNC_SQL_URL=PG_SOURCE.replace("postgres@", "okr_permerr_nobody@", 1)),
              r'^sql: reading \w+: access refused: .*role "okr_permerr_nobody" does not exist'),
    Permanent("files-directory-missing", "files",
              lambda tmp: {"OKR_SYNC_FILES_DIRECTORY": str(tmp / "exports")},
              r"^files: .*is not a directory"),
]  # fmt: skip


def _sync_configured(
    kind: str, env: Mapping[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> tuple[dict[str, Any], list[str]]:
    """One sync of the good world (or a table source) with ``env`` on top of its settings;
    the run report and the retry warnings logged."""
    url = _fresh(tmp_path)
    with caplog.at_level(logging.WARNING):
        if kind in OKR_FILES:
            report = _sync_world(World(), url, tmp_path, kinds=(kind,), env=env)[kind]
        else:
            okr_file = tmp_path / f"{kind}.yaml"
            okr_file.write_text(TABLE_OKRS.format(source=kind))
            with pytest.MonkeyPatch.context() as patch:
                for name, value in env.items():
                    patch.setenv(name, value)
                report = run_sync(okr_file, url)
    retried = [
        r.getMessage() for r in caplog.records if re.search(r"; retry \d+ in", r.getMessage())
    ]
    return report, retried


def _failures(report: dict[str, Any], source: str) -> set[str]:
    return {
        str(counts["failed"])
        for name, counts in report["streams"].items()
        if name.startswith(f"{source}.") and counts.get("failed")
    }


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.postgres] if "-pg-" in c.id else [])
        for c in PERMANENT
    ],
)
def test_a_permanent_error_fails_at_once_in_one_line(
    case: Permanent,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    if "-pg-" in case.id:
        request.getfixturevalue("postgres_admin")
    report, retried = _sync_configured(case.kind, RETRYING | case.env(tmp_path), tmp_path, caplog)
    assert report["status"] in ("failed", "partial"), report["reason"]
    failures = _failures(report, case.source)
    assert failures, report["streams"]
    for failure in failures:
        assert "\n" not in failure
        assert re.search(case.reason, failure), failure
    assert retried == []
    assert {name: c["retries"] for name, c in report["streams"].items() if c["retries"]} == {}
    assert "gave up after" not in str(report["reason"])


@pytest.mark.parametrize(
    ("client", "address", "kind"),
    [
        ("requests", "acme.example.com/api", "MissingSchema"),
        ("requests", "htps://acme.example.com/api", "InvalidSchema"),
        ("requests", "https://acme example.com/api", "InvalidURL"),
        ("urllib3", "htps://acme.example.com/api", "URLSchemeUnknown"),
        ("urllib3", "https:///api", "LocationValueError"),
    ],
)
def test_an_address_that_is_no_url_is_classified_permanent(
    client: str, address: str, kind: str
) -> None:
    """A connector that builds its own address (a third party's, or a URL the settings do not
    hold) gets the same answer from the classifier: fatal, naming what is wrong, where the
    clients raise ValueErrors and urllib3 HTTPErrors that read as an unreadable answer or a
    network failure. The real clients refuse before any connection is tried."""
    errors = SourceErrors("acme", ca_setting="ACME_CA", auth_hint="check ACME_TOKEN")

    def get() -> object:
        if client == "requests":
            return requests.get(address, timeout=1)
        return urllib3.PoolManager().request("GET", address, timeout=1, retries=False)

    with pytest.raises(FatalSourceError) as caught, classified(errors, "list widgets"):
        get()
    assert str(caught.value) == (
        f"acme: list widgets failed: the address is not an http(s) URL ({kind}); "
        "check the source's URL setting"
    )


def test_a_refused_connection_is_transient_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database server that refuses connections may be restarting: retried, then the run
    gives up with the attempts counted, within the budget."""
    env = {
        "OKR_SYNC_SQL_URL": "postgresql+psycopg://postgres@127.0.0.1:9/billing",  # port 9: closed
        "OKR_SYNC_RETRY_BUDGET_SECONDS": "0.5",
        "OKR_SYNC_RETRY_INITIAL_SECONDS": "0.05",
        "OKR_SYNC_RETRY_MAX_SECONDS": "0.1",
    }
    report, retried = _sync_configured("sql", env, tmp_path, caplog)
    assert report["status"] == "failed"
    assert re.search(
        r"^sql: reading \w+: connection failed: .*Connection refused "
        r"\(gave up after \d+ attempts\)$",
        str(report["reason"]),
    ), report["reason"]
    assert retried
    assert sum(c["retries"] for c in report["streams"].values()) >= 1


@pytest.mark.usefixtures("postgres_admin")
def test_a_store_naming_an_unknown_database_is_one_line_at_once(tmp_path: Path) -> None:
    """The store's own URL: a misspelt database is refused in one line, before any work."""
    name = f"okr_permerr_nosuch_{uuid.uuid4().hex[:8]}"
    store = f"{PG_SOURCE.rsplit('/', 1)[0]}/{name}"
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(TABLE_OKRS.format(source="sql"))
    result = CliRunner().invoke(cli_app, ["sync", "--okr-file", str(okr_file), "--store", store])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: cannot open store {store}: connection failed: ")
    assert line.endswith(f'database "{name}" does not exist')


# --- custom SQL confined to the mirror (issue 22 #11) ---------------------------------------------
#
# Connected as a superuser (the test server's ``postgres``), a custom metric once read server
# files and password hashes: the first line of /etc/passwd ended up in a run's reason. Each
# case is a key result whose metric reaches past the mirror; the database refuses it, the run
# is partial with that one-line refusal, and the honest metrics beside it are measured.

CONFINED_TO = (
    " (custom metrics may read only customer_links, mirror_customers, mirror_deals, "
    "mirror_finance_lines, mirror_fx_rates, mirror_ratings, mirror_reps, mirror_tickets)"
)


@dataclass(frozen=True)
class Reach:
    """A custom metric reaching past the mirror, and the refusal on each store."""

    metric: str
    sql: str
    postgresql: str
    sqlite: str
    records: str | None = None


REACHES = [
    Reach("server_file_in_error", "SELECT CAST(pg_read_file('/etc/passwd') AS integer)",
          "permission denied for function pg_read_file" + CONFINED_TO,
          "no such function: pg_read_file"),
    Reach("server_file", "SELECT length(pg_read_file('/etc/passwd'))",
          "permission denied for function pg_read_file" + CONFINED_TO,
          "no such function: pg_read_file"),
    Reach("password_hashes", "SELECT count(*) FROM pg_authid",
          "permission denied for table pg_authid" + CONFINED_TO,
          "no such table: pg_authid"),
    Reach("server_directory", "SELECT count(*) FROM pg_ls_dir('.')",
          "permission denied for function pg_ls_dir" + CONFINED_TO,
          "no such table: pg_ls_dir"),
    Reach("large_object", "SELECT lo_import('/etc/passwd')",
          "permission denied for function lo_import" + CONFINED_TO,
          "no such function: lo_import"),
    Reach("data_directory", "SELECT length(current_setting('data_directory'))",
          'must be superuser or have privileges of pg_read_all_settings to examine '
          '"data_directory"' + CONFINED_TO,
          "no such function: current_setting"),
    Reach("runs", "SELECT count(*) FROM sync_runs",
          "permission denied for table sync_runs" + CONFINED_TO,
          "not authorized" + CONFINED_TO),
    Reach("migrations", "SELECT count(*) FROM alembic_version",
          "permission denied for table alembic_version" + CONFINED_TO,
          "not authorized" + CONFINED_TO),
    Reach("schema", "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
          'relation "sqlite_master" does not exist',
          "access to sqlite_master.type is prohibited" + CONFINED_TO),
    Reach("key_result_titles", "SELECT max(length(title)) FROM key_results",
          "permission denied for table key_results" + CONFINED_TO,
          "access to key_results.title is prohibited" + CONFINED_TO),
    Reach("lineage_from_runs", "SELECT count(*) FROM mirror_deals",
          "permission denied for table sync_runs" + CONFINED_TO,
          "access to sync_runs.id is prohibited" + CONFINED_TO,
          records="SELECT 'files', id FROM sync_runs"),
]  # fmt: skip

CONFINED_OKRS = """\
company: Findings Co
sources:
  files: [customer, deal, rep, fx_rate, ticket, rating]
customers: {primary: files, match_by: domain}
money: {currency: USD}
metrics:
  won_deals:
    sql: >-
      SELECT count(*) FROM mirror_deals WHERE deleted_at IS NULL AND outcome = 'won'
      AND close_on >= :period_start_date AND close_on < :period_end_date
  crm_customers_asking:
    sql: >-
      SELECT count(DISTINCT l.crm_id) FROM mirror_tickets t JOIN customer_links l
      ON l.source = t.source AND l.source_id = t.customer_id
      WHERE t.deleted_at IS NULL AND t.created_at >= :period_start AND t.created_at < :period_end
{reaches}objectives:
  - id: sell
    title: Sell and support
    owner: ceo@findings.example
    period: 2026-11
    key_results:
{key_results}      - {id: won, title: Won deals, metric: won_deals, target: 5}
      - {id: asking, title: Customers asking, metric: crm_customers_asking, target: 1}
      - {id: mid-market, title: Mid-market won revenue, metric: won_revenue,
         params: {team: Mid-Market Sales}, target: 100000}
"""


def test_custom_sql_reaching_past_the_mirror_is_refused_and_the_rest_is_measured(
    clock: Any, store_url: str, tmp_path: Path
) -> None:
    dialect = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    reaches = "".join(
        f"  {r.metric}:\n    sql: {json.dumps(r.sql)}\n"
        + (f"    records: {json.dumps(r.records)}\n    entity: deal\n" if r.records else "")
        for r in REACHES
    )
    key_results = "".join(
        f"      - {{id: {r.metric}, title: {r.metric}, metric: {r.metric}, target: 1}}\n"
        for r in REACHES
    )
    exports = tmp_path / "exports"
    exports.mkdir()
    tables = _findings_tables()
    for name, rows in tables.items():
        write_csv(exports / f"{name}.csv", rows)
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(
        CONFINED_OKRS.replace("{reaches}", reaches).replace("{key_results}", key_results)
    )
    report = _sync_files(FindingsStore(store_url, okr_file, exports, []))

    outcomes = {kr.key_result_id: kr for kr in report.key_results}
    expected = {
        r.metric: f"metric {r.metric!r}: the database refused its query: {getattr(r, dialect)}"
        for r in REACHES
    }
    assert {r.metric: outcomes[r.metric].error for r in REACHES} == expected
    assert (report.status, report.reason) == (
        "partial",
        f"{len(REACHES)} key result(s) could not be computed: {expected['server_file_in_error']}",
    )
    november = (date(2026, 11, 1), date(2026, 12, 1))
    won = [d for d in tables["deals"] if november[0] <= d["close_on"] < november[1]]
    asking = {t["customer_id"] for t in tables["tickets"] if t["created_at"].month == 11}
    mid_market = sum(d["amount"] for d in tables["deals"] if d["owner_id"] == "2")
    assert (outcomes["won"].value, outcomes["won"].error) == (len(won), None)
    assert (outcomes["asking"].value, outcomes["asking"].error) == (len(asking), None)
    assert (outcomes["mid-market"].value, outcomes["mid-market"].error) == (mid_market, None)
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    assert all(passwd not in (kr.error or "") for kr in report.key_results)
