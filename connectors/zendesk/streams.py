"""The Zendesk objects okr-sync reads: endpoint, canonical entity and mapping, one row each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connectors.base import StreamInfo
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
SHOW_MANY_PATH = "/api/v2/tickets/show_many.json"
LIST_PAGE_SIZE = 100  # the most Zendesk's cursor pagination allows

Mapper = Callable[[Record, Record | None], CanonicalRow]
"""A record, and what the endpoint sends beside it (a ticket's metric set), to a row."""


@dataclass(frozen=True)
class ZendeskStream:
    """One stream: where it is read (``path``, records under ``key``), how that endpoint
    pages (``paging``: the cursor export, the time-based export or a cursor list) and where
    the reconcile lists live ids (``ids_path``)."""

    info: StreamInfo
    path: str
    key: str
    paging: str  # cursor_export | time_export | list
    ids_path: str
    mapper: Mapper


def _stream(name: str, entity: str) -> StreamInfo:
    return StreamInfo(name=name, entity=entity, cursor_field="updated_at")


STREAMS: dict[str, ZendeskStream] = {
    stream.info.name: stream
    for stream in (
        ZendeskStream(
            _stream("organizations", "customer"),
            ORGANIZATION_EXPORT_PATH,
            "organizations",
            "time_export",
            ORGANIZATIONS_PATH,
            lambda record, _: organization_to_customer(record),
        ),
        ZendeskStream(
            _stream("tickets", "ticket"),
            TICKET_EXPORT_PATH,
            "tickets",
            "cursor_export",
            TICKET_EXPORT_PATH,
            ticket_to_ticket,
        ),
        ZendeskStream(
            _stream("satisfaction_ratings", "rating"),
            RATINGS_PATH,
            "satisfaction_ratings",
            "list",
            RATINGS_PATH,
            # Zendesk's rating carries no organization; the mirror has it on the rated ticket.
            lambda record, _: rating_to_rating(record, None),
        ),
    )
}

ORGANIZATIONS = STREAMS["organizations"].info
TICKETS = STREAMS["tickets"].info
SATISFACTION_RATINGS = STREAMS["satisfaction_ratings"].info
