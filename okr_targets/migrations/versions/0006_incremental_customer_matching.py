"""customers matched again only where they changed

``customer_link_builds`` names the run that last brought ``customer_links`` up to date
and the rule it matched by; the next sync re-matches only the customers written since.
Matching keys are compared lower-cased, so the plain indexes on ``domain`` and
``external_id`` (which nothing else reads) give way to partial indexes of live customers
on ``lower(key)``, for the primary CRM's ids too.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ("domain", "external_id", "source_id")
PLAIN = ("domain", "external_id")


def upgrade() -> None:
    op.create_table(
        "customer_link_builds",
        sa.Column("crm_source", sa.String(length=32), nullable=False),
        sa.Column("match_by", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_customer_link_builds_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("crm_source", name=op.f("pk_customer_link_builds")),
    )
    for column in PLAIN:
        op.drop_index(f"ix_mirror_customers_{column}", table_name="mirror_customers")
    for key in KEYS:
        op.create_index(
            f"ix_mirror_customers_live_lower_{key}",
            "mirror_customers",
            [sa.text(f"lower({key})"), "source", "source_id"],
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )


def downgrade() -> None:
    for key in KEYS:
        op.drop_index(f"ix_mirror_customers_live_lower_{key}", table_name="mirror_customers")
    for column in PLAIN:
        op.create_index(f"ix_mirror_customers_{column}", "mirror_customers", [column])
    op.drop_table("customer_link_builds")
