"""The OKR dashboard as one self-contained HTML page, rendered from the summary.

The page needs no network: CSS and the trend charts (SVG) are inline, a few lines of inline
script open the "why this number" dialogs and filter the key results (their cards, the
needs-attention list and "what changed") by team, owner and status (``<script
id="filters">``, kept in the query string), and a Content-Security-Policy
forbids loading anything else. ``okr-sync report --format html`` writes it to a file;
``okr-sync serve`` renders it live. Its numbers are those of
``okr_targets.summary.build_summary``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from okr_targets.changes import Changes, MovementKind
from okr_targets.formatting import (
    format_age,
    format_percent,
    format_standing,
    format_time,
    format_value,
    freshness_text,
)
from okr_targets.periods import Calendar, add_months
from okr_targets.scoring import LINEAR_KINDS
from okr_targets.status import STATUS_LABELS
from okr_targets.summary import ALWAYS_COUNTED, COUNTED, standing

# The trend chart is drawn in CSS pixels, not scaled from a viewBox: x in % of the card's
# width, y in px from the top, so its text is 12 px on a phone as on a desktop.
CHART_HEIGHT = 140.0
PLOT_TOP, PLOT_BOTTOM = 18.0, 116.0  # px: room above for the top tick's label, below for dates
X_PAD = 2.0  # % of the width kept free at each side, so a point at either end shows whole
MOST_TICKS = 4
_SPANS = (1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Tick:
    """One labelled tick: ``at`` is x in % of the width (dates) or y in px (values)."""

    at: float
    label: str
    anchor: str = "middle"  # SVG text-anchor of a date: the first starts, the last ends


@dataclass(frozen=True)
class Chart:
    """Where a key result's trend chart draws everything, and its text alternative.

    x is a share of the period in % of the chart's width (``X_PAD`` to ``100 − X_PAD``),
    y is px from the top (``PLOT_TOP`` for the highest value tick, ``PLOT_BOTTOM`` for the
    lowest).
    """

    points: list[tuple[float, float, str]]  # x, y, tooltip: one per day with a value
    segments: list[tuple[float, float, float, float]]  # the line through the points
    target_y: float
    expected: tuple[float, float, float, float] | None  # baseline at start → target at end
    forecast: tuple[float, float, float, float] | None  # from the last point to the period end
    now_x: float | None
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    description: str


def nice_ticks(low: float, high: float, most: int = MOST_TICKS) -> list[float]:
    """2 to ``most`` round values (steps of 1, 2 or 5 × 10ⁿ) from at or below ``low`` to at
    or above ``high``: the value axis's ticks, its ends the first and last."""
    if high <= low:
        pad = abs(low) / 10 or 1.0
        low, high = low - pad, high + pad
    step = 10 ** math.floor(math.log10((high - low) / (most - 1)))
    while True:
        for span in _SPANS:
            size = span * step
            first = math.floor(low / size + 1e-9)
            last = math.ceil(high / size - 1e-9)
            if last - first + 1 <= most:
                digits = max(0, -math.floor(math.log10(size))) + 1
                return [round(k * size, digits) for k in range(first, last + 1)]
        step *= 10


def _tick_labels(values: list[float], unit: str) -> list[str]:
    """The values as the page writes them; closer ticks than that shows get more digits."""
    labels = [format_value(value, unit) for value in values]
    if len(set(labels)) == len(labels):
        return labels
    step = values[1] - values[0]
    digits = max(0, -math.floor(math.log10(step)))
    plain = [f"{value:,.{digits}f}" for value in values]
    return [f"{text}%" if unit == "%" else f"{text} {unit}".strip() for text in plain]


def _date_ticks(first: date, after: date) -> list[date]:
    """Month starts (every 2nd or 3rd in a half or a year: at most four), or every
    10 days in a one-month period."""
    months = []
    day = first
    while day < after:
        months.append(day)
        day = add_months(first, len(months))
    if len(months) >= 2:
        return months[:: math.ceil(len(months) / MOST_TICKS)]
    return [first + timedelta(days=n) for n in range(0, (after - first).days, 10)]


def trend_chart(kr: dict[str, Any], now: datetime) -> Chart:
    """One point per day of the period, the target, the expected progress from the baseline
    at the period's start to the target at its end (linear kinds, as ``scoring`` expects
    it), and the forecast to the period end, on axes labelled with values and dates."""
    days = [(datetime.fromisoformat(d["checked_at"]), d["value"]) for d in kr["days"]]
    start = datetime.fromisoformat(kr["period_start"])
    end = datetime.fromisoformat(kr["period_end"])
    calendar = Calendar(timezone=kr["timezone"])
    unit, kind, target = kr["unit"], kr["kind"], kr["target"]
    origin = None  # where expected progress starts: the baseline, 0 for a percent change
    if kind in LINEAR_KINDS:
        origin = 0.0 if kind == "percent_change" else kr["baseline"]
    bounds = [v for _, v in days] + [target]
    bounds += [v for v in (origin, kr["forecast"]) if v is not None]
    ticks = nice_ticks(min(bounds), max(bounds))
    low, high = ticks[0], ticks[-1]
    span = (end - start).total_seconds()

    def x(at: datetime) -> float:
        share = min(1.0, max(0.0, (at - start).total_seconds() / span))
        return round(X_PAD + share * (100 - 2 * X_PAD), 2)

    def y(value: float) -> float:
        share = (value - low) / (high - low)
        return round(PLOT_BOTTOM - share * (PLOT_BOTTOM - PLOT_TOP), 1)

    zone, since = kr["timezone"], kr["baseline_period"]

    def text(value: float | None) -> str:
        return format_value(value, unit, since)

    points = [(x(at), y(v), f"{text(v)} on {format_time(at.isoformat(), zone)}") for at, v in days]
    forecast = None
    if kr["forecast"] is not None and days:
        at, value = days[-1]
        forecast = (x(at), y(value), x(end), y(kr["forecast"]))
    expected = None if origin is None else (x(start), y(origin), x(end), y(target))
    first_day, after = calendar.local_date(start), calendar.local_date(end)
    dates = _date_ticks(first_day, after)
    x_ticks = []
    for n, day in enumerate(dates):
        anchor = "start" if n == 0 else "end" if x(calendar.midnight(day)) > 90 else "middle"
        x_ticks.append(Tick(x(calendar.midnight(day)), f"{day:%b} {day.day}", anchor))
    y_ticks = [
        Tick(y(value), label) for value, label in zip(ticks, _tick_labels(ticks, unit), strict=True)
    ]
    values = [text(value) for _, value in days]
    if len(days) > 1:
        described = f"{len(days)} daily values in {kr['period']}, from {values[0]} to {values[-1]}"
    else:
        described = f"{len(days)} daily value{'' if days else 's'} in {kr['period']}"
        described += f": {values[0]}" if days else ""
    described += (
        f"; target {text(target)}"
        + (f"; expected by now {text(_expected_now(kr, origin))}" if origin is not None else "")
        + (
            f"; forecast {text(kr['forecast'])} at the period end"
            if kr["forecast"] is not None
            else f"; no forecast: {kr['forecast_note']}"
        )
        + f"; values from {y_ticks[0].label} to {y_ticks[-1].label}"
    )
    return Chart(
        points=points,
        segments=[(a[0], a[1], b[0], b[1]) for a, b in itertools.pairwise(points)],
        target_y=y(target),
        expected=expected,
        forecast=forecast,
        now_x=x(now) if start <= now <= end else None,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        description=described,
    )


def _expected_now(kr: dict[str, Any], origin: float) -> float:
    """The value expected progress stands for now: ``scoring``'s share of the way."""
    return origin + kr["expected_progress"] * (kr["target"] - origin)


def _time(moment: datetime | str | None, zone: str = "UTC") -> str:
    """``format_time`` of an ISO text (the summary's) or a datetime (``changes``')."""
    return format_time(moment.isoformat() if isinstance(moment, datetime) else moment, zone)


TEMPLATES = Environment(
    loader=PackageLoader("okr_targets", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
"""The pages' templates (this dashboard, changes_page's "what changed") and their filters."""
TEMPLATES.filters.update(
    value=format_value,
    standing=format_standing,
    time=_time,
    age=format_age,
    percent=format_percent,
)
TEMPLATES.globals["freshness"] = freshness_text


@dataclass(frozen=True)
class Refresh:
    """What the live page's refresh script needs: the store version the page shows (a tag of
    ``okr_sync.serve.store_version``) and how often to ask the server for the current one."""

    version: str
    seconds: float


def render_html(
    summary: dict[str, Any],
    *,
    changes: Changes | None = None,
    live: bool = False,
    refresh: Refresh | None = None,
) -> str:
    """The dashboard page for a summary; ``changes`` (``recent_changes`` at the summary's
    ``generated_at``) adds the "what changed" section, ``live`` the JSON API links of
    ``serve``, ``refresh`` (live only) the script that swaps in a new page when the store
    changes."""
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
    return TEMPLATES.get_template("dashboard.html.j2").render(
        summary=summary,
        children=children,
        charts=charts,
        labels=STATUS_LABELS,
        live=live or refresh is not None,
        refresh=refresh,
        height=CHART_HEIGHT,
        plot=(PLOT_TOP, PLOT_BOTTOM),
        changes=changes,
        kinds=MovementKind,
        **_window(changes),
        **_filter_choices(summary),
    )


def _window(changes: Changes | None) -> dict[str, Any]:
    """The "what changed" window in words: its whole days, the local day it starts."""
    if changes is None:
        return {}
    zone = ZoneInfo(changes.timezone)
    return {
        "window_days": round((changes.until - changes.since) / timedelta(days=1)),
        "since_day": changes.since.astimezone(zone).date().isoformat(),
    }


REASON_CHARS = 120
"""A needs-attention reason longer than this is cut at a word (the whole of it in a tooltip
and on the key result's card): the list stays one or two lines an item, even on a phone."""


def _filter_choices(summary: dict[str, Any]) -> dict[str, Any]:
    """The header's counts in order, and the teams and owners (by name) to filter by."""
    krs = [kr for objective in summary["objectives"] for kr in objective["key_results"]]
    owners = {kr["owner"].lower(): kr["owner_name"] for kr in krs if kr["owner"]}
    return {
        "counted": COUNTED,
        "always_counted": ALWAYS_COUNTED,
        "reason_chars": REASON_CHARS,
        "teams_of": {kr["id"]: kr["owner_team"] for kr in krs},
        "standing_of": {kr["id"]: standing(kr) for kr in krs},
        "filter_teams": sorted({kr["owner_team"] for kr in krs if kr["owner_team"]}),
        "filter_owners": sorted(owners.items(), key=lambda item: item[1].lower()),
    }
