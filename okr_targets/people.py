"""Owners by name: an owner is an e-mail in the OKR file, a person reads a name.

Names come from the CRM's reps (the ``rep`` mirror: name, e-mail, team) and the OKR file's
optional ``people:`` map (stored in ``Organisation.people``), which wins: it can name
someone the CRM does not know, or correct the CRM (an entry without a team keeps the
CRM's). E-mails match whatever their case. An
e-mail neither knows is shown as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from okr_targets.models import Organisation, Rep


@dataclass(frozen=True)
class Person:
    """Who owns an objective or key result, as a reader sees them."""

    email: str
    name: str  # the e-mail itself when nobody knows it
    team: str | None


@dataclass(frozen=True)
class People:
    """Lower-case e-mail -> (name, team), from the reps and the OKR file's map."""

    known: dict[str, tuple[str, str | None]]

    def __call__(self, email: str) -> Person:
        name, team = self.known.get(email.strip().lower(), (email, None))
        return Person(email=email, name=name, team=team)


def people(session: Session) -> People:
    """Every name the store knows: live reps with an e-mail, then the file's map over them."""
    known: dict[str, tuple[str, str | None]] = {}
    reps = select(Rep.email, Rep.name, Rep.team).where(
        Rep.deleted_at.is_(None), Rep.email.is_not(None)
    )
    # Inactive reps first, so an active one with the same e-mail wins; then by source, id.
    for email, name, team in session.execute(reps.order_by(Rep.active, Rep.source, Rep.source_id)):
        if email and name:
            known[email.strip().lower()] = (name, team)
    organisation = session.get(Organisation, 1)
    for email, person in (organisation.people if organisation else {}).items():
        crm_team = known.get(email.lower(), (email, None))[1]
        known[email.lower()] = (person["name"], person.get("team") or crm_team)
    return People(known)
