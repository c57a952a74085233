"""Roll-up along the cascade follows docs/scoring.md ("Roll-up")."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okr_targets.rollup import ObjectiveNode, rollup, rollup_cascade


def test_equal_weights_are_the_plain_mean() -> None:
    # (0.2 + 0.5 + 0.8) / 3 = 1.5 / 3 = 0.5
    assert rollup([(0.2, 1), (0.5, 1), (0.8, 1)]) == pytest.approx(0.5)


def test_weights_pull_the_mean() -> None:
    # (3 · 0.2 + 1 · 1.0) / (3 + 1) = (0.6 + 1.0) / 4 = 0.4
    assert rollup([(0.2, 3), (1.0, 1)]) == pytest.approx(0.4)


def test_unmeasured_items_are_left_out_not_counted_as_zero() -> None:
    # only 0.6 and 0.8 are measured: (0.6 + 0.8) / 2 = 0.7
    assert rollup([(0.6, 1), (None, 5), (0.8, 1)]) == pytest.approx(0.7)
    assert rollup([(None, 1), (None, 2)]) is None
    assert rollup([]) is None


@pytest.mark.parametrize("weight", [0, -1, math.nan, math.inf])
def test_weights_must_be_positive(weight: float) -> None:
    with pytest.raises(ValueError, match="weights must be positive"):
        rollup([(0.5, 1), (0.5, weight)])
    with pytest.raises(ValueError, match="weights must be positive"):
        rollup([(None, weight)])  # checked even when the item is unmeasured


def test_cascade_company_team_person() -> None:
    objectives = {
        "company": ObjectiveNode(key_results=[(0.9, 1)]),
        "sales": ObjectiveNode(parent="company", weight=2, key_results=[(0.4, 1), (0.6, 1)]),
        "support": ObjectiveNode(parent="company", key_results=[(None, 1)]),
        "alice": ObjectiveNode(parent="sales", key_results=[(0.2, 1)]),
        "bob": ObjectiveNode(parent="sales", key_results=[(1.0, 3), (0.0, 1)]),
    }
    result = rollup_cascade(objectives)
    # alice: 0.2; bob: (3 · 1.0 + 1 · 0.0) / 4 = 0.75
    assert result["alice"] == pytest.approx(0.2)
    assert result["bob"] == pytest.approx(0.75)
    # sales: its KRs and its people side by side: (0.4 + 0.6 + 0.2 + 0.75) / 4 = 1.95 / 4
    assert result["sales"] == pytest.approx(0.4875)
    # support measured nothing: None, and it is left out of the company
    assert result["support"] is None
    # company: (1 · 0.9 + 2 · 0.4875) / (1 + 2) = (0.9 + 0.975) / 3 = 0.625
    assert result["company"] == pytest.approx(0.625)


def test_cascade_refuses_unknown_parents_cycles_and_bad_weights() -> None:
    with pytest.raises(ValueError, match="unknown"):
        rollup_cascade({"a": ObjectiveNode(parent="ghost")})
    with pytest.raises(ValueError, match="cycle"):
        rollup_cascade({"a": ObjectiveNode(parent="b"), "b": ObjectiveNode(parent="a")})
    with pytest.raises(ValueError, match="positive"):
        rollup_cascade({"a": ObjectiveNode(), "b": ObjectiveNode(parent="a", weight=0)})


progresses = st.floats(min_value=0, max_value=1)
weights = st.floats(min_value=1e-3, max_value=1e3)


@given(st.lists(st.tuples(progresses, weights), min_size=1))
def test_rollup_stays_between_its_inputs(items: list[tuple[float, float]]) -> None:
    result = rollup(items)
    values = [value for value, _ in items]
    assert result is not None
    assert min(values) <= result <= max(values)


@given(st.lists(progresses, min_size=1))
def test_equal_weights_equal_the_plain_mean(values: list[float]) -> None:
    assert rollup([(value, 1.0) for value in values]) == pytest.approx(
        statistics.fmean(values), abs=1e-12
    )


@given(st.lists(st.tuples(st.one_of(st.none(), progresses), weights)))
def test_none_items_change_nothing(items: list[tuple[float | None, float]]) -> None:
    measured = [(value, weight) for value, weight in items if value is not None]
    assert rollup(items) == rollup(measured)
