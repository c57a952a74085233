"""The peer: dlt's rest_api source loading the same endpoints into SQLite.

Configured as a data team would: one resource per endpoint, the APIs' own paginators,
``append`` into dlt's SQLAlchemy destination on a SQLite file (the store's database kind).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import orjson

from benchmarks.endpoints import endpoints, salesforce_token, zendesk_auth
from benchmarks.measure import cpu_seconds, peak_rss_mb


def run(world: dict[str, Any], okr_file: str, database: str) -> dict[str, Any]:
    import dlt
    from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator

    class _TimeExportPaginator(JSONLinkPaginator):
        """Zendesk's time-based export always has a next_page: stop at end_of_stream."""

        def update_state(self, response: Any, data: Any = None) -> None:
            super().update_state(response, data)
            if response.json().get("end_of_stream", True):
                self._has_next_page = False

    from dlt.sources.helpers.rest_client.paginators import (
        JSONLinkPaginator,
        JSONResponseCursorPaginator,
    )
    from dlt.sources.rest_api import rest_api_source

    started = time.perf_counter()
    # The two emulators have their own CAs; requests (dlt's client) takes one bundle.
    bundle = os.path.join(tempfile.mkdtemp(prefix="okr-bench-dlt-"), "ca.pem")
    with open(bundle, "w") as out:
        for name in ("ca_file", "zendesk_ca_file"):
            with open(world[name]) as handle:
                out.write(handle.read())
    os.environ["REQUESTS_CA_BUNDLE"] = bundle
    # SQLite takes one writer: dlt's parallel load jobs failed with "database is locked"
    # at 1M deals, so load with one worker, as dlt advises for SQLite.
    os.environ.setdefault("LOAD__WORKERS", "1")
    instance_url, token = salesforce_token(world)
    crm: list[Any] = []
    desk: list[Any] = []
    for endpoint in endpoints(okr_file):
        if endpoint.paging == "salesforce":
            paginator: Any = JSONLinkPaginator(next_url_path="nextRecordsUrl")
        elif endpoint.paging == "export":
            paginator = JSONResponseCursorPaginator(
                cursor_path="after_cursor", cursor_param="cursor", stop_after_empty_page=True
            )
        elif endpoint.paging == "time":
            paginator = _TimeExportPaginator(next_url_path="next_page")
        else:
            paginator = JSONLinkPaginator(next_url_path="links.next")
        resource = {
            "name": f"{endpoint.source}_{endpoint.name}".lower(),
            "endpoint": {
                "path": endpoint.path.lstrip("/"),
                "params": endpoint.params,
                "data_selector": endpoint.records,
                "paginator": paginator,
            },
            "primary_key": endpoint.id_field,
        }
        (crm if endpoint.source == "salesforce" else desk).append(resource)
    username, password = zendesk_auth(world)
    sources = [
        rest_api_source(
            {
                "client": {"base_url": instance_url + "/", "auth": {"token": token}},
                "resource_defaults": {"write_disposition": "append"},
                "resources": crm,
            },
            name="salesforce",
        ),
        rest_api_source(
            {
                "client": {
                    "base_url": world["zendesk_url"] + "/",
                    "auth": {"type": "http_basic", "username": username, "password": password},
                },
                "resource_defaults": {"write_disposition": "append"},
                "resources": desk,
            },
            name="zendesk",
        ),
    ]
    pipeline = dlt.pipeline(
        pipeline_name="okr_bench",
        pipelines_dir=tempfile.mkdtemp(prefix="okr-bench-dlt-"),
        destination=dlt.destinations.sqlalchemy(credentials=f"sqlite:///{database}"),
        dataset_name="main",
    )
    info = pipeline.run(sources)
    info.raise_on_failed_jobs()
    names = {resource["name"] for resource in [*crm, *desk]}  # not dlt's child tables
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


if __name__ == "__main__":
    world, okr_file, database, out = orjson.loads(sys.argv[1]), *sys.argv[2:5]
    with open(out, "wb") as handle:
        handle.write(orjson.dumps(run(world, okr_file, database)))
