"""The contract every connector passes, built-in or third-party.

Each check takes a connector and a running sandbox of its source (see
``Connector.sandbox``) with the connector's settings already in the environment. A data
team's package runs the same checks from its own tests, through the pytest plugin
(``connectors.pytest_plugin``, loaded automatically wherever okr-sync is installed)::

    def test_contract(okr_sync_connector, connector_contract):
        connector_contract(okr_sync_connector)

or directly: ``run_contract(my_connector)``. A source that is not HTTP (a database, files)
serves no emulator: its sandbox writes fixtures into a scratch directory instead, and the
fault checks, which need an emulator's fault queue, are left out for it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.base import Bookmark, Connector, Page, SourceReader, StreamInfo, open_reader
from connectors.canonical import ENTITIES
from connectors.errors import FatalSourceError, RetriableSourceError
from connectors.sandbox.server import RunningServer, serve_tls

MAX_PAGES = 10_000
"""A stream that pages longer than this on a small sandbox is looping."""


class ContractError(AssertionError):
    pass


@contextmanager
def sandboxed(connector: Connector) -> Iterator[tuple[Any, RunningServer | None]]:
    """Serve the connector's sandbox (or write its fixtures) and point its settings at it.

    Yields the emulator app and its server; both None for a fixtures-only sandbox.
    """
    if connector.sandbox is None:
        raise ContractError(f"{connector.name}: no sandbox; the contract needs one")
    spec = connector.sandbox()
    with tempfile.TemporaryDirectory(prefix=f"okr-sync-{connector.name}-") as scratch:
        if spec.app is None:
            with _environment(spec.env(Path(scratch))):
                yield None, None
            return
        with serve_tls(spec.app) as server, _environment(spec.env(server)):
            yield spec.app, server


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def read_all(reader: SourceReader, stream: StreamInfo, since: Bookmark | None = None) -> list[Page]:
    """Every page of a stream; fails if paging does not end."""
    pages = []
    for page in reader.read(stream, since):
        pages.append(page)
        if len(pages) > MAX_PAGES:
            raise ContractError(f"{stream.name}: paging did not end after {MAX_PAGES} pages")
    return pages


def check_pages(connector: Connector, stream: StreamInfo, pages: list[Page]) -> int:
    """Bookmarks never go back; rows have exactly the canonical columns with sound values."""
    columns = set(ENTITIES[stream.entity].__annotations__)
    previous: datetime | None = None
    count = 0
    for page in pages:
        if page.bookmark is not None:
            if previous is not None and page.bookmark.at < previous:
                raise ContractError(f"{stream.name}: bookmark went back to {page.bookmark.at}")
            previous = page.bookmark.at
        for row in page.rows:
            count += 1
            if set(row) != columns:
                raise ContractError(
                    f"{stream.name}: row keys differ from the canonical {stream.entity}: "
                    f"missing {sorted(columns - set(row))}, extra {sorted(set(row) - columns)}"
                )
            if row["source"] != connector.name or not isinstance(row["source_id"], str):
                raise ContractError(
                    f"{stream.name}: bad identity {row['source']!r}/{row['source_id']!r}"
                )
            for key, value in row.items():
                if isinstance(value, datetime) and value.utcoffset() is None:
                    raise ContractError(f"{stream.name}: {key} is a naive datetime")
    return count


def check_faults(connector: Connector, app: Any) -> None:
    """A 401 is fatal; a 429 with Retry-After is retriable and carries the wait."""
    stream = connector.streams[0]
    app.state.faults.inject(401, times=3)
    try:
        reader = open_reader(connector)
        read_all(reader, stream)
    except FatalSourceError:
        pass
    else:
        raise ContractError("a 401 from the source was not a FatalSourceError")
    finally:
        app.state.faults.clear()
    reader = open_reader(connector)
    app.state.faults.inject(429, times=1, headers={"Retry-After": "7"})
    try:
        read_all(reader, stream)
    except RetriableSourceError as exc:
        if exc.retry_after != 7:
            raise ContractError(f"429 Retry-After 7 became retry_after={exc.retry_after}") from None
    else:
        raise ContractError("a 429 from the source was not a RetriableSourceError")
    finally:
        app.state.faults.clear()
        reader.close()


def check_resume(
    connector: Connector, reader: SourceReader, stream: StreamInfo, pages: list[Page]
) -> None:
    """Reading again from the last bookmark returns nothing older than it."""
    last = next((page.bookmark for page in reversed(pages) if page.bookmark), None)
    if last is None:
        return
    again = read_all(reader, stream, last)
    check_pages(connector, stream, again)
    older = [
        row["source_id"]
        for page in again
        for row in page.rows
        if row["source_modified_at"] < last.at
    ]
    if older:
        raise ContractError(
            f"{stream.name}: resuming returned records older than the bookmark: {older[:3]}"
        )


def check_ids(reader: SourceReader, stream: StreamInfo, pages: list[Page]) -> None:
    """The reconcile's listing holds every live record read, and no deleted one."""
    live = {row["source_id"] for page in pages for row in page.rows if not row["deleted_at"]}
    deleted = {row["source_id"] for page in pages for row in page.rows if row["deleted_at"]}
    rejected = {str(item.source_id) for page in pages for item in page.rejected}
    listed = {record_id for ids in reader.ids(stream) for record_id in ids}
    if live - listed:
        raise ContractError(f"{stream.name}: ids() leaves out live {sorted(live - listed)[:3]}")
    if (listed & deleted) - live or listed - live - rejected - deleted:
        unknown = sorted(listed - live - rejected)[:3]
        raise ContractError(f"{stream.name}: ids() lists deleted or unknown records {unknown}")


def run_contract(connector: Connector) -> dict[str, int]:
    """Run every check; returns the rows read per stream."""
    counts: dict[str, int] = {}
    with sandboxed(connector) as (app, _server):
        reader = open_reader(connector)
        try:
            for stream in connector.streams:
                before = reader.usage.requests
                pages = read_all(reader, stream)
                if pages and reader.usage.requests <= before:
                    raise ContractError(f"{stream.name}: usage.requests did not count the read")
                counts[stream.name] = check_pages(connector, stream, pages)
                check_resume(connector, reader, stream, pages)
                check_ids(reader, stream, pages)
        finally:
            reader.close()
        if app is not None:
            check_faults(connector, app)
    return counts
