"""The Salesforce objects okr-sync reads: fields, canonical entity and mapping, one row each."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import StreamInfo
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


@dataclass(frozen=True)
class SObjectStream:
    info: StreamInfo
    fields: tuple[str, ...]
    mapper: Mapper
    custom_fields: tuple[str, ...] = ()
    deletable: bool = True  # User and CurrencyType have no IsDeleted: they are deactivated
    id_field: str = "Id"  # the field the mapping makes the canonical source_id

    def select_fields(self, settings: SalesforceSettings) -> list[str]:
        custom = [getattr(settings, name) for name in self.custom_fields]
        return [*_AUDIT, *self.fields, *custom, *(["IsDeleted"] if self.deletable else [])]


def _stream(name: str, entity: str) -> StreamInfo:
    return StreamInfo(name=name, entity=entity, cursor_field=CURSOR_FIELD)


STREAMS: dict[str, SObjectStream] = {
    stream.info.name: stream
    for stream in (
        SObjectStream(
            _stream("CurrencyType", "fx_rate"),
            ("IsoCode", "ConversionRate", "IsCorporate", "IsActive"),
            currency_to_fx_rate,
            deletable=False,
            id_field="IsoCode",
        ),
        SObjectStream(
            _stream("DatedConversionRate", "fx_rate"),
            ("IsoCode", "ConversionRate", "StartDate", "NextStartDate"),
            dated_rate_to_fx_rate,
            deletable=False,
        ),
        SObjectStream(
            _stream("User", "rep"),
            ("Name", "Email", "Department", "IsActive", "DefaultCurrencyIsoCode"),
            user_to_rep,
            custom_fields=("rep_start_date_field", "rep_quota_field"),
            deletable=False,
        ),
        SObjectStream(
            _stream("Account", "customer"),
            ("Name", "OwnerId", "Industry", "Type", "Website"),
            account_to_customer,
            custom_fields=("customer_since_field", "churn_date_field"),
        ),
        SObjectStream(
            _stream("Opportunity", "deal"),
            (
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
            opportunity_to_deal,
        ),
        SObjectStream(
            _stream("Case", "ticket"),
            ("AccountId", "Status", "IsClosed", "Priority", "Origin", "ClosedDate"),
            case_to_ticket,
            custom_fields=("case_first_response_field",),
        ),
    )
}
