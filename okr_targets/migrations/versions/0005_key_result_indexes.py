"""indexes that answer the key-result queries over live records alone

Partial indexes of live rows (``deleted_at IS NULL``) holding every column the metrics
filter, group or sum, so SQLite and PostgreSQL read no table row to compute them; they
replace the plain indexes they cover. Plus the newest ticket change (ticket_volume's
cutoff).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_ONLY = {
    "sqlite_where": sa.text("deleted_at IS NULL"),
    "postgresql_where": sa.text("deleted_at IS NULL"),
}
COVERING = {
    "mirror_deals": {
        "ix_mirror_deals_live_closed": [
            *("outcome", "close_on", "source", "source_id", "owner_id", "customer_id"),
            *("currency", "home_currency", "amount", "amount_home", "created_at"),
        ],
        "ix_mirror_deals_live_customer_won": [
            *("source", "customer_id", "outcome", "close_on", "source_id")
        ],
    },
    "mirror_tickets": {
        "ix_mirror_tickets_live_created": [
            *("created_at", "first_response_at", "source", "source_id", "channel", "priority")
        ],
    },
    "mirror_ratings": {
        "ix_mirror_ratings_live_rated": [
            *("rated_at", "good", "scale_max", "score", "source", "source_id")
        ],
    },
    "mirror_customers": {
        "ix_mirror_customers_live_since": [
            *("became_customer_on", "churned_on", "source", "segment", "source_id")
        ],
    },
}
REPLACED = {  # plain indexes the covering ones make redundant: (table, name, columns)
    ("mirror_deals", "ix_mirror_deals_outcome_close", ("outcome", "close_on")),
    (
        "mirror_deals",
        "ix_mirror_deals_customer_outcome_close",
        ("customer_id", "outcome", "close_on"),
    ),
    ("mirror_tickets", "ix_mirror_tickets_created_at", ("created_at",)),
    ("mirror_ratings", "ix_mirror_ratings_rated_at", ("rated_at",)),
}


PRICED = "deleted_at IS NULL AND amount IS NOT NULL"


def upgrade() -> None:
    for table, name, _ in sorted(REPLACED):
        op.drop_index(name, table_name=table)
    for table, indexes in COVERING.items():
        for name, columns in indexes.items():
            op.create_index(name, table, columns, **LIVE_ONLY)
    op.create_index(  # the priced deals per currency (the unconvertible-currency check)
        "ix_mirror_deals_live_currency",
        "mirror_deals",
        ["source", "currency", "amount_home"],
        sqlite_where=sa.text(PRICED),
        postgresql_where=sa.text(PRICED),
    )
    op.create_index(
        "ix_mirror_tickets_source_modified_at", "mirror_tickets", ["source_modified_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_mirror_tickets_source_modified_at", table_name="mirror_tickets")
    op.drop_index("ix_mirror_deals_live_currency", table_name="mirror_deals")
    for table, indexes in COVERING.items():
        for name in indexes:
            op.drop_index(name, table_name=table)
    for table, name, columns in sorted(REPLACED):
        op.create_index(name, table, list(columns))
