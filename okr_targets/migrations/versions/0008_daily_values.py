"""one value per key result per day, and the entities each key result reads

``key_result_days`` keeps each key result's last confirmed value of each day (in its
calendar), whether it changed or not: forecasts fit on it. Existing history is carried
over as each day's last measurement (days with only unchanged confirmations were not
recorded before, so they stay missing). ``key_results.reads`` lists the entities a key
result's metric reads, so a sync's trouble with a stream shows on the key results it
touches; the next sync fills it.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from okr_targets.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("key_results", sa.Column("reads", sa.JSON(), nullable=True))
    op.create_table(
        "key_result_days",
        sa.Column("key_result_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column("data_cutoff", UTCDateTime(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_result_id"],
            ["key_results.id"],
            name=op.f("fk_key_result_days_key_result_id_key_results"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_key_result_days_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("key_result_id", "day", name=op.f("pk_key_result_days")),
    )
    _carry_over_measurements()


def _carry_over_measurements() -> None:
    """Each key result's last measurement of each UTC day becomes that day's point."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT key_result_id, measured_at, value, data_cutoff, run_id FROM measurements "
            "ORDER BY key_result_id, measured_at, id"
        )
    ).all()
    days: dict[tuple[str, object], dict[str, object]] = {}
    column = UTCDateTime()
    for key_result_id, measured_at, value, data_cutoff, run_id in rows:
        at = column.process_result_value(_parsed(measured_at), bind.dialect)
        assert at is not None
        days[(key_result_id, at.date())] = {
            "key_result_id": key_result_id,
            "day": at.date(),
            "value": value,
            "checked_at": at,
            "data_cutoff": column.process_result_value(_parsed(data_cutoff), bind.dialect),
            "run_id": run_id,
        }
    if days:
        table = sa.table(
            "key_result_days",
            sa.column("key_result_id"),
            sa.column("day", sa.Date()),
            sa.column("value"),
            sa.column("checked_at", UTCDateTime()),
            sa.column("data_cutoff", UTCDateTime()),
            sa.column("run_id"),
        )
        op.bulk_insert(table, list(days.values()))


def _parsed(value: object) -> object:
    """SQLite returns timestamps from a text() query as strings."""
    if isinstance(value, str):
        from datetime import datetime

        return datetime.fromisoformat(value)
    return value


def downgrade() -> None:
    op.drop_table("key_result_days")
    op.drop_column("key_results", "reads")
