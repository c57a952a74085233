"""Typed Salesforce credentials and org options, read from ``OKR_SYNC_SALESFORCE_*``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import ApiUrl, CaBundle
from connectors.secrets import resolve_secret


class FieldMap(BaseModel):
    """Which of the org's fields holds what a metric needs (``OKR_SYNC_SALESFORCE_FIELD_MAP``).

    Real orgs keep a customer's start, a churn date or a rep's quota in custom fields of
    their own naming, or nowhere: nothing is assumed. A standard field is the default only
    where Salesforce has one that means the same thing; an unmapped entry is reported as a
    gap on the key results that need it, never read from an invented field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_since: str | None = Field(default=None, description="Account date: became a customer")
    churned_on: str | None = Field(
        default=None, description="Account date: stopped being a customer"
    )
    segment: str | None = Field(
        default="Industry", description="Account field: the customer's segment"
    )
    first_response_at: str | None = Field(
        default=None, description="Case datetime: first agent reply"
    )
    rep_started_on: str | None = Field(default=None, description="User date: the rep's start")
    monthly_quota: str | None = Field(
        default=None, description="User number: the rep's monthly quota"
    )
    team: str | None = Field(default="Department", description="User field: the rep's team")


class SalesforceSettings(BaseSettings):
    """OAuth 2.0 client-credentials login to one org, plus where the org keeps what we need.

    The secret comes from ``OKR_SYNC_SALESFORCE_CLIENT_SECRET`` or, when
    ``OKR_SYNC_SALESFORCE_CLIENT_SECRET_BLOCK`` names one, from a Prefect Secret block.
    There is no default login URL: login.salesforce.com refuses the client-credentials
    flow, which needs the org's own My Domain URL.
    """

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_SALESFORCE_", extra="ignore")

    login_url: ApiUrl | None = Field(
        default=None,
        description="My Domain URL (https://acme.my.salesforce.com) or the sandbox URL",
    )
    client_id: str = ""
    client_secret: SecretStr | None = None
    client_secret_block: str | None = None
    api_version: str = "59.0"
    ca_bundle: CaBundle = Field(default=None, description="trust this CA file (the sandbox's)")
    timeout: float = Field(default=30.0, gt=0)
    field_map: FieldMap = FieldMap()
    quota_stop_fraction: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="stop (partial run) once this share of the org's daily API quota is used, "
        "as reported by Sforce-Limit-Info, leaving the rest for the org's other integrations",
    )

    def secret(self) -> str:
        return resolve_secret("the client secret", self.client_secret, self.client_secret_block)
