"""Process-wide settings from ``OKR_SYNC_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from okr_targets.store import DEFAULT_STORE_URL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_", env_file=".env", extra="ignore")

    store_url: str = Field(default=DEFAULT_STORE_URL, description="SQLAlchemy URL of the OKR store")
    okr_file: Path = Field(default=Path("okrs.yaml"), description="the OKRs-as-code YAML file")
    batch_size: int = Field(
        default=10_000, ge=1, description="records validated and committed together"
    )
    lookback_seconds: float = Field(
        default=60.0, ge=0, description="how far before the saved cursor each read starts"
    )
    retries: int = Field(default=3, ge=0, description="task retries on retriable source errors")
    retry_delay_seconds: list[float] = Field(default=[2.0, 10.0, 30.0])
