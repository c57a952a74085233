"""The "What changed" page: each key result's movement and its reasons, self-contained HTML.

It has the dashboard's look (``templates/_palette.css.j2``), shares its pieces with the
dashboard's "what changed" section (``templates/_changes.html.j2``) and, like it, needs no
network.
``okr-sync serve`` renders it live at ``/changes``; its data is ``okr_targets.changes``.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from okr_targets.changes import Changes, MovementKind
from okr_targets.dashboard import TEMPLATES
from okr_targets.status import STATUS_LABELS


def render_changes_html(changes: Changes, *, live: bool = False) -> str:
    """The page for ``changes``; ``live`` adds ``serve``'s links and the window form."""
    query = urlencode({"since": changes.since.isoformat(), "until": changes.until.isoformat()})
    return TEMPLATES.get_template("changes.html.j2").render(
        changes=changes,
        counts=changes.counts,
        kinds=MovementKind,
        labels=STATUS_LABELS,
        live=live,
        json_link=f"api/v1/changes?{query}",
        zone=changes.timezone,
        since_day=changes.since.astimezone(ZoneInfo(changes.timezone)).date().isoformat(),
        until_day=(changes.until - timedelta(microseconds=1))
        .astimezone(ZoneInfo(changes.timezone))
        .date()
        .isoformat(),
    )
