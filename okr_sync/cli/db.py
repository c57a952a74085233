"""``okr-sync db``: the store's schema."""

from __future__ import annotations

import typer

from okr_sync.cli.console import out
from okr_sync.cli.options import StoreOption, open_store

db_app = typer.Typer(help="Manage the OKR store's schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(store: StoreOption = None) -> None:
    """Apply the Alembic migrations to the store (also done on first use)."""
    opened = open_store(store)
    out.print(f"{opened.display_url} is at schema revision {opened.revision()}")
    opened.dispose()
