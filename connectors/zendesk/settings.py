"""Typed Zendesk credentials and options, read from ``OKR_SYNC_ZENDESK_*``."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import ApiUrl, CaBundle
from connectors.secrets import resolve_secret


class ZendeskSettings(BaseSettings):
    """API-token access to one Zendesk Support account.

    The token comes from ``OKR_SYNC_ZENDESK_API_TOKEN`` or, when
    ``OKR_SYNC_ZENDESK_API_TOKEN_BLOCK`` names one, from a Prefect Secret block. With an
    ``email`` it is an API token (basic auth ``{email}/token``); without, an OAuth token.
    """

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_ZENDESK_", extra="ignore")

    base_url: ApiUrl = Field(
        default="", description="https://{subdomain}.zendesk.com, or the sandbox URL"
    )
    email: str = Field(default="", description="the agent the API token belongs to")
    api_token: SecretStr | None = None
    api_token_block: str | None = None
    ca_bundle: CaBundle = Field(default=None, description="trust this CA file (the sandbox's)")
    timeout: float = Field(default=30.0, gt=0)
    rating_lookback_days: int = Field(
        default=30,
        ge=0,
        description="re-ask this many days of ratings, so surveys answered late are seen",
    )
    csat_locale: str = Field(
        default="en-us",
        description="a locale of the account's Help Center, for reading its CSAT surveys "
        "(GET /api/v2/guide/{locale}/surveys)",
    )
    requests_per_minute: int = Field(
        default=200,
        ge=1,
        description="proactive cap on all API calls to the account: 200 is the Team plan's "
        "limit (Growth and Professional 400, Enterprise 700, High Volume API add-on 2500); "
        "raise it to your plan's",
    )
    export_requests_per_minute: int = Field(
        default=10,
        ge=1,
        description="proactive cap on incremental export calls: Zendesk allows 10 a minute "
        "(30 with the High Volume API add-on)",
    )
    rate_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="the 'minute' both caps count over: Zendesk's is 60 s; tests shorten it "
        "to match an emulator counting over the same window",
    )

    def token(self) -> str:
        return resolve_secret("the Zendesk API token", self.api_token, self.api_token_block)
