"""The small interface every connector implements, and how connectors are found.

A connector is a package that exposes a :class:`Connector` object through the
``okr_sync.connectors`` entry-point group (built-in ones are declared in this project's
pyproject.toml; a data team's package declares its own). It names its streams and opens a
:class:`SourceReader` from typed settings read from the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, Protocol

from pydantic_settings import BaseSettings

ENTRY_POINT_GROUP = "okr_sync.connectors"

CanonicalRow = dict[str, Any]


@dataclass(frozen=True)
class StreamInfo:
    """One object read from a source: what it is called there and what it becomes here."""

    name: str
    entity: str
    cursor_field: str


@dataclass(frozen=True)
class Bookmark:
    """How far a stream has been read, saved with the rows it covers.

    ``at`` is the newest source modification time covered. ``last_id`` is the greatest
    record id read at exactly ``at``: records are read in (modified time, id) order, so a
    resume reads ``(at, last_id)`` onwards and a block of records sharing one timestamp is
    never re-read from its start nor skipped. ``token`` is an opaque resume position for
    sources that page with one (Zendesk's ``after_cursor``); None elsewhere.

    A reader given a bookmark without ``last_id`` reads from ``at`` inclusive (the flow
    does this to re-read a lookback window).
    """

    at: datetime
    token: str | None = None
    last_id: str | None = None


@dataclass
class Rejected:
    """A record kept out of the mirror, with why; quarantined, never silently dropped."""

    source: str
    source_id: str | None
    record: Mapping[str, Any]
    reasons: list[str]


@dataclass
class Page:
    """One page of a stream, already mapped to canonical rows.

    ``rejected`` holds source records that could not be mapped, each with the reason, so
    nothing is dropped without a trace. ``bookmark`` is where the stream stands after this
    page; ``total`` is the source's own count of the whole result, when it gives one.
    """

    rows: list[CanonicalRow]
    bookmark: Bookmark | None
    rejected: list[Rejected] = field(default_factory=list)
    total: int | None = None


@dataclass
class ApiUsage:
    """What a reader cost its source: for the run report and for quota planning.

    ``requests`` counts every HTTP request sent (retries and logins included);
    ``quota`` is the source's own account of its quota after the last response (e.g.
    ``"1234/15000 daily API calls"``), when it reports one.
    """

    requests: int = 0
    quota: str | None = None


class SourceReader(Protocol):
    """An open, authenticated connection to one source."""

    usage: ApiUsage

    def read(
        self, stream: StreamInfo, since: Bookmark | None, until: datetime | None = None
    ) -> Iterator[Page]:
        """Pages of records changed at or after ``since`` (all when None), oldest first.

        ``until`` bounds a backfill: records modified at or after it are left out.
        """
        ...

    def ids(self, stream: StreamInfo) -> Iterator[list[str]]:
        """The ids (canonical ``source_id``) of every live record, a page at a time.

        For the reconcile: a mirror row whose id is not listed was deleted at the source,
        even after the source stopped reporting the delete.
        """
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SandboxSpec:
    """A small local emulator of a connector's source, for the contract test and demos.

    ``app`` is an ASGI app with a fault queue at ``app.state.faults``; ``env`` gives the
    connector's settings (as environment variables) to reach it once it is served.
    """

    app: Any
    env: Callable[[Any], dict[str, str]]


@dataclass(frozen=True)
class Connector:
    name: str
    streams: tuple[StreamInfo, ...]
    settings: type[BaseSettings]
    open: Callable[[Any], SourceReader]
    description: str = ""
    sandbox: Callable[[], SandboxSpec] | None = None


class UnknownConnectorError(LookupError):
    pass


def available_connectors() -> dict[str, Connector]:
    """Every installed connector, built-in or third-party, by name."""
    found: dict[str, Connector] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        connector = entry.load()
        found[connector.name] = connector
    return found


def get_connector(name: str) -> Connector:
    connectors = available_connectors()
    if name not in connectors:
        known = ", ".join(sorted(connectors)) or "none installed"
        raise UnknownConnectorError(f"unknown source {name!r}; installed connectors: {known}")
    return connectors[name]
