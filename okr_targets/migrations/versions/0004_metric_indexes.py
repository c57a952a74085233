"""indexes the SQL metrics need: a customer's won deals by close date

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_mirror_deals_customer_outcome_close",
        "mirror_deals",
        ["customer_id", "outcome", "close_on"],
    )


def downgrade() -> None:
    op.drop_index("ix_mirror_deals_customer_outcome_close", table_name="mirror_deals")
