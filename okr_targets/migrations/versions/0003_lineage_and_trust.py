"""key-result kinds and weights, period-close scores, measurement cutoffs and restatements,
frozen baselines, per-source read times

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import okr_targets.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = okr_targets.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("objectives") as batch:
        batch.add_column(sa.Column("weight", sa.Double(), nullable=False, server_default="1"))
    with op.batch_alter_table("key_results") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=20), nullable=False, server_default="increase_to")
        )
        batch.add_column(sa.Column("weight", sa.Double(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("final_score", sa.Double(), nullable=True))
        batch.add_column(sa.Column("scored_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("calendar", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("freshness", sa.JSON(), nullable=True))
    op.execute("UPDATE key_results SET kind = 'decrease_to' WHERE direction = 'decrease'")
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(sa.Column("data_cutoff", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("restates_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_measurements_restates_id_measurements"),
            "measurements",
            ["restates_id"],
            ["id"],
        )
    op.create_table(
        "baselines",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("computed_at", UTC_DATETIME, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_baselines_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_baselines")),
    )
    op.create_table(
        "source_reads",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("read_at", UTC_DATETIME, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_source_reads_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_reads")),
    )


def downgrade() -> None:
    op.drop_table("source_reads")
    op.drop_table("baselines")
    with op.batch_alter_table("measurements") as batch:
        batch.drop_constraint(op.f("fk_measurements_restates_id_measurements"), type_="foreignkey")
        batch.drop_column("restates_id")
        batch.drop_column("data_cutoff")
    with op.batch_alter_table("key_results") as batch:
        for column in ("freshness", "calendar", "scored_at", "final_score", "weight", "kind"):
            batch.drop_column(column)
    with op.batch_alter_table("objectives") as batch:
        batch.drop_column("weight")
