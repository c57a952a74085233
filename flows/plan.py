"""Plan: what one sync run covers, decided before anything is read.

The flow's parameters arrive as one :class:`SyncRequest`; :func:`plan` loads and lints the
OKR file, saves the OKRs, and turns the request into the streams to read and, for a
backfill, the time window to re-read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connectors.base import StreamInfo
from okr_targets.config import ConfigError, OkrConfig, lint
from okr_targets.models import utcnow
from okr_targets.store import Store
from transforms.catalog import MetricCatalog, load
from transforms.measure import save_okrs


@dataclass(frozen=True)
class SyncRequest:
    """One sync's parameters: the OKR file, and what the run covers beyond the defaults."""

    okr_file: str
    full_refresh: bool = False  # ignore saved cursors; tombstone what the sources lost
    reconcile: bool = False  # list every live id at each source after the sync
    sources: tuple[str, ...] | None = None  # only these sources; None: every one
    streams: tuple[str, ...] | None = None  # only these "source.stream"s; None: every one
    backfill: tuple[str, str] | None = None  # first and last period label to re-read
    refreeze_baselines: bool | None = None  # None: only on a full refresh

    def chosen_streams(self, config: OkrConfig) -> list[tuple[str, StreamInfo]]:
        """The OKR file's streams of the chosen sources and streams; an unknown one is an
        error, named with those the file has."""
        chosen = config.streams()
        if self.sources is not None:
            named = list(dict.fromkeys(source for source, _ in chosen))
            unknown = [source for source in self.sources if source not in named]
            if unknown:
                raise ConfigError(
                    f"source {unknown[0]!r} is not among {config.path}'s sources "
                    f"({', '.join(named)})"
                )
            chosen = [(source, stream) for source, stream in chosen if source in self.sources]
        if self.streams is not None:
            named = [f"{source}.{stream.name}" for source, stream in chosen]
            unknown = [name for name in self.streams if name not in named]
            if unknown:
                raise ConfigError(
                    f"stream {unknown[0]!r} is not among the streams {config.path} reads "
                    f"({', '.join(named)})"
                )
            chosen = [(src, st) for src, st in chosen if f"{src}.{st.name}" in self.streams]
        return chosen

    def window(self, config: OkrConfig) -> tuple[datetime, datetime] | None:
        """A backfill's ``[start, end)`` in UTC, from its periods in the file's calendar."""
        if self.backfill is None:
            return None
        first, last = self.backfill
        try:
            start, end = config.calendar.period(first).start_at, config.calendar.period(last).end_at
        except ValueError as exc:
            raise ConfigError(f"backfill: {exc}") from None
        if end <= start:
            raise ConfigError(f"backfill: {last} ends before {first} starts")
        return start, end

    def refreeze(self, read_in_full: bool) -> bool:
        """Whether frozen baselines are recomputed: never from a run that stopped early."""
        wanted = self.full_refresh if self.refreeze_baselines is None else self.refreeze_baselines
        return wanted and read_in_full


@dataclass(frozen=True)
class Plan:
    """A request resolved against its OKR file: the config, streams and window to read."""

    request: SyncRequest
    config: OkrConfig
    catalog: MetricCatalog
    streams: list[tuple[str, StreamInfo]]
    window: tuple[datetime, datetime] | None
    started_at: datetime  # the data cutoff: cursors never pass it

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(source for source, _ in self.streams))


def load_and_lint(okr_file: str) -> tuple[OkrConfig, MetricCatalog]:
    """The OKR file and its metric catalog; any finding is the run's one-line error."""
    config, catalog = load(okr_file)
    findings = lint(config)
    if findings:
        more = f" (and {len(findings) - 1} more; run `okr-sync lint`)" if len(findings) > 1 else ""
        raise ConfigError(f"{findings[0]}{more}")
    return config, catalog


def plan(store: Store, request: SyncRequest) -> Plan:
    """Load, lint and save the OKRs; choose the streams and the backfill window."""
    config, catalog = load_and_lint(request.okr_file)
    with store.session() as session, session.begin():
        save_okrs(session, config, utcnow(), catalog)
    streams, window = request.chosen_streams(config), request.window(config)
    if window is not None and request.full_refresh:
        raise ConfigError("a backfill re-reads a window; it cannot also be a full refresh")
    if request.streams is not None and (request.full_refresh or request.reconcile):
        # both find deletes per entity, and an entity may come from a stream not read
        raise ConfigError("a sync of some streams cannot also be a full refresh or reconcile")
    return Plan(request, config, catalog, streams, window, started_at=utcnow())
