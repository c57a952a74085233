"""Options several commands share, and opening the store they name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer

from flows.settings import OneLineSettings, Settings, SettingsError
from okr_sync.cli.console import fail
from okr_targets.store import Store, StoreError

AnySettings = TypeVar("AnySettings", bound=OneLineSettings)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="SQLAlchemy URL of the OKR store "
        "[default: $OKR_SYNC_STORE_URL or sqlite:///okr-sync.db]",
    ),
]
OkrFileOption = Annotated[
    Path | None,
    typer.Option(
        "--okr-file", help="OKRs-as-code YAML file [default: $OKR_SYNC_OKR_FILE or okrs.yaml]"
    ),
]


def settings() -> Settings:
    """The ``OKR_SYNC_*`` settings, or the one-line error naming the variable refused."""
    return settings_of(Settings)


def settings_of(kind: type[AnySettings]) -> AnySettings:
    """A command's settings (``Settings``, ``ServeSettings``, ``WebhookSettings``), or the
    one-line error naming the variable refused."""
    try:
        return kind()
    except SettingsError as exc:
        raise fail(str(exc)) from None


def store_url(store: str | None) -> str:
    return store or settings().store_url


def okr_file_or_default(path: Path | None) -> Path:
    return path or settings().okr_file


def open_store(store: str | None) -> Store:
    """Open (and migrate) the store, or end with its one-line error."""
    try:
        return Store.open(store_url(store))
    except StoreError as exc:
        raise fail(str(exc)) from None
