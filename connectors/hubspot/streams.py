"""The HubSpot objects okr-sync reads: properties, canonical entity and mapping, one row each."""

from __future__ import annotations

from dataclasses import dataclass

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
    properties: tuple[str, ...]
    custom_properties: tuple[str, ...] = ()  # settings fields that name portal properties
    associated: bool = False  # needs its company through the v4 associations API
    pipelines: bool = False  # maps stage ids through the object's pipelines
    home_currency: bool = False  # needs the portal's company currency

    def property_names(self, settings: HubSpotSettings) -> list[str]:
        custom = [getattr(settings, name) for name in self.custom_properties]
        return list(dict.fromkeys([*_AUDIT, *self.properties, *custom]))


STREAMS: dict[str, HubSpotStream] = stream_table(
    HubSpotStream(
        info=StreamInfo("owners", "rep", OWNER_CURSOR_FIELD),
        object_type=None,
        properties=(),
        mapper=owner_to_rep,
    ),
    HubSpotStream(
        info=StreamInfo("companies", "customer", CURSOR_FIELD),
        object_type="companies",
        properties=(
            "name",
            "domain",
            "industry",
            "lifecyclestage",
            "hubspot_owner_id",
            "hs_lifecyclestage_customer_date",
        ),
        mapper=company_to_customer,
        custom_properties=("churn_date_property",),
    ),
    HubSpotStream(
        info=StreamInfo("deals", "deal", CURSOR_FIELD),
        object_type="deals",
        properties=(
            "dealname",
            "amount",
            "deal_currency_code",
            "amount_in_home_currency",
            "dealstage",
            "pipeline",
            "closedate",
            "hubspot_owner_id",
            "dealtype",
        ),
        mapper=deal_to_deal,
        associated=True,
        pipelines=True,
        home_currency=True,
    ),
    HubSpotStream(
        info=StreamInfo("tickets", "ticket", CURSOR_FIELD),
        object_type="tickets",
        properties=(
            "subject",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hs_ticket_priority",
            "source_type",
            "closed_date",
            "first_agent_reply_date",
        ),
        mapper=ticket_to_ticket,
        associated=True,
        pipelines=True,
    ),
)
