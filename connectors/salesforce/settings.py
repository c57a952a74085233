"""Typed Salesforce credentials and org options, read from ``OKR_SYNC_SALESFORCE_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.secrets import resolve_secret


class SalesforceSettings(BaseSettings):
    """OAuth 2.0 client-credentials login to one org, plus the org's custom fields.

    The secret comes from ``OKR_SYNC_SALESFORCE_CLIENT_SECRET`` or, when
    ``OKR_SYNC_SALESFORCE_CLIENT_SECRET_BLOCK`` names one, from a Prefect Secret block.
    """

    model_config = SettingsConfigDict(env_prefix="OKR_SYNC_SALESFORCE_", extra="ignore")

    login_url: str = Field(
        default="https://login.salesforce.com",
        description="My Domain URL (https://acme.my.salesforce.com) or the sandbox URL",
    )
    client_id: str = ""
    client_secret: SecretStr | None = None
    client_secret_block: str | None = None
    api_version: str = "59.0"
    ca_bundle: Path | None = Field(default=None, description="trust this CA file (the sandbox's)")
    timeout: float = Field(default=30.0, gt=0)
    rep_start_date_field: str = "Start_Date__c"
    rep_quota_field: str = "Monthly_Quota__c"
    customer_since_field: str = "Customer_Since__c"
    churn_date_field: str = "Churn_Date__c"
    case_first_response_field: str = "First_Response__c"
    quota_stop_fraction: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="stop (partial run) once this share of the org's daily API quota is used, "
        "as reported by Sforce-Limit-Info, leaving the rest for the org's other integrations",
    )
    dated_rates: bool = Field(
        default=True,
        description="read DatedConversionRate (orgs with advanced currency management)",
    )

    def secret(self) -> str:
        return resolve_secret("the client secret", self.client_secret, self.client_secret_block)
