"""Randomized fault schedules over whole syncs, shared by the sync-level property tests.

A drawn schedule only proves something if its faults were served, so faults are drawn
only on path prefixes every run requests, at most as deep into a run as its fewest
requests reach; the tests then assert that no fault was left in a queue. Between two
runs the sources change (edits, new records, deletes) as an agent would change them.
``event`` records what was drawn: ``pytest --hypothesis-show-statistics`` shows how often.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from hypothesis import event
from hypothesis import strategies as st
from sqlalchemy import func, select

from connectors.hubspot.sandbox.data import HubSpotPortal
from connectors.salesforce.sandbox.data import SalesforceOrg
from connectors.sandbox.server import Fault, Faults, parse_faults
from connectors.zendesk.sandbox.data import Helpdesk
from okr_targets.models import MIRROR, Measurement, MeasurementRecord
from okr_targets.store import Store

Schedule = list[tuple[str, str, int, int]]
"""Each drawn fault: (kind, path prefix, times, requests passed through before it)."""


def schedules(
    faults: list[str], depths: dict[str, int], *, min_size: int, max_size: int
) -> st.SearchStrategy[Schedule]:
    """Faults on the prefixes of ``depths``, each after up to ``depths[path]`` requests
    that pass through (so a fault can land after a run committed batches)."""
    item = st.sampled_from(sorted(depths)).flatmap(
        lambda path: st.tuples(
            st.sampled_from(faults), st.just(path), st.integers(1, 3), st.integers(0, depths[path])
        )
    )
    return st.lists(item, min_size=min_size, max_size=max_size)


def inject(queue: Faults, schedule: Schedule, depths: dict[str, int], label: str) -> str:
    """Queue a schedule (its pass-throughs capped at each path's depth over the whole
    schedule, so every fault is reached) and record what was drawn; returns its spec."""
    left = dict(depths)
    parts = []
    for kind, path, times, skip in schedule:
        skip = min(skip, left[path])
        left[path] -= skip
        parts += [f"slow:0.01x{skip}@{path}"] if skip else []
        parts.append(f"{kind}x{times}@{path}")
        event(f"{label}: {kind.split(':')[0]} at {path}" + (" after commits" if skip else ""))
    spec = ",".join(parts)
    queue.extend(parse_faults(spec) if spec else [])
    return spec


def unserved(queues: Iterable[Faults]) -> list[Fault]:
    """The faults no request met: any of them makes the example prove less than it says."""
    return [fault for queue in queues for fault in queue.pending()]


@dataclass(frozen=True)
class Changes:
    """What changes at a source between two runs: how many records are edited, added and
    deleted (``deleted`` >= 1: deletes between runs are the point), picked by ``seed``."""

    edited: int
    added: int
    deleted: int
    seed: int


def changes(max_edited: int = 60) -> st.SearchStrategy[Changes]:
    return st.builds(
        Changes,
        st.integers(0, max_edited),
        st.integers(0, 3),
        st.integers(1, 3),
        st.integers(0, 2**16),
    )


def _times(now: datetime, count: int, step: timedelta) -> list[datetime]:
    """Change times after the deletes (at now - 5 min): a cursor past them is past the
    deletes too. Older than a minute: Zendesk's exports hold back the last one."""
    return [now - timedelta(minutes=2) + step * number for number in range(count)]


def change_org(org: SalesforceOrg, changes: Changes, now: datetime) -> list[str]:
    """Delete (queryAll shows them IsDeleted), add and edit opportunities; the deleted Ids."""
    rng = random.Random(changes.seed)
    live = sorted(o["Id"] for o in org.records("Opportunity"))
    deleted = rng.sample(live, changes.deleted)
    for record_id in deleted:
        org.delete("Opportunity", record_id, now=now - timedelta(minutes=5))
    kept = [record_id for record_id in live if record_id not in deleted]
    edited = rng.sample(kept, changes.edited)
    templates = rng.sample(kept, changes.added)
    stamps = iter(_times(now, changes.edited + changes.added, timedelta(milliseconds=1)))
    for record_id in edited:
        amount = org.get("Opportunity", record_id)["Amount"]  # type: ignore[index]
        edit = {"Name": "edited"} if amount is None else {"Amount": amount + 1000}
        org.upsert("Opportunity", {"Id": record_id, **edit}, now=next(stamps))
    fixed = {"Id", "attributes", "CreatedDate", "LastModifiedDate", "SystemModstamp"}
    for record_id in templates:
        template = org.get("Opportunity", record_id) or {}
        copy = {name: value for name, value in template.items() if name not in fixed}
        org.upsert("Opportunity", {**copy, "Name": f"{copy.get('Name')} again"}, now=next(stamps))
    event(f"salesforce: {changes.deleted} opportunities deleted between runs")
    return deleted


def change_helpdesk(
    helpdesk: Helpdesk, changes: Changes, now: datetime, drop_organization: bool
) -> list[int]:
    """Delete (status ``deleted`` in the export), add and edit tickets, and perhaps delete
    an organization outright; the deleted organizations' ids."""
    rng = random.Random(changes.seed)
    live = sorted(i for i, t in helpdesk.tickets.items() if t.get("status") != "deleted")
    deleted = rng.sample(live, changes.deleted)
    for ticket_id in deleted:
        helpdesk.delete_ticket(ticket_id, now=now - timedelta(minutes=5))
    kept = [ticket_id for ticket_id in live if ticket_id not in deleted]
    stamps = iter(_times(now, changes.edited + changes.added, timedelta(seconds=1)))
    for ticket_id in rng.sample(kept, changes.edited):
        helpdesk.upsert_ticket({"id": ticket_id, "priority": "urgent"}, now=next(stamps))
    for template_id in rng.sample(kept, changes.added):
        template = helpdesk.tickets[template_id]
        fields = {k: template[k] for k in ("organization_id", "via", "type", "priority")}
        helpdesk.upsert_ticket(fields, now=next(stamps))
    event(f"zendesk: {changes.deleted} tickets deleted between runs")
    gone: list[int] = []
    if drop_organization:
        # Zendesk keeps no tombstone of an organization: only the reconcile sees it go.
        gone = [rng.choice(sorted(helpdesk.organizations))]
        helpdesk.delete_organization(gone[0])
    event(f"zendesk: organization deleted between runs: {drop_organization}")
    return gone


def change_portal(portal: HubSpotPortal, changes: Changes, now: datetime) -> list[str]:
    """Archive deals (and a company with the first of them), add and edit deals; the
    archived deals' ids."""
    rng = random.Random(changes.seed)
    live = sorted(r["id"] for r in portal.records("deals"))
    archived = rng.sample(live, changes.deleted)
    for record_id in archived:
        portal.archive("deals", record_id, at=now - timedelta(minutes=5))
    company = rng.choice(sorted(r["id"] for r in portal.records("companies")))
    portal.archive("companies", company, at=now - timedelta(minutes=5))
    kept = [record_id for record_id in live if record_id not in archived]
    stamps = iter(_times(now, changes.edited + changes.added, timedelta(milliseconds=1)))
    for record_id in rng.sample(kept, changes.edited):
        amount = portal.get("deals", record_id)["properties"].get("amount")  # type: ignore[index]
        edit = {"dealname": "edited"} if not amount else {"amount": str(float(amount) + 1000)}
        portal.update("deals", record_id, edit, at=next(stamps))
    next_id = max(int(record_id) for record_id in live) + 1
    for number, record_id in enumerate(rng.sample(kept, changes.added)):
        new_id = str(next_id + number)
        template: dict[str, Any] = portal.get("deals", record_id)  # type: ignore[assignment]
        properties = {**template["properties"], "hs_object_id": new_id}
        portal.add("deals", {**template, "id": new_id, "properties": properties})
        portal.update("deals", new_id, {"dealname": "added"}, at=next(stamps))
    event(f"hubspot: {changes.deleted} deals and 1 company archived between runs")
    return archived


# --- comparing stores ---------------------------------------------------------------------

Mirror = dict[str, set[tuple[Any, ...]]]


def mirror_state(store_url: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every mirror table's rows, without the run that wrote them (nor when the OKR file's
    own exchange rates were first read: that is the run's time, not source data)."""
    store = Store.open(store_url)
    content = {}
    with store.session() as session:
        for entity, model in MIRROR.items():
            columns = [c for c in model.__table__.columns if c.name != "run_id"]
            rows = session.execute(select(*columns)).mappings()
            content[entity] = {
                tuple(
                    None if row["source"] == "config" and name == "source_modified_at" else value
                    for name, value in row.items()
                )
                for row in rows
            }
    store.dispose()
    return content


def measured(store_url: str) -> dict[str, tuple[float | None, int]]:
    """Each key result's latest value and how many records it was computed from."""
    store = Store.open(store_url)
    latest: dict[str, tuple[float | None, int]] = {}
    with store.session() as session:
        rows = session.execute(
            select(Measurement.key_result_id, Measurement.value, func.count())
            .outerjoin(MeasurementRecord)
            .group_by(Measurement.id)
            .order_by(Measurement.id)
        )
        for key_result_id, value, records in rows:
            latest[key_result_id] = (value, records)
    store.dispose()
    return latest


def differences(
    actual: tuple[dict[str, Any], dict[str, Any]], expected: tuple[dict[str, Any], dict[str, Any]]
) -> list[str]:
    """What differs between two (mirror, measurements) states, readably."""
    found = []
    for name in sorted(set(actual[0]) | set(expected[0])):
        extra = actual[0].get(name, set()) - expected[0].get(name, set())
        missing = expected[0].get(name, set()) - actual[0].get(name, set())
        if extra or missing:
            found.append(f"{name}: {len(extra)} unexpected e.g. {sorted(extra, key=repr)[:2]}")
            found.append(f"{name}: {len(missing)} missing e.g. {sorted(missing, key=repr)[:2]}")
    for key in sorted(set(actual[1]) | set(expected[1])):
        if actual[1].get(key) != expected[1].get(key):
            found.append(f"{key}: {actual[1].get(key)} != {expected[1].get(key)}")
    return found


def copy_store(source_url: str, target_url: str) -> None:
    """Copy a closed SQLite store (its write-ahead log checkpointed away on close)."""
    source, target = (Path(url.removeprefix("sqlite:///")) for url in (source_url, target_url))
    assert not source.with_name(f"{source.name}-wal").exists(), "the store is still open"
    shutil.copyfile(source, target)


def reconciled_away(store_url: str, entity: str, source: str, ids: list[str]) -> Mirror:
    """The mirror less the rows of records the reconcile tombstoned (a fresh sync never
    sees them, and the reconcile stamps its own time); asserts each is tombstoned."""
    model = MIRROR[entity]
    store = Store.open(store_url)
    with store.session() as session:
        rows = session.execute(
            select(model.source_id, model.deleted_at).where(
                model.source == source, model.source_id.in_(ids)
            )
        ).all()
    store.dispose()
    assert len(rows) == len(ids), rows
    assert all(deleted_at is not None for _, deleted_at in rows), rows
    state = mirror_state(store_url)
    names = [c.name for c in model.__table__.columns if c.name != "run_id"]
    at_source, at_id = names.index("source"), names.index("source_id")
    kept = {row for row in state[entity] if not (row[at_source] == source and row[at_id] in ids)}
    return {**state, entity: kept}


def differences_after_changes(
    store_url: str, reference: str, fresh: str, organizations: list[int]
) -> list[str]:
    """What differs between a store synced under faults and the same history without them
    (mirror and key results: a frozen baseline stays as the first run froze it), and
    between its mirror and one fault-free sync of the changed sources into a fresh store.
    ``organizations``: the Zendesk organizations deleted, which only a reconcile saw go."""
    ids = [str(org_id) for org_id in organizations]
    mirror, expected = (
        reconciled_away(url, "customer", "zendesk", ids) for url in (store_url, reference)
    )
    found = differences((mirror, measured(store_url)), (expected, measured(reference)))
    return found + differences((mirror, {}), (mirror_state(fresh), {}))


@dataclass(frozen=True)
class Drawn:
    """A source's drawn faults (served in each faulted run): its sandbox's queue, and how
    deep into a run each path's faults may go."""

    name: str
    queue: Faults
    schedule: Schedule
    depths: dict[str, int]


def faulted_history(
    sources: list[Drawn],
    first_faulted: bool,
    directory: Path,
    run: Callable[[str, bool], dict[str, Any]],
    change: Callable[[datetime], list[int]],
    clock: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two syncs into one store, both perhaps faulted, with ``change`` made at the sources
    between them (it returns the Zendesk organizations it deleted, which only a reconcile
    sees): every drawn fault must be served, each run complete, and the store must equal
    a store with the same history without faults, its mirror one fault-free sync of the
    changed sources. ``run(store_url, reconcile)`` is the sync, its report as a dict."""
    store_url, reference, fresh = (
        f"sqlite:///{directory / name}.db" for name in ("faulted", "reference", "fresh")
    )
    queues = [source.queue for source in sources]
    event(f"first run faulted: {first_faulted}")
    if first_faulted:
        for source in sources:
            inject(source.queue, source.schedule, source.depths, f"first run, {source.name}")
    report = run(store_url, False)
    assert report["status"] == "complete", report["reason"]
    assert not unserved(queues)
    if first_faulted:
        assert run(reference, False)["status"] == "complete"
        expected = (mirror_state(reference), measured(reference))
        assert not differences((mirror_state(store_url), measured(store_url)), expected)
    else:
        copy_store(store_url, reference)  # the same fault-free first run

    clock.shift(timedelta(hours=1))
    gone = change(datetime.now(UTC))
    spec = [inject(s.queue, s.schedule, s.depths, s.name) for s in sources]
    try:
        report = run(store_url, bool(gone))
    finally:
        left = unserved(queues)
        for queue in queues:
            queue.clear()
    assert not left, f"{spec}: not every fault was served: {left}"
    assert report["status"] == "complete", (spec, report["reason"])
    assert not report["unreconciled"], (spec, report["unreconciled"])

    assert run(reference, bool(gone))["status"] == "complete"
    monkeypatch.delenv("OKR_SYNC_BATCH_SIZE", raising=False)  # the fresh sync: usual batches
    assert run(fresh, False)["status"] == "complete"
    assert not differences_after_changes(store_url, reference, fresh, gone), spec
