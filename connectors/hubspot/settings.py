"""Typed HubSpot credentials and portal options, read from ``OKR_SYNC_HUBSPOT_*``."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from connectors.base import ApiUrl, CaBundle, CalendarDays
from connectors.secrets import resolve_secret


class HubSpotSettings(CalendarDays):
    """A private app's access token for one portal, plus the portal's custom properties.

    Close dates and lifecycle dates become days in the OKR calendar's zone, which the sync
    sets (``calendar_timezone``, see :class:`connectors.base.CalendarDays`).

    The token comes from ``OKR_SYNC_HUBSPOT_ACCESS_TOKEN`` or, when
    ``OKR_SYNC_HUBSPOT_ACCESS_TOKEN_BLOCK`` names one, from a Prefect Secret block.
    """

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_HUBSPOT_", extra="ignore")

    base_url: ApiUrl = Field(
        default="https://api.hubapi.com", description="API root (the sandbox's URL in tests)"
    )
    access_token: SecretStr | None = None
    access_token_block: str | None = None
    ca_bundle: CaBundle = Field(default=None, description="trust this CA file (the sandbox's)")
    timeout: float = Field(default=30.0, gt=0)
    search_requests_per_second: int = Field(
        default=4, ge=1, description="proactive cap on CRM search calls (HubSpot allows ~4-5)"
    )
    requests_per_ten_seconds: int = Field(
        default=100,
        ge=1,
        description="proactive cap on all calls per token (HubSpot's burst limit: 100, or "
        "190 on Professional/Enterprise)",
    )
    churn_date_property: str = "churned_date"

    def token(self) -> str:
        return resolve_secret("the access token", self.access_token, self.access_token_block)
