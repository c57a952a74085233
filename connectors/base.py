"""The small interface every connector implements, and how connectors are found.

A connector is a package that exposes a :class:`Connector` object through the
``okr_sync.connectors`` entry-point group (built-in ones are declared in this project's
pyproject.toml; a data team's package declares its own). It names its streams and opens a
:class:`SourceReader` from typed settings read from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib.metadata import EntryPoint, entry_points
from typing import Annotated, Any, Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    FilePath,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsError

from connectors.canonical import CanonicalRow
from connectors.errors import FatalSourceError

ENTRY_POINT_GROUP = "okr_sync.connectors"


@dataclass(frozen=True)
class StreamInfo:
    """One object read from a source: what it is called there and what it becomes here."""

    name: str
    entity: str
    cursor_field: str


CaBundle = Annotated[FilePath | None, BeforeValidator(lambda value: value or None)]
"""A connector's CA file to trust (a sandbox's): it must exist, so a path pointing nowhere is
a one-line settings error, not a TLS failure mid-read; empty means the system's trust."""

_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    """An API's address as given, when it is an http(s) URL with a host; empty is unset."""
    if value:
        try:
            _HTTP_URL.validate_python(value)
        except ValidationError:
            raise ValueError(
                f"{value!r} is not an http(s) URL, e.g. https://api.example.com"
            ) from None
    return value


ApiUrl = Annotated[str, AfterValidator(_http_url)]
"""A source's API or login address: one that is no URL (no scheme, a misspelt scheme, no
host) is a one-line settings error naming the variable, refused before any request (and
never sent on as plain HTTP by a client that supplies a scheme)."""

MapperT = TypeVar("MapperT")


@dataclass(frozen=True, kw_only=True)
class SourceStream(Generic[MapperT]):
    """One row of a connector's ``STREAMS`` table: the stream and how its records are mapped.

    Every connector that maps its source's records declares its streams as subclasses of
    this, adding only what its API needs (a path, fields to select), so every table reads
    the same way: built by :func:`stream_table`, keyword arguments only, and giving
    ``Connector.streams`` as ``tuple(stream.info for stream in STREAMS.values())``. The
    mapper's signature is the connector's own (what its reader passes beside the record).
    """

    info: StreamInfo
    mapper: MapperT

    @property
    def name(self) -> str:
        return self.info.name


StreamT = TypeVar("StreamT", bound=SourceStream[Any])


def stream_table(*streams: StreamT) -> dict[str, StreamT]:
    """A connector's ``STREAMS`` table: each stream by its name, in the order given."""
    table = {stream.name: stream for stream in streams}
    if len(table) != len(streams):
        raise ValueError("two streams share a name")
    return table


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
    record: Mapping[str, object]  # the source's record, or the mapped row refused
    reasons: list[str]


@dataclass(frozen=True)
class Gap:
    """A canonical field (``entity.field``) a source cannot supply, and why.

    ``reason`` names the setting that would supply it. Key results whose metric needs the
    field show the reason instead of a number that would look valid but is not.
    """

    need: str
    reason: str


@dataclass
class Page:
    """One page of a stream, already mapped to canonical rows (see :mod:`connectors.canonical`).

    Each row is of its stream's entity. It is not validated yet: a mapping passes on a
    required value the source left unset (see ``canonical.unchecked``), and the flow's
    validator quarantines that row with the reason.

    ``rejected`` holds source records that could not be mapped, each with the reason, so
    nothing is dropped without a trace. ``bookmark`` is where the stream stands after this
    page; ``total`` is the source's own count of the whole result, when it gives one.
    ``notes`` say what the source could not give and why (a feature off, a permission
    missing, a field the account does not have, so it stays empty): the stream carries on,
    the flow logs each note once as a warning and the stream's report shows them. A stream
    with notes is not taken for read whole: its unseen records are not taken for deleted.
    ``advice`` is told the same way but leaves no record out (a portal's time zone that
    differs from the calendar's, a property the token may not describe): the stream still
    counts as read whole.
    ``gaps`` are the canonical fields the stream cannot fill in this source (what the
    account lacks or the settings leave unmapped); a reader may give them on any page,
    and one that gives none (the default) claims nothing is missing.
    """

    rows: list[CanonicalRow]
    bookmark: Bookmark | None
    rejected: list[Rejected] = field(default_factory=list)
    total: int | None = None
    notes: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    gaps: tuple[Gap, ...] = ()


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
    """A small local copy of a connector's source, for the contract test and demos.

    For an HTTP source, ``app`` is an ASGI emulator with a fault queue at
    ``app.state.faults`` and ``env(server)`` gives the connector's settings (environment
    variables) to reach it once served. For a source that is not HTTP (a database, files),
    ``app`` is None and ``env(directory)`` writes the fixtures into that empty scratch
    directory and returns the settings that point at them.
    """

    app: Any | None
    env: Callable[[Any], dict[str, str]]


@dataclass(frozen=True)
class Connector:
    """What a connector package exposes through the ``okr_sync.connectors`` entry point.

    ``open(settings)`` returns a :class:`SourceReader`; ``settings`` is a pydantic-settings
    class read from the environment (``OKR_SYNC_<NAME>_*``), secrets typed ``SecretStr``.
    """

    name: str
    streams: tuple[StreamInfo, ...]
    settings: type[BaseSettings]
    open: Callable[[Any], SourceReader]
    description: str = ""
    sandbox: Callable[[], SandboxSpec] | None = None
    # The streams a change touches, by the object type a webhook names ("deal"), or by
    # type and change ("company.associationChange") where that change touches more.
    changes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def streams_changed(self, changes: Iterable[tuple[str, str]]) -> tuple[str, ...] | None:
        """The streams that ``(object type, change)`` pairs touch, in stream order.

        None means every stream: a type the table does not know (the sync cannot tell
        what it touches), or no pair at all (a body that names no object).
        """
        touched: set[str] = set()
        for kind, change in changes:
            streams = self.changes.get(f"{kind}.{change}", self.changes.get(kind))
            if streams is None:
                return None
            touched.update(streams)
        if not touched:
            return None
        return tuple(stream.name for stream in self.streams if stream.name in touched)


class UnknownConnectorError(LookupError):
    pass


def known_zone(name: str) -> str:
    """``name`` if it is an IANA time zone, else a ValueError saying what one looks like."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone such as Europe/Berlin") from None
    return name


class CalendarDays(BaseSettings):
    """Settings of a source that keeps days as instants (a close time, the moment a company
    became a customer): each becomes the day it falls on in the OKR calendar's zone.

    A connector's settings class derives from this instead of ``BaseSettings`` to be told
    the zone: the sync sets ``calendar_timezone`` from the OKR file's ``calendar:`` when it
    opens the reader (:func:`open_reader`), whatever the environment says. Connectors stay
    below the OKR files (they never import ``okr_targets``), and one whose settings do not
    derive from this is opened as before. Days already in the mirror keep the zone they
    were cut in: after changing the calendar's zone, run one sync with ``--full-refresh``.
    """

    calendar_timezone: str = Field(
        default="UTC",
        description="the OKR calendar's IANA zone, set by the sync: instants that stand "
        "for days become the day they fall on there",
    )

    @field_validator("calendar_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @property
    def calendar_zone(self) -> ZoneInfo:
        return ZoneInfo(self.calendar_timezone)

    def local_day(self, moment: datetime) -> date:
        """The calendar day an aware instant falls on in the OKR calendar's zone."""
        return moment.astimezone(self.calendar_zone).date()


def open_reader(connector: Connector, *, calendar_timezone: str | None = None) -> SourceReader:
    """Read the connector's settings from the environment and open it.

    ``calendar_timezone`` is the OKR calendar's zone: a connector whose settings are
    :class:`CalendarDays` cuts days in it; others ignore it.

    A setting that is malformed (not a number, bad JSON, a value its validator refuses) is
    a FatalSourceError naming the variable, never a traceback; its value is not repeated,
    since it may be a secret.
    """
    try:
        settings = connector.settings()
        if calendar_timezone is not None and isinstance(settings, CalendarDays):
            zone = known_zone(calendar_timezone)
            settings = settings.model_copy(update={"calendar_timezone": zone})
    except ValidationError as exc:
        error = exc.errors()[0]
        variable = _variable(connector, "_".join(str(part) for part in error["loc"]))
        raise FatalSourceError(connector.name, f"{variable}: {error['msg']}") from None
    except SettingsError as exc:  # e.g. a mapping setting that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        variable = _variable(connector, field[1]) if field else "a setting"
        raise FatalSourceError(
            connector.name, f"{variable} cannot be parsed (a list or mapping is JSON)"
        ) from None
    return connector.open(settings)


def _variable(connector: Connector, field: str) -> str:
    return str(connector.settings.model_config.get("env_prefix", "")) + field.upper()


@dataclass(frozen=True)
class Installed:
    """One entry point of the group: the connector it loads, or why it did not load."""

    name: str
    distribution: str
    connector: Connector | None
    error: str | None = None


def discover() -> list[Installed]:
    """Every entry point of the group, loaded; a broken package is reported, not raised.

    Built-in connectors are declared in this project's pyproject.toml exactly as a third
    party declares its own, so both are found (and checked) the same way.
    """
    return [_load(entry) for entry in _entries()]


def _entries() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda entry: entry.name)


def _load(entry: EntryPoint) -> Installed:
    distribution = entry.dist.name if entry.dist is not None else "?"
    try:
        loaded = entry.load()
    except Exception as exc:  # a third party's import error must not break the others
        return Installed(entry.name, distribution, None, f"{type(exc).__name__}: {exc}")
    if not isinstance(loaded, Connector):
        error = f"{entry.value} is a {type(loaded).__name__}, not a connectors.base.Connector"
        return Installed(entry.name, distribution, None, error)
    if loaded.name != entry.name:
        error = f"entry point {entry.name!r} loads a connector named {loaded.name!r}"
        return Installed(entry.name, distribution, None, error)
    return Installed(entry.name, distribution, loaded)


def available_connectors() -> dict[str, Connector]:
    """Every installed connector that loads, built-in or third-party, by name."""
    return {item.name: item.connector for item in discover() if item.connector is not None}


def get_connector(name: str) -> Connector:
    """The named connector; only its package is imported, not every installed one's."""
    entries = {entry.name: entry for entry in _entries()}
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none installed"
        raise UnknownConnectorError(f"unknown source {name!r}; installed connectors: {known}")
    item = _load(entries[name])
    if item.connector is None:
        raise UnknownConnectorError(
            f"connector {name!r} (package {item.distribution}) cannot be loaded: {item.error}"
        )
    return item.connector
