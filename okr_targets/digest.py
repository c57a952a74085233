"""The what-changed digest: what needs attention, then what moved and why, short.

A leader reads it in a chat message or an e-mail: first the key results off track, stale,
in error or at risk (scored now, as the dashboard shows them), each with its value, target
and the one-line reason; then each movement of the window with its reasons; the unchanged
ones by count. It names no store, URL or credential: only titles, numbers and reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

from okr_targets.changes import Changes, MovementKind
from okr_targets.formatting import format_progress, format_time, format_value
from okr_targets.report import KeyResultLine, ObjectiveLine, walk
from okr_targets.status import KeyResultStatus

ATTENTION = (KeyResultStatus.OFF_TRACK, KeyResultStatus.STALE, KeyResultStatus.AT_RISK)
"""What the digest lists as needing attention, off track and stale first (an error, no
number at all, beside stale); the dashboard's list holds the same key results."""
REASONS_SHOWN = 3  # reasons per movement in the digest; ``okr-sync changes`` shows them all


@dataclass(frozen=True)
class Digest:
    subject: str
    body: str
    attention: int  # key results listed as needing attention
    moved: int  # movements listed (moved or first measured)


def _attention(lines: list[ObjectiveLine]) -> list[KeyResultLine]:
    key_results = [kr for _depth, objective in walk(lines) for kr in objective.key_results]

    def rank(kr: KeyResultLine) -> int:
        if kr.error:
            return ATTENTION.index(KeyResultStatus.STALE)  # beside stale: no trustworthy number
        return ATTENTION.index(kr.status)

    needing = [kr for kr in key_results if kr.error or kr.status in ATTENTION]
    return sorted(needing, key=rank)


def _reason(kr: KeyResultLine) -> str:
    """The one line on why, as the dashboard's needs-attention list gives it."""
    if kr.error:
        return kr.error
    if kr.status is KeyResultStatus.STALE and kr.stale_reason:
        return kr.stale_reason
    return format_progress(kr.progress, kr.expected_progress)


def build_digest(changes: Changes, lines: list[ObjectiveLine], title: str = "OKR digest") -> Digest:
    """The digest of ``changes`` with the report ``lines`` scored at the window's end."""
    zone = changes.timezone
    since = format_time(changes.since.isoformat(), zone)
    until = format_time(changes.until.isoformat(), zone)
    needing = _attention(lines)
    moving = changes.of(MovementKind.MOVED, MovementKind.NEW)
    body = [f"{title}: {since} to {until}", ""]
    if needing:
        body.append(f"Needs attention ({len(needing)}):")
        for kr in needing:
            status = "⚠️ error" if kr.error else kr.status.mark
            value = format_value(kr.value, kr.unit, kr.baseline_period)
            target = format_value(kr.target, kr.unit, kr.baseline_period)
            body.append(
                f"- {status}: {kr.title}: {value} (target {target}), {kr.owner_name or kr.owner}"
                f" — {_reason(kr)}"
            )
    else:
        body.append("Nothing needs attention: every key result is on track or met.")
    body.append("")
    if moving:
        body.append(f"What moved ({len(moving)}):")
        for movement in moving:
            body.append(f"- {movement.title}: {movement.headline}")
            body += [f"  {reason}" for reason in movement.reasons[:REASONS_SHOWN]]
    else:
        body.append("No key result moved.")
    counts = changes.counts
    body += [
        "",
        f"Unchanged: {counts['unchanged']}; not measured yet: {counts['no_data']}."
        " Records behind each change: okr-sync changes, or the dashboard's What changed page.",
    ]
    subject = f"{title}: {len(needing)} need attention, {len(moving)} moved ({since} to {until})"
    return Digest(subject, "\n".join(body) + "\n", len(needing), len(moving))
