"""The Zendesk objects okr-sync reads: endpoint, canonical entity and mapping, one row each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connectors.base import SourceStream, StreamInfo, stream_table
from connectors.canonical import CanonicalRow
from connectors.zendesk.mapping import (
    Record,
    organization_to_customer,
    rating_to_rating,
    ticket_to_ticket,
)

TICKET_EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
ORGANIZATIONS_PATH = "/api/v2/organizations.json"
ORGANIZATION_EXPORT_PATH = "/api/v2/incremental/organizations.json"
RATINGS_PATH = "/api/v2/satisfaction_ratings.json"
SURVEYS_PATH = "/api/v2/guide/{locale}/surveys"
SURVEY_RESPONSES_PATH = "/api/v2/guide/survey_responses"
SHOW_MANY_PATH = "/api/v2/tickets/show_many.json"
LIST_PAGE_SIZE = 100  # the most Zendesk's cursor pagination allows

Mapper = Callable[[Record, Record | None], CanonicalRow]
"""A record, and what the endpoint sends beside it (a ticket's metric set), to a row."""


@dataclass(frozen=True, kw_only=True)
class ZendeskStream(SourceStream[Mapper]):
    """One stream: where it is read (``path``, records under ``key``), how that endpoint
    pages (``paging``: the cursor export, the time-based export or a cursor list) and where
    the reconcile lists live ids (``ids_path``)."""

    path: str
    key: str
    paging: str  # cursor_export | time_export | list | csat
    ids_path: str


def _stream(name: str, entity: str) -> StreamInfo:
    return StreamInfo(name=name, entity=entity, cursor_field="updated_at")


STREAMS: dict[str, ZendeskStream] = stream_table(
    ZendeskStream(
        info=_stream("organizations", "customer"),
        path=ORGANIZATION_EXPORT_PATH,
        key="organizations",
        paging="time_export",
        ids_path=ORGANIZATIONS_PATH,
        mapper=lambda record, _: organization_to_customer(record),
    ),
    ZendeskStream(
        info=_stream("tickets", "ticket"),
        path=TICKET_EXPORT_PATH,
        key="tickets",
        paging="cursor_export",
        ids_path=TICKET_EXPORT_PATH,
        mapper=ticket_to_ticket,
    ),
    ZendeskStream(
        info=_stream("satisfaction_ratings", "rating"),
        path=RATINGS_PATH,
        key="satisfaction_ratings",
        paging="csat",  # the legacy list and/or the current CSAT's survey responses
        ids_path=RATINGS_PATH,
        # Zendesk's rating carries no organization; the mirror has it on the rated ticket.
        mapper=lambda record, _: rating_to_rating(record, None),
    ),
)

ORGANIZATIONS = STREAMS["organizations"].info
TICKETS = STREAMS["tickets"].info
SATISFACTION_RATINGS = STREAMS["satisfaction_ratings"].info

# What a change touches, by the object of a webhook's "zen:event-type:<object>.<change>"
# (Zendesk: https://developer.zendesk.com/api-reference/webhooks/event-types/webhook-event-types/;
# zen:event-type:ticket.* https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events;
# zen:event-type:organization.created/.custom_field_changed/.deleted/.external_id_changed/
# .name_changed/.tags_changed https://developer.zendesk.com/api-reference/webhooks/event-types/organization-events/).
# A CSAT rating has no event type of its own: it arrives as a ticket event, so a ticket's
# change also re-reads the ratings. User events are not in the table: every stream.
CHANGES: dict[str, tuple[str, ...]] = {
    "organization": ("organizations",),
    "ticket": ("tickets", "satisfaction_ratings"),
}
