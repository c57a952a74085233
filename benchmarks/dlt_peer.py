"""The peer: dlt's rest_api source loading the same endpoints into SQLite.

Configured as a data team would: one resource per endpoint, the APIs' own paginators,
``append`` into dlt's SQLAlchemy destination on a SQLite file (the store's database kind).
HubSpot's search pages with a small paginator of our own (keyset, as okr-sync and the floor
page it: offsets stop at 10,000 results), and deals' and tickets' companies come from a
transformer that reads them for each page (dlt hands a transformer one page at a time).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import orjson
from dlt.sources.helpers.rest_client.paginators import BasePaginator

from benchmarks.endpoints import (
    Endpoint,
    association_body,
    endpoints,
    hubspot_token,
    keyset_body,
    salesforce_token,
    zendesk_auth,
)
from benchmarks.measure import cpu_seconds, peak_rss_mb


def run(world: dict[str, Any], okr_file: str, database: str) -> dict[str, Any]:
    import dlt
    from dlt.sources.helpers.rest_client import RESTClient
    from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
    from dlt.sources.helpers.rest_client.paginators import (
        JSONLinkPaginator,
        JSONResponseCursorPaginator,
    )
    from dlt.sources.rest_api import rest_api_source

    class _TimeExportPaginator(JSONLinkPaginator):
        """Zendesk's time-based export always has a next_page: stop at end_of_stream."""

        def update_state(self, response: Any, data: Any = None) -> None:
            super().update_state(response, data)
            if response.json().get("end_of_stream", True):
                self._has_next_page = False

    started = time.perf_counter()
    # The three emulators have their own CAs; requests (dlt's client) takes one bundle.
    bundle = os.path.join(tempfile.mkdtemp(prefix="okr-bench-dlt-"), "ca.pem")
    with open(bundle, "w") as out:
        for name in ("ca_file", "zendesk_ca_file", "hubspot_ca_file"):
            with open(world[name]) as handle:
                out.write(handle.read())
    os.environ["REQUESTS_CA_BUNDLE"] = bundle
    # SQLite takes one writer: dlt's parallel load jobs failed with "database is locked"
    # at 1M deals, so load with one worker, as dlt advises for SQLite.
    os.environ.setdefault("LOAD__WORKERS", "1")
    instance_url, token = salesforce_token(world)
    resources: dict[str, list[Any]] = {"salesforce": [], "zendesk": [], "hubspot": []}
    enriched: list[tuple[str, Endpoint]] = []  # (resource, endpoint) whose companies to read
    for endpoint in endpoints(okr_file):
        if endpoint.paging == "salesforce":
            paginator: Any = JSONLinkPaginator(next_url_path="nextRecordsUrl")
        elif endpoint.paging == "export":
            paginator = JSONResponseCursorPaginator(
                cursor_path="after_cursor", cursor_param="cursor", stop_after_empty_page=True
            )
        elif endpoint.paging == "after":
            paginator = JSONResponseCursorPaginator(
                cursor_path="paging.next.after", cursor_param="after"
            )
        elif endpoint.paging == "keyset":
            paginator = KeysetPaginator(endpoint)
        elif endpoint.paging == "time":
            paginator = _TimeExportPaginator(next_url_path="next_page")
        else:
            paginator = JSONLinkPaginator(next_url_path="links.next")
        table = f"{endpoint.source}_{endpoint.name}".lower()
        name = f"{table}_{endpoint.part}" if endpoint.part else table
        resource: dict[str, Any] = {
            "name": name,
            "table_name": table,
            "endpoint": {
                "path": endpoint.path.lstrip("/"),
                "method": endpoint.method,
                "params": endpoint.params,
                "data_selector": endpoint.records,
                "paginator": paginator,
            },
            "primary_key": endpoint.id_field,
        }
        if endpoint.body is not None:
            resource["endpoint"]["json"] = endpoint.body
        resources[endpoint.source].append(resource)
        if endpoint.associations:
            enriched.append((name, endpoint))
    username, password = zendesk_auth(world)
    clients: dict[str, Any] = {
        "salesforce": {"base_url": instance_url + "/", "auth": {"token": token}},
        "zendesk": {
            "base_url": world["zendesk_url"] + "/",
            "auth": {"type": "http_basic", "username": username, "password": password},
        },
        "hubspot": {
            "base_url": world["hubspot_url"] + "/",
            "auth": {"token": hubspot_token(world)},
        },
    }
    sources = {
        source: rest_api_source(
            {
                "client": clients[source],
                "resource_defaults": {"write_disposition": "append"},
                "resources": listed,
            },
            name=source,
        )
        for source, listed in resources.items()
    }
    portal = RESTClient(world["hubspot_url"], auth=BearerTokenAuth(hubspot_token(world)))
    for name, endpoint in enriched:
        sources["hubspot"].resources.add(
            sources["hubspot"].resources[name] | companies_of(portal, name, endpoint)
        )
    pipeline = dlt.pipeline(
        pipeline_name="okr_bench",
        pipelines_dir=tempfile.mkdtemp(prefix="okr-bench-dlt-"),
        destination=dlt.destinations.sqlalchemy(credentials=f"sqlite:///{database}"),
        dataset_name="main",
    )
    info = pipeline.run(list(sources.values()))
    info.raise_on_failed_jobs()
    # the records' tables: not dlt's child tables, nor the companies read for them
    names = {resource["table_name"] for listed in resources.values() for resource in listed}
    trace = pipeline.last_trace
    normalized = trace.last_normalize_info if trace is not None else None
    row_counts = normalized.row_counts if normalized is not None else {}
    records = sum(count for table, count in row_counts.items() if table in names)
    return {
        "wall_seconds": time.perf_counter() - started,
        "records": records,
        "peak_rss_mb": peak_rss_mb(),
        "cpu_seconds": cpu_seconds(),
    }


class KeysetPaginator(BasePaginator):
    """HubSpot search pages: each asks for what follows the last record read."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.last: dict[str, Any] | None = None

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        self._has_next_page = bool(data) and "paging" in response.json()
        self.last = data[-1] if data else None

    def update_request(self, request: Any) -> None:
        assert self.last is not None
        request.json = keyset_body(self.endpoint, self.last)


def companies_of(client: Any, name: str, endpoint: Endpoint) -> Any:
    """A transformer reading the companies of each page of records, as a table of its own."""
    import dlt

    assert endpoint.associations is not None
    path = endpoint.associations

    @dlt.transformer(
        name=f"{name}_companies", table_name=f"{endpoint.source}_{endpoint.name}_companies"
    )
    def companies(page: list[dict[str, Any]]) -> Any:
        response = client.post(path, json=association_body(page))
        yield response.json()["results"]

    return companies


if __name__ == "__main__":
    world, okr_file, database, out = orjson.loads(sys.argv[1]), *sys.argv[2:5]
    with open(out, "wb") as handle:
        handle.write(orjson.dumps(run(world, okr_file, database)))
