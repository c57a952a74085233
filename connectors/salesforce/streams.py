"""The Salesforce objects okr-sync reads: fields, canonical entity and mapping, one row each."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import SourceStream, StreamInfo, stream_table
from connectors.salesforce.mapping import (
    CURSOR_FIELD,
    Mapper,
    account_to_customer,
    case_to_ticket,
    currency_to_fx_rate,
    dated_rate_to_fx_rate,
    opportunity_to_deal,
    user_to_rep,
)
from connectors.salesforce.settings import SalesforceSettings

_AUDIT = ("Id", "CreatedDate", "LastModifiedDate", CURSOR_FIELD)


@dataclass(frozen=True, kw_only=True)
class SObjectStream(SourceStream[Mapper]):
    """One stream: an SObject read through SOQL, with the fields it selects."""

    fields: tuple[str, ...]
    custom_fields: tuple[str, ...] = ()  # settings fields that name custom SObject fields
    deletable: bool = True  # User and CurrencyType have no IsDeleted: they are deactivated
    id_field: str = "Id"  # the field the mapping makes the canonical source_id

    def select_fields(self, settings: SalesforceSettings) -> list[str]:
        custom = [getattr(settings, name) for name in self.custom_fields]
        return [*_AUDIT, *self.fields, *custom, *(["IsDeleted"] if self.deletable else [])]


def _stream(name: str, entity: str) -> StreamInfo:
    return StreamInfo(name=name, entity=entity, cursor_field=CURSOR_FIELD)


STREAMS: dict[str, SObjectStream] = stream_table(
    SObjectStream(
        info=_stream("CurrencyType", "fx_rate"),
        fields=("IsoCode", "ConversionRate", "IsCorporate", "IsActive"),
        mapper=currency_to_fx_rate,
        deletable=False,
        id_field="IsoCode",
    ),
    SObjectStream(
        info=_stream("DatedConversionRate", "fx_rate"),
        fields=("IsoCode", "ConversionRate", "StartDate", "NextStartDate"),
        mapper=dated_rate_to_fx_rate,
        deletable=False,
    ),
    SObjectStream(
        info=_stream("User", "rep"),
        fields=("Name", "Email", "Department", "IsActive", "DefaultCurrencyIsoCode"),
        mapper=user_to_rep,
        custom_fields=("rep_start_date_field", "rep_quota_field"),
        deletable=False,
    ),
    SObjectStream(
        info=_stream("Account", "customer"),
        fields=("Name", "OwnerId", "Industry", "Type", "Website"),
        mapper=account_to_customer,
        custom_fields=("customer_since_field", "churn_date_field"),
    ),
    SObjectStream(
        info=_stream("Opportunity", "deal"),
        fields=(
            "Name",
            "AccountId",
            "OwnerId",
            "Amount",
            "CurrencyIsoCode",
            "StageName",
            "IsClosed",
            "IsWon",
            "Type",
            "CloseDate",
        ),
        mapper=opportunity_to_deal,
    ),
    SObjectStream(
        info=_stream("Case", "ticket"),
        fields=("AccountId", "Status", "IsClosed", "Priority", "Origin", "ClosedDate"),
        mapper=case_to_ticket,
        custom_fields=("case_first_response_field",),
    ),
)
