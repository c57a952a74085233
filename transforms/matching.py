"""Matching customers across systems, so helpdesk data joins the CRM's customers.

The primary source's customers (the CRM) are the canonical ones. Every other source's
customer is matched to one of them by a configurable key: the e-mail domain, or an
external id that holds the CRM's record id (Zendesk organizations' ``external_id``). The
links are rebuilt on every sync; customers that match nothing are reported, not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, delete, func, insert, literal, select
from sqlalchemy.orm import Session, aliased

from okr_targets.models import Customer, CustomerLink

UNMATCHED_LISTED = 100
"""Unmatched customers named in the report; all of them are counted."""


@dataclass
class MatchReport:
    primary: str
    match_by: str
    matched: int = 0
    unmatched_count: int = 0
    unmatched: list[dict[str, str | None]] = field(default_factory=list)  # the first ones


def match_customers(session: Session, primary: str, match_by: str) -> MatchReport:
    """Rebuild ``customer_links`` in the database: primary customers link to themselves,
    others by key (case-insensitive; of CRM customers sharing a key, the lowest id).

    Two INSERT … SELECTs and two counts, so no customer is read into Python: it runs on
    every sync, over every customer.
    """
    report = MatchReport(primary, match_by)
    crm = aliased(Customer)
    crm_key = crm.domain if match_by == "domain" else crm.source_id
    other_key = Customer.domain if match_by == "domain" else Customer.external_id
    index = (
        select(func.lower(crm_key).label("key"), func.min(crm.source_id).label("crm_id"))
        .where(crm.deleted_at.is_(None), crm.source == primary, crm_key.is_not(None), crm_key != "")
        .group_by(func.lower(crm_key))
        .subquery()
    )
    live = Customer.deleted_at.is_(None)
    others = and_(live, Customer.source != primary)

    def links(crm_id: Any, matched_by: str) -> Select[Any]:
        return select(
            Customer.source, Customer.source_id, literal(primary), crm_id, literal(matched_by)
        )

    session.execute(delete(CustomerLink))
    for rows in (
        links(Customer.source_id, "primary").where(live, Customer.source == primary),
        links(index.c.crm_id, match_by)
        .join(index, func.lower(other_key) == index.c.key)
        .where(others),
    ):
        session.execute(
            insert(CustomerLink).from_select(
                ["source", "source_id", "crm_source", "crm_id", "matched_by"], rows
            )
        )
    report.matched = int(
        session.scalar(
            select(func.count())
            .select_from(CustomerLink)
            .where(CustomerLink.matched_by == match_by)
        )
        or 0
    )
    unlinked = (
        select(Customer.source, Customer.source_id, Customer.name, other_key.label("key"))
        .outerjoin(
            CustomerLink,
            and_(
                CustomerLink.source == Customer.source,
                CustomerLink.source_id == Customer.source_id,
            ),
        )
        .where(others, CustomerLink.crm_id.is_(None))
    )
    report.unmatched_count = int(
        session.scalar(select(func.count()).select_from(unlinked.subquery())) or 0
    )
    listed = session.execute(
        unlinked.order_by(Customer.source, Customer.source_id).limit(UNMATCHED_LISTED)
    )
    report.unmatched = [
        {"source": c.source, "source_id": c.source_id, "name": c.name, match_by: c.key}
        for c in listed
    ]
    return report
