"""Typed settings of the generic SQL source, read from ``OKR_SYNC_SQL_*``."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from connectors.secrets import resolve_secret
from connectors.tabular import TableSettings


class SqlSettings(TableSettings):
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

    def database_url(self) -> str:
        return resolve_secret("the SQL source's URL", self.url, self.url_block)
