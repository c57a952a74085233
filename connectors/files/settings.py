"""Typed settings of the file source, read from ``OKR_SYNC_FILES_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from connectors.tabular import TableSettings


class FilesSettings(TableSettings):
    """A directory of exports (CSV or Excel), one file per stream, re-read on every sync."""

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_FILES_", extra="ignore")

    directory: Path | None = Field(default=None, description="where the exports are")
    files: dict[str, str] = Field(
        default_factory=dict,
        description='stream -> file name in the directory, as JSON, e.g. {"deals": '
        '"Deals export.xlsx"}; default: STREAM.csv, else STREAM.xlsx',
    )
