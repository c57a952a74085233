"""The two status vocabularies, each in one place: a key result's and a sync run's.

Both are ``StrEnum``: a member is its stored string (``KeyResultStatus.ON_TRACK ==
"on_track"``), so the store, JSON and the Prefect events carry the same values as ever.
A key-result status's human wording lives beside it: every view (terminal, dashboard,
CSV, markdown artifact) reads it from here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class KeyResultStatus(StrEnum):
    """How a key result stands; the order is the dashboard legend's."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    NO_DATA = "no_data"
    STALE = "stale"
    MET = "met"  # the period has closed: its final score reached the target
    MISSED = "missed"  # closed short of the target (the final score says by how much)

    @property
    def label(self) -> str:
        """Plain words: "on track"."""
        return _LOOKS[self][0]

    @property
    def mark(self) -> str:
        """The words behind a coloured dot, for markdown: "🟢 on track"."""
        return f"{_LOOKS[self][1]} {self.label}"

    @property
    def colour(self) -> str:
        """The terminal colour (a rich style name) the CLI shows it in."""
        return _LOOKS[self][2]


_LOOKS: Final[dict[KeyResultStatus, tuple[str, str, str]]] = {
    KeyResultStatus.ON_TRACK: ("on track", "🟢", "green"),
    KeyResultStatus.AT_RISK: ("at risk", "🟡", "yellow"),
    KeyResultStatus.OFF_TRACK: ("off track", "🔴", "red"),
    KeyResultStatus.NO_DATA: ("no data", "⚪", "dim"),
    KeyResultStatus.STALE: ("stale", "🟣", "magenta"),
    KeyResultStatus.MET: ("met", "✅", "green"),
    KeyResultStatus.MISSED: ("missed", "❌", "red"),
}

STATUS_LABELS: Final[dict[str, str]] = {status.value: status.label for status in KeyResultStatus}
"""Stored value -> plain words, for templates and documents that hold plain strings."""


def status_label(value: str) -> str:
    """The plain words of a stored status; an unknown value is shown as it is."""
    return STATUS_LABELS.get(value, value)


def status_mark(value: str) -> str:
    """The markdown words of a stored status; an unknown value is shown as it is."""
    return KeyResultStatus(value).mark if value in STATUS_LABELS else value


WEAKEST_FIRST: Final[tuple[KeyResultStatus, ...]] = (
    KeyResultStatus.OFF_TRACK,
    KeyResultStatus.MISSED,
    KeyResultStatus.AT_RISK,
    KeyResultStatus.STALE,
    KeyResultStatus.ON_TRACK,
    KeyResultStatus.MET,
)
"""The objective-status rule's order: an objective shows the first of these among its key
results and child objectives. ``no_data`` (a key result never measured, or whose metric
failed) is left out, as the roll-up leaves out unmeasured items; docs/scoring.md."""


def objective_status(parts: list[KeyResultStatus]) -> KeyResultStatus:
    """The weakest status among an objective's key results and child objectives' statuses;
    ``no_data`` when none of them has a number."""
    present = set(parts)
    return next((status for status in WEAKEST_FIRST if status in present), KeyResultStatus.NO_DATA)


class RunStatus(StrEnum):
    """Where a sync run ended: complete, partial (a stream stopped early or a key result
    could not be computed) or failed; running until then (or until it is found abandoned)."""

    RUNNING = "running"
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"
