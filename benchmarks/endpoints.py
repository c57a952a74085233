"""The pages every side of the benchmark reads: the endpoints okr-sync's streams read.

One list, so the floor and dlt fetch the same pages from the same emulators as okr-sync.
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
    name: str
    path: str
    params: dict[str, Any]
    records: str  # the body key holding the page's records
    id_field: str
    paging: str  # "salesforce" (nextRecordsUrl), "export" (after_cursor), "list" (links.next),
    # "time" (next_page until end_of_stream)


def endpoints(okr_file: str) -> list[Endpoint]:
    """The Salesforce and Zendesk endpoints behind the OKR file's streams."""
    from connectors.salesforce.settings import SalesforceSettings
    from connectors.salesforce.streams import STREAMS as SOBJECTS
    from connectors.zendesk import streams as zendesk

    settings = SalesforceSettings()
    found = []
    for source, stream in load_okrs(okr_file).streams():
        if source == "salesforce":
            if stream.name == "DatedConversionRate" and not settings.dated_rates:
                continue
            sobject = SOBJECTS[stream.name]
            fields = ", ".join(sobject.select_fields(settings))
            soql = f"SELECT {fields} FROM {stream.name} ORDER BY {stream.cursor_field}, Id"
            verb = "queryAll" if sobject.deletable else "query"
            path = f"/services/data/v{settings.api_version}/{verb}"
            found.append(
                Endpoint(source, stream.name, path, {"q": soql}, "records", "Id", "salesforce")
            )
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
