"""Matching customers across systems, so helpdesk data joins the CRM's customers.

The primary source's customers (the CRM) are the canonical ones. Every other source's
customer is matched to one of them by a configurable key: the e-mail domain, or an
external id that holds the CRM's record id (Zendesk organizations' ``external_id``). The
links are rebuilt on every sync; customers that match nothing are reported, not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from okr_targets.models import Customer, CustomerLink


@dataclass
class MatchReport:
    primary: str
    match_by: str
    matched: int = 0
    unmatched: list[dict[str, str | None]] = field(default_factory=list)


def match_customers(session: Session, primary: str, match_by: str) -> MatchReport:
    """Rebuild ``customer_links``: primary customers link to themselves, others by key.

    Reads only the columns it needs and inserts the links in bulk (no ORM objects): it
    runs on every sync, over every customer.
    """
    report = MatchReport(primary, match_by)
    columns = (
        Customer.source,
        Customer.source_id,
        Customer.name,
        Customer.domain,
        Customer.external_id,
    )
    live = select(*columns).where(Customer.deleted_at.is_(None))
    crm = session.execute(live.where(Customer.source == primary)).all()
    index: dict[str, str] = {}
    for customer in crm:
        key = customer.domain if match_by == "domain" else customer.source_id
        if key:
            index.setdefault(key.lower(), customer.source_id)
    session.execute(delete(CustomerLink))
    links = [
        {
            "source": primary,
            "source_id": c.source_id,
            "crm_source": primary,
            "crm_id": c.source_id,
            "matched_by": "primary",
        }
        for c in crm
    ]
    for customer in session.execute(live.where(Customer.source != primary)):
        key = customer.domain if match_by == "domain" else customer.external_id
        crm_id = index.get(key.lower()) if key else None
        if crm_id is None:
            report.unmatched.append(
                {
                    "source": customer.source,
                    "source_id": customer.source_id,
                    "name": customer.name,
                    match_by: key,
                }
            )
            continue
        links.append(
            {
                "source": customer.source,
                "source_id": customer.source_id,
                "crm_source": primary,
                "crm_id": crm_id,
                "matched_by": match_by,
            }
        )
        report.matched += 1
    if links:
        session.execute(insert(CustomerLink), links)
    return report
