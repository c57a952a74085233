"""Process-wide settings from ``OKR_SYNC_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from okr_targets.store import DEFAULT_STORE_URL


class SettingsError(ValueError):
    """An ``OKR_SYNC_*`` variable holds a value its setting refuses; the message is one line."""


def settings_error(exc: ValidationError, prefix: str) -> SettingsError:
    """The validation error as one line naming each refused variable and why. A rule over
    several variables (no one of them named) is its message alone: the values it saw may
    hold a secret."""
    problems = []
    for error in exc.errors(include_url=False):
        if not error["loc"]:
            problems.append(error["msg"].removeprefix("Value error, "))
            continue
        name = prefix + "_".join(str(part) for part in error["loc"]).upper()
        problems.append(f"{name}={str(error.get('input'))[:40]!r}: {error['msg']}")
    return SettingsError("; ".join(problems))


class OneLineSettings(BaseSettings):
    """Settings from ``OKR_SYNC_*`` variables whose refusal is a :class:`SettingsError`:
    one line naming each variable (with the class's ``env_prefix``), never pydantic's
    multi-line report."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            prefix = str(type(self).model_config.get("env_prefix", ""))
            raise settings_error(exc, prefix) from None


class Settings(OneLineSettings):
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
