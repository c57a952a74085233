"""Money conversion order, unknown-currency findings, and customers matched across systems."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from okr_targets.models import Customer, CustomerLink, Deal, FxRate
from okr_targets.periods import Period
from okr_targets.store import Store, upsert_records
from transforms.matching import match_customers
from transforms.metrics import MetricError, get_metric, unconvertible_currencies

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
        return get_metric("won_revenue").run(session, Q4, params).value


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
