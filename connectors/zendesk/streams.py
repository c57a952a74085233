"""The Zendesk objects okr-sync reads, what each becomes, and the endpoint serving it."""

from __future__ import annotations

from connectors.base import StreamInfo

ORGANIZATIONS = StreamInfo(name="organizations", entity="customer", cursor_field="updated_at")
TICKETS = StreamInfo(name="tickets", entity="ticket", cursor_field="updated_at")
SATISFACTION_RATINGS = StreamInfo(
    name="satisfaction_ratings", entity="rating", cursor_field="updated_at"
)
STREAMS = (ORGANIZATIONS, TICKETS, SATISFACTION_RATINGS)

TICKET_EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
ORGANIZATIONS_PATH = "/api/v2/organizations.json"
ORGANIZATION_EXPORT_PATH = "/api/v2/incremental/organizations.json"
RATINGS_PATH = "/api/v2/satisfaction_ratings.json"
SHOW_MANY_PATH = "/api/v2/tickets/show_many.json"
LIST_PAGE_SIZE = 100  # the most Zendesk's cursor pagination allows
