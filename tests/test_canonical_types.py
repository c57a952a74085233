"""The canonical row types (connectors floor) agree with the mirror's columns (store floor).

The one place both floors meet: a column added to a mirror table without its field in
``connectors.canonical`` (or the other way round) fails here, not in a sync.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Boolean, Date, Integer, Numeric

from connectors.canonical import ENTITIES, fields_of
from okr_targets.models import MIRROR, UTCDateTime, supplied_columns
from transforms.catalog import BUILT_IN
from transforms.metrics.change import PCT_CHANGE

WRITTEN_BY_THE_FLOW = {"run_id"}


def test_every_mirrored_entity_has_a_canonical_type() -> None:
    assert set(ENTITIES) == set(MIRROR)


@pytest.mark.parametrize("entity", sorted(MIRROR))
def test_fields_are_the_columns_a_connector_supplies(entity: str) -> None:
    supplied = {c.name for c in supplied_columns(MIRROR[entity])} - WRITTEN_BY_THE_FLOW
    assert {field.name for field in fields_of(entity)} == supplied


@pytest.mark.parametrize("entity", sorted(MIRROR))
def test_field_types_and_optionality_match_the_columns(entity: str) -> None:
    columns = {c.name: c for c in supplied_columns(MIRROR[entity])}
    for field in fields_of(entity):
        column = columns[field.name]
        assert field.optional == column.nullable, field.name
        kind = column.type
        expected = (
            datetime
            if isinstance(kind, UTCDateTime)
            else date
            if isinstance(kind, Date)
            else Decimal
            if isinstance(kind, Numeric)
            else bool
            if isinstance(kind, Boolean)
            else int
            if isinstance(kind, Integer)
            else str
        )
        assert field.kind is expected, field.name


def test_built_in_metrics_name_only_fields_a_connector_supplies() -> None:
    """A metric's ``needs`` is how a missing source field becomes a finding: a misspelt
    need would never match a gap."""
    supplied = {f"{entity}.{field.name}" for entity in ENTITIES for field in fields_of(entity)}
    for name, metric in BUILT_IN.metrics.items():
        if name == PCT_CHANGE:  # reads what the metric it compares reads
            continue
        assert metric.needs, name
        assert metric.needs <= supplied, (name, sorted(metric.needs - supplied))
