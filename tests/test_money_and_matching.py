"""Money conversion order, unknown-currency findings, and customers matched across systems."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from okr_targets.models import Customer, CustomerLink, CustomerLinkBuild, Deal, FxRate
from okr_targets.periods import Period
from okr_targets.store import Store, begin_run, upsert_records
from transforms.catalog import BUILT_IN
from transforms.matching import match_customers
from transforms.metric import MetricError
from transforms.money import unconvertible_currencies

NOW = datetime(2026, 11, 20, tzinfo=UTC)
Q4 = Period.parse("2026-Q4")


def common(source: str, source_id: str) -> dict[str, Any]:
    return {
        "source": source,
        "source_id": source_id,
        "source_modified_at": NOW,
        "deleted_at": None,
        "run_id": "r",
    }


def deal(source: str, source_id: str, amount: str, currency: str, **extra: Any) -> dict[str, Any]:
    return (
        common(source, source_id)
        | {
            "name": source_id,
            "customer_id": None,
            "owner_id": None,
            "amount": Decimal(amount),
            "currency": currency,
            "amount_home": None,
            "home_currency": None,
            "stage": "won",
            "outcome": "won",
            "pipeline": None,
            "deal_type": None,
            "created_at": NOW,
            "close_on": date(2026, 11, 2),
        }
        | extra
    )


def rate(
    source: str, currency: str, value: str, corporate: bool = False, **extra: Any
) -> dict[str, Any]:
    return (
        common(source, f"{currency}{extra.get('valid_from', '')}")
        | {
            "currency": currency,
            "rate": Decimal(value),
            "is_corporate": corporate,
            "valid_from": None,
            "valid_to": None,
        }
        | extra
    )


def customer(
    source: str, source_id: str, domain: str | None, external_id: str | None = None
) -> dict[str, Any]:
    return common(source, source_id) | {
        "name": source_id,
        "owner_id": None,
        "segment": None,
        "created_at": NOW,
        "became_customer_on": date(2025, 1, 1) if source == "salesforce" else None,
        "churned_on": None,
        "domain": domain,
        "external_id": external_id,
    }


@pytest.fixture
def store(store_url: str) -> Any:
    opened = Store.open(store_url)
    yield opened
    opened.dispose()


def revenue(store: Store, **params: Any) -> float | None:
    with store.session() as session:
        return BUILT_IN.find("won_revenue").run(session, Q4, params).value


def test_conversion_prefers_config_then_dated_then_static_then_home(store: Store) -> None:
    with store.session() as session, session.begin():
        upsert_records(
            session,
            Deal,
            [
                deal("salesforce", "a", "100", "EUR"),
                deal("hubspot", "b", "100", "JPY", amount_home="0.70", home_currency="USD"),
            ],
        )
        upsert_records(
            session,
            FxRate,
            [
                rate("salesforce", "USD", "1", corporate=True),
                rate("salesforce", "EUR", "0.5"),
                rate(
                    "salesforce",
                    "EUR",
                    "0.8",
                    valid_from=date(2026, 10, 1),
                    valid_to=date(2027, 1, 1),
                ),
            ],
        )
    # the dated rate for the close date wins over the static one; HubSpot's own conversion is used
    assert revenue(store, currency="USD") == pytest.approx(100 / 0.8 + 0.70)
    with store.session() as session, session.begin():
        upsert_records(
            session,
            FxRate,
            [rate("config", "USD", "1", corporate=True), rate("config", "EUR", "0.25")],
        )
    assert revenue(store) == pytest.approx(100 / 0.25 + 0.70)  # the OKR file's rates win


def test_unknown_currency_is_a_finding_and_an_error_never_a_zero(store: Store) -> None:
    with store.session() as session, session.begin():
        upsert_records(
            session,
            Deal,
            [deal("salesforce", "a", "100", "USD"), deal("salesforce", "b", "50", "CHF")],
        )
        upsert_records(session, FxRate, [rate("salesforce", "USD", "1", corporate=True)])
    with store.session() as session:
        [finding] = unconvertible_currencies(session)
    assert "1 salesforce deal(s) in CHF have no exchange rate to USD" in finding
    with pytest.raises(MetricError, match="no exchange rate from CHF to USD"):
        revenue(store)


def test_customers_match_by_domain_or_external_id(store: Store) -> None:
    with store.session() as session, session.begin():
        upsert_records(
            session,
            Customer,
            [
                customer("salesforce", "001A", "acme.example"),
                customer("salesforce", "001B", "globex.example"),
                customer("zendesk", "1", "ACME.example", external_id="001B"),
                customer("zendesk", "2", "initech.example"),
            ],
        )
    with store.session() as session, session.begin():
        by_domain = match_customers(session, "salesforce", "domain")
    assert by_domain.matched == 1
    assert by_domain.unmatched_count == 1
    assert [u["source_id"] for u in by_domain.unmatched] == ["2"]
    with store.session() as session:
        links = {
            (link.source, link.source_id): link.crm_id
            for link in session.scalars(select(CustomerLink))
        }
    assert links == {
        ("salesforce", "001A"): "001A",
        ("salesforce", "001B"): "001B",
        ("zendesk", "1"): "001A",
    }
    with store.session() as session, session.begin():
        by_id = match_customers(session, "salesforce", "external_id")
    assert by_id.matched == 1
    with store.session() as session:
        assert session.get(CustomerLink, ("zendesk", "1")).crm_id == "001B"  # type: ignore[union-attr]


def test_unmatched_customers_are_all_counted_and_the_first_listed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("transforms.matching.UNMATCHED_LISTED", 2)
    with store.session() as session, session.begin():
        upsert_records(
            session,
            Customer,
            [customer("salesforce", "001A", "acme.example")]
            + [customer("zendesk", str(n), f"stray{n}.example") for n in (3, 1, 2)],
        )
    with store.session() as session, session.begin():
        report = match_customers(session, "salesforce", "domain")
    assert (report.matched, report.unmatched_count) == (0, 3)
    assert [u["source_id"] for u in report.unmatched] == ["1", "2"]
    assert report.unmatched[0]["domain"] == "stray1.example"


# --- matching again only what changed, against a rebuild from scratch -------------------------

KEYS = st.sampled_from([None, "", "a.example", "A.Example", "b.example", "001", "002", "003"])
CHANGE = st.tuples(
    st.sampled_from(["salesforce", "zendesk", "hubspot"]),
    st.sampled_from(["001", "002", "003"]),
    KEYS,  # domain
    KEYS,  # external_id
    st.booleans(),  # deleted
)
STEP = st.tuples(st.sampled_from(["domain", "external_id"]), st.lists(CHANGE, max_size=5))


def links_from_scratch(session: Any, match_by: str) -> dict[tuple[str, str], str]:
    """What the links must be: the rule applied to the live customers, in Python."""
    live = list(session.scalars(select(Customer).where(Customer.deleted_at.is_(None))))
    crm: dict[str, str] = {}
    for c in live:
        key = c.domain if match_by == "domain" else c.source_id
        if c.source == "salesforce" and key:
            crm[key.lower()] = min(crm.get(key.lower(), c.source_id), c.source_id)
    links = {(c.source, c.source_id): c.source_id for c in live if c.source == "salesforce"}
    for c in live:
        key = c.domain if match_by == "domain" else c.external_id
        if c.source != "salesforce" and key and key.lower() in crm:
            links[(c.source, c.source_id)] = crm[key.lower()]
    return links


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # cleared per example
)
@given(steps=st.lists(STEP, min_size=1, max_size=6), limit=st.sampled_from([2, 5_000]))
def test_matching_only_the_changed_customers_links_as_a_rebuild_would(
    store: Store, monkeypatch: pytest.MonkeyPatch, steps: list[Any], limit: int
) -> None:
    """Sync after sync (keys changing case, moving, emptied; customers deleted; the rule
    switched), the links kept up to date from the customers each run wrote are exactly
    those a rebuild from scratch makes, and so are the counts."""
    monkeypatch.setattr("transforms.matching.REMATCH_AT_MOST", limit)
    with store.session() as session, session.begin():
        for table in (CustomerLinkBuild, CustomerLink, Customer):
            session.execute(delete(table))
    for number, (match_by, changes) in enumerate(steps):
        run_id = begin_run(store, "test")
        at = NOW + timedelta(minutes=number)
        rows = {
            (source, source_id): customer(source, source_id, domain, external_id)
            | {"run_id": run_id, "source_modified_at": at, "deleted_at": at if deleted else None}
            for source, source_id, domain, external_id, deleted in changes
        }
        with store.session() as session, session.begin():
            upsert_records(session, Customer, list(rows.values()))
            report = match_customers(session, "salesforce", match_by, run_id)
        with store.session() as session:
            kept = {
                (k.source, k.source_id): k.crm_id for k in session.scalars(select(CustomerLink))
            }
            expected = links_from_scratch(session, match_by)
            others = (
                session.scalar(
                    select(func.count()).where(
                        Customer.deleted_at.is_(None), Customer.source != "salesforce"
                    )
                )
                or 0
            )
        assert kept == expected
        assert report.matched == sum(1 for (s, _) in expected if s != "salesforce")
        assert report.unmatched_count == others - report.matched


def test_a_sync_matches_again_only_the_customers_it_wrote(store: Store) -> None:
    first = begin_run(store, "test")
    crm = [customer("salesforce", f"00{n}", f"c{n}.example") | {"run_id": first} for n in range(5)]
    helpdesk = [customer("zendesk", str(n), f"C{n}.example") | {"run_id": first} for n in range(5)]
    with store.session() as session, session.begin():
        upsert_records(session, Customer, crm + helpdesk)
        assert match_customers(session, "salesforce", "domain", first).rematched is None
    second = begin_run(store, "test")
    moved = customer("zendesk", "4", "c1.example") | {
        "run_id": second,
        "source_modified_at": NOW + timedelta(hours=1),
    }
    with store.session() as session, session.begin():
        upsert_records(session, Customer, [moved])
        report = match_customers(session, "salesforce", "domain", second)
    assert report.rematched == 1
    assert (report.matched, report.unmatched_count) == (5, 0)
    with store.session() as session:
        assert session.get(CustomerLink, ("zendesk", "4")).crm_id == "001"  # type: ignore[union-attr]
    third = begin_run(store, "test")  # the CRM customer moves away: who matched it, doesn't
    renamed = crm[2] | {
        "domain": "new.example",
        "run_id": third,
        "source_modified_at": moved["source_modified_at"],
    }
    with store.session() as session, session.begin():
        upsert_records(session, Customer, [renamed])
        report = match_customers(session, "salesforce", "domain", third)
    assert (report.rematched, report.matched, report.unmatched_count) == (1, 4, 1)
    assert [u["source_id"] for u in report.unmatched] == ["2"]
