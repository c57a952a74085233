"""finance lines: revenue and cost booked in a ledger, mirrored like every canonical entity

``mirror_finance_lines`` holds one row per booked line (an invoice line, a credit note, a
cost) with its revenue ``amount`` and direct ``cost`` in its own ``currency``, the day it
is booked on, the customer and the segment: what revenue, gross profit and gross margin
are measured from (transforms/metrics/finance.py).

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from okr_targets.models import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "mirror_finance_lines"
LIVE_ONLY = {
    "sqlite_where": sa.text("deleted_at IS NULL"),
    "postgresql_where": sa.text("deleted_at IS NULL"),
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("source_modified_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("segment", sa.String(length=100), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("cost", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("source", "source_id", name=op.f("pk_mirror_finance_lines")),
    )
    op.create_index(
        op.f("ix_mirror_finance_lines_customer_id"), TABLE, ["customer_id"], unique=False
    )
    op.create_index(
        "ix_mirror_finance_lines_live_booked",
        TABLE,
        ["booked_on", "source", "currency", "amount", "cost", "segment", "source_id"],
        **LIVE_ONLY,
    )


def downgrade() -> None:
    op.drop_index("ix_mirror_finance_lines_live_booked", table_name=TABLE)
    op.drop_index(op.f("ix_mirror_finance_lines_customer_id"), table_name=TABLE)
    op.drop_table(TABLE)
