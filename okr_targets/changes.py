"""What changed and why: each key result's movement between two instants, from its lineage.

For every live key result, the measurement in force at each instant (``measurement_at``)
gives the value then and now; the two measurements' lineage rows (``record_keys``) give the
records added to and removed from the number, and the mirror tells why as far as it can:
a record new at the source, deleted there (a tombstone), or edited there between the two
measurements' data cutoffs. The mirror keeps each record's latest copy only, so a changed
record is shown as it is now (amount, outcome, close date, ...), not as it was; one edited
again after the later measurement shows those later values. A closed period's value that
moved because late data arrived is a restatement (``restates_id``), listed with its records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from okr_targets.formatting import format_change, format_time, format_value
from okr_targets.lineage import (
    RecordKey,
    measurement_at,
    mirror_rows,
    record_keys,
    restatement_of,
)
from okr_targets.models import KeyResult, Measurement, MirrorRecord
from okr_targets.people import people
from okr_targets.periods import UTC_CALENDAR, Calendar

RECORDS_LISTED = 10
"""Records listed per key result and kind of change; the counts are always complete."""
CHANGES_VERSION = 1
"""The shape of ``changes_json``: a breaking change (a field renamed or removed) bumps it."""
WINDOW_DAYS = 7
"""The default window: the last week, as the dashboard and the digest show it."""


def signed_change(change: float | None, unit: str) -> str:
    """A movement with its sign: "+110k USD", "−2.5 pts" (a percentage moves in points)."""
    return format_change(change, "pts" if unit == "%" else unit)


class MovementKind(StrEnum):
    MOVED = "moved"  # its value or status differs between the two instants
    NEW = "new"  # first measured inside the window
    UNCHANGED = "unchanged"
    NO_DATA = "no_data"  # not measured by the window's end


class RecordChangeKind(StrEnum):
    ADDED = "added"  # counted now, not then
    REMOVED = "removed"  # counted then, not now
    CHANGED = "changed"  # counted both times, edited at the source in between


@dataclass(frozen=True)
class RecordChange:
    """One record behind a movement, why it moved the number, and how it stands now."""

    entity: str
    source: str
    source_id: str
    change: RecordChangeKind
    why: str  # "new at the source", "deleted at the source", "edited at the source", ...
    at: datetime | None  # when that happened (created, deleted, last modified at the source)
    name: str | None
    now: str  # the record as the mirror holds it: "won, 12,345.67 USD, closes 2026-09-15"

    @property
    def text(self) -> str:
        name = f' "{self.name}"' if self.name else ""
        when = f" {self.at.date().isoformat()}" if self.at else ""
        state = f"; now {self.now}" if self.now else ""
        return (
            f"{self.change.value}: {self.source} {self.entity} {self.source_id}{name}"
            f" ({self.why}{when}{state})"
        )


@dataclass(frozen=True)
class RecordDiff:
    """The records between two measurements' lineage: complete counts, the first few listed."""

    added: int
    removed: int
    changed: int
    new: int  # of the added, new at the source
    edited_in: int  # of the added, edited at the source (a deal marked won, a date moved)
    deleted: int  # of the removed, deleted at the source
    edited_out: int  # of the removed, edited at the source
    by_entity: dict[str, int]  # entity -> records added, removed or changed
    records: list[RecordChange]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def text(self) -> str:
        """ "deals: 2 added (1 new at the source), 1 removed (1 deleted at the source),
        3 edited at the source"."""
        parts = []
        if self.added:
            parts.append(f"{self.added} added" + _why(self.new, "new", self.edited_in))
        if self.removed:
            parts.append(f"{self.removed} removed" + _why(self.deleted, "deleted", self.edited_out))
        if self.changed:
            parts.append(f"{self.changed} edited at the source")
        kinds = ", ".join(f"{entity}s" for entity in sorted(self.by_entity))
        return f"{kinds}: " + ", ".join(parts) if parts else "no record changed"


def _why(count: int, what: str, edited: int) -> str:
    """ " (1 new at the source, 2 edited there)"; empty when neither."""
    parts = ([f"{count} {what} at the source"] if count else []) + (
        [f"{edited} edited {'there' if count else 'at the source'}"] if edited else []
    )
    return f" ({', '.join(parts)})" if parts else ""


@dataclass(frozen=True)
class Restated:
    """A closed period's value that changed after it was final (late data)."""

    period: str
    measured_at: datetime
    old_value: float | None
    value: float | None
    difference: float | None
    old_measured_at: datetime
    added: int
    removed: int
    changed: int


@dataclass(frozen=True)
class Movement:
    """One key result between two instants: values, statuses and the reasons it moved."""

    key_result_id: str
    title: str
    objective_id: str
    owner: str  # the e-mail, as in the OKR file
    owner_name: str  # the name people know them by (okr_targets/people.py), else the e-mail
    period: str
    unit: str
    direction: str  # the key result's: "increase" or "decrease" is better
    kind: MovementKind
    value_then: float | None
    value_now: float | None
    change: float | None
    status_then: str | None
    status_now: str | None
    measured_then: datetime | None
    measured_now: datetime | None
    measurements: int  # measurements written inside the window
    records: RecordDiff | None  # None: nothing to compare (new, unchanged, no data)
    restatements: list[Restated] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def better(self) -> bool | None:
        """Whether the change went the key result's way (None: no change to judge)."""
        if not self.change:
            return None
        return (self.change > 0) == (self.direction != "decrease")

    @property
    def change_text(self) -> str:
        return signed_change(self.change, self.unit)

    @property
    def headline(self) -> str:
        """ "500k USD → 600k USD (+100k USD)"; "first measured: 26%"; "unchanged at 4.5"."""
        now = format_value(self.value_now, self.unit)
        if self.kind is MovementKind.NEW:
            return f"first measured in the window: {now}"
        if self.kind is MovementKind.NO_DATA:
            return "not measured yet"
        if self.kind is MovementKind.UNCHANGED:
            return f"unchanged at {now}"
        then = format_value(self.value_then, self.unit)
        if self.value_then == self.value_now:
            return f"{now}, status {_words(self.status_then)} → {_words(self.status_now)}"
        if self.change is None:  # a number appeared or went (an error)
            return f"{then} → {now if self.value_now is not None else 'no number'}"
        return f"{then} → {now} ({self.change_text})"

    @property
    def reasons(self) -> list[str]:
        """Why it moved, in short lines: records, restatements, other notes."""
        lines = []
        if self.records is not None and not self.records.empty:
            lines.append(self.records.text)
        for restated in self.restatements:
            was = format_value(restated.old_value, self.unit)
            lines.append(
                f"restated {restated.period} (closed): was {was}"
                f", final since {restated.old_measured_at.date().isoformat()}; late data moved it"
                f" {signed_change(restated.difference, self.unit)}"
            )
        lines.extend(self.notes)
        return lines

    @property
    def why(self) -> str:
        """The reasons in one line, for a list: "deals: 1 added (1 new at the source),
        1 edited at the source; restated 2026-Q3 (closed) with late data"."""
        parts = [] if self.records is None or self.records.empty else [self.records.text]
        parts += [f"restated {r.period} (closed) with late data" for r in self.restatements]
        return "; ".join(parts + self.notes)


@dataclass(frozen=True)
class Changes:
    """Every live key result's movement between ``since`` and ``until``."""

    since: datetime
    until: datetime
    movements: list[Movement]
    timezone: str = "UTC"  # the organisation's (its OKR file's calendar): times are shown in it

    def of(self, *kinds: MovementKind) -> list[Movement]:
        return [m for m in self.movements if m.kind in kinds]

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(m.kind.value for m in self.movements)
        return {kind.value: found.get(kind.value, 0) for kind in MovementKind}


class WindowError(ValueError):
    """A window that cannot be read: a bad date, both --since and --days, an empty window."""


def org_calendar(session: Session) -> Calendar:
    """The OKR file's calendar, which every key result carries; UTC's without one."""
    for calendar in session.scalars(
        select(KeyResult.calendar).where(KeyResult.retired_at.is_(None)).order_by(KeyResult.id)
    ):
        if calendar:
            return Calendar(**calendar)
    return UTC_CALENDAR


def parse_window(
    since: str | None,
    days: int | None,
    until: str | None,
    now: datetime,
    calendar: Calendar = UTC_CALENDAR,
) -> tuple[datetime, datetime]:
    """``since``/``days``/``until`` as given on a command line or in a URL, as two instants:
    an ISO date is the start of that day (``until``: its end) in ``calendar``'s time zone, as
    is a date-time without an offset. Default: the ``days`` (``WINDOW_DAYS``) up to
    ``until`` (``now``)."""
    if since is not None and days is not None:
        raise WindowError("give either since or days, not both")
    if days is not None and days < 1:
        raise WindowError(f"days must be at least 1, not {days}")
    end = _moment("until", until, calendar, end_of_day=True) if until else now
    start = (
        _moment("since", since, calendar, end_of_day=False)
        if since
        else end - timedelta(days=days or WINDOW_DAYS)
    )
    if start >= end:
        raise WindowError(
            f"the window is empty: {start.isoformat()} is not before {end.isoformat()}"
        )
    return start, end


def _moment(name: str, text: str, calendar: Calendar, end_of_day: bool) -> datetime:
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise WindowError(
            f"{name} {text!r} is not an ISO date or date-time, e.g. 2026-11-30"
        ) from None
    if len(text) <= 10:  # a date: from its local midnight, or through its end
        return calendar.midnight(found.date() + timedelta(days=1 if end_of_day else 0))
    return found if found.tzinfo else found.replace(tzinfo=calendar.zone)


def what_changed(
    session: Session, since: datetime, until: datetime, listed: int = RECORDS_LISTED
) -> Changes:
    """Each live key result's movement from ``since`` to ``until`` (aware datetimes),
    moved and new ones first; ``listed`` records of each kind are named per key result."""
    if since >= until:
        raise WindowError(f"the window is empty: {since.isoformat()} is not before {until}")
    live = select(KeyResult).where(KeyResult.retired_at.is_(None)).order_by(KeyResult.id)
    named = people(session)
    movements = [
        _movement(session, kr, since, until, listed, named(kr.owner).name)
        for kr in session.scalars(live)
    ]
    order = list(MovementKind)
    movements.sort(key=lambda m: order.index(m.kind))  # stable: by id within a kind
    return Changes(since, until, movements, org_calendar(session).timezone)


def recent_changes(session: Session, now: datetime, days: int = WINDOW_DAYS) -> Changes:
    """What changed in the ``days`` up to ``now``: the dashboard's "what changed" section."""
    return what_changed(session, now - timedelta(days=days), now)


def _in_force(session: Session, kr_id: str, at: datetime) -> Measurement | None:
    try:
        return measurement_at(session, kr_id, at)
    except LookupError:
        return None


def _movement(
    session: Session, kr: KeyResult, since: datetime, until: datetime, listed: int, owner: str
) -> Movement:
    then, now = _in_force(session, kr.id, since), _in_force(session, kr.id, until)
    written = list(
        session.scalars(
            select(Measurement)
            .where(
                Measurement.key_result_id == kr.id,
                Measurement.measured_at > since,
                Measurement.measured_at <= until,
            )
            .order_by(Measurement.measured_at, Measurement.id)
        )
    )
    if now is None:
        kind = MovementKind.NO_DATA
    elif then is None:
        kind = MovementKind.NEW
    elif then.id == now.id or (then.value == now.value and then.status == now.status):
        kind = MovementKind.UNCHANGED
    else:
        kind = MovementKind.MOVED
    value_then = then.value if then else None
    value_now = now.value if now else None
    moved = kind is MovementKind.MOVED
    records = _diff(session, then, now, listed) if moved and then and now else None
    restatements = [_restated(session, m, kr.period) for m in written if m.restates_id is not None]
    return Movement(
        key_result_id=kr.id,
        title=kr.title,
        objective_id=kr.objective_id,
        owner=kr.owner,
        owner_name=owner,
        period=kr.period,
        unit=(now.unit if now else None) or kr.unit,
        direction=kr.direction,
        kind=kind,
        value_then=value_then,
        value_now=value_now,
        change=(
            None if value_then is None or value_now is None or not moved else value_now - value_then
        ),
        status_then=then.status if then else None,
        status_now=now.status if now else None,
        measured_then=then.measured_at if then else None,
        measured_now=now.measured_at if now else None,
        measurements=len(written),
        records=records,
        restatements=restatements if moved else [],
        notes=_notes(then, now, records) if moved and then and now else [],
    )


def _restated(session: Session, measurement: Measurement, period: str) -> Restated:
    found = restatement_of(session, measurement, record_keys(session, measurement.id))
    return Restated(
        period=period,
        measured_at=measurement.measured_at,
        old_value=found.old_value,
        value=measurement.value,
        difference=found.difference,
        old_measured_at=datetime.fromisoformat(found.old_measured_at),
        added=len(found.added),
        removed=len(found.removed),
        changed=len(found.changed),
    )


def _notes(then: Measurement, now: Measurement, records: RecordDiff | None) -> list[str]:
    """Reasons besides records: a new definition, new code, an error, time alone."""
    notes = []
    if (then.metric, then.params) != (now.metric, now.params):
        notes.append(
            f"its definition changed: {then.metric} {then.params} → {now.metric} {now.params}"
        )
    if then.code_version != now.code_version:
        notes.append(f"computed by okr-sync {now.code_version} (was {then.code_version})")
    error = (now.details or {}).get("error")
    if error:
        notes.append(f"no number now: {error}")
    if then.value == now.value:
        notes.append("the value held; its status moved with the time passed in the period")
    elif records is not None and records.empty and not notes:
        notes.append(
            "no record behind it changed: the value depends on the date or on other data"
            " (exchange rates, the period elapsed)"
        )
    return notes


def _cutoff(measurement: Measurement) -> datetime:
    return measurement.data_cutoff or measurement.measured_at


def _diff(session: Session, then: Measurement, now: Measurement, listed: int) -> RecordDiff:
    before, after = record_keys(session, then.id), record_keys(session, now.id)
    low, high = _cutoff(then), _cutoff(now)
    added, removed, kept = after - before, before - after, before & after
    rows = mirror_rows(session, added | removed | kept)
    changes: list[RecordChange] = []
    for key in sorted(added):
        changes.append(_record(key, rows.get(key), RecordChangeKind.ADDED, low, high))
    for key in sorted(removed):
        changes.append(_record(key, rows.get(key), RecordChangeKind.REMOVED, low, high))
    for key in sorted(kept):
        row = rows.get(key)
        if row is not None and low < row.source_modified_at <= high:
            changes.append(_record(key, row, RecordChangeKind.CHANGED, low, high))
    counted = Counter(change.change for change in changes)
    shown: Counter[RecordChangeKind] = Counter()
    listed_changes = []
    for change in changes:
        shown[change.change] += 1
        if shown[change.change] <= listed:
            listed_changes.append(change)
    return RecordDiff(
        added=counted[RecordChangeKind.ADDED],
        removed=counted[RecordChangeKind.REMOVED],
        changed=counted[RecordChangeKind.CHANGED],
        new=sum(1 for c in changes if c.why == NEW),
        edited_in=sum(1 for c in changes if c.change is RecordChangeKind.ADDED and c.why == EDITED),
        deleted=sum(1 for c in changes if c.why == DELETED),
        edited_out=sum(
            1 for c in changes if c.change is RecordChangeKind.REMOVED and c.why == EDITED
        ),
        by_entity=dict(Counter(change.entity for change in changes)),
        records=listed_changes,
    )


NEW, DELETED, EDITED = "new at the source", "deleted at the source", "edited at the source"


def _record(
    key: RecordKey,
    row: MirrorRecord | None,
    change: RecordChangeKind,
    low: datetime,
    high: datetime,
) -> RecordChange:
    """Why the record came, went or changed, as far as the mirror's latest copy tells."""
    entity, source, source_id = key
    if row is None:
        why, at = "no longer in the mirror", None
    elif change is RecordChangeKind.REMOVED and row.deleted_at is not None:
        why, at = DELETED, row.deleted_at
    elif change is RecordChangeKind.ADDED and (created := _created(row)) and created > low:
        why, at = NEW, created
    elif low < row.source_modified_at <= high:
        why, at = EDITED, row.source_modified_at
    elif change is RecordChangeKind.ADDED:
        why, at = "unchanged at the source, counted now (the date moved it in)", None
    else:
        why, at = "unchanged at the source, no longer counted (the date moved it out)", None
    return RecordChange(
        entity=entity,
        source=source,
        source_id=source_id,
        change=change,
        why=why,
        at=at,
        name=getattr(row, "name", None) if row is not None else None,
        now=_state(entity, row) if row is not None else "",
    )


def _created(row: MirrorRecord) -> datetime | None:
    created = getattr(row, "created_at", None) or getattr(row, "rated_at", None)
    return created if isinstance(created, datetime) else None


def _money(amount: Any, currency: Any) -> str:
    return f"{float(amount):,.2f} {currency or ''}".strip()


def _day(value: date | None) -> str:
    return value.isoformat() if value else "?"


def _state(entity: str, row: Any) -> str:
    """The fields that decide the entity's metrics, as the mirror holds them now."""
    parts: list[str] = []
    if row.deleted_at is not None:
        parts.append("deleted")
    if entity == "deal":
        parts.append(row.outcome)
        if row.amount is not None:
            parts.append(_money(row.amount, row.currency))
        verb = "closes" if row.outcome == "open" else "closed"
        parts.append(f"{verb} {_day(row.close_on)}")
    elif entity == "ticket":
        parts += [row.status or "no status", f"created {_day(row.created_at.date())}"]
        if row.priority:
            parts.append(f"priority {row.priority}")
    elif entity == "rating":
        if row.score is not None:
            parts.append(f"score {float(row.score):g} of {row.scale_max}")
        elif row.good is not None:
            parts.append("good" if row.good else "bad")
        else:
            parts.append("not answered")
        parts.append(f"rated {_day(row.rated_at.date())}")
    elif entity == "customer":
        parts.append(f"customer since {_day(row.became_customer_on)}")
        if row.churned_on:
            parts.append(f"churned {_day(row.churned_on)}")
    elif entity == "rep":
        parts += [row.team or "no team", "active" if row.active else "inactive"]
    elif entity == "fx_rate":
        parts.append(f"{row.currency} {float(row.rate):g}")
    elif entity == "finance_line":
        parts += [
            f"amount {_money(row.amount, row.currency)}",
            f"cost {_money(row.cost, row.currency)}",
            f"booked {_day(row.booked_on)}",
        ]
    return ", ".join(parts)


def _words(status: str | None) -> str:
    return (status or "none").replace("_", " ")


# --- the views: JSON, and text/markdown lines (the CLI, the digest) ---------------------------


def changes_json(changes: Changes) -> dict[str, Any]:
    """The changes as a JSON-ready document: raw numbers beside their formatted text."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    movements = []
    for movement in changes.movements:
        shown = plain(asdict(movement))
        shown.update(
            change_text=movement.change_text,
            headline=movement.headline,
            reasons=movement.reasons,
        )
        movements.append(shown)
    return {
        "version": CHANGES_VERSION,
        "since": changes.since.isoformat(),
        "timezone": changes.timezone,
        "until": changes.until.isoformat(),
        "counts": changes.counts,
        "movements": movements,
    }


def changes_lines(changes: Changes, markdown: bool = False, records: bool = True) -> list[str]:
    """What changed as short lines, moved and new key results with their reasons, then
    the unchanged and unmeasured ones by name; ``markdown`` for Prefect artifacts and digests."""

    def strong(text: str) -> str:
        return f"**{_md(text)}**" if markdown else text

    counts = changes.counts
    lines = [
        f"What changed from {format_time(changes.since.isoformat(), changes.timezone)} to "
        f"{format_time(changes.until.isoformat(), changes.timezone)}: {counts['moved']} moved, "
        f"{counts['new']} first measured, {counts['unchanged']} unchanged, "
        f"{counts['no_data']} not measured yet"
    ]
    bullet = "- " if markdown else ""
    indent = "  - " if markdown else "    "
    for movement in changes.of(MovementKind.MOVED, MovementKind.NEW):
        lines.append(f"{bullet}{strong(movement.title)}: {_md(movement.headline)}")
        for reason in movement.reasons:
            lines.append(f"{indent}{_md(reason) if markdown else reason}")
        if records and movement.records is not None:
            for change in movement.records.records:
                lines.append(f"{indent}{_md(change.text) if markdown else change.text}")
    for kind, label in ((MovementKind.UNCHANGED, "Unchanged"), (MovementKind.NO_DATA, "No data")):
        titles = [m.title for m in changes.of(kind)]
        if titles:
            shown = "; ".join(_md(title) if markdown else title for title in titles)
            lines.append(f"{bullet}{label} ({len(titles)}): {shown}")
    return lines


def _md(text: str) -> str:
    """Markdown that shows as written: no tables broken, no emphasis from a title."""
    for special in ("\\", "|", "*", "_", "`", "[", "]", "<", ">"):
        text = text.replace(special, "\\" + special)
    return text.replace("\n", " ")
