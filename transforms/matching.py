"""Matching customers across systems, so helpdesk data joins the CRM's customers.

The primary source's customers (the CRM) are the canonical ones. Every other source's
customer is matched to one of them by a configurable key: the e-mail domain, or an
external id that holds the CRM's record id (Zendesk organizations' ``external_id``).
Customers that match nothing are reported, not dropped. A sync re-matches only the
customers written since the last sync that matched by the same rule; the links come out
as a rebuild from scratch would make them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, insert, literal, or_, select
from sqlalchemy.orm import Session, aliased

from okr_targets.models import Customer, CustomerLink, CustomerLinkBuild, SyncRun

UNMATCHED_LISTED = 100
"""Unmatched customers named in the report; all of them are counted."""
REMATCH_AT_MOST = 5_000
"""More customers changed than this (a full refresh, a first sync): rebuild every link."""


@dataclass
class MatchReport:
    primary: str
    match_by: str
    matched: int = 0
    unmatched_count: int = 0
    unmatched: list[dict[str, str | None]] = field(default_factory=list)  # the first ones
    rematched: int | None = None  # customers matched again; None: every link rebuilt


def match_customers(
    session: Session, primary: str, match_by: str, run_id: str | None = None
) -> MatchReport:
    """Bring ``customer_links`` up to date: primary customers link to themselves, others
    by key (case-insensitive; of CRM customers sharing a key, the lowest id).

    With the sync's ``run_id``, only customers written since the last sync that matched
    by this rule are matched again (a handful, in an incremental sync), and this run is
    recorded as the new starting point; otherwise, or when too many changed, every link
    is rebuilt with INSERT … SELECTs. No customer list is read into Python either way.
    """
    report = MatchReport(primary, match_by)
    changed = _changed_since_last_build(session, primary, match_by) if run_id else None
    if changed is None:
        _rebuild(session, primary, match_by)
    else:
        _rematch(session, primary, match_by, changed)
        report.rematched = len(changed)
    if run_id is not None:
        session.execute(delete(CustomerLinkBuild))
        session.add(CustomerLinkBuild(crm_source=primary, match_by=match_by, run_id=run_id))
        session.flush()
    _, other_key = _keys(match_by)
    report.matched = int(
        session.scalar(
            select(func.count())
            .select_from(CustomerLink)
            .where(CustomerLink.matched_by == match_by)
        )
        or 0
    )
    others = int(session.scalar(select(func.count()).where(_others(primary))) or 0)
    report.unmatched_count = others - report.matched  # links exist for live customers only
    unlinked = (
        select(Customer.source, Customer.source_id, Customer.name, other_key.label("key"))
        .outerjoin(
            CustomerLink,
            and_(
                CustomerLink.source == Customer.source,
                CustomerLink.source_id == Customer.source_id,
            ),
        )
        .where(_others(primary), CustomerLink.crm_id.is_(None))
    )
    listed = session.execute(
        unlinked.order_by(Customer.source, Customer.source_id).limit(UNMATCHED_LISTED)
    )
    report.unmatched = [
        {"source": c.source, "source_id": c.source_id, "name": c.name, match_by: c.key}
        for c in listed
    ]
    return report


def _keys(match_by: str) -> tuple[Any, Any]:
    """(the CRM customer's key, the other customers' key) for a matching rule."""
    if match_by == "domain":
        return Customer.domain, Customer.domain
    return Customer.source_id, Customer.external_id


def _live() -> ColumnElement[bool]:
    return Customer.deleted_at.is_(None)


def _others(primary: str) -> ColumnElement[bool]:
    return and_(_live(), Customer.source != primary)


def _crm_ids(primary: str, match_by: str, keys: Collection[str] | None = None) -> Any:
    """Each lower-cased key of live CRM customers → the lowest CRM id holding it."""
    crm = aliased(Customer)
    crm_key = func.lower(getattr(crm, _keys(match_by)[0].key))
    wanted = [crm_key.in_(keys)] if keys is not None else []
    return (
        select(crm_key.label("key"), func.min(crm.source_id).label("crm_id"))
        .where(crm.deleted_at.is_(None), crm.source == primary, crm_key.is_not(None), crm_key != "")
        .where(*wanted)
        .group_by(crm_key)
        .subquery()
    )


def _insert_links(
    session: Session, primary: str, match_by: str, where: ColumnElement[bool] | None = None
) -> None:
    """Links for the live customers ``where`` picks (all of them without it)."""
    _, other_key = _keys(match_by)
    chosen = [where] if where is not None else []
    keys = None
    if where is not None:  # only the keys those customers hold: an index lookup each
        held = select(func.lower(other_key)).where(_others(primary), *chosen)
        keys = set(session.scalars(held.where(other_key.is_not(None))))
    index = _crm_ids(primary, match_by, keys)

    def links(crm_id: Any, matched_by: str) -> Select[Any]:
        return select(
            Customer.source, Customer.source_id, literal(primary), crm_id, literal(matched_by)
        )

    for rows in (
        links(Customer.source_id, "primary").where(_live(), Customer.source == primary, *chosen),
        links(index.c.crm_id, match_by)
        .join(index, func.lower(other_key) == index.c.key)
        .where(_others(primary), *chosen),
    ):
        session.execute(
            insert(CustomerLink).from_select(
                ["source", "source_id", "crm_source", "crm_id", "matched_by"], rows
            )
        )


def _rebuild(session: Session, primary: str, match_by: str) -> None:
    session.execute(delete(CustomerLink))
    _insert_links(session, primary, match_by)


def _changed_since_last_build(
    session: Session, primary: str, match_by: str
) -> set[tuple[str, str]] | None:
    """Customers written or tombstoned by the runs after the last build's run (syncs hold
    the writer lock in turn, so a later run began later, and that run wrote its customers
    before it matched them); None when the links must be rebuilt: never built, built by
    another rule, or too much changed."""
    build = session.scalars(select(CustomerLinkBuild)).first()
    if build is None or (build.crm_source, build.match_by) != (primary, match_by):
        return None
    began = select(SyncRun.started_at).where(SyncRun.id == build.run_id).scalar_subquery()
    since = select(SyncRun.id).where(SyncRun.started_at >= began, SyncRun.id != build.run_id)
    changed = session.execute(
        select(Customer.source, Customer.source_id)
        .where(Customer.run_id.in_(since))
        .limit(REMATCH_AT_MOST + 1)
    )
    found = {(source, source_id) for source, source_id in changed}
    return found if len(found) <= REMATCH_AT_MOST else None


def _rematch(session: Session, primary: str, match_by: str, changed: set[tuple[str, str]]) -> None:
    """Re-link the changed customers and the others whose match they can move: those
    linked to a changed CRM customer, and those holding a key a changed one holds now."""
    if not changed:
        return
    crm_key, other_key = _keys(match_by)
    crm_ids = [source_id for source, source_id in changed if source == primary]
    affected = set(changed)
    if crm_ids:
        keys_now = set(
            session.scalars(
                select(func.lower(crm_key)).where(
                    _live(), Customer.source == primary, Customer.source_id.in_(crm_ids)
                )
            )
        )
        linked_to_them = select(CustomerLink.source, CustomerLink.source_id).where(
            CustomerLink.matched_by == match_by, CustomerLink.crm_id.in_(crm_ids)
        )
        holding_their_keys = select(Customer.source, Customer.source_id).where(
            _others(primary), func.lower(other_key).in_(keys_now)
        )
        for query in (linked_to_them, holding_their_keys):
            affected |= {(source, source_id) for source, source_id in session.execute(query)}
    if len(affected) > 2 * REMATCH_AT_MOST:  # one CRM key many customers hold: start over
        _rebuild(session, primary, match_by)
        return
    session.execute(
        delete(CustomerLink).where(_one_of(CustomerLink.source, CustomerLink.source_id, affected))
    )
    _insert_links(
        session, primary, match_by, _one_of(Customer.source, Customer.source_id, affected)
    )


def _one_of(source: Any, source_id: Any, keys: set[tuple[str, str]]) -> ColumnElement[bool]:
    """``(source, source_id) IN keys``, as one ``source_id IN (…)`` per source: the primary
    key's index answers it (a row-value IN scans the table on SQLite)."""
    ids: dict[str, list[str]] = {}
    for system, key in sorted(keys):
        ids.setdefault(system, []).append(key)
    return or_(*(and_(source == system, source_id.in_(listed)) for system, listed in ids.items()))
