"""The HubSpot objects okr-sync reads: properties, canonical entity and mapping, one row each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.base import SourceStream, StreamInfo, stream_table
from connectors.hubspot.mapping import (
    CURSOR_FIELD,
    OWNER_CURSOR_FIELD,
    Mapper,
    company_to_customer,
    deal_to_deal,
    owner_to_rep,
    ticket_to_ticket,
)
from connectors.hubspot.settings import HubSpotSettings

_AUDIT = ("hs_object_id", "createdate", CURSOR_FIELD)


@dataclass(frozen=True, kw_only=True)
class HubSpotStream(SourceStream[Mapper]):
    """One stream: a CRM object read through search (or the owners list when no object)."""

    object_type: str | None
    properties: Mapping[str, str]  # property -> the canonical field it fills
    custom_properties: Mapping[str, str] = field(default_factory=dict)  # setting -> field
    associated: bool = False  # needs its company through the v4 associations API
    pipelines: bool = False  # maps stage ids through the object's pipelines
    home_currency: bool = False  # needs the portal's company currency
    local_days: bool = False  # cuts instants into days in the OKR calendar's zone

    def property_names(self, settings: HubSpotSettings) -> list[str]:
        custom = [getattr(settings, name) for name in self.custom_properties]
        return list(dict.fromkeys([*_AUDIT, *self.properties, *custom]))

    def field_of(self, name: str, settings: HubSpotSettings) -> str:
        """The canonical field a property fills (``deal.close_on``), for messages."""
        custom = {getattr(settings, key): kept for key, kept in self.custom_properties.items()}
        filled = self.properties.get(name) or custom.get(name) or "its audit fields"
        return f"{self.info.entity}.{filled}"


STREAMS: dict[str, HubSpotStream] = stream_table(
    HubSpotStream(
        info=StreamInfo("owners", "rep", OWNER_CURSOR_FIELD),
        object_type=None,
        properties={},
        mapper=owner_to_rep,
    ),
    HubSpotStream(
        info=StreamInfo("companies", "customer", CURSOR_FIELD),
        object_type="companies",
        properties={
            "name": "name",
            "domain": "domain",
            "industry": "segment",
            "hubspot_owner_id": "owner_id",
            "hs_lifecyclestage_customer_date": "became_customer_on",
        },
        mapper=company_to_customer,
        custom_properties={"churn_date_property": "churned_on"},
        local_days=True,
    ),
    HubSpotStream(
        info=StreamInfo("deals", "deal", CURSOR_FIELD),
        object_type="deals",
        properties={
            "dealname": "name",
            "amount": "amount",
            "deal_currency_code": "currency",
            "amount_in_home_currency": "amount_home",
            "dealstage": "stage",
            "pipeline": "pipeline",
            "closedate": "close_on",
            "hubspot_owner_id": "owner_id",
            "dealtype": "deal_type",
        },
        mapper=deal_to_deal,
        associated=True,
        pipelines=True,
        home_currency=True,
        local_days=True,
    ),
    HubSpotStream(
        info=StreamInfo("tickets", "ticket", CURSOR_FIELD),
        object_type="tickets",
        properties={
            "hs_pipeline": "status",
            "hs_pipeline_stage": "status",
            "hs_ticket_priority": "priority",
            "source_type": "channel",
            "closed_date": "solved_at",
            "first_agent_reply_date": "first_response_at",
        },
        mapper=ticket_to_ticket,
        associated=True,
        pipelines=True,
    ),
)

# What a change touches, by a webhook's subscriptionType, "<object>.<change>" with change
# creation, deletion, propertyChange, associationChange, merge or restore (HubSpot:
# https://developers.hubspot.com/docs/api/webhooks, the subscription types; merge, restore
# and associationChange: https://developers.hubspot.com/changelog/new-subscription-types-for-webhooks).
# Deals and tickets carry their company through associations, so a company's association
# change re-reads them too. Owners send no webhook; contacts, products, line items and the
# generic "object.*" types are not in the table: they re-read every stream.
CHANGES: dict[str, tuple[str, ...]] = {
    "company": ("companies",),
    "company.associationChange": ("companies", "deals", "tickets"),
    "deal": ("deals",),
    "ticket": ("tickets",),
}
