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

    ``at`` is the newest source modification time covered. ``token`` is an opaque resume
    position for sources that page with one (Zendesk's ``after_cursor``); None elsewhere.
    """

    at: datetime
    token: str | None = None


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


class SourceReader(Protocol):
    """An open, authenticated connection to one source."""

    def read(
        self, stream: StreamInfo, since: Bookmark | None, until: datetime | None = None
    ) -> Iterator[Page]:
        """Pages of records changed at or after ``since`` (all when None), oldest first.

        ``until`` bounds a backfill: records modified at or after it are left out.
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
