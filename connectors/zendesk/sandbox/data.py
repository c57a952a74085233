"""The sandbox helpdesk: Zendesk records in the API's own shapes, their generator and seed files.

Records are stored exactly as the Support API returns them (integer ids, ``...Z`` UTC
timestamps) and are never changed in place: an edit replaces the dict, so a page being
served stays consistent while a test edits the helpdesk mid-sync. Tickets are indexed by
``(generated_timestamp, id)``, the order of the incremental export, so paging through a
million tickets costs a bisect per page, never a scan.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import math
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from connectors.sandbox.world import CompanySeed, load_jsonl, quarter_start_day

SANDBOX_URL = "https://okr-sync-sandbox.zendesk.com"
FILES = {
    "organizations": "organizations.jsonl",
    "tickets": "tickets.jsonl",
    "metric_sets": "ticket_metrics.jsonl",
    "ratings": "satisfaction_ratings.jsonl",
    "surveys": "csat_surveys.jsonl",
    "survey_responses": "survey_responses.jsonl",
}
"""Helpdesk attribute -> seed file name (one JSON record per line, in the API's shape)."""

Record = dict[str, Any]

_DAY = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@functools.cache
def _iso_day(day: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


_HOURS = [f"T{h:02d}:" for h in range(24)]
_MINSEC = [f"{m:02d}:{s:02d}Z" for m in range(60) for s in range(60)]


def iso(sec: int) -> str:
    """Zendesk's timestamp form (``2026-01-05T10:00:00Z``) of whole epoch seconds, cheaply."""
    day, rest = divmod(sec, _DAY)
    hour, rest = divmod(rest, 3600)
    return _iso_day(day) + _HOURS[hour] + _MINSEC[rest]


def epoch(text: str) -> int:
    """Whole epoch seconds of an ISO 8601 timestamp that carries its offset."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return int(parsed.timestamp())


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(ms: int, rng: random.Random) -> str:
    """A ULID, the id Zendesk gives survey responses: 48 bits of epoch milliseconds, then
    80 random bits, in Crockford base32 (26 characters; lexical order is time order)."""
    value = (ms << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def ulid_seconds(text: str) -> int:
    """Epoch seconds a ULID was made at (its first ten characters)."""
    ms = 0
    for char in text[:10].upper():
        ms = ms * 32 + _CROCKFORD.index(char)
    return ms // 1000


def _record_id(record: Mapping[str, Any], name: str = "id") -> int:
    value = record.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"record has no integer {name!r}")
    return value


class Helpdesk:
    """Organizations, tickets (with their metric sets) and satisfaction ratings of one account.

    ``add_*`` store a record verbatim (loading, generating); ``upsert_*``/``delete_*`` edit
    like an agent or the API would, moving ``updated_at`` past every change already made so
    an incremental export always sees the edit.
    """

    def __init__(self) -> None:
        self.organizations: dict[int, Record] = {}
        self.tickets: dict[int, Record] = {}
        self.metric_sets: dict[int, Record] = {}  # by ticket id
        self.ratings: dict[int, Record] = {}
        self.surveys: dict[str, Record] = {}  # the current CSAT's surveys, by id
        self.survey_responses: dict[str, Record] = {}  # by ULID id (time order)
        self._lock = threading.RLock()
        self._order: list[tuple[int, int]] = []  # (generated_timestamp, ticket id)
        self._org_ids: list[int] = []
        self._rating_ids: list[int] = []
        self._dirty = False
        self._latest = 0  # newest change anywhere, epoch seconds

    # --- storing ----------------------------------------------------------------------

    def add_organization(self, record: Mapping[str, Any]) -> Record:
        org_id = _record_id(record)
        with self._lock:
            if org_id not in self.organizations:
                self._org_ids.append(org_id)
                self._dirty = True
            self.organizations[org_id] = dict(record)
            self._seen(record.get("updated_at"))
            return self.organizations[org_id]

    def add_ticket(self, record: Mapping[str, Any]) -> Record:
        ticket_id = _record_id(record)
        stamp = record.get("generated_timestamp")
        if not isinstance(stamp, int) or isinstance(stamp, bool):
            updated = record.get("updated_at")
            if not isinstance(updated, str):
                raise ValueError("ticket has neither generated_timestamp nor updated_at")
            stamp = epoch(updated)
        stored = {**record, "generated_timestamp": stamp}
        with self._lock:
            old = self.tickets.get(ticket_id)
            if old is not None:
                self._ensure_sorted()
                del self._order[
                    bisect.bisect_left(self._order, (old["generated_timestamp"], ticket_id))
                ]
            key = (stamp, ticket_id)
            if self._order and key < self._order[-1]:
                self._dirty = True  # sorted once, on the next read: bulk loads stay linear
            self._order.append(key)
            self.tickets[ticket_id] = stored
            self._latest = max(self._latest, stamp)
            return stored

    def add_metric_set(self, record: Mapping[str, Any]) -> Record:
        ticket_id = _record_id(record, "ticket_id")
        with self._lock:
            self.metric_sets[ticket_id] = dict(record)
            return self.metric_sets[ticket_id]

    def add_rating(self, record: Mapping[str, Any]) -> Record:
        rating_id = _record_id(record)
        with self._lock:
            if rating_id not in self.ratings:
                self._rating_ids.append(rating_id)
                self._dirty = True
            self.ratings[rating_id] = dict(record)
            self._seen(record.get("updated_at"))
            return self.ratings[rating_id]

    def add_survey(self, record: Mapping[str, Any]) -> Record:
        """A CSAT survey definition, as ``GET /api/v2/guide/{locale}/surveys`` lists it."""
        with self._lock:
            self.surveys[str(record["id"])] = dict(record)
            return self.surveys[str(record["id"])]

    def add_survey_response(self, record: Mapping[str, Any]) -> Record:
        """A survey response; its id is a ULID, which says when it was created."""
        response_id = record.get("id")
        if not isinstance(response_id, str) or len(response_id) != 26:
            raise ValueError("survey response has no ULID 'id'")
        with self._lock:
            self.survey_responses[response_id] = dict(record)
            return self.survey_responses[response_id]

    def survey_response_page(
        self, after: str, limit: int, created_from: int | None = None
    ) -> tuple[list[Record], bool]:
        """Responses with an id above ``after`` (creation order), created at or after
        ``created_from`` (epoch seconds), and whether more follow."""
        with self._lock:
            ids = sorted(i for i in self.survey_responses if i > after)
        if created_from is not None:
            ids = [i for i in ids if ulid_seconds(i) >= created_from]
        return [self.survey_responses[i] for i in ids[:limit]], len(ids) > limit

    def _seen(self, updated_at: Any) -> None:
        if isinstance(updated_at, str):
            with contextlib.suppress(ValueError):  # a malformed edit is served as it is
                self._latest = max(self._latest, epoch(updated_at))

    def _ensure_sorted(self) -> None:
        if self._dirty:
            self._order.sort()
            self._org_ids.sort()
            self._rating_ids.sort()
            self._dirty = False

    # --- reading (what the emulator serves) ---------------------------------------------

    def latest_change(self) -> int:
        """Epoch seconds of the newest change in the helpdesk (0 when empty)."""
        return self._latest

    def ticket_page(
        self, after: tuple[int, int], limit: int
    ) -> tuple[list[Record], list[Record], tuple[int, int], bool]:
        """Tickets after a ``(generated_timestamp, id)`` position, their metric sets,
        the position after the page and whether more follow."""
        with self._lock:
            self._ensure_sorted()
            start = bisect.bisect_right(self._order, after)
            keys = self._order[start : start + limit]
            tickets = [self.tickets[ticket_id] for _, ticket_id in keys]
            metrics = [self.metric_sets[t] for _, t in keys if t in self.metric_sets]
            more = start + limit < len(self._order)
        return tickets, metrics, keys[-1] if keys else after, more

    def organization_page(self, after: int, limit: int) -> tuple[list[Record], bool]:
        """Organizations with an id above ``after``, in id order, and whether more follow."""
        with self._lock:
            self._ensure_sorted()
            start = bisect.bisect_right(self._org_ids, after)
            ids = self._org_ids[start : start + limit]
            return [self.organizations[i] for i in ids], start + limit < len(self._org_ids)

    def organization_export(self, start: int, limit: int) -> tuple[list[Record], bool]:
        """Organizations updated at or after ``start`` (epoch seconds), oldest first: at
        least ``limit`` of them and every one sharing the last one's second (Zendesk's page
        grows rather than split a second), and whether later ones follow."""
        with self._lock:
            timed = sorted(
                (epoch(str(org["updated_at"])), org_id)
                for org_id, org in self.organizations.items()
            )
        first = bisect.bisect_left(timed, (start, 0))
        end = min(first + limit, len(timed))
        while 0 < end < len(timed) and timed[end][0] == timed[end - 1][0]:
            end += 1
        return [self.organizations[i] for _, i in timed[first:end]], end < len(timed)

    def rating_page(
        self, after: int, limit: int, created_from: str | None = None
    ) -> tuple[list[Record], bool]:
        """Ratings with an id above ``after`` created at or after ``created_from`` (ISO)."""
        with self._lock:
            self._ensure_sorted()
            found: list[Record] = []
            for index in range(bisect.bisect_right(self._rating_ids, after), len(self._rating_ids)):
                rating = self.ratings[self._rating_ids[index]]
                if created_from is not None and str(rating.get("created_at")) < created_from:
                    continue
                if len(found) == limit:
                    return found, True
                found.append(rating)
            return found, False

    def ticket_ids(self, statuses: Iterable[str]) -> list[int]:
        """Ids of the tickets whose status is one of ``statuses``, in id order."""
        wanted = set(statuses)
        with self._lock:
            return sorted(i for i, t in self.tickets.items() if t.get("status") in wanted)

    def show_tickets(self, ids: Iterable[int]) -> list[Record]:
        """Live (not deleted) tickets among ``ids``, like ``tickets/show_many``."""
        with self._lock:
            found = (self.tickets.get(i) for i in ids)
            return [t for t in found if t is not None and t.get("status") != "deleted"]

    # --- editing ------------------------------------------------------------------------

    def _next_stamp(self, now: datetime | None) -> int:
        sec = int((now or datetime.now(UTC)).timestamp())
        self._latest = max(sec, self._latest + 1)
        return self._latest

    def upsert_ticket(self, fields: Mapping[str, Any], *, now: datetime | None = None) -> Record:
        """Create (no ``id``) or update a ticket; ``updated_at`` becomes a fresh stamp."""
        with self._lock:
            stamp = self._next_stamp(now)
            ticket_id = fields.get("id") or max(self.tickets, default=0) + 1
            old = self.tickets.get(ticket_id)
            new: Record = dict(old) if old is not None else _new_ticket(ticket_id, stamp)
            new.update(fields)
            new.update(id=ticket_id, updated_at=iso(stamp), generated_timestamp=stamp)
            return self.add_ticket(new)

    def delete_ticket(self, ticket_id: int, *, now: datetime | None = None) -> Record:
        """Soft-delete as Zendesk does: the export shows it with status ``deleted``."""
        if ticket_id not in self.tickets:
            raise KeyError(f"no ticket {ticket_id}")
        return self.upsert_ticket({"id": ticket_id, "status": "deleted"}, now=now)

    def upsert_metric_set(
        self, ticket_id: int, fields: Mapping[str, Any], *, now: datetime | None = None
    ) -> Record:
        """Change a ticket's metric set; the ticket is touched so the export carries it."""
        with self._lock:
            ticket = self.upsert_ticket({"id": ticket_id}, now=now)
            old = self.metric_sets.get(ticket_id) or {
                "id": 8_000_000_000 + ticket_id,
                "ticket_id": ticket_id,
                "created_at": ticket.get("created_at"),
            }
            return self.add_metric_set({**old, **fields, "updated_at": ticket["updated_at"]})

    def upsert_organization(
        self, fields: Mapping[str, Any], *, now: datetime | None = None
    ) -> Record:
        with self._lock:
            stamp = iso(self._next_stamp(now))
            org_id = fields.get("id") or max(self.organizations, default=10_000_000) + 1
            old = self.organizations.get(org_id)
            new: Record = dict(old) if old is not None else _new_organization(org_id, stamp)
            new.update(fields)
            new.update(id=org_id, updated_at=stamp)
            return self.add_organization(new)

    def delete_organization(self, org_id: int) -> None:
        """Remove an organization (Zendesk's list stops returning it; no tombstone)."""
        with self._lock:
            del self.organizations[org_id]
            self._org_ids.remove(org_id)

    def upsert_rating(self, fields: Mapping[str, Any], *, now: datetime | None = None) -> Record:
        """Create (``created_at`` = now) or update a satisfaction rating."""
        with self._lock:
            stamp = iso(self._next_stamp(now))
            rating_id = fields.get("id") or max(self.ratings, default=5_000_000_000) + 1
            old = self.ratings.get(rating_id)
            new: Record = dict(old) if old is not None else _new_rating(rating_id, stamp)
            new.update(fields)
            new.update(id=rating_id, updated_at=stamp)
            return self.add_rating(new)


def _new_ticket(ticket_id: int, stamp: int) -> Record:
    return {
        "url": f"{SANDBOX_URL}/api/v2/tickets/{ticket_id}.json",
        "id": ticket_id,
        "via": _VIA["web"],
        "created_at": iso(stamp),
        "type": "question",
        "subject": "New ticket",
        "priority": "normal",
        "status": "new",
        "requester_id": None,
        "assignee_id": None,
        "organization_id": None,
        "group_id": None,
    }


def _new_organization(org_id: int, stamp: str) -> Record:
    return {
        "url": f"{SANDBOX_URL}/api/v2/organizations/{org_id}.json",
        "id": org_id,
        "name": f"Organization {org_id}",
        "external_id": None,
        "domain_names": [],
        "details": "",
        "notes": "",
        "group_id": None,
        "shared_tickets": False,
        "shared_comments": False,
        "tags": [],
        "organization_fields": {"industry": None},
        "created_at": stamp,
    }


def _new_rating(rating_id: int, stamp: str) -> Record:
    return {
        "url": f"{SANDBOX_URL}/api/v2/satisfaction_ratings/{rating_id}.json",
        "id": rating_id,
        "assignee_id": None,
        "group_id": None,
        "requester_id": None,
        "ticket_id": None,
        "score": "offered",
        "comment": None,
        "reason": None,
        "created_at": stamp,
    }


# ---------------------------------------------------------------------------
# Generator


def _cumulative(*weights: int) -> tuple[int, ...]:
    return tuple(itertools.accumulate(weights))


def _pick(rng: random.Random, population: Sequence[Any], cumulative: Sequence[int]) -> Any:
    """A weighted choice; cheaper than ``random.choices`` a million times over."""
    return population[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


def _one(rng: random.Random, population: Sequence[Any]) -> Any:
    return population[int(rng.random() * len(population))]


_CHANNELS = ("email", "web", "chat", "api", "voice")
_CHANNEL_WEIGHTS = _cumulative(45, 30, 12, 8, 5)
_VIA = {c: {"channel": c, "source": {"from": {}, "to": {}, "rel": None}} for c in _CHANNELS}
_PRIORITIES = (None, "low", "normal", "high", "urgent")
_PRIORITY_WEIGHTS = _cumulative(10, 25, 45, 17, 3)
_TYPES = ("question", "incident", "problem", "task")
_TYPE_WEIGHTS = _cumulative(45, 35, 10, 10)
_SUBJECTS = (
    "Cannot log in after password reset",
    "Sync job stuck in pending",
    "Invoice shows the wrong amount",
    "How do I add a new user?",
    "Export to CSV times out",
    "Dashboard loads slowly",
    "API returns 500 on bulk update",
    "Question about our renewal",
    "SSO configuration help",
    "Data missing from last week's report",
)
_INDUSTRIES = (
    "Technology",
    "Manufacturing",
    "Healthcare",
    "Financial Services",
    "Retail",
    "Education",
    None,
)
_AGENTS = tuple(900_000_001 + i for i in range(12))
_GROUPS = (360_000_001, 360_000_002, 360_000_003)
_GOOD_COMMENTS = ("Quick and helpful, thanks!", "Solved my problem.", None, None, None)
_BAD_COMMENTS = ("Took far too long.", "Still not working.", None)
_BAD_REASONS = ("The issue took too long to resolve", "The issue was not resolved", None)
_NUMERIC = (5, 4, 3, 2, 1)
_NUMERIC_WEIGHTS = _cumulative(45, 30, 12, 7, 6)
_AUTO_CLOSE = 4 * _DAY  # Zendesk's default automation closes solved tickets after 4 days
_SURVEY_DELAY = _DAY  # and sends the satisfaction survey a day after solving


def generate_helpdesk(
    seed: int = 7,
    as_of: datetime | None = None,
    companies: Sequence[CompanySeed] = (),
    tickets_per_customer_per_quarter: float = 3.0,
    csat_switched_at: datetime | None = None,
) -> Helpdesk:
    """A deterministic helpdesk for (seed, as_of, companies): one organization per company.

    Tickets come only from customers, between ``customer_since`` and ``churned_on`` (or
    ``as_of``); their status follows their own timeline (first reply, solve, auto-close after
    four days), so old tickets are closed and recent ones open. About 35% of solved tickets
    get an answered survey (a sixth of those on a 1-5 scale, the sandbox's model of a
    customised survey), some more stay ``offered``; a few tickets are deleted. Every
    timestamp is at or before ``as_of``. Linear in the number of tickets.

    With ``csat_switched_at`` the account moved to the current CSAT then: surveys sent
    from that time on are survey responses of a 5-point survey (:func:`add_current_csat`),
    and the legacy ratings before it stay, as on a real account that switched.
    """
    if as_of is None:
        as_of = datetime.now(UTC)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    now = int(as_of.timestamp())
    rng = random.Random(seed)
    desk = Helpdesk()
    spans: list[tuple[int, int, int, int]] = []  # org id, first, last second, requester base
    for index, company in enumerate(companies):
        org_id = 10_000_001 + index
        since = company.customer_since
        start = (since.toordinal() - _EPOCH_ORDINAL) * _DAY if since else now - 365 * _DAY
        created = min(start + rng.randrange(8 * 3600, 18 * 3600), now)
        updated = created + int(rng.random() * (now - created))
        desk.add_organization(
            {
                **_new_organization(org_id, iso(created)),
                "name": company.name,
                "external_id": company.crm_id,
                "domain_names": [company.domain],
                "organization_fields": {"industry": rng.choice(_INDUSTRIES)},
                "updated_at": iso(updated),
            }
        )
        end = now
        if company.churned_on is not None:
            end = min(end, (company.churned_on.toordinal() - _EPOCH_ORDINAL) * _DAY)
        if since is not None and end > created:
            spans.append((org_id, created, end, 20_000_000 + 1000 * index))

    per_second = tickets_per_customer_per_quarter / (91.3 * _DAY)
    births: list[tuple[int, int, int]] = []  # created, org id, requester id
    for org_id, start, end, requesters in spans:
        expected = per_second * rng.uniform(0.4, 1.6) * (end - start)
        count = int(expected) + (rng.random() < expected - int(expected))
        people = rng.randint(2, 30)
        for _ in range(count):
            when = start + int(rng.random() * (end - start))
            births.append((when, org_id, requesters + rng.randrange(1, people + 1)))
    births.sort()
    # Boundaries the ticket and CSAT metrics must cut right (issue 22): this quarter's
    # first ticket from an older customer is created, and its first answered rating of a
    # ticket solved before it is given, at the very instant the quarter starts (midnight
    # UTC), the exact end of the last quarter.
    boundary = quarter_start_day(now // _DAY) * _DAY
    customer_at = {org_id: start for org_id, start, _, _ in spans}
    planted = next(
        (
            i
            for i, (at, org, _) in enumerate(births)
            if at >= boundary and customer_at[org] < boundary
        ),
        None,
    )
    if planted is not None:
        moved = births[planted] = (boundary, *births[planted][1:])
        births.sort()
        planted = births.index(moved)

    surveys: list[tuple[int, int, Record, Any]] = []  # created, updated, ticket, score
    for ticket_id, (created, org_id, requester) in enumerate(births, start=1):
        _add_generated_ticket(
            desk, rng, now, ticket_id, created, org_id, requester, surveys, ticket_id - 1 == planted
        )
    surveys.sort(key=lambda s: (s[0], s[2]["id"]))
    rated = next(
        (
            i
            for i, (at, _, ticket, score) in enumerate(surveys)
            if at >= boundary
            and score not in ("offered", "unoffered")
            and epoch(desk.metric_sets[ticket["id"]]["solved_at"]) < boundary
        ),
        None,
    )
    if rated is not None:
        surveys[rated] = (boundary, boundary, *surveys[rated][2:])
    switch = None if csat_switched_at is None else int(csat_switched_at.timestamp())
    later = [survey for survey in surveys if switch is not None and survey[0] >= switch]
    for rating_id, (created, updated, ticket, score) in enumerate(surveys, 5_000_000_001):
        if switch is None or created < switch:
            desk.add_rating(_survey(rng, rating_id, created, updated, ticket, score))
    if switch is not None:
        add_current_csat(desk, random.Random(seed + 1), switch, later, now)
    return desk


def _lognormal_minutes(rng: random.Random, median: float, sigma: float, cap: int) -> int:
    return max(1, min(cap, round(rng.lognormvariate(math.log(median), sigma))))


def _add_generated_ticket(
    desk: Helpdesk,
    rng: random.Random,
    now: int,
    ticket_id: int,
    created: int,
    org_id: int,
    requester: int,
    surveys: list[tuple[int, int, Record, Any]],
    kept: bool = False,
) -> None:
    """One ticket's timeline: first reply (minutes to days), solve, auto-close or not;
    never deleted if ``kept``."""
    reply_min: int | None = _lognormal_minutes(rng, 150, 1.4, 10 * 1440)
    if rng.random() < 0.04 or created + 60 * (reply_min or 0) > now:
        reply_min = None  # never answered in public, or not yet
    base = created + 60 * (reply_min or 0)
    solve_min = _lognormal_minutes(rng, 1000, 1.3, 30 * 1440)
    solved = base + 60 * solve_min if rng.random() >= 0.03 else None
    if solved is not None and solved > now:
        solved = None
    if solved is not None:
        closed = solved + _AUTO_CLOSE <= now
        status = "closed" if closed else "solved"
        updated = solved + _AUTO_CLOSE if closed else solved
    elif reply_min is None:
        status = "new" if now - created < 2 * _DAY else "open"
        updated = created if status == "new" else created + int(rng.random() * (now - created))
    else:
        status = _pick(rng, ("open", "pending", "hold"), (5, 9, 10))
        updated = base + int(rng.random() * (now - base))
    if rng.random() < 0.006 and not kept:
        status, updated = "deleted", created + int(rng.random() * (now - created))
    ticket = desk.add_ticket(
        {
            "url": f"{SANDBOX_URL}/api/v2/tickets/{ticket_id}.json",
            "id": ticket_id,
            "via": _VIA[_pick(rng, _CHANNELS, _CHANNEL_WEIGHTS)],
            "created_at": iso(created),
            "updated_at": iso(updated),
            "generated_timestamp": updated,
            "type": _pick(rng, _TYPES, _TYPE_WEIGHTS),
            "subject": _one(rng, _SUBJECTS),
            "priority": _pick(rng, _PRIORITIES, _PRIORITY_WEIGHTS),
            "status": status,
            "requester_id": requester,
            "assignee_id": _one(rng, _AGENTS) if reply_min or solved else None,
            "organization_id": org_id,
            "group_id": _one(rng, _GROUPS),
        }
    )
    minutes = None if solved is None else (solved - created) // 60
    resolution = {"calendar": minutes, "business": None if minutes is None else minutes * 2 // 5}
    metric_set: Record = {
        "url": f"{SANDBOX_URL}/api/v2/ticket_metrics/{8_000_000_000 + ticket_id}.json",
        "id": 8_000_000_000 + ticket_id,
        "ticket_id": ticket_id,
        "created_at": iso(created),
        "updated_at": iso(updated),
        "replies": 0 if reply_min is None else rng.randint(1, 4),
        "reopens": 0,
        "reply_time_in_minutes": {
            "calendar": reply_min,
            "business": None if reply_min is None else reply_min * 2 // 5,
        },
        "first_resolution_time_in_minutes": resolution,  # shared: records are never
        "full_resolution_time_in_minutes": resolution,  # edited in place
    }
    if solved is not None:  # Zendesk leaves a metric set's unset times out (recordings show it)
        metric_set["solved_at"] = iso(solved)
    desk.add_metric_set(metric_set)
    if solved is None or status == "deleted":
        return
    offered = solved + _SURVEY_DELAY + rng.randrange(-7200, 7200)
    pick = rng.random()
    if offered > now or pick >= 0.52:
        return
    if pick < 0.35:  # answered
        answered = min(now, offered + 60 * _lognormal_minutes(rng, 180, 1.2, 7 * 1440))
        score: Any = _pick(rng, _NUMERIC, _NUMERIC_WEIGHTS) if rng.random() < 0.17 else None
        if score is None:
            score = "good" if rng.random() < 0.8 else "bad"
        surveys.append((answered, answered, ticket, score))
    else:
        surveys.append((offered, offered, ticket, "offered" if pick < 0.5 else "unoffered"))


def _survey(
    rng: random.Random, rating_id: int, created: int, updated: int, ticket: Record, score: Any
) -> Record:
    unhappy = score == "bad" or (isinstance(score, int) and score <= 2)
    comment = None
    if score not in ("offered", "unoffered"):
        comment = rng.choice(_BAD_COMMENTS if unhappy else _GOOD_COMMENTS)
    return {
        **_new_rating(rating_id, iso(created)),
        "assignee_id": ticket["assignee_id"],
        "group_id": ticket["group_id"],
        "requester_id": ticket["requester_id"],
        "ticket_id": ticket["id"],
        "score": score,
        "comment": comment,
        "reason": rng.choice(_BAD_REASONS) if unhappy else None,
        "updated_at": iso(updated),
    }


# ---------------------------------------------------------------------------
# The current CSAT: a survey and its responses, shaped as Zendesk documents them

CSAT_SURVEY_ID = "01J58KJ9RAE0D2EK7HRVM7Z8F2"
CSAT_QUESTION_ID = "01GFYBENPDGN1R6NAA4WRDNVFR"
REASON_QUESTION_ID = "01JQ6E6V6SSXM7796DDCYM73NC"
COMMENT_QUESTION_ID = "01JQ6E6V6SQ9P0KB16GFZN61VK"
_LABELS = ("Very unsatisfied", "Unsatisfied", "Neutral", "Satisfied", "Very satisfied")
_CATEGORIES = ("bad", "bad", "neutral", "good", "good")
"""Zendesk's category of ratings 1-5: 4 and 5 are good, as it counts them for reports."""


def _text(value: str) -> Record:
    return {"type": "static", "value": value}


def csat_survey(version: int = 3, state: str = "enabled") -> Record:
    """The account's CSAT survey: a 5-point numeric rating, a reason, a comment."""
    options = [
        {"label": _text(label), "rating": rating, "follow_up": {"question_id": REASON_QUESTION_ID}}
        for rating, label in enumerate(_LABELS, start=1)
    ]
    return {
        "id": CSAT_SURVEY_ID,
        "state": state,
        "version": version,
        "created_at": "2024-08-14T12:00:00.000Z",
        "updated_at": "2026-05-04T09:30:00.000Z",
        "questions": [
            {
                "id": CSAT_QUESTION_ID,
                "type": "rating_scale_numeric",
                "sub_type": "customer_satisfaction",
                "headline": _text("How would you rate the support you received?"),
                "options": options,
            },
            {
                "id": REASON_QUESTION_ID,
                "type": "closed_ended",
                "headline": _text("Select a reason regarding your experience"),
                "options": [],
                "follow_up": {"question_id": COMMENT_QUESTION_ID},
            },
            {
                "id": COMMENT_QUESTION_ID,
                "type": "open_ended",
                "alias": "comment",
                "headline": _text("Anything else you would like to share about your experience?"),
            },
        ],
    }


def _iso_ms(sec: int) -> str:
    """Zendesk's survey timestamps carry milliseconds (``2024-08-14T12:00:00.000Z``)."""
    return iso(sec)[:-1] + ".000Z"


def survey_response(
    rng: random.Random,
    offered: int,
    ticket_id: int | None,
    rating: int | None,
    answered: int | None = None,
    *,
    version: int = 3,
    older_shape: bool = False,
    with_category: bool = True,
    requester_id: int | None = None,
    latest: int = 0,
) -> Record:
    """One response as the list returns it. ``rating`` None with ``answered`` is a skipped
    rating question; without ``answered`` nobody answered (no answers yet).

    Two documented shapes: ``subjects`` and a ``survey`` object (the current reference),
    or ``subject_zrns`` with ``survey_id``/``survey_version`` (an earlier one). The rating
    answer's question lists no options (as in Zendesk's example): the scale is the survey's.
    A comment comes up to ten minutes after the rating, never after ``latest``.
    """
    record: Record = {"id": ulid(offered * 1000, rng)}
    answers: list[Record] = []
    if answered is not None:
        question = {
            "id": CSAT_QUESTION_ID,
            "type": "rating_scale_numeric",
            "sub_type": "customer_satisfaction",
            "headline": _text("How would you rate the support you received?"),
        }
        stamp = _iso_ms(answered)
        if rating is None:
            answers.append(
                {"type": "skipped", "question": question, "created_at": stamp, "updated_at": stamp}
            )
        else:
            answer: Record = {
                "type": "rating_scale",
                "rating": rating,
                "question": question,
                "created_at": stamp,
                "updated_at": stamp,
            }
            if with_category:
                answer["rating_category"] = _CATEGORIES[rating - 1]
            answers.append(answer)
            later = _iso_ms(min(answered + rng.randrange(20, 600), max(answered, latest)))
            kind = "open_ended" if rng.random() < 0.4 else "skipped"
            reply: Record = {
                "type": kind,
                "question": {
                    "id": COMMENT_QUESTION_ID,
                    "type": "open_ended",
                    "alias": "comment",
                    "headline": _text("Anything else you would like to share?"),
                },
                "created_at": later,
                "updated_at": later,
            }
            if kind == "open_ended":
                reply["value"] = rng.choice(("Thanks!", "Took too long.", "Solved it."))
            answers.append(reply)
    record["answers"] = answers
    record["expires_at"] = _iso_ms(offered + 28 * _DAY)
    if requester_id is not None:
        record["responder_id"] = requester_id
    zrns = [] if ticket_id is None else [f"zen:ticket:{ticket_id}"]
    if older_shape:
        record |= {
            "subject_zrns": zrns,
            "survey_id": CSAT_SURVEY_ID,
            "survey_version": version,
        }
    else:
        subjects = [{"id": str(ticket_id), "type": "ticket", "zrn": zrns[0]}] if zrns else []
        record |= {
            "subject_zrns": zrns,
            "subjects": subjects,
            "survey": {"id": CSAT_SURVEY_ID, "state": "enabled", "version": version},
        }
    return record


def add_current_csat(
    desk: Helpdesk,
    rng: random.Random,
    switch: int,
    sent: Sequence[tuple[int, int, Record, Any]],
    now: int,
) -> None:
    """The survey, and a response for each survey sent since ``switch`` (as the legacy
    generator drew them): good/bad become 4-5/1-3, numeric scores stay, an ``offered``
    one has no answer yet and an ``unoffered`` one was never sent. Some answers skip the
    rating, some leave out ``rating_category`` or ``responder_id``, a quarter use the
    earlier documented shape, and one in fifty rates a messaging conversation (no ticket)."""
    desk.add_survey(csat_survey())
    for created, _, ticket, score in sent:
        if score == "unoffered":
            continue
        offered = created - rng.randrange(3600, 6 * 3600)
        ticket_id: int | None = ticket["id"]
        if rng.random() < 0.02:
            ticket_id = None
        if score == "offered":
            rating, answered = None, None
        elif score == "good":
            rating, answered = rng.choice((4, 5)), created
        elif score == "bad":
            rating, answered = rng.choice((1, 2, 3)), created
        else:
            rating, answered = int(score), created
        if answered is not None and rng.random() < 0.04:
            rating = None  # the customer skipped the rating question
        response = survey_response(
            rng,
            offered,
            ticket_id,
            rating,
            answered,
            older_shape=rng.random() < 0.25,
            with_category=rng.random() < 0.9,
            requester_id=ticket["requester_id"] if rng.random() < 0.9 else None,
            version=rng.choice((2, 3)),
            latest=now,
        )
        desk.add_survey_response(response)


# ---------------------------------------------------------------------------
# Seed directories (one JSON Lines file per collection, in the API's record shapes)

_TIMES = {
    "organizations": ("created_at", "updated_at"),
    "tickets": ("created_at", "updated_at"),
    "metric_sets": (),
    "ratings": ("created_at", "updated_at"),
    "surveys": (),
    "survey_responses": (),
}


def _normalized(record: Any, times: Sequence[str]) -> Record:
    """A seed record with its timestamps in Zendesk's canonical ``...Z`` form."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    for name in times:
        value = record.get(name)
        if not isinstance(value, str):
            raise ValueError(f"{name} is missing")
        record[name] = iso(epoch(value))
    return record


def load_helpdesk(directory: Path) -> Helpdesk:
    """Read the seed files in :data:`FILES` (missing ones are empty) into a helpdesk."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"seed directory not found: {directory}")
    desk = Helpdesk()
    adders = {
        "organizations": desk.add_organization,
        "tickets": desk.add_ticket,
        "metric_sets": desk.add_metric_set,
        "ratings": desk.add_rating,
        "surveys": desk.add_survey,
        "survey_responses": desk.add_survey_response,
    }
    for kind, name in FILES.items():
        path = directory / name
        if not path.is_file():
            continue
        add, times = adders[kind], _TIMES[kind]
        load_jsonl(path, lambda record: add(_normalized(record, times)))  # noqa: B023
    return desk


def write_helpdesk(desk: Helpdesk, directory: Path) -> list[Path]:
    """Write every collection as JSON Lines (deleted tickets included); returns the files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, name in FILES.items():
        path = directory / name
        records: dict[Any, Record] = getattr(desk, kind)
        with path.open("wb") as handle:
            for key in sorted(records):
                handle.write(orjson.dumps(records[key], option=orjson.OPT_APPEND_NEWLINE))
        written.append(path)
    return written
