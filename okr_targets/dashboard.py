"""The OKR dashboard as one self-contained HTML page, rendered from the summary.

The page needs no network: CSS and the trend charts (SVG) are inline, a few lines of inline
script open the "why this number" dialogs and filter the key results by team, owner and
status (``<script id="filters">``, kept in the query string), and a Content-Security-Policy
forbids loading anything else. ``okr-sync report --format html`` writes it to a file;
``okr-sync serve`` renders it live. Its numbers are those of
``okr_targets.summary.build_summary``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from okr_targets.formatting import (
    format_age,
    format_percent,
    format_time,
    format_value,
    freshness_text,
)
from okr_targets.status import STATUS_LABELS
from okr_targets.summary import COUNTED

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 320.0, 96.0, 8.0


@dataclass(frozen=True)
class Chart:
    """Screen coordinates of a key result's trend chart, and its text alternative."""

    points: list[tuple[float, float, str]]  # x, y, tooltip
    line: str  # SVG polyline points of the measurements
    forecast: tuple[float, float, float, float] | None  # from the last point to the period end
    target_y: float | None
    now_x: float | None
    description: str


def trend_chart(kr: dict[str, Any], now: datetime) -> Chart:
    """Measurements over the period, the target line and the forecast to the period end."""
    history = [(datetime.fromisoformat(m["measured_at"]), m["value"]) for m in kr["history"]]
    start = datetime.fromisoformat(kr["period_start"])
    end = datetime.fromisoformat(kr["period_end"])
    first = min([start, *(at for at, _ in history)])
    last = max([end, *(at for at, _ in history)])
    values = [v for _, v in history] + [kr["target"]]
    if kr["forecast"] is not None:
        values.append(kr["forecast"])
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 1, high + 1
    span = (last - first).total_seconds()

    def x(at: datetime) -> float:
        share = (at - first).total_seconds() / span
        return round(CHART_PAD + share * (CHART_WIDTH - 2 * CHART_PAD), 1)

    def y(value: float) -> float:
        share = (value - low) / (high - low)
        return round(CHART_HEIGHT - CHART_PAD - share * (CHART_HEIGHT - 2 * CHART_PAD), 1)

    unit, zone, since = kr["unit"], kr["timezone"], kr["baseline_period"]

    def shown(value: float | None) -> str:
        return format_value(value, unit, since)

    points = [
        (x(at), y(v), f"{shown(v)} on {format_time(at.isoformat(), zone)}") for at, v in history
    ]
    forecast = None
    if kr["forecast"] is not None and history:
        at, value = history[-1]
        forecast = (x(at), y(value), x(end), y(kr["forecast"]))
    described = (
        f"{len(history)} measurement(s) in {kr['period']}"
        + (f", latest {shown(history[-1][1])}" if history else "")
        + f"; target {shown(kr['target'])}"
        + (
            f"; forecast {shown(kr['forecast'])} at the period end"
            if kr["forecast"] is not None
            else f"; no forecast: {kr['forecast_note']}"
        )
    )
    return Chart(
        points=points,
        line=" ".join(f"{px},{py}" for px, py, _ in points),
        forecast=forecast,
        target_y=y(kr["target"]),
        now_x=x(now) if first <= now <= last else None,
        description=described,
    )


_environment = Environment(
    loader=PackageLoader("okr_targets", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(
    value=format_value, time=format_time, age=format_age, percent=format_percent
)
_environment.globals["freshness"] = freshness_text


def render_html(summary: dict[str, Any], *, live: bool = False) -> str:
    """The dashboard page for a summary; ``live`` adds the JSON API links of ``serve``."""
    now = datetime.fromisoformat(summary["generated_at"])
    charts = {
        kr["id"]: trend_chart(kr, now)
        for objective in summary["objectives"]
        for kr in objective["key_results"]
    }
    children: dict[str | None, list[dict[str, Any]]] = {}
    known = {objective["id"] for objective in summary["objectives"]}
    for objective in summary["objectives"]:
        parent = objective["parent"] if objective["parent"] in known else None
        children.setdefault(parent, []).append(objective)
    return _environment.get_template("dashboard.html.j2").render(
        summary=summary,
        children=children,
        charts=charts,
        labels=STATUS_LABELS,
        live=live,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        **_filter_choices(summary),
    )


ALWAYS_COUNTED = ("on_track", "at_risk", "off_track", "stale")
"""Counts the header shows even at zero ("0 off track" is news); the others only when set."""


def _filter_choices(summary: dict[str, Any]) -> dict[str, Any]:
    """The header's counts in order, and the teams and owners (by name) to filter by."""
    krs = [kr for objective in summary["objectives"] for kr in objective["key_results"]]
    owners = {kr["owner"].lower(): kr["owner_name"] for kr in krs if kr["owner"]}
    return {
        "counted": COUNTED,
        "always_counted": ALWAYS_COUNTED,
        "teams_of": {kr["id"]: kr["owner_team"] for kr in krs},
        "filter_teams": sorted({kr["owner_team"] for kr in krs if kr["owner_team"]}),
        "filter_owners": sorted(owners.items(), key=lambda item: item[1].lower()),
    }
