"""index for ticket_volume's data cutoff: the newest ticket change

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_mirror_tickets_source_modified_at", "mirror_tickets", ["source_modified_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_mirror_tickets_source_modified_at", table_name="mirror_tickets")
