"""objectives and key results removed from the OKR file are retired, not shown live

``retired_at`` is set when a sync saves an OKR file that no longer holds the objective or
key result: the dashboard, exports and roll-up leave it out; its measurements stay for
history and ``okr-sync explain``. A sync that finds it in the file again clears it.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from okr_targets.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("objectives", "key_results"):
        op.add_column(table, sa.Column("retired_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    for table in ("objectives", "key_results"):
        op.drop_column(table, "retired_at")
