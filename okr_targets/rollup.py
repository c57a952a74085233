"""Roll progress up the cascade: key results → objective → parent objective.

An objective's progress is the weighted mean of its key results' progress and its child
objectives' progress, side by side (company → team → person); weights default to 1, which
makes it the plain mean. Unmeasured items (progress None) are left out rather than counted
as 0, so one missing metric does not paint a whole objective red. Formulas and sources:
``docs/scoring.md`` ("Roll-up").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


def _check_weight(weight: float) -> None:
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"weights must be positive finite numbers, not {weight!r}")


def rollup(items: Sequence[tuple[float | None, float]]) -> float | None:
    """Weighted mean Σ wᵢ·pᵢ / Σ wᵢ over the measured (progress, weight) pairs.

    None when nothing is measured; ValueError for a weight that is not positive.
    """
    total = 0.0
    weights = 0.0
    for value, weight in items:
        _check_weight(weight)
        if value is None:
            continue
        total += weight * value
        weights += weight
    if weights == 0.0:
        return None
    # Rounding can push a mean of equal values a hair outside them; keep it in range.
    measured = [value for value, _ in items if value is not None]
    return min(max(total / weights, min(measured)), max(measured))


@dataclass(frozen=True)
class ObjectiveNode:
    """One objective as the roll-up sees it.

    ``key_results``: (progress, weight) of its own key results; ``parent``: the id of the
    objective it rolls into (None at the top); ``weight``: its weight in that parent.
    """

    parent: str | None = None
    weight: float = 1.0
    key_results: Sequence[tuple[float | None, float]] = field(default_factory=tuple)


def rollup_cascade(objectives: Mapping[str, ObjectiveNode]) -> dict[str, float | None]:
    """Progress of every objective, children first, each parent from its KRs and children.

    ValueError when a parent is unknown, the parents form a cycle or a weight is not
    positive.
    """
    children: dict[str, list[str]] = {key: [] for key in objectives}
    for key, node in objectives.items():
        _check_weight(node.weight)
        if node.parent is not None:
            if node.parent not in objectives:
                raise ValueError(f"objective {key!r}: parent {node.parent!r} is unknown")
            children[node.parent].append(key)

    result: dict[str, float | None] = {}
    visiting: set[str] = set()

    def visit(key: str) -> float | None:
        if key in result:
            return result[key]
        if key in visiting:
            raise ValueError(f"objectives form a cycle through {key!r}")
        visiting.add(key)
        node = objectives[key]
        items = list(node.key_results)
        items.extend((visit(child), objectives[child].weight) for child in children[key])
        visiting.discard(key)
        result[key] = rollup(items)
        return result[key]

    for key in objectives:  # every key, so a cycle with no root above it is found too
        visit(key)
    return result
