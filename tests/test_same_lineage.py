"""Whether a result is the latest measurement whole (``_same``): its lineage must be the
same set of records, not only as many (issue 25 compares it by counts and a join)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from okr_targets.models import KeyResult, Measurement, MeasurementRecord, Objective
from okr_targets.store import Store, begin_run
from transforms.lineage import record_select
from transforms.measure import _same
from transforms.metric import MetricResult, RecordRef

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
STORED = [("deal", "hubspot", "1"), ("deal", "hubspot", "2"), ("deal", "salesforce", "1")]


def _result(rows: list[tuple[str, str, str]], details: dict[str, int]) -> MetricResult:
    records = record_select(RecordRef(*row) for row in rows)
    return MetricResult(3.0, "deals", records, dict(details), record_count=len(rows))


@pytest.mark.parametrize(
    ("rows", "same"),
    [
        (STORED, True),
        (list(reversed(STORED)), True),
        # as many records, one of them another: the lineage changed
        ([*STORED[:2], ("deal", "salesforce", "2")], False),
        ([*STORED[:2], ("ticket", "salesforce", "1")], False),
        (STORED[:2], False),
        ([*STORED, ("deal", "hubspot", "3")], False),
    ],
)
def test_same_needs_the_same_records(
    store_url: str, rows: list[tuple[str, str, str]], same: bool
) -> None:
    store = Store.open(store_url)
    run_id = begin_run(store, "test", None)
    try:
        with store.session() as session:
            session.add(Objective(id="o", title="O", owner="o@example.com", period="2026-Q4"))
            session.flush()
            session.add(
                KeyResult(
                    id="kr",
                    objective_id="o",
                    title="KR",
                    owner="o@example.com",
                    period="2026-Q4",
                    metric="win_rate",
                    params={},
                    baseline=0.0,
                    target=10.0,
                    direction="increase",
                    unit="deals",
                )
            )
            session.flush()
            previous = Measurement(
                key_result_id="kr",
                run_id=run_id,
                measured_at=AT,
                value=3.0,
                unit="deals",
                progress=0.3,
                progress_raw=0.3,
                expected_progress=0.5,
                status="on_track",
                metric="win_rate",
                params={},
                details={"n": 3},
                record_count=len(STORED),
                code_version="test",
            )
            session.add(previous)
            session.flush()
            session.add_all(
                MeasurementRecord(measurement_id=previous.id, entity=e, source=s, source_id=i)
                for e, s, i in STORED
            )
            session.flush()
            assert _same(session, previous, _result(rows, {"n": 3})) is same
            assert _same(session, previous, _result(STORED, {"n": 4})) is False
            session.rollback()
    finally:
        store.dispose()
