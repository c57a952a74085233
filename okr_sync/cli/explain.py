"""``okr-sync explain``: how one key result's number was computed, what it depends on and
how it changed; ``--dependencies``: the whole map, entity -> metrics -> key results.

The map shows the key results the OKR file holds now, as every live view does; a retired
one (removed from the file) is still explained by its id, from its history."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from okr_sync.cli.console import fail, out
from okr_sync.cli.options import StoreOption, open_store
from okr_targets.lineage import ExplainError, Explanation, contributing_records
from okr_targets.lineage import explain as explain_number
from okr_targets.models import KeyResult
from okr_targets.store import latest_stream_counts
from transforms.dependencies import ANYTHING, Dependencies, metric_label


def _as_of(text: str | None) -> datetime | None:
    """``--at``: an ISO date (the end of that day, UTC) or a date-time (UTC when naive)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--at {text!r} is not an ISO date or date-time, e.g. 2026-11-30") from None
    if len(text) <= 10:  # a date: as it stood at the end of that day
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def explain(
    key_result: Annotated[str | None, typer.Argument(help="the key result's id")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="as it stood at this date or date-time")
    ] = None,
    records: Annotated[
        bool, typer.Option("--records", help="also list the records behind the number")
    ] = False,
    output: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    dependencies: Annotated[
        bool,
        typer.Option(
            "--dependencies", help="print what every key result depends on, entity by entity"
        ),
    ] = False,
    store: StoreOption = None,
) -> None:
    """How a key result's number was computed, from which records, and how it changed."""
    if output not in ("text", "json"):
        raise fail(f"unknown format {output!r}: use text or json")
    if key_result is None and not dependencies:
        raise fail("name a key result (okr-sync explain KR), or print the map: --dependencies")
    opened = open_store(store)
    try:
        with opened.session() as session:
            rows_of_map = session.execute(
                select(KeyResult.id, KeyResult.metric, KeyResult.params, KeyResult.reads).where(
                    KeyResult.retired_at.is_(None) | (KeyResult.id == key_result)
                )
            ).all()
            found = explain_number(session, key_result, _as_of(at)) if key_result else None
            rows = contributing_records(session, found.measurement_id) if found and records else []
        delivered = _streams_by_entity(latest_stream_counts(opened))
    except ExplainError as exc:
        raise fail(str(exc)) from None
    finally:
        opened.dispose()
    known = Dependencies(
        {id_: metric_label(metric, params or {}) for id_, metric, params, _ in rows_of_map},
        {id_: None if reads is None else frozenset(reads) for id_, _, _, reads in rows_of_map},
    )
    if found is None:
        _print_map(known, delivered, output)
        return
    entities = known.reads.get(found.key_result_id)
    if output == "json":
        depends = {
            "entities": None if entities is None else sorted(entities),
            "streams": {e: delivered.get(e, []) for e in sorted(entities or delivered)},
        }
        shown = {**asdict(found), "records": rows, "depends_on": depends}
        out.print_json(json.dumps(shown, default=str))
        return
    lines = _explanation_lines(found)
    lines.insert(4, _depends_line(found, entities, delivered))
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)
    if records:
        table = Table(title=f"{len(rows):,} records", title_justify="left", box=box.SIMPLE_HEAD)
        columns = sorted({key for row in rows for key in row}, key=_record_column_order)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(str(row.get(column, "")) for column in columns))
        out.print(table)


def _streams_by_entity(counts: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """entity -> the streams (``source.stream``) that last delivered it."""
    found: dict[str, list[str]] = {}
    for name, stream in sorted(counts.items()):
        if stream.get("entity"):
            found.setdefault(str(stream["entity"]), []).append(name)
    return found


def _depends_line(
    found: Explanation, entities: frozenset[str] | None, delivered: Mapping[str, list[str]]
) -> str:
    """``depends on: deal <- hubspot.deals -> won_revenue -> won-revenue``."""
    if entities is None:
        reads = "any entity (its metric does not declare what it reads)"
    elif not entities:
        reads = "no records (set by hand)"
    else:
        reads = "; ".join(
            f"{entity} <- {', '.join(delivered.get(entity, [])) or 'no stream yet'}"
            for entity in sorted(entities)
        )
    metric = metric_label(found.metric, found.params)
    return f"  depends on: {reads} -> {metric} -> {found.key_result_id}"


def _print_map(known: Dependencies, delivered: Mapping[str, list[str]], output: str) -> None:
    """Entity by entity: the streams that deliver it, the metrics reading it, their key
    results (a change to the entity re-measures those key results)."""
    table = known.by_entity()
    if output == "json":
        shown = {
            entity: {"streams": delivered.get(entity, []), "metrics": metrics}
            for entity, metrics in table.items()
        }
        out.print_json(json.dumps(shown))
        return
    if not table:
        out.print("no key results read any entity yet (run okr-sync sync first)")
    for entity, metrics in table.items():
        name = "any entity" if entity == ANYTHING else entity
        streams = ", ".join(delivered.get(entity, [])) or "no stream yet"
        out.print(Text.assemble((name, "bold"), f" <- {streams}"), highlight=False)
        for metric, key_results in metrics.items():
            out.print(f"  {metric} -> {', '.join(key_results)}", highlight=False)


def _record_column_order(name: str) -> tuple[int, str]:
    first = ("entity", "source", "source_id", "name", "amount", "currency", "status")
    return (first.index(name), name) if name in first else (len(first), name)


def _exact(value: float | None) -> str:
    """1,322,735.27 and 3,400,000: every digit (explain is for checking numbers)."""
    return "no value" if value is None else f"{value:,.2f}".removesuffix(".00")


def _explanation_lines(found: Explanation) -> list[str | Text]:
    """The explanation as a leader reads it: number, method, inputs, freshness, changes."""
    value = f"{_exact(found.value)} {found.unit}".strip()
    progress = "—" if found.progress is None else f"{found.progress:.0%}"
    params = ", ".join(f"{k}={v}" for k, v in found.params.items()) or "no parameters"
    inputs = ", ".join(f"{name} {count:,}" for name, count in found.records_by_kind.items())
    lines: list[str | Text] = [
        Text.assemble((found.key_result_id, "bold"), f" — {found.title}"),
        f"  value: {value} (target {_exact(found.target)}, baseline {_exact(found.baseline)}; "
        f"{found.kind.replace('_', ' ')}, period {found.period})",
        f"  progress {progress}, status {found.status.replace('_', ' ')}",
        f"  computed by metric {found.metric} ({params})",
        f"  from {found.record_count:,} records" + (f": {inputs}" if inputs else ""),
        f"  measured {found.measured_at} by run {found.run_id} ({found.run_status or '?'}"
        + (f", Prefect flow run {found.flow_run_id}" if found.flow_run_id else "")
        + f"), okr-sync {found.code_version}",
    ]
    if found.details.get("custom") == "sql":  # a data team's metric: show what it ran
        lines.insert(4, "  its query: " + " ".join(str(found.details["query"]).split()))
    elif found.details.get("custom") == "python":
        lines.insert(4, f"  its function: {found.details.get('function', '?')}")
    for left_out in reversed(found.details.get("left_out") or []):  # what the metric set aside
        lines.insert(
            5,
            f"  left out: {left_out['count']:,} {left_out['what']}, {left_out['why']}",
        )
    if found.data_cutoff:
        lines.append(f"  source data as of {found.data_cutoff} (later changes are not in it)")
    for source, read_at in found.sources_read_at.items():
        lines.append(f"  {source} last read in full with data as of {read_at}")
    for frozen in found.baselines:
        lines.append(
            f"  baseline {frozen['period']}: {_exact(frozen['value'])} from {frozen['records']:,} "
            f"records, frozen at {frozen['computed_at']}"
        )
        if frozen["refrozen_from"] is not None:
            lines.append(f"    re-frozen by a full refresh (was {_exact(frozen['refrozen_from'])})")
        if frozen["now"] is not None:
            lines.append(
                f"    its period's data has changed since and now gives {_exact(frozen['now'])}:"
                " not applied (a frozen baseline is never recomputed silently)"
            )
    restated = found.restatement
    if restated is not None:
        change = "" if restated.difference is None else f" ({restated.difference:+,.2f})"
        lines.append(
            f"  restated: was {_exact(restated.old_value)} (measured {restated.old_measured_at}), "
            f"now {value}{change}: {len(restated.added)} record(s) added, "
            f"{len(restated.removed)} removed, {len(restated.changed)} changed since"
        )
        for label, keys in (
            ("added", restated.added),
            ("removed", restated.removed),
            ("changed", restated.changed),
        ):
            for entity, source, source_id in keys[:10]:
                lines.append(f"    {label}: {source} {entity} {source_id}")
    restatements = sum(1 for m in found.history if m["restates"])
    lines.append(
        f"  history: {len(found.history)} measurement(s)"
        + (f", {restatements} restatement(s)" if restatements else "")
    )
    return lines
