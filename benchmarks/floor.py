"""The floor: the same pages into the same kind of database, with nothing in between.

Plain requests, orjson and one ``executemany`` per page into SQLite (id, modification
time, the record's JSON): no mapping, validation, cursors or lineage. HubSpot deals' and
tickets' companies are read as okr-sync reads them, 1,000 records a batch, and stored raw.
What okr-sync costs above this is its own.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from typing import Any

import orjson
import requests

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
from connectors.hubspot.sandbox.emulator import ASSOCIATION_BATCH_MAX

MODIFIED = {"salesforce": "SystemModstamp", "zendesk": "updated_at", "hubspot": "updatedAt"}
JSON = {"Content-Type": "application/json"}


def run(world: dict[str, Any], okr_file: str, database: str) -> dict[str, Any]:
    started = time.perf_counter()
    instance_url, token = salesforce_token(world)
    requests_made = 1
    connection = sqlite3.connect(database)
    crm = requests.Session()
    crm.headers["Authorization"] = f"Bearer {token}"
    desk = requests.Session()
    desk.auth = zendesk_auth(world)
    portal = requests.Session()
    portal.headers["Authorization"] = f"Bearer {hubspot_token(world)}"
    # per request: requests lets REQUESTS_CA_BUNDLE override a session's verify
    servers = {
        "salesforce": (crm, instance_url, world["ca_file"]),
        "zendesk": (desk, world["zendesk_url"], world["zendesk_ca_file"]),
        "hubspot": (portal, world["hubspot_url"], world["hubspot_ca_file"]),
    }
    records = 0
    for endpoint in endpoints(okr_file):
        table = f"floor_{endpoint.source}_{endpoint.name}".lower()
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, modified TEXT, record BLOB)"
        )
        if endpoint.associations:
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {table}_companies (id TEXT PRIMARY KEY, links BLOB)"
            )
        session, base, verify = servers[endpoint.source]
        url: str | None = base + endpoint.path
        params: dict[str, Any] | None = endpoint.params
        request_body = endpoint.body
        unassociated: list[dict[str, Any]] = []  # read, their companies not yet
        while url:
            response = session.request(
                endpoint.method,
                url,
                params=params,
                data=None if request_body is None else orjson.dumps(request_body),
                headers=None if request_body is None else JSON,
                verify=verify,
                timeout=120,
            )
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
            url, params, request_body = _next(endpoint, body, page, base)
            if endpoint.associations:
                unassociated += page
                if len(unassociated) >= ASSOCIATION_BATCH_MAX or (url is None and unassociated):
                    link = base + endpoint.associations
                    _companies(session, link, verify, unassociated, connection, table)
                    requests_made += 1
                    unassociated = []
    connection.close()
    return {
        "wall_seconds": time.perf_counter() - started,
        "records": records,
        "requests": requests_made,
        "peak_rss_mb": peak_rss_mb(),
        "cpu_seconds": cpu_seconds(),
    }


def _companies(
    session: requests.Session,
    url: str,
    verify: str,
    records: list[dict[str, Any]],
    connection: sqlite3.Connection,
    table: str,
) -> None:
    """The records' companies in one association batch read, stored raw."""
    response = session.post(
        url, data=orjson.dumps(association_body(records)), headers=JSON, verify=verify, timeout=120
    )
    response.raise_for_status()
    results = orjson.loads(response.content)["results"]
    with connection:
        connection.executemany(
            f"INSERT OR REPLACE INTO {table}_companies VALUES (?, ?)",
            [(str(r["from"]["id"]), orjson.dumps(r["to"])) for r in results],
        )


def _next(
    endpoint: Endpoint, body: dict[str, Any], page: list[dict[str, Any]], base: str
) -> tuple[str | None, dict[str, Any] | None, dict[str, Any] | None]:
    """The next request's (URL, query parameters, JSON body); no URL at the end."""
    if endpoint.paging == "salesforce":
        return (None if body.get("done", True) else base + body["nextRecordsUrl"]), None, None
    if endpoint.paging == "export":
        return (None if body["end_of_stream"] else body["after_url"]), None, None
    if endpoint.paging == "time":
        return (None if body["end_of_stream"] else body["next_page"]), None, None
    if endpoint.paging == "list":
        return body["links"]["next"], None, None
    after = ((body.get("paging") or {}).get("next") or {}).get("after")
    if after is None:
        return None, None, None
    if endpoint.paging == "keyset":
        return base + endpoint.path, None, keyset_body(endpoint, page[-1])
    return base + endpoint.path, {**endpoint.params, "after": after}, None


if __name__ == "__main__":
    world, okr_file, database, out = orjson.loads(sys.argv[1]), *sys.argv[2:5]
    with open(out, "wb") as handle:
        handle.write(orjson.dumps(run(world, okr_file, database)))
