"""cursors.last_id: resume by (modified time, id) inside a block of equal timestamps;
a finished run's status is "complete" (was "success")

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cursors") as batch:
        batch.add_column(sa.Column("last_id", sa.String(length=64), nullable=True))
    op.execute("UPDATE sync_runs SET status = 'complete' WHERE status = 'success'")


def downgrade() -> None:
    with op.batch_alter_table("cursors") as batch:
        batch.drop_column("last_id")
    op.execute("UPDATE sync_runs SET status = 'success' WHERE status = 'complete'")
