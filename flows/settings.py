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
        default=50_000, ge=1, description="records validated and committed together"
    )
    lookback_seconds: float = Field(
        default=60.0, ge=0, description="how far before the saved cursor each read starts"
    )
    retry_budget_seconds: float = Field(
        default=300.0, ge=0, description="total time a stream may spend retrying 429/5xx/timeouts"
    )
    retry_initial_seconds: float = Field(default=1.0, gt=0, description="first backoff")
    retry_max_seconds: float = Field(default=60.0, gt=0, description="longest single backoff")
    lock_wait_seconds: float = Field(
        default=600.0,
        ge=0,
        le=86_400,
        description="how long a sync waits for another writing to the store (0: refuse at once)",
    )
