"""The canonical entities every connector maps its source's records to.

Connectors deliver these rows; the store mirrors them (``okr_targets.models``), and
``tests/test_canonical_types.py`` checks both agree column for column.
"""

from __future__ import annotations

import re


def domain_of(value: str | None) -> str | None:
    """The bare domain of a website or e-mail ("https://www.x.example/" → "x.example").

    A customer's canonical ``domain``: how a CRM's account is matched to a helpdesk's
    organization.
    """
    if not value:
        return None
    text = value.strip().lower()
    text = text.rsplit("@", 1)[-1]
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].split(":", 1)[0]
    return text.removeprefix("www.") or None
