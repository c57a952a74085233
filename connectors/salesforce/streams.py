"""The Salesforce objects okr-sync reads: fields, canonical entity and mapping, one row each."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from connectors.base import Gap, SourceStream, StreamInfo, stream_table
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
from connectors.salesforce.settings import FieldMap

_AUDIT = ("Id", "CreatedDate", "LastModifiedDate", CURSOR_FIELD)
FIELD_MAP_SETTING = "OKR_SYNC_SALESFORCE_FIELD_MAP"


@dataclass(frozen=True)
class Mapped:
    """A value the org keeps in a field of its choosing: the FieldMap entry that names the
    field, the canonical field it fills, and what it is, for the gap line."""

    key: str
    need: str
    what: str


@dataclass(frozen=True, kw_only=True)
class SObjectStream(SourceStream[Mapper]):
    """One stream: an SObject read through SOQL, with the fields it selects.

    Only the fields the org's describe lists are selected: an org without multi-currency
    has no ``CurrencyIsoCode``, an integration user may not see a field. ``requires`` says
    which org feature the object comes with, for the line that skips it when it is absent.
    """

    fields: tuple[str, ...]
    mapped: tuple[Mapped, ...] = ()
    deletable: bool = True  # User and CurrencyType have no IsDeleted: they are deactivated
    id_field: str = "Id"  # the field the mapping makes the canonical source_id
    requires: str = ""  # the org feature that brings the object (empty: every edition)

    def mapped_fields(self, field_map: FieldMap) -> list[tuple[Mapped, str]]:
        """Each mapped value the settings name a field for, with that field."""
        named = ((mapped, getattr(field_map, mapped.key)) for mapped in self.mapped)
        return [(mapped, field) for mapped, field in named if field]

    def select_fields(self, field_map: FieldMap, existing: Collection[str]) -> list[str]:
        """The fields to SELECT: ours and the mapped ones, those the org has."""
        mapped = [field for _, field in self.mapped_fields(field_map)]
        deleted = ["IsDeleted"] if self.deletable else []
        wanted = dict.fromkeys([*_AUDIT, *self.fields, *mapped, *deleted])
        return [field for field in wanted if field in existing]

    def gaps(self, field_map: FieldMap, existing: Collection[str]) -> list[Gap]:
        """The canonical fields this stream cannot fill: mapped values the settings leave
        unset, and defaults (``Industry``) the org's describe does not list."""
        found = []
        for mapped in self.mapped:
            field = getattr(field_map, mapped.key)
            if field and field in existing:
                continue
            lacks = f"no {mapped.what} field mapped" if not field else f"no {field} field"
            found.append(
                Gap(
                    mapped.need,
                    f"Salesforce {self.name} has {lacks}; set "
                    f'{FIELD_MAP_SETTING}={{"{mapped.key}": "<{self.name} field>"}}',
                )
            )
        return found


def _stream(name: str, entity: str) -> StreamInfo:
    return StreamInfo(name=name, entity=entity, cursor_field=CURSOR_FIELD)


STREAMS: dict[str, SObjectStream] = stream_table(
    SObjectStream(
        info=_stream("CurrencyType", "fx_rate"),
        fields=("IsoCode", "ConversionRate", "IsCorporate", "IsActive"),
        mapper=currency_to_fx_rate,
        deletable=False,
        id_field="IsoCode",
        requires="multiple currencies (a single-currency org reports in its company currency)",
    ),
    SObjectStream(
        info=_stream("DatedConversionRate", "fx_rate"),
        fields=("IsoCode", "ConversionRate", "StartDate", "NextStartDate"),
        mapper=dated_rate_to_fx_rate,
        deletable=False,
        requires="advanced currency management (CurrencyType's rates are used)",
    ),
    SObjectStream(
        info=_stream("User", "rep"),
        fields=("Name", "Email", "IsActive", "DefaultCurrencyIsoCode"),
        mapped=(
            Mapped("team", "rep.team", "team"),
            Mapped("rep_started_on", "rep.started_on", "rep start date"),
            Mapped("monthly_quota", "rep.monthly_quota", "monthly quota"),
        ),
        mapper=user_to_rep,
        deletable=False,
    ),
    SObjectStream(
        info=_stream("Account", "customer"),
        fields=("Name", "OwnerId", "Type", "Website"),
        mapped=(
            Mapped("segment", "customer.segment", "segment"),
            Mapped("customer_since", "customer.became_customer_on", "customer-since date"),
            Mapped("churned_on", "customer.churned_on", "churn date"),
        ),
        mapper=account_to_customer,
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
        mapped=(Mapped("first_response_at", "ticket.first_response_at", "first response time"),),
        mapper=case_to_ticket,
    ),
)

# What a change touches, by the SObject a webhook names: each object is its own stream.
# Salesforce itself sends no signed webhook; the Flow or Apex callout in
# docs/operations.md section 4 names the SObject's API name as "type" (Opportunity,
# Account, Case, User, CurrencyType, DatedConversionRate), so the table is the stream names.
# An Opportunity's Account is read by the Account stream: its change is an Account event.
CHANGES: dict[str, tuple[str, ...]] = {name: (name,) for name in STREAMS}
