"""Fault injection: each misbehaviour maps to the right error, and syncs survive a schedule."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.base import get_connector
from connectors.contract import open_reader, read_all
from connectors.errors import FatalSourceError, RetriableSourceError
from connectors.salesforce.sandbox.data import generate_org
from connectors.salesforce.sandbox.emulator import create_app
from connectors.sandbox.server import Fault, Faults, parse_faults, serve_tls
from expectations import Validator
from okr_targets.models import Cursor, Deal, FxRate, Rep, SyncRun
from okr_targets.store import Store
from tests.conftest import AS_OF, salesforce_env_vars, sync_sources


def test_fault_specs_parse_and_bad_ones_say_why() -> None:
    faults = parse_faults("429:2x2, 503, slow:1.5@/services, drop, truncate, expirex2, mutate:5")
    assert faults == [
        Fault(status=429, headers=(("Retry-After", "2"),)),
        Fault(status=429, headers=(("Retry-After", "2"),)),
        Fault(status=503),
        Fault(kind="slow", seconds=1.5, path="/services"),
        Fault(kind="drop"),
        Fault(kind="truncate"),
        Fault(kind="expire"),
        Fault(kind="expire"),
        Fault(kind="mutate", count=5),
    ]
    for bad in ("200", "fast", "429x0", "slow:0", "503xmany", "expire:3", "mutate:0", "slow",
                "slow:nan", "slow:inf", "tie:-5", "tie:0", "503:nan", "429:-1"):  # fmt: skip
        with pytest.raises(ValueError, match="fault"):
            parse_faults(bad)


def test_a_fault_queue_says_which_faults_it_served_and_which_are_left() -> None:
    """A randomized test asserts its schedule was reached through these two lists."""
    queue = Faults()
    queue.extend(parse_faults("503@/api,drop@/crm,500@/api"))
    assert queue.take("/crm/v3/objects/deals") == Fault(kind="drop", path="/crm")
    assert queue.take("/services/data") is None
    assert queue.take("/api/v2/tickets") == Fault(status=503, path="/api")
    assert queue.served() == [Fault(kind="drop", path="/crm"), Fault(status=503, path="/api")]
    assert queue.pending() == [Fault(status=500, path="/api")]
    queue.clear()
    assert (queue.served(), queue.pending()) == ([], [])


@pytest.mark.parametrize(
    ("spec", "error", "fragment"),
    [
        ("429", RetriableSourceError, "429"),
        ("500", RetriableSourceError, "500"),
        ("503:4", RetriableSourceError, "503"),
        ("slow:3", RetriableSourceError, "cannot reach the server"),
        ("drop", RetriableSourceError, "cannot reach the server"),
        ("truncate", RetriableSourceError, "unreadable response"),
        ("401x2", FatalSourceError, "401"),  # one 401 is a lapsed session: log in again
    ],
)
def test_each_fault_maps_to_the_error_class_the_flow_acts_on(
    salesforce_env: Any,
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    error: type[Exception],
    fragment: str,
) -> None:
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_TIMEOUT", "1")
    connector = get_connector("salesforce")
    reader = open_reader(connector)
    faults.extend(parse_faults(f"{spec}@/services/data"))
    try:
        with pytest.raises(error, match=fragment) as caught:
            read_all(reader, connector.streams[0])
    finally:
        reader.close()
    if spec == "503:4":
        assert caught.value.retry_after == 4  # type: ignore[attr-defined]
    if spec == "429":
        assert caught.value.retry_after is None  # type: ignore[attr-defined]


def mirror(store_url: str) -> dict[str, set[tuple[Any, ...]]]:
    """The mirror's content without the run that wrote it."""
    store = Store.open(store_url)
    content = {}
    with store.session() as session:
        for model in (Deal, Rep, FxRate):
            columns = [c for c in model.__table__.columns if c.name != "run_id"]
            content[model.__tablename__] = {
                tuple(row) for row in session.execute(select(*columns)).all()
            }
    store.dispose()
    return content


def test_a_sync_under_a_fault_schedule_equals_a_fault_free_one(
    salesforce_env: Any,
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    validator: Validator,
    sqlite_url: str,
    tmp_path: Any,
) -> None:
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_TIMEOUT", "2")
    monkeypatch.setenv("OKR_SYNC_RETRY_BUDGET_SECONDS", "60")
    monkeypatch.setenv("OKR_SYNC_RETRY_MAX_SECONDS", "0.3")
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    sync_sources(clean, validator)
    faults.extend(parse_faults("429:0.1x2,503,drop,truncate,500,slow:3,429,drop,truncate"))
    sync_sources(sqlite_url, validator, batch_size=200)
    assert mirror(sqlite_url) == mirror(clean)


def test_the_salesforce_quota_guard_stops_the_stream_where_its_data_ends(
    monkeypatch: pytest.MonkeyPatch, validator: Validator, sqlite_url: str
) -> None:
    """Past 90% of the daily calls, the stream stops (not retried) and keeps its cursor."""
    org = generate_org(seed=5, as_of=AS_OF, accounts=40, opportunities=900)
    with serve_tls(create_app(org, page_size=200, daily_api_limit=24)) as server:
        for name, value in salesforce_env_vars(server).items():
            monkeypatch.setenv(name, value)
        run_id = sync_sources(sqlite_url, validator, batch_size=200)
    store = Store.open(sqlite_url)
    with store.session() as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
        stopped = {name: c["stopped"] for name, c in run.stream_counts.items() if c["stopped"]}
        cursors = {c.stream: c.value for c in session.scalars(select(Cursor))}
        deals = session.scalar(select(func.count()).select_from(Deal))
    store.dispose()
    # Each stream's reader asks two describes (the org's objects, the stream's object): 4
    # one-page objects use 12 calls, opportunities 2 + 5 pages, cases 2 + their first page,
    # the 22nd; the guard (90% of 24: 21.6) stops cases before their second page, and
    # no page of opportunities (at 15 to 18 calls) was stopped.
    assert set(stopped) == {"Case"}
    assert "22/24 daily API calls used" in stopped["Case"]
    case = run.stream_counts["Case"]
    assert (case["read"], case["attempts"], case["failed"]) == (200, 1, None)
    assert case["cursor_after"] == cursors["Case"].isoformat()  # cursor at the written data
    assert deals == 900
