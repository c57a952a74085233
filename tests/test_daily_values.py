"""One value per key result per day (``key_result_days``): every measuring pass keeps the
day's last value, changed or confirmed unchanged, in the organisation's calendar; stores
made before it carry their measurements over. Key results keep the entities they read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import func, select, text

from okr_targets.models import DailyValue, KeyResult, Measurement
from okr_targets.store import Store, alembic_config, begin_run
from transforms.catalog import load
from transforms.measure import measure_key_results, save_okrs

OKRS = """\
company: Daily Co.
sources:
  salesforce: [customer, deal, rep, fx_rate]
calendar: {timezone: Europe/Berlin}
objectives:
  - id: grow
    title: Grow
    owner: ceo@daily.example
    period: 2026-Q4
    key_results:
      - {id: launch, title: Launch, kind: milestone, done: false}
      - {id: win-rate, title: Win rate, metric: win_rate, target: 50, unit: "%"}
      - id: deal-value
        title: Deal value
        metric: pct_change
        params: {metric: avg_won_deal_value, baseline_period: previous}
        target: 20
        unit: "%"
"""
# 21:00 UTC is 22:00 in Berlin (same day); 23:30 UTC is 00:30 the next Berlin day.
PASSES = [
    datetime(2026, 11, 20, 21, 0, tzinfo=UTC),
    datetime(2026, 11, 20, 21, 20, tzinfo=UTC),
    datetime(2026, 11, 20, 23, 30, tzinfo=UTC),
]


def test_each_pass_keeps_the_days_last_value_in_the_calendars_day(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "okrs.yaml"
    path.write_text(OKRS)
    config, catalog = load(path)
    store = Store.open(sqlite_url)
    for now in PASSES:
        run_id = begin_run(store, "test")
        with store.session() as session, session.begin():
            save_okrs(session, config, now, catalog)
            measure_key_results(session, config, catalog, run_id, now, "test", data_cutoff=now)
    with store.session() as session:
        days = session.execute(
            select(DailyValue.day, DailyValue.value, DailyValue.checked_at)
            .where(DailyValue.key_result_id == "launch")
            .order_by(DailyValue.day)
        ).all()
        changes = session.scalar(
            select(func.count())
            .select_from(Measurement)
            .where(Measurement.key_result_id == "launch")
        )
        reads: dict[str, list[str] | None] = dict(
            session.execute(select(KeyResult.id, KeyResult.reads)).tuples().all()
        )
    store.dispose()
    # the milestone stays "not done" (0): one measurement, but a point on each Berlin day,
    # the first day's at its last pass (21:20 UTC), the next day's at 23:30 UTC
    assert changes == 1
    assert [(d, v, at) for d, v, at in days] == [
        (date(2026, 11, 20), 0.0, PASSES[1]),
        (date(2026, 11, 21), 0.0, PASSES[2]),
    ]
    # win_rate needs deal.outcome and deal.close_on; pct_change reads what its metric reads
    # (avg_won_deal_value: deal.outcome, deal.close_on, deal.amount, deal.currency, and the
    # exchange rates it converts the amounts with)
    assert reads == {"launch": [], "win-rate": ["deal"], "deal-value": ["deal", "fx_rate"]}


def test_an_upgrade_carries_measurements_over_as_daily_values(store_url: str) -> None:
    """0008 keeps each key result's last measurement of each UTC day as that day's point."""
    store = Store(store_url)
    command.upgrade(alembic_config(store.engine), "0007")
    first = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    series = [(first, 5.0), (first + timedelta(hours=6), 7.0), (first + timedelta(days=1), 8.0)]
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sync_runs (id, started_at, status, stream_counts, details, "
                "code_version) VALUES ('old', :at, 'complete', '{}', '{}', '0.1')"
            ),
            {"at": first},
        )
        connection.execute(
            text(
                "INSERT INTO objectives (id, title, owner, period, weight, updated_at) "
                "VALUES ('o', 'O', 'me', '2026-Q4', 1, :at)"
            ),
            {"at": first},
        )
        connection.execute(
            text(
                "INSERT INTO key_results (id, objective_id, title, owner, period, metric, "
                "params, baseline, target, direction, kind, weight, unit, at_risk_gap, "
                "off_track_gap, updated_at) VALUES ('kr', 'o', 'KR', 'me', '2026-Q4', "
                "'won_revenue', '{}', 0, 10, 'increase', 'increase_to', 1, '', 0.1, 0.25, :at)"
            ),
            {"at": first},
        )
        for n, (at, value) in enumerate(series, start=1):
            connection.execute(
                text(
                    "INSERT INTO measurements (id, key_result_id, run_id, measured_at, value, "
                    "unit, expected_progress, status, metric, params, details, record_count, "
                    "code_version, data_cutoff) VALUES (:id, 'kr', 'old', :at, :value, '', 0.5, "
                    "'on_track', 'won_revenue', '{}', '{}', 1, '0.1', :at)"
                ),
                {"id": n, "at": at, "value": value},
            )
    store.dispose()
    upgraded = Store.open(store_url)
    with upgraded.session() as session:
        points = session.execute(
            select(
                DailyValue.day, DailyValue.value, DailyValue.checked_at, DailyValue.data_cutoff
            ).order_by(DailyValue.day)
        ).all()
    upgraded.dispose()
    assert [tuple(p) for p in points] == [
        (date(2026, 11, 2), 7.0, series[1][0], series[1][0]),
        (date(2026, 11, 3), 8.0, series[2][0], series[2][0]),
    ]
