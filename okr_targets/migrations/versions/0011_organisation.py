"""the OKR file's company name and its people map, for the dashboard's header and names

``organisation`` holds one row: the file's ``company:`` and its optional ``people:`` map
(lower-case e-mail -> name and team), written by each sync that saves the OKR file. Until
the next sync it is empty: the dashboard shows no company name and the CRM's names only.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from okr_targets.models import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company", sa.Text(), nullable=False),
        sa.Column("people", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation")),
    )


def downgrade() -> None:
    op.drop_table("organisation")
