"""Typed settings of the generic SQL source, read from ``OKR_SYNC_SQL_*``."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from okr_sync.secrets import resolve_secret


class SqlSettings(BaseSettings):
    """Any database SQLAlchemy reaches: a billing database, a product-usage warehouse.

    The URL is a secret (it may carry a password): it comes from ``OKR_SYNC_SQL_URL`` or
    from the Prefect Secret block named in ``OKR_SYNC_SQL_URL_BLOCK``, and is never logged.
    """

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_SQL_", extra="ignore")

    url: SecretStr | None = None
    url_block: str | None = None
    tables: dict[str, str] = Field(
        default_factory=dict,
        description='stream -> table or view, as JSON, e.g. {"deals": "okr_deals"}; '
        "default: the stream's name",
    )
    db_schema: str | None = Field(default=None, description="schema holding the tables")
    id_column: str = "id"
    updated_at_column: str = "updated_at"
    deleted_at_column: str = Field(
        default="deleted_at", description="read when the table has it: set means deleted"
    )
    timezone: str = Field(default="UTC", description="IANA zone of timestamps stored without one")
    page_size: int = Field(default=1000, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
        return value

    def database_url(self) -> str:
        return resolve_secret("the SQL source's URL", self.url, self.url_block)
