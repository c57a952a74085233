"""The one OKR summary that every view shows: the dashboard, the JSON API and the exports.

``build_summary`` extends the report (``okr_targets/report.py``) with what a reader needs
to trust a number: its measurement history (the trend), how old its data is, and "why this
number" from ``okr_targets/lineage.py`` (metric, run, contributing records). The HTML page,
``okr-sync serve``, ``report --format json|csv`` and the sync's markdown artifact all render
this one document, so a number reads the same everywhere. Its shape is published as a JSON
Schema (``SCHEMA_FILE``) and checked in the tests.

It leads with the answer a leader wants first (``_headline``): the company, the periods,
the key results counted by status and the ones that need attention, each with the reason.
The store's URL is an operator's concern and sits under ``ops``, never on the page.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from okr_targets.formatting import (
    format_percent,
    format_progress,
    format_time,
    format_value,
    freshness_text,
    iso_seconds,
    raw_number,
)
from okr_targets.lineage import ExplainError, contributing_records, explain
from okr_targets.models import DailyValue, Organisation
from okr_targets.periods import UTC_CALENDAR, Calendar
from okr_targets.report import KeyResultLine, as_json, build_report, walk
from okr_targets.status import KeyResultStatus, status_label, status_mark
from okr_targets.store import Store

SCHEMA_VERSION = 2
SCHEMA_FILE = Path(__file__).parent / "schemas" / "okr-summary.v2.schema.json"
SCHEMA_FILE_V1 = Path(__file__).parent / "schemas" / "okr-summary.v1.schema.json"
"""Version 1's shape, still served at ``/api/v1`` (``summary_v1``) for tools written for it."""
RECORDS_SHOWN = 25
"""Contributing records listed per key result; ``why.record_count`` says how many there are."""


def build_summary(
    session: Session,
    now: datetime,
    store: str,
    calendar: Calendar = UTC_CALENDAR,
    records: int = RECORDS_SHOWN,
) -> dict[str, Any]:
    """The report as a JSON-ready document, each key result with its history and lineage.

    ``store`` is the store's display URL (password already masked).
    """
    document = _outline(session, now, store, calendar)
    for objective in document["objectives"]:
        for kr in objective["key_results"]:
            kr.update(_provenance(session, kr, now, records))
            kr["days"] = _days(session, kr, now)
    return document


ERROR = "error"
"""A key result whose metric gave no number, with the reason (``error``): counted and listed
as an error whatever its status (``no_data``, or ``stale`` too), since no number is shown."""
COUNTED = (*(status.value for status in KeyResultStatus), ERROR)
"""The header's counts, in the legend's order; they add up to the number of key results."""
NEEDS_ATTENTION = (
    KeyResultStatus.OFF_TRACK.value,
    KeyResultStatus.AT_RISK.value,
    KeyResultStatus.STALE.value,
    ERROR,
)
"""What the "needs attention" list holds, in this order (then in tree order)."""


def standing(kr: dict[str, Any]) -> str:
    """The status a key result is counted and listed under: ``error`` or its status."""
    return ERROR if kr["error"] else str(kr["status"])


def _outline(session: Session, now: datetime, store: str, calendar: Calendar) -> dict[str, Any]:
    """The report as a JSON-ready document with each objective's depth, without lineage."""
    lines = build_report(session, now, calendar)
    objectives = as_json(lines)
    for (depth, _line), objective in zip(walk(lines), objectives, strict=True):
        objective["depth"] = depth
    organisation = session.get(Organisation, 1)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": now.isoformat(),
        "company": organisation.company if organisation else None,
        **_headline(objectives),
        "objectives": objectives,
        "ops": {"store": store},
    }


def _headline(objectives: list[dict[str, Any]]) -> dict[str, Any]:
    """The periods, the counts by status and the key results that need attention."""
    pairs = [(o, kr) for o in objectives for kr in o["key_results"]]
    periods = {o["period"] for o in objectives} | {kr["period"] for _o, kr in pairs}
    counts = dict.fromkeys(COUNTED, 0)
    for _objective, kr in pairs:
        counts[standing(kr)] += 1
    attention = [
        {
            "key_result_id": kr["id"],
            "objective_id": objective["id"],
            "title": kr["title"],
            "status": standing(kr),
            "owner": kr["owner"],
            "owner_name": kr["owner_name"],
            "value": kr["value"],
            "target": kr["target"],
            "unit": kr["unit"],
            "baseline_period": kr["baseline_period"],
            "reason": _reason(kr),
        }
        for objective, kr in pairs
        if standing(kr) in NEEDS_ATTENTION
    ]
    attention.sort(key=lambda item: NEEDS_ATTENTION.index(item["status"]))  # stable: tree order
    return {"periods": sorted(p for p in periods if p), "counts": counts, "attention": attention}


def _reason(kr: dict[str, Any]) -> str:
    """One line on why a key result needs attention."""
    if kr["error"]:
        return str(kr["error"])
    if kr["status"] == KeyResultStatus.STALE and kr["stale_reason"]:
        return str(kr["stale_reason"])
    return format_progress(kr["progress"], kr["expected_progress"])


def _provenance(
    session: Session, kr: dict[str, Any], now: datetime, records: int
) -> dict[str, Any]:
    """History, data age and "why this number" for one key result (None before a measurement)."""
    try:
        found = explain(session, kr["id"])
    except ExplainError:
        return {"data_age_seconds": None, "history": [], "why": None}
    cutoff = kr["data_cutoff"] or kr["checked_at"] or found.data_cutoff or found.measured_at
    why = asdict(found)
    for key in ("key_result_id", "title", "kind", "period", "target", "baseline", "history"):
        why.pop(key)
    for key in ("value", "unit", "status", "progress"):  # the report scores them at read time
        why.pop(key)
    why["records"] = contributing_records(session, found.measurement_id, limit=records)
    return {
        "data_age_seconds": (now - datetime.fromisoformat(cutoff)).total_seconds(),
        "history": [
            {"measured_at": m["measured_at"], "value": m["value"]}
            for m in found.history
            if m["value"] is not None
        ],
        "why": why,
    }


def _days(session: Session, kr: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """One point per day of the period up to ``now``: the day's last value, in the key
    result's calendar. A day a sync only confirmed an unchanged value is a point too
    (``key_result_days``), where ``history`` keeps the changes alone."""
    zone = ZoneInfo(kr["timezone"])
    first = datetime.fromisoformat(kr["period_start"]).astimezone(zone).date()
    after = datetime.fromisoformat(kr["period_end"]).astimezone(zone).date()
    rows = session.scalars(
        select(DailyValue)
        .where(
            DailyValue.key_result_id == kr["id"],
            DailyValue.day >= first,
            DailyValue.day < after,
            DailyValue.checked_at <= now,
            DailyValue.value.is_not(None),
        )
        .order_by(DailyValue.day)
    )
    return [
        {"day": row.day.isoformat(), "checked_at": row.checked_at.isoformat(), "value": row.value}
        for row in rows
    ]


_NOT_IN_V1 = {"owner_name", "owner_team", "status", "days"}


def summary_v1(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary in version 1's shape: no header, no names or objective status, and the
    masked store URL at the top, as ``/api/v1`` has always answered."""

    def older(item: dict[str, Any], keep: set[str]) -> dict[str, Any]:
        return {key: value for key, value in item.items() if key not in _NOT_IN_V1 - keep}

    return {
        "schema_version": 1,
        "generated_at": summary["generated_at"],
        "store": summary["ops"]["store"],
        "objectives": [
            {
                **older(objective, set()),
                "key_results": [older(kr, {"status"}) for kr in objective["key_results"]],
            }
            for objective in summary["objectives"]
        ],
    }


def key_results(summary: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(objective, key result) pairs in tree order."""
    return [(o, kr) for o in summary["objectives"] for kr in o["key_results"]]


# --- CSV for spreadsheets ------------------------------------------------------------------

_READ = ("id", "title", "owner", "value", "target", "status", "progress")
"""The columns a person reads first, formatted as the dashboard shows them."""
_TIMES = ("period_start", "period_end", "as_of", "data_cutoff", "checked_at")
CSV_COLUMNS = [
    *_READ,  # owner is the person's name; owner_email (after the raw numbers) the e-mail
    "value_raw",
    "target_raw",
    "progress_raw",
    "unit",
    "status_raw",
    "owner_email",
    "owner_team",
    "objective_id",
    "objective",
    "objective_path",
    "objective_level",
    "objective_progress",
    *(
        name
        for name in KeyResultLine.__dataclass_fields__
        if name not in (*_READ, "unit", "progress_raw", "owner_name", "owner_team")
    ),
    "progress_uncapped",
    "data_age_hours",
    "measurements",
    "sources_read_at",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula is kept as text (OWASP CSV injection);
    numbers lose float noise (``raw_number``)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if isinstance(value, float):
        return raw_number(value)
    return value


def _csv_row(objective: dict[str, Any], path: str, kr: dict[str, Any]) -> dict[str, Any]:
    """One key result: readable columns first, then the raw numbers and everything else."""
    unit, since = kr["unit"], kr["baseline_period"]
    why = kr["why"] or {}
    age = kr["data_age_seconds"]
    row = {key: kr[key] for key in CSV_COLUMNS if key in KeyResultLine.__dataclass_fields__}
    row.update({key: iso_seconds(kr[key]) for key in _TIMES})
    return row | {
        "value": format_value(kr["value"], unit, since),
        "target": format_value(kr["target"], unit, since),
        "owner": kr["owner_name"],
        "owner_email": kr["owner"],
        "status": status_label(kr["status"]),
        "progress": format_percent(kr["progress"]),
        "value_raw": kr["value"],
        "target_raw": kr["target"],
        "progress_raw": kr["progress"],
        "status_raw": kr["status"],
        "objective_id": objective["id"],
        "objective": objective["title"],
        "objective_path": path,
        "objective_level": objective["depth"],
        "objective_progress": objective["progress"],
        "progress_uncapped": kr["progress_raw"],
        "data_age_hours": None if age is None else round(age / 3600, 2),
        "measurements": len(kr["history"]),
        "sources_read_at": "; ".join(
            f"{source} {iso_seconds(at)}"
            for source, at in (why.get("sources_read_at") or {}).items()
        ),
    }


def summary_csv(summary: dict[str, Any]) -> str:
    """One row per key result with its objective's path, ready for a spreadsheet.

    It leads with what a person reads (id, title, owner, value, target, status, progress,
    formatted as on the dashboard); the same numbers follow raw in ``value_raw``,
    ``target_raw``, ``progress_raw`` (a 0–1 fraction) for formulas, rounded to 4 decimals.
    Times are ISO 8601 to the second with their UTC offset; money keeps its currency in
    ``unit``.
    """
    paths: dict[str, str] = {}
    for objective in summary["objectives"]:
        parent = objective["parent"]
        prefix = f"{paths[parent]} › " if parent in paths else ""
        paths[objective["id"]] = prefix + objective["title"]
    buffer = io.StringIO()
    # RFC 4180's CRLF: the writer quotes a cell holding either character, so a carriage
    # return in a title cannot end the row where a spreadsheet would start the next.
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for objective, kr in key_results(summary):
        row = _csv_row(objective, paths[objective["id"]], kr)
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()


# --- markdown for the sync's Prefect artifact ------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(summary: dict[str, Any]) -> str:
    """The key results as a markdown table, for a Prefect markdown artifact of each sync."""
    when = format_time(summary["generated_at"])
    lines = [
        f"# OKR summary{' — ' + _md(summary['company']) if summary['company'] else ''}",
        "",
        f"As of {when}; store `{summary['ops']['store']}`.",
        "",
        "| objective / key result | value | target | progress | status | forecast | checked |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    notes = []
    for objective in summary["objectives"]:
        indent = "\u00a0\u00a0" * objective["depth"]  # kept by markdown, unlike spaces
        lines.append(
            f"| {indent}**{_md(objective['title'])}** | | | "
            f"**{format_percent(objective['progress'])}** | | | |"
        )
        for kr in objective["key_results"]:
            status = status_mark(kr["status"])
            if kr["final_score"] is not None:
                status += f" (closed, score {kr['final_score']:.2f})"
            unit, since = kr["unit"], kr["baseline_period"]
            forecast = format_value(kr["forecast"], unit, since)
            if kr["forecast"] is None and kr["forecast_note"]:
                forecast = kr["forecast_note"].split(":")[0]  # "not enough history"
            lines.append(
                f"| {indent}↳ {_md(kr['title'])} | {format_value(kr['value'], unit, since)} "
                f"| {format_value(kr['target'], unit, since)} | {format_percent(kr['progress'])} "
                f"| {status} | {forecast} "
                f"| {freshness_text(kr['checked_at'], kr['as_of'], kr['timezone'])} |"
            )
            if kr["error"]:
                notes.append(f"- **{_md(kr['id'])}** has no number: {_md(kr['error'])}")
            if kr["stale_reason"]:
                notes.append(f"- **{_md(kr['id'])}** is stale: {_md(kr['stale_reason'])}")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def store_summary_markdown(store: Store, now: datetime) -> str:
    """The markdown summary of a store's key results as of ``now``, for the sync's artifact.

    The table shows no lineage, so it skips the per-key-result lineage queries that
    ``build_summary`` runs: this is on every sync's path.
    """
    with store.session() as session:
        return summary_markdown(_outline(session, now, store.display_url, UTC_CALENDAR))
