"""the wait for the first reply, computed by the database

``mirror_tickets.first_response_ms`` is ``first_response_at - created_at`` in whole
milliseconds, a generated column (virtual on SQLite, which cannot add a stored one; stored
on PostgreSQL, which has no virtual ones). The ticket index holds it instead of
``first_response_at``: the median first response then reads integers from the index and
computes nothing per ticket. PostgreSQL fills the stored column by rewriting the ticket
table once, under a lock: run the upgrade between syncs (``okr-sync db upgrade``).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAIT = {  # as okr_targets.models.MillisecondsBetween renders it, at this revision
    "sqlite": "CAST(round((julianday(first_response_at) - julianday(created_at)) * 86400000) "
    "AS INTEGER)",
    "postgresql": "CAST(round(EXTRACT(EPOCH FROM first_response_at - created_at) * 1000) "
    "AS BIGINT)",
}
INDEX = "ix_mirror_tickets_live_created"
LIVE_ONLY = {
    "sqlite_where": sa.text("deleted_at IS NULL"),
    "postgresql_where": sa.text("deleted_at IS NULL"),
}


def _index(measured: str) -> None:
    op.drop_index(INDEX, table_name="mirror_tickets")
    op.create_index(
        INDEX,
        "mirror_tickets",
        ["created_at", measured, "source", "source_id", "channel", "priority"],
        **LIVE_ONLY,
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column(
        "mirror_tickets",
        sa.Column(
            "first_response_ms",
            sa.BigInteger(),
            sa.Computed(sa.text(WAIT[dialect]), persisted=dialect != "sqlite"),
        ),
    )
    _index("first_response_ms")


def downgrade() -> None:
    _index("first_response_at")
    op.drop_column("mirror_tickets", "first_response_ms")
