"""Alembic environment: runs on the engine the store hands over (never a URL from a file)."""

from alembic import context

from okr_targets.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
