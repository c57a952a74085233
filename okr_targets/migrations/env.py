"""Alembic environment: runs on the engine the store hands over (never a URL from a file).

On SQLite, a batch migration rebuilds a table (copy, drop, rename); with foreign keys
enforced, dropping ``measurements`` would cascade to its lineage rows. Enforcement is off
while migrating (SQLite ignores the pragma inside a transaction, so it is set before) and
the keys are checked once the migration is done.
"""

from alembic import context
from sqlalchemy import text

from okr_targets.models import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    with connection.begin():
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=sqlite
        )
        context.run_migrations()
        if sqlite:
            broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise RuntimeError(f"migration left {len(broken)} broken foreign key(s)")
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
