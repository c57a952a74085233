"""Typed settings of the file source, read from ``OKR_SYNC_FILES_*``."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class FilesSettings(BaseSettings):
    """A directory of exports (CSV or Excel), one file per stream, re-read on every sync."""

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_FILES_", extra="ignore")

    directory: Path | None = Field(default=None, description="where the exports are")
    files: dict[str, str] = Field(
        default_factory=dict,
        description='stream -> file name in the directory, as JSON, e.g. {"deals": '
        '"Deals export.xlsx"}; default: STREAM.csv, else STREAM.xlsx',
    )
    id_column: str = "id"
    updated_at_column: str = "updated_at"
    deleted_at_column: str = "deleted_at"
    timezone: str = Field(
        default="UTC",
        description="IANA zone of timestamps written without an offset (spreadsheets "
        "usually are): they are read as that zone's wall time and stored in UTC",
    )
    page_size: int = Field(default=1000, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
        return value
