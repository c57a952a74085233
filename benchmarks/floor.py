"""The floor: the same pages into the same kind of database, with nothing in between.

Plain requests, orjson and one ``executemany`` per page into SQLite (id, modification
time, the record's JSON): no mapping, validation, cursors or lineage. What okr-sync costs
above this is its own.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from typing import Any

import orjson
import requests

from benchmarks.endpoints import endpoints, salesforce_token, zendesk_auth
from benchmarks.measure import cpu_seconds, peak_rss_mb

MODIFIED = {"salesforce": "SystemModstamp", "zendesk": "updated_at"}


def run(world: dict[str, Any], okr_file: str, database: str) -> dict[str, Any]:
    started = time.perf_counter()
    instance_url, token = salesforce_token(world)
    requests_made = 1
    connection = sqlite3.connect(database)
    crm = requests.Session()
    crm.headers["Authorization"] = f"Bearer {token}"
    desk = requests.Session()
    desk.auth = zendesk_auth(world)
    records = 0
    for endpoint in endpoints(okr_file):
        table = f"floor_{endpoint.source}_{endpoint.name}".lower()
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, modified TEXT, record BLOB)"
        )
        session = crm if endpoint.source == "salesforce" else desk
        base = instance_url if endpoint.source == "salesforce" else world["zendesk_url"]
        # per request: requests lets REQUESTS_CA_BUNDLE override a session's verify
        verify = world["ca_file" if endpoint.source == "salesforce" else "zendesk_ca_file"]
        url: str | None = base + endpoint.path
        params: dict[str, Any] | None = endpoint.params
        while url:
            response = session.get(url, params=params, verify=verify, timeout=120)
            requests_made += 1
            response.raise_for_status()
            body = orjson.loads(response.content)
            page = body[endpoint.records]
            with connection:
                connection.executemany(
                    f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)",
                    [
                        (
                            str(r[endpoint.id_field]),
                            r.get(MODIFIED[endpoint.source]),
                            orjson.dumps(r),
                        )
                        for r in page
                    ],
                )
            records += len(page)
            url, params = _next(endpoint.paging, body, base, endpoint.params)
    connection.close()
    return {
        "wall_seconds": time.perf_counter() - started,
        "records": records,
        "requests": requests_made,
        "peak_rss_mb": peak_rss_mb(),
        "cpu_seconds": cpu_seconds(),
    }


def _next(
    paging: str, body: dict[str, Any], base: str, params: dict[str, Any]
) -> tuple[str | None, dict[str, Any] | None]:
    if paging == "salesforce":
        return (None if body.get("done", True) else base + body["nextRecordsUrl"]), None
    if paging == "export":
        return (None if body["end_of_stream"] else body["after_url"]), None
    if paging == "time":
        return (None if body["end_of_stream"] else body["next_page"]), None
    return body["links"]["next"], None


if __name__ == "__main__":
    world, okr_file, database, out = orjson.loads(sys.argv[1]), *sys.argv[2:5]
    with open(out, "wb") as handle:
        handle.write(orjson.dumps(run(world, okr_file, database)))
