"""The pages every side of the benchmark reads: the endpoints okr-sync's streams read.

One list, so the floor and dlt fetch the same pages from the same emulators as okr-sync.
HubSpot's search pages by offset only up to 10,000 results, so its pages are keyset
queries, as okr-sync's are; its deals' and tickets' companies come from association batch
reads of the records read (not records themselves: they are not counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import requests

from okr_targets.config import load_okrs


@dataclass(frozen=True)
class Endpoint:
    """One stream as a plain HTTP read: where, with which parameters, how it pages."""

    source: str
    name: str  # the stream, whose table it fills (a HubSpot stream reads two listings)
    path: str
    params: dict[str, Any]
    records: str  # the body key holding the page's records
    id_field: str
    paging: str  # "salesforce" (nextRecordsUrl), "export" (after_cursor), "list" (links.next),
    # "after" (HubSpot's paging.next.after), "keyset" (HubSpot search: past the last record),
    # "time" (next_page until end_of_stream)
    method: str = "GET"
    body: dict[str, Any] | None = None  # the JSON request body (HubSpot search)
    associations: str | None = None  # where the records' companies are read (HubSpot)
    part: str = ""  # which of the stream's listings, when it has several ("archived")


def endpoints(okr_file: str) -> list[Endpoint]:
    """The Salesforce, Zendesk and HubSpot endpoints behind the OKR file's streams."""
    from connectors.salesforce.sandbox.data import SCHEMA
    from connectors.salesforce.settings import SalesforceSettings
    from connectors.salesforce.streams import STREAMS as SOBJECTS
    from connectors.zendesk import streams as zendesk

    settings = SalesforceSettings()
    found = []
    for source, stream in load_okrs(okr_file).streams():
        if source == "salesforce":
            sobject = SOBJECTS[stream.name]  # the benchmark's org has every field and object
            fields = ", ".join(sobject.select_fields(settings.field_map, SCHEMA[stream.name]))
            soql = f"SELECT {fields} FROM {stream.name} ORDER BY {stream.cursor_field}, Id"
            verb = "queryAll" if sobject.deletable else "query"
            path = f"/services/data/v{settings.api_version}/{verb}"
            found.append(
                Endpoint(source, stream.name, path, {"q": soql}, "records", "Id", "salesforce")
            )
        elif source == "hubspot":
            found += hubspot_endpoints(stream.name)
        elif stream.name == "tickets":
            params = {"start_time": 0, "include": "metric_sets"}
            found.append(
                Endpoint(
                    source, "tickets", zendesk.TICKET_EXPORT_PATH, params, "tickets", "id", "export"
                )
            )
        elif stream.name == "organizations":
            path, params = zendesk.ORGANIZATION_EXPORT_PATH, {"start_time": 0}
            found.append(Endpoint(source, stream.name, path, params, stream.name, "id", "time"))
        else:
            params = {"page[size]": zendesk.LIST_PAGE_SIZE}
            found.append(
                Endpoint(
                    source, stream.name, zendesk.RATINGS_PATH, params, stream.name, "id", "list"
                )
            )
    return found


def hubspot_endpoints(stream: str) -> list[Endpoint]:
    """A HubSpot stream's reads: owners' two listings; an object's search (keyset pages, the
    API's largest) and its archived listing, with companies for deals and tickets."""
    from connectors.hubspot.mapping import CURSOR_FIELD
    from connectors.hubspot.sandbox.emulator import LIST_PAGE_MAX, OWNERS_PAGE_MAX, SEARCH_PAGE_MAX
    from connectors.hubspot.settings import HubSpotSettings
    from connectors.hubspot.streams import STREAMS

    spec = STREAMS[stream]
    if spec.object_type is None:
        return [
            Endpoint(
                "hubspot",
                stream,
                "/crm/v3/owners/",
                {"limit": OWNERS_PAGE_MAX, "archived": archived},
                "results",
                "id",
                "after",
                part="archived" if archived == "true" else "",
            )
            for archived in ("false", "true")
        ]
    object_type = spec.object_type
    properties = spec.property_names(HubSpotSettings())
    associations = (
        f"/crm/v4/associations/{object_type}/companies/batch/read" if spec.associated else None
    )
    search = {
        "filterGroups": [],
        "sorts": [{"propertyName": CURSOR_FIELD, "direction": "ASCENDING"}],
        "properties": properties,
        "limit": SEARCH_PAGE_MAX,
        "after": "0",
    }
    archived = {"limit": LIST_PAGE_MAX, "archived": "true", "properties": ",".join(properties)}
    path = f"/crm/v3/objects/{object_type}"
    return [
        Endpoint(
            "hubspot",
            stream,
            f"{path}/search",
            {},
            "results",
            "id",
            "keyset",
            "POST",
            search,
            associations,
        ),
        Endpoint(
            "hubspot",
            stream,
            path,
            archived,
            "results",
            "id",
            "after",
            associations=associations,
            part="archived",
        ),
    ]


def keyset_body(endpoint: Endpoint, last: dict[str, Any]) -> dict[str, Any]:
    """The search for what follows ``last`` in (modified time, id) order, the search's own."""
    from connectors.hubspot.mapping import CURSOR_FIELD
    from connectors.hubspot.sandbox.data import to_ms

    at = str(to_ms(last["properties"][CURSOR_FIELD]))
    after_last = [
        {"propertyName": CURSOR_FIELD, "operator": "EQ", "value": at},
        {"propertyName": "hs_object_id", "operator": "GT", "value": str(last["id"])},
    ]
    later = [{"propertyName": CURSOR_FIELD, "operator": "GT", "value": at}]
    groups = [{"filters": after_last}, {"filters": later}]
    return {**(endpoint.body or {}), "filterGroups": groups}


def association_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": [{"id": str(record["id"])} for record in records]}


def hubspot_token(world: dict[str, Any]) -> str:
    return str(world["env"]["OKR_SYNC_HUBSPOT_ACCESS_TOKEN"])


def salesforce_token(world: dict[str, Any]) -> tuple[str, str]:
    """(instance URL, access token) from the sandbox's OAuth client-credentials login."""
    env = world["env"]
    response = requests.post(
        env["OKR_SYNC_SALESFORCE_LOGIN_URL"] + "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": env["OKR_SYNC_SALESFORCE_CLIENT_ID"],
            "client_secret": env["OKR_SYNC_SALESFORCE_CLIENT_SECRET"],
        },
        verify=world["ca_file"],
        timeout=30,
    )
    response.raise_for_status()
    token = orjson.loads(response.content)
    return token["instance_url"], token["access_token"]


def zendesk_auth(world: dict[str, Any]) -> tuple[str, str]:
    env = world["env"]
    return f"{env['OKR_SYNC_ZENDESK_EMAIL']}/token", env["OKR_SYNC_ZENDESK_API_TOKEN"]
