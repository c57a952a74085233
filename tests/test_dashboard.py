"""The dashboard's data, exports and live API: one summary, the same numbers everywhere.

The store is written row by row (tests/okr_fixture.py) so every status is known; the last
test syncs the demo company from its sandboxes and checks the real data against the schema.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import time_machine
from prefect import flow
from prefect.artifacts import Artifact, create_markdown_artifact
from sqlalchemy import select, update
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from connectors.sandbox.server import RunningServer
from okr_sync.cli import DEMO_OKRS, app
from okr_sync.serve import ServeSettings, create_app
from okr_targets.config import load_okrs
from okr_targets.dashboard import Refresh, nice_ticks, render_html, trend_chart
from okr_targets.formatting import format_value
from okr_targets.models import Baseline, KeyResult, Measurement, Organisation
from okr_targets.store import Store
from okr_targets.summary import (
    SCHEMA_FILE,
    SCHEMA_FILE_V1,
    key_results,
    store_summary_markdown,
    summary_csv,
    summary_markdown,
    summary_v1,
)
from tests.okr_fixture import (
    COMPANY,
    NAMES,
    NOW,
    PERIOD,
    STATUSES,
    TEAMS,
    TREE,
    changes_of,
    edited_at,
    fill_store,
    land_value,
    page_of,
    summary_of,
)
from tests.test_changes import SINCE, UNTIL, later_changes
from transforms.measure import save_okrs

SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
SCHEMA_V1 = json.loads(SCHEMA_FILE_V1.read_text(encoding="utf-8"))


def validate(document: Any, schema: dict[str, Any] = SCHEMA) -> None:
    """Raise unless ``document`` (as it travels, through JSON) follows the published schema."""
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(
        json.loads(json.dumps(document)),
        schema,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def by_id(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kr["id"]: kr for _objective, kr in key_results(summary)}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def filled(store_url: str) -> str:
    fill_store(store_url)
    return store_url


def test_the_summary_follows_the_schema_and_carries_status_trend_and_lineage(filled: str) -> None:
    summary = summary_of(filled)
    validate(summary)
    objectives = {o["id"]: o for o in summary["objectives"]}
    assert [o["id"] for o in summary["objectives"]] == ["grow", "sales", "alice", "support"]
    assert {key: o["parent"] for key, o in objectives.items()} == TREE
    assert {key: o["depth"] for key, o in objectives.items()} == {
        "grow": 0,
        "sales": 1,
        "alice": 2,
        "support": 1,
    }
    krs = by_id(summary)
    assert {key: kr["status"] for key, kr in krs.items()} == STATUSES
    stale = krs["first-response"]
    assert stale["stale_reason"] == "zendesk data is 3 days old (limit 24 h)"
    assert stale["underlying_status"] == "on_track"  # (5 − 8) / (4 − 8) = 0.75 ≥ 0.625 − 0.10
    assert stale["data_age_seconds"] == 3 * 86_400 + 60

    revenue = krs["revenue"]
    assert revenue["progress"] == pytest.approx(0.6)
    assert [point["value"] for point in revenue["history"]] == [
        200_000,
        300_000,
        400_000,
        500_000,
        600_000,
    ]
    # least squares through one value on each of days 14, 24, 31, 45 and 57.458 of the
    # 92-day quarter, read at day 92
    xs = [14.0, 24.0, 31.0, 45.0, 57 + 11 / 24]
    ys = [200_000.0, 300_000.0, 400_000.0, 500_000.0, 600_000.0]
    x_mean, y_mean = sum(xs) / 5, sum(ys) / 5
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - x_mean) ** 2 for x in xs
    )
    assert revenue["forecast"] == pytest.approx(y_mean + slope * (92 - x_mean))
    assert revenue["forecast_low"] < revenue["forecast"] < revenue["forecast_high"]
    assert krs["win-rate"]["forecast"] is None  # one day of history
    assert krs["win-rate"]["forecast_note"].startswith("not enough history: 1 day of values;")
    why = revenue["why"]
    assert (why["metric"], why["run_id"], why["flow_run_id"]) == (
        "won_revenue",
        "run-1",
        "flow-run-1",
    )
    assert why["record_count"] == 3
    assert why["records_by_kind"] == {"salesforce.deal": 3}
    assert [(r["source_id"], r["amount"], r["currency"]) for r in why["records"]] == [
        ("006-0", "250000.0000", "USD"),
        ("006-1", "150000.0000", "USD"),
        ("006-2", "200000.0000", "USD"),
    ]
    assert why["sources_read_at"] == {"salesforce": "2026-11-27T11:00:00+00:00"}

    unmeasured = krs["alice-deals"]
    assert (unmeasured["value"], unmeasured["why"], unmeasured["history"]) == (None, None, [])
    assert objectives["alice"]["progress"] is None


def test_the_schema_rejects_a_document_that_drifted(filled: str) -> None:
    summary = summary_of(filled)
    kr = summary["objectives"][0]["key_results"][0]
    for broken in (
        {**kr, "status": "green"},
        {**kr, "as_of": "2026-11-27T11:00:00"},  # a time without its zone
        {**kr, "surprise": 1},
        {key: value for key, value in kr.items() if key != "unit"},
    ):
        drifted = {**summary, "objectives": [{**summary["objectives"][0], "key_results": [broken]}]}
        with pytest.raises(jsonschema.ValidationError):
            validate(drifted)


def test_the_summary_leads_with_the_company_counts_and_what_needs_attention(filled: str) -> None:
    summary = summary_of(filled)
    assert (summary["company"], summary["periods"]) == (COMPANY, [PERIOD])
    assert sum(summary["counts"].values()) == len(STATUSES)
    assert {k: n for k, n in summary["counts"].items() if n} == Counter(STATUSES.values())
    # off track, at risk, stale: 62.5% of the quarter has passed at NOW
    assert [
        (item["key_result_id"], item["status"], item["owner_name"], item["reason"])
        for item in summary["attention"]
    ] == [
        (
            "win-rate",
            "off_track",
            "Samantha Seller",
            "10% done, 62% expected",
        ),  # 26 of 25→35
        ("new-customers", "at_risk", "Samantha Seller", "45% done, 62% expected"),
        ("first-response", "stale", "Sue Porter", "zendesk data is 3 days old (limit 24 h)"),
    ]
    win_rate = summary["attention"][0]
    assert (win_rate["value"], win_rate["target"], win_rate["unit"]) == (26, 35, "%")
    # the weakest status below each objective; alice's one key result has no number yet
    assert {o["id"]: o["status"] for o in summary["objectives"]} == {
        "grow": "off_track",  # revenue on track, sales off track, support stale
        "sales": "off_track",  # win-rate off track, new-customers at risk, alice no data
        "alice": "no_data",
        "support": "stale",
    }
    # owners by name: the file's people map over the CRM's reps; unknown e-mails stay
    for objective, kr in key_results(summary):
        for item in (objective, kr):
            assert (item["owner_name"], item["owner_team"]) == (
                NAMES[item["owner"]],
                TEAMS.get(item["owner"]),
            )
    assert "store" not in summary
    assert summary["ops"]["store"].startswith("sqlite:") or "postgresql" in summary["ops"]["store"]


def test_a_metric_error_is_counted_and_listed_with_its_reason(filled: str) -> None:
    store = Store.open(filled)
    with store.session() as session:  # alice's key result: the metric gave no number
        session.add(
            Measurement(
                key_result_id="alice-deals",
                run_id="run-1",
                measured_at=NOW,
                value=None,
                unit="deals",
                progress=None,
                progress_raw=None,
                expected_progress=0.0,
                status="no_data",
                metric="won_deals",
                params={},
                details={"error": "unknown metric 'won_deals'"},
                record_count=0,
                code_version="0.1.0",
            )
        )
        session.commit()
    store.dispose()
    summary = summary_of(filled)
    assert (summary["counts"]["error"], summary["counts"]["no_data"]) == (1, 0)
    last = summary["attention"][-1]
    assert (last["key_result_id"], last["status"], last["owner_name"], last["reason"]) == (
        "alice-deals",
        "error",
        "Alice Adams",
        "unknown metric 'won_deals'",
    )
    validate(summary)
    assert 'data-standing="error"' in render_html(summary)
    # a long reason is cut in the list (whole in its tooltip and on the card)
    long = "the CRM answered 500 Internal Server Error: " + "upstream timeout " * 12
    last["reason"] = long
    by_id(summary)["alice-deals"]["error"] = long
    page = render_html(summary)
    [shown] = re.findall(r'<span class="reason" title="([^"]*)">— ([^<]*)</span>', page)
    assert shown[0] == long
    assert shown[1].endswith("…")
    assert len(shown[1]) <= 120
    assert long.startswith(shown[1].removesuffix("…").rstrip())
    assert f"Error: {long}" in page  # the card keeps it whole


def test_the_okr_files_company_and_people_are_stored_and_win_over_the_crm(
    filled: str, tmp_path: Path
) -> None:
    path = tmp_path / "okrs.yaml"
    path.write_text(
        "company: Grow Company Ltd\n"
        "people:\n"
        "  ALICE@example.com: Alice A. Adams\n"  # any case; keeps the CRM's team
        "  grow@example.com: {name: Gus Grow, team: Board}\n"
        "objectives:\n"
        "  - {id: grow, title: Grow, owner: grow@example.com, period: 2026-Q4, key_results: [\n"
        "      {id: revenue, title: Book 1M, owner: alice@example.com, metric: won_revenue,\n"
        "       target: 1000000, unit: USD}]}\n",
        encoding="utf-8",
    )
    config = load_okrs(path)
    store = Store.open(filled)
    for saved_at in (NOW, NOW + timedelta(hours=1)):  # the second save changes nothing
        with store.session() as session:
            save_okrs(session, config, saved_at)
            session.commit()
    with store.session() as session:
        organisation = session.get(Organisation, 1)
        assert organisation is not None
        assert (organisation.company, organisation.updated_at) == ("Grow Company Ltd", NOW)
        assert organisation.people == {  # the file's map replaces the stored one
            "alice@example.com": {"name": "Alice A. Adams", "team": None},
            "grow@example.com": {"name": "Gus Grow", "team": "Board"},
        }
    store.dispose()
    summary = summary_of(filled)
    assert summary["company"] == "Grow Company Ltd"
    [grow] = summary["objectives"]
    assert (grow["owner_name"], grow["owner_team"]) == ("Gus Grow", "Board")
    [revenue] = grow["key_results"]
    assert (revenue["owner_name"], revenue["owner_team"]) == ("Alice A. Adams", "Enterprise")


def test_the_page_names_people_and_never_shows_the_store(filled: str) -> None:
    summary = summary_of(filled)
    page = render_html(summary)
    assert summary["ops"]["store"] not in page
    assert "sqlite:" not in page
    assert "postgresql" not in page
    assert f"<h1>{COMPANY} " in page
    link = '<a class="owner" href="mailto:sales@example.com" title="sales@example.com">'
    assert page.count(link + "Samantha Seller</a>") == 1 + 2 + 2  # objective, 2 cards, 2 items
    assert ">grow@example.com</a>" in page  # nobody knows it: the e-mail as it is
    assert page.count('data-objective-status="off_track"') == 2
    assert '<script id="filters">' in page
    for status, count in Counter(STATUSES.values()).items():
        assert f'data-set-status="{status}" data-count="{count}"' in page


def test_csv_suits_spreadsheets(filled: str) -> None:
    store = Store.open(filled)
    with store.session() as session:  # a title a spreadsheet would run as a formula
        session.execute(
            update(KeyResult)
            .where(KeyResult.id == "win-rate")
            .values(title='=HYPERLINK("http://evil.example","win rate")')
        )
        session.commit()
    store.dispose()
    summary = summary_of(filled)
    text = summary_csv(summary)
    header = text.split("\r\n", 1)[0].split(",")
    # what a person reads first, formatted; the raw numbers follow in their own columns
    assert header[:7] == ["id", "title", "owner", "value", "target", "status", "progress"]
    assert header[7:10] == ["value_raw", "target_raw", "progress_raw"]
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert set(rows) == set(STATUSES)
    read = {
        kr_id: tuple(row[c] for c in ("value", "target", "status", "progress"))
        for kr_id, row in rows.items()
    }
    assert read == {  # as the dashboard shows them: 600k of 1M, (26-25)/(35-25) = 10%, …
        "revenue": ("600k USD", "1M USD", "on track", "60%"),
        "win-rate": ("26%", "35%", "off track", "10%"),
        "new-customers": ("4.5 customers", "10 customers", "at risk", "45%"),
        "first-response": ("5 hours", "4 hours", "stale", "75%"),  # (8-5)/(8-4)
        "alice-deals": ("—", "5 deals", "no data", "—"),
    }
    alice = rows["alice-deals"]
    assert alice["objective_path"] == "Grow objective › Sales objective › Alice objective"
    assert alice["objective_level"] == "2"
    assert (alice["value_raw"], alice["status_raw"]) == ("", "no_data")
    revenue = rows["revenue"]
    assert revenue["value_raw"] == "600000"  # whole numbers without ".0"
    assert revenue["target_raw"] == "1000000"
    assert revenue["progress_raw"] == "0.6"
    assert revenue["unit"] == "USD"
    assert revenue["owner"] == "grow@example.com"
    assert revenue["as_of"] == "2026-11-27T11:00:00+00:00"  # to the second, with the offset
    assert revenue["period_start"] == "2026-10-01T00:00:00+00:00"
    assert revenue["measurements"] == "5"
    assert float(revenue["data_age_hours"]) == pytest.approx(61 / 60, abs=0.01)
    assert revenue["sources_read_at"] == "salesforce 2026-11-27T11:00:00+00:00"
    # no float noise anywhere: at most 4 decimals in a number
    assert not re.search(r"\d\.\d{5,}", text)
    assert rows["first-response"]["stale_reason"] == "zendesk data is 3 days old (limit 24 h)"
    assert (rows["win-rate"]["owner"], rows["win-rate"]["owner_email"]) == (
        "Samantha Seller",
        "sales@example.com",
    )
    assert (revenue["owner"], revenue["owner_email"]) == ("grow@example.com",) * 2
    assert rows["win-rate"]["title"] == '\'=HYPERLINK("http://evil.example","win rate")'
    assert float(rows["win-rate"]["value_raw"]) == 26  # numbers stay numbers


def test_a_change_reads_with_its_sign_and_baseline_period_in_every_view(filled: str) -> None:
    """A pct_change key result at +3% against a target of -8% (issue 23): "+3.0% vs
    2026-Q3", the baseline period taken from its measurement."""
    store = Store.open(filled)
    with store.session() as session:
        session.execute(
            update(KeyResult)
            .where(KeyResult.id == "win-rate")
            .values(metric="pct_change", baseline=0, target=-8, direction="decrease")
        )
        session.add(  # the frozen baseline: average deal value in 2026-Q3
            Baseline(
                key="b-1",
                metric="avg_won_deal_value",
                params={},
                period="2026-Q3",
                query={},
                value=61_234.5678,
                record_count=7,
                computed_at=NOW - timedelta(days=50),
            )
        )
        for measurement in session.scalars(
            select(Measurement).where(Measurement.key_result_id == "win-rate")
        ):
            measurement.value = 3.0
            measurement.details = {
                **(measurement.details or {}),
                "baseline_period": "2026-Q3",
                "baseline_key": "b-1",
                "baseline_now": 62_000.0,
            }
        session.commit()
    store.dispose()
    summary = summary_of(filled)
    validate(summary)
    assert by_id(summary)["win-rate"]["baseline_period"] == "2026-Q3"
    assert by_id(summary)["revenue"]["baseline_period"] is None

    page = render_html(summary)
    assert "+3.0% vs 2026-Q3" in page
    # the needs-attention line names the period once: not "+3.0% vs 2026-Q3 of −8.0% vs …"
    assert "+3.0% vs 2026-Q3, target \u22128.0%\n" in page
    assert "target \u22128.0% vs 2026-Q3" in page  # the minus sign, U+2212
    assert "2026-Q3: 61.2k from 7 records" in page  # not 61234.5678
    assert "its data now gives 62k (not applied)" in page

    row = {r["id"]: r for r in csv.DictReader(io.StringIO(summary_csv(summary)))}["win-rate"]
    # a cell starting with "+" is one a spreadsheet would run: the guard keeps it text
    assert (row["value"], row["target"]) == ("'+3.0% vs 2026-Q3", "\u22128.0% vs 2026-Q3")
    assert (row["value_raw"], row["target_raw"], row["baseline_period"]) == ("3", "-8", "2026-Q3")

    markdown = summary_markdown(summary)
    assert "| +3.0% vs 2026-Q3 | \u22128.0% vs 2026-Q3 |" in markdown

    table = CliRunner().invoke(app, ["report", "--store", filled], env={"COLUMNS": "240"})
    assert table.exit_code == 0, table.output
    assert "+3.0% vs 2026-Q3" in table.stdout
    assert "\u22128.0% vs 2026-Q3" in table.stdout


def test_markdown_summary_for_the_sync_artifact(filled: str) -> None:
    """The artifact reads like the page: the answer first, names, objective status."""
    summary = summary_of(filled)
    text = summary_markdown(summary)
    head, _, rest = text.partition("\n## All objectives and key results\n")
    assert head.startswith(f"# {COMPANY} · OKRs {PERIOD}\n")
    # the fixture's five key results, one in each status (tests/okr_fixture.py)
    assert (
        "As of 2026-11-27 12:00 UTC. **5 key results:** "
        "1 on track · 1 at risk · 1 off track · 1 no data · 1 stale"
    ) in head
    attention = [line for line in head.splitlines() if line.startswith("| ") and "·" not in line]
    assert attention[1:] == [  # after the column names; off track, at risk, stale
        "| 🔴 off track | Raise the win rate from 25% to 35% "
        "| [Samantha Seller](mailto:sales@example.com) | 26% | 35% | 10% done, 62% expected |",
        "| 🟡 at risk | Win 10 new customers | [Samantha Seller](mailto:sales@example.com) "
        "| 4.5 customers | 10 customers | 45% done, 62% expected |",
        "| 🟣 stale | Answer within 4 hours | [Sue Porter](mailto:support@example.com) "
        "| 5 hours | 4 hours | zendesk data is 3 days old (limit 24 h) |",  # one ticket: 5 h
    ]
    rows = {line.split("|")[1].strip(): line for line in rest.splitlines() if "↳" in line}
    assert len(rows) == len(STATUSES)
    revenue = rows["↳ Book 1M in won revenue"]
    # 928k: least squares through the five daily values (test_the_summary_follows_the_schema…)
    cells = "| 600k USD | 1M USD | 60% | 🟢 on track | 928k USD | updated 2026-11-27 11:00 UTC |"
    assert cells in revenue
    # grow's owner is known to nobody: the e-mail, as it is
    assert "| grow@example.com | 600k USD" in revenue
    assert "🔴 off track" in rows["↳ Raise the win rate from 25% to 35%"]
    assert "🟡 at risk" in rows["↳ Win 10 new customers"]
    assert "⚪ no data" in rows["↳ Alice closes 5 deals"]
    assert "| [Alice Adams](mailto:alice@example.com) |" in rows["↳ Alice closes 5 deals"]
    assert "🟣 stale" in rows["↳ Answer within 4 hours"]
    assert "| not enough history |" in rows["↳ Raise the win rate from 25% to 35%"]
    # objectives carry their status (the weakest below them) and their owner by name
    objectives = [line for line in rest.splitlines() if "**" in line]
    statuses = {
        line.split("**")[1]: line.split("|")[6].strip() for line in objectives if "|" in line
    }
    assert statuses == {
        title: mark
        for title, mark in zip(
            [o["title"] for o in summary["objectives"]],
            ["🔴 off track", "🔴 off track", "⚪ no data", "🟣 stale"],
            strict=True,
        )
    }
    # the store's URL is for operators: last, not in the header
    assert "Store:" not in head
    assert text.rstrip().endswith(f"Store: `{summary['ops']['store']}`.")


def test_the_terminal_table_leads_with_the_answer(filled: str) -> None:
    """``okr-sync report``: company, period, counts and the needs-attention list come first,
    owners by name, then the tree."""
    with time_machine.travel(NOW, tick=False):
        table = CliRunner().invoke(app, ["report", "--store", filled], env={"COLUMNS": "240"})
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[:3] == [
        f"{COMPANY} · OKRs {PERIOD}",
        "5 key results: 1 on track · 1 at risk · 1 off track · 1 no data · 1 stale",
        "Needs attention (3)",
    ]
    assert " ".join(lines[3].split()) == (
        "off track Raise the win rate from 25% to 35% · Samantha Seller · 26% of 35% "
        "— 10% done, 62% expected"
    )
    assert lines[5].strip().startswith("stale  Answer within 4 hours · Sue Porter · 5 hours of")
    assert [line.strip() for line in lines].index("OKRs") > 5
    assert "sales@example.com" not in table.stdout


def test_the_page_shows_the_summarys_numbers_and_loads_nothing(filled: str) -> None:
    summary = summary_of(filled)
    summary["objectives"][0]["title"] = "<script>alert(1)</script>"  # text, never markup
    page = render_html(summary)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for kr in by_id(summary).values():
        assert f'data-kr="{kr["id"]}"' in page
        assert format_value(kr["value"], kr["unit"]) in page
    assert 'data-status="stale"' in page
    assert "zendesk data is 3 days old" in page
    # self-contained: nothing fetched from anywhere, and the policy forbids trying
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "default-src 'none'" in page
    assert page.count('class="measured"') == 4  # the revenue trend: five days, four segments
    # no live refresh in the file: no script asking a server, and the policy forbids it
    assert 'id="refresh"' not in page
    assert "connect-src" not in page


def shown_text(html: str) -> str:
    """The text a reader sees: block and cell tags part words, inline ones do not."""
    blocks = r"</?(?:p|h2|ul|li|details|summary|div|table|caption|thead|tbody|tr|th|td)\b[^>]*>"
    return " ".join(re.sub(r"<[^>]+>", "", re.sub(blocks, " ", html)).split())


def moved_entries(page: str) -> dict[str, tuple[dict[str, str], str]]:
    """The "what changed" section's entries: key result -> (data-* attributes, text shown)."""
    [section] = re.findall(r'<section class="changes".*?</section>', page, re.DOTALL)
    found = {}
    for attributes, body in re.findall(r"<li (data-change[^>]*)>(.*?)</li>", section, re.DOTALL):
        data = dict(re.findall(r'data-([a-z]+)="([^"]*)"', attributes))
        found[data.pop("change")] = (data, shown_text(body))
    return found


def section_text(page: str) -> str:
    [section] = re.findall(r'<section class="changes".*?</section>', page, re.DOTALL)
    return shown_text(section)


def test_the_page_says_what_moved_in_the_last_week_and_why(filled: str) -> None:
    """The week up to NOW (tests/okr_fixture.py): revenue 500k (Nov 15th, no lineage) →
    600k USD from deals 006-0..2, each edited at the source since; three key results first
    measured; alice's never."""
    page = page_of(filled)
    text = section_text(page)
    assert text.startswith(
        "What changed in the last 7 days Since 2026-11-20 12:00 UTC: 1 moved,"
        " 3 first measured, 0 unchanged, 1 not measured yet"
        " · other dates: okr-sync changes --since DATE"
    )
    entries = moved_entries(page)
    # moved first, then first measured, each by id; filtered as their cards are
    assert {kr: tuple(data.values()) for kr, (data, _) in entries.items()} == {
        "revenue": ("moved", "grow@example.com", "", "on_track"),
        "first-response": ("new", "support@example.com", "Support", "stale"),
        "new-customers": ("new", "sales@example.com", "Enterprise", "at_risk"),
        "win-rate": ("new", "sales@example.com", "Enterprise", "off_track"),
    }
    assert list(entries) == ["revenue", "first-response", "new-customers", "win-rate"]
    shown = entries["revenue"][1]
    assert shown.startswith(
        "on track Book 1M in won revenue · grow@example.com · +100k USD since 2026-11-20"
        " (500k USD → 600k USD) — deals: 3 added (3 edited at the source)"
        " 3 record(s) behind it"
    )
    for n, edited in enumerate(("2026-11-26 11:00", "2026-11-25 11:00", "2026-11-24 11:00")):
        assert (
            f"added salesforce deal 006-{n} “Deal {n}” edited at the source {edited} UTC" in shown
        )
    assert "won, 150,000.00 USD, closed 2026-11-02" in shown
    assert entries["win-rate"][1].endswith("Samantha Seller · first measured in the window: 26%")
    # the ones first measured are counted, and listed behind one closed disclosure
    assert (
        '<details class="first-measured" id="changes-first"><summary>3 first measured in the'
        " last 7 days</summary>" in page
    )
    assert '<details id="records-revenue"><summary>3 record(s) behind it</summary>' in page
    assert page.index('id="changes"') > page.index('id="attention-title"')
    assert page.index('id="changes"') < page.index('aria-label="Objectives, company first"')


def test_each_movement_shows_its_records_restatement_and_unchanged_count(store_url: str) -> None:
    """The later run of tests/test_changes.py, in its window (SINCE..UNTIL, two days)."""
    fill_store(store_url)
    later_changes(store_url)
    changes = changes_of(store_url, UNTIL, days=2)
    assert (changes.since, changes.until) == (SINCE, UNTIL)
    page = render_html(summary_of(store_url, UNTIL), changes=changes)
    assert section_text(page).startswith(
        "What changed in the last 2 days Since 2026-11-27 12:00 UTC: 2 moved,"
        " 1 first measured, 3 unchanged, 0 not measured yet"
    )
    entries = moved_entries(page)
    assert list(entries) == ["q3-revenue", "revenue", "alice-deals"]
    revenue = entries["revenue"][1]
    assert (
        "+110k USD since 2026-11-27 (600k USD → 710k USD) — deals: 1 added (1 new at the"
        " source), 1 removed (1 deleted at the source), 1 edited at the source"
        " 3 record(s) behind it"
    ) in revenue
    assert "added salesforce deal 006-3 “Deal 3” new at the source 2026-11-27 15:00 UTC" in revenue
    assert (
        "removed salesforce deal 006-1 “Deal 1” deleted at the source 2026-11-28 00:00" in revenue
    )
    assert "changed salesforce deal 006-2 “Deal 2” edited at the source 2026-11-27 18:00" in revenue
    assert "won, 210,000.00 USD, closed 2026-11-03" in revenue
    q3 = entries["q3-revenue"][1]
    assert (
        "+12.3k USD since 2026-11-27 (100k USD → 112k USD) — deals: 1 added (1 edited at the"
        " source); restated 2026-Q3 (closed) with late data 1 record(s) behind it"
    ) in q3
    assert "added salesforce deal 006-10 “Deal 10” edited at the source 2026-11-27 17:00" in q3
    assert entries["alice-deals"][1].endswith("Alice Adams · first measured in the window: 1 deals")
    assert entries["alice-deals"][0]["team"] == "Enterprise"
    for unchanged in ("win-rate", "new-customers", "first-response"):
        assert unchanged not in entries


def month_kr(**fields: Any) -> dict[str, Any]:
    """A key result of November 2026 (30 days, UTC) as the summary gives it to the chart."""
    return {
        "id": "kr",
        "title": "Win 20 customers",
        "period": "2026-11",
        "period_start": "2026-11-01T00:00:00+00:00",
        "period_end": "2026-12-01T00:00:00+00:00",
        "timezone": "UTC",
        "unit": "customers",
        "kind": "increase_to",
        "baseline": 8.0,
        "baseline_period": None,
        "target": 20.0,
        "expected_progress": 3.5 / 30,  # at CHART_NOW
        "forecast": None,
        "forecast_note": "not enough history: 3 days of values over 2 days",
        "days": [
            {"day": "2026-11-02", "checked_at": "2026-11-02T12:00:00+00:00", "value": 10.0},
            {"day": "2026-11-03", "checked_at": "2026-11-03T12:00:00+00:00", "value": 12.0},
            {"day": "2026-11-04", "checked_at": "2026-11-04T06:00:00+00:00", "value": 11.0},
        ],
        **fields,
    }


CHART_NOW = datetime(2026, 11, 4, 12, tzinfo=UTC)


def test_the_trend_chart_has_a_point_a_day_value_and_date_axes_and_the_expected_line() -> None:
    chart = trend_chart(month_kr(), CHART_NOW)
    # x: 2% of the width free at each side, the 30 days of November over the 96% between;
    # Nov 2 12:00 is 1.5 days in, Nov 3 12:00 2.5, Nov 4 06:00 3.25, now 3.5
    assert [x for x, _y, _tip in chart.points] == [6.8, 10.0, 12.4]
    assert chart.now_x == 13.2
    # y: values 10, 12, 11, baseline 8, target 20 → round ticks 5, 10, 15, 20 (steps of 1
    # or 2 would take 13 or 7 ticks); 5 at y = 116 px, 20 at y = 18 px, 98 px between
    assert [tick.label for tick in chart.y_ticks] == [
        "5 customers",
        "10 customers",
        "15 customers",
        "20 customers",
    ]
    assert [tick.at for tick in chart.y_ticks] == [116.0, 83.3, 50.7, 18.0]
    assert [y for _x, y, _tip in chart.points] == [83.3, 70.3, 76.8]  # 116 − (v − 5)/15·98
    assert chart.points[0][2] == "10 customers on 2026-11-02 12:00 UTC"
    assert chart.segments == [(6.8, 83.3, 10.0, 70.3), (10.0, 70.3, 12.4, 76.8)]
    assert chart.target_y == 18.0
    # expected progress: from the baseline (8) at the period's start to the target (20) at
    # its end
    assert chart.expected == (2.0, 96.4, 98.0, 18.0)
    assert chart.forecast is None
    # dates: a one-month period is marked every 10 days
    assert [(tick.label, tick.at, tick.anchor) for tick in chart.x_ticks] == [
        ("Nov 1", 2.0, "start"),
        ("Nov 11", 34.0, "middle"),
        ("Nov 21", 66.0, "middle"),
    ]
    assert chart.description == (
        "3 daily values in 2026-11, from 10 customers to 11 customers; target 20 customers; "
        "expected by now 9.4 customers; no forecast: not enough history: 3 days of values "
        "over 2 days; values from 5 customers to 20 customers"
    )


def test_the_chart_draws_expected_progress_only_for_kinds_that_move_toward_a_target() -> None:
    # a percent change is expected to go from 0 % at the start to the target at the end;
    # values 10 to 12 and a target of −8 take steps of 10: −10 at y 116 px, 20 at 18 px
    change = trend_chart(month_kr(kind="percent_change", unit="%", target=-8.0), CHART_NOW)
    assert [tick.label for tick in change.y_ticks] == ["\u221210%", "0%", "10%", "20%"]
    assert change.expected == (2.0, 83.3, 98.0, 109.5)  # 116 − 10/30·98, 116 − 2/30·98
    # a floor to stay above, a milestone: no line between a baseline and a target
    for kind in ("at_least", "at_most", "milestone"):
        assert trend_chart(month_kr(kind=kind), CHART_NOW).expected is None
    # the text alternative counts the days as the chart draws them
    one = trend_chart(month_kr(days=month_kr()["days"][:1]), CHART_NOW)
    assert one.description.startswith("1 daily value in 2026-11: 10 customers; target")
    none = trend_chart(month_kr(days=[]), CHART_NOW)
    assert (none.points, none.description[:38]) == ([], "0 daily values in 2026-11; target 20 c")


@pytest.mark.parametrize(
    ("period", "start", "end", "ticks"),
    [
        # Oct 1 + 31 and + 61 of 92 days
        (
            "2026-Q4",
            "2026-10-01",
            "2027-01-01",
            [("Oct 1", 2.0), ("Nov 1", 34.35), ("Dec 1", 65.65)],
        ),
        # every second month of a half: + 62 and + 123 of 184 days
        (
            "2026-H2",
            "2026-07-01",
            "2027-01-01",
            [("Jul 1", 2.0), ("Sep 1", 34.35), ("Nov 1", 66.17)],
        ),
        # every third of a year: + 90, + 181 and + 273 of 365 days
        (
            "2026",
            "2026-01-01",
            "2027-01-01",
            [("Jan 1", 2.0), ("Apr 1", 25.67), ("Jul 1", 49.61), ("Oct 1", 73.8)],
        ),
    ],
)
def test_longer_periods_are_marked_at_month_starts_at_most_four_times(
    period: str, start: str, end: str, ticks: list[tuple[str, float]]
) -> None:
    kr = month_kr(
        period=period, period_start=f"{start}T00:00:00+00:00", period_end=f"{end}T00:00:00+00:00"
    )
    chart = trend_chart(kr, CHART_NOW)
    assert [(tick.label, tick.at) for tick in chart.x_ticks] == ticks


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0, 1_000_000, [0, 500_000, 1_000_000]),
        (25, 35, [25, 30, 35]),
        (4.41, 4.45, [4.4, 4.42, 4.44, 4.46]),
        (5, 5, [4.5, 5, 5.5]),  # one value: a tenth of it either side
        (-7.3, 12.0, [-10, 0, 10, 20]),
    ],
)
def test_value_ticks_are_two_to_four_round_numbers_covering_the_values(
    low: float, high: float, ticks: list[float]
) -> None:
    assert nice_ticks(low, high) == ticks


def test_close_ticks_get_the_digits_that_tell_them_apart() -> None:
    chart = trend_chart(
        month_kr(
            unit="/5",
            kind="at_least",
            target=4.45,
            days=[{"day": "2026-11-02", "checked_at": "2026-11-02T12:00:00+00:00", "value": 4.41}],
        ),
        CHART_NOW,
    )
    assert [tick.label for tick in chart.y_ticks] == ["4.40 /5", "4.42 /5", "4.44 /5", "4.46 /5"]


def test_a_day_that_only_confirmed_its_value_is_a_point_of_the_chart(filled: str) -> None:
    # Nov 20: a sync confirmed revenue unchanged at 500k (no new measurement); Sep 30 is
    # before the period
    land_value(
        filled, "revenue", datetime(2026, 11, 20, 4, 30, tzinfo=UTC), 500_000.0, changed=False
    )
    land_value(filled, "revenue", datetime(2026, 9, 30, 4, 30, tzinfo=UTC), 100_000.0)
    summary = summary_of(filled)
    validate(summary)
    revenue = by_id(summary)["revenue"]
    assert [m["value"] for m in revenue["history"]] == [100_000, *range(200_000, 600_001, 100_000)]
    assert [(d["day"], d["value"]) for d in revenue["days"]] == [
        ("2026-10-15", 200_000),
        ("2026-10-25", 300_000),
        ("2026-11-01", 400_000),
        ("2026-11-15", 500_000),
        ("2026-11-20", 500_000),
        ("2026-11-27", 600_000),
    ]
    assert revenue["days"][4]["checked_at"] == "2026-11-20T04:30:00+00:00"
    chart = trend_chart(revenue, NOW)
    # Nov 20 04:30 is 50 days and 4.5 hours into the 92-day quarter
    assert chart.points[4][:2] == (round(2 + 96 * (50 + 4.5 / 24) / 92, 2), chart.points[3][1])
    assert len(chart.points) == 6
    assert chart.description.startswith("6 daily values in 2026-Q4, from 200k USD to 600k USD")


def test_report_command_writes_html_json_and_csv(filled: str, tmp_path: Path) -> None:
    page = tmp_path / "okrs.html"
    with time_machine.travel(NOW, tick=False):  # the week up to NOW: what changed in it
        result = invoke("report", "--store", filled, "--format", "html", "--output", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert all(f'data-kr="{kr_id}"' in html for kr_id in STATUSES)
    assert "+100k USD since" in moved_entries(html)["revenue"][1]  # what changed this week

    document = tmp_path / "okrs.json"
    result = invoke("report", "--store", filled, "--format", "json", "--output", str(document))
    assert result.exit_code == 0, result.output
    exported = json.loads(document.read_text(encoding="utf-8"))
    validate(exported)
    assert {kr["id"] for _o, kr in key_results(exported)} == set(STATUSES)

    table = tmp_path / "okrs.csv"
    result = invoke("report", "--store", filled, "--format", "csv", "--output", str(table))
    assert result.exit_code == 0, result.output
    assert table.read_bytes().startswith(b"\xef\xbb\xbfid,title,owner,")  # UTF-8 for Excel
    rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8-sig"))))
    assert [row["id"] for row in rows] == [kr["id"] for _o, kr in key_results(exported)]

    stdout = invoke("report", "--store", filled, "--format", "csv")
    assert stdout.exit_code == 0
    assert stdout.stdout.startswith("id,title,owner,value,target,status,progress,")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--format", "pdf"), "error: unknown format 'pdf'; use table, json, csv or html"),
        (("--output", "x.txt"), "error: --output needs --format json, csv or html"),
        (
            ("--format", "html", "--output", "/nonexistent-dir/okrs.html"),
            "error: cannot write /nonexistent-dir/okrs.html: No such file or directory",
        ),
    ],
)
def test_bad_report_options_end_with_one_error_line(
    sqlite_url: str, args: tuple[str, ...], message: str
) -> None:
    result = invoke("report", "--store", sqlite_url, *args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == message


# --- the live API ---------------------------------------------------------------------------


def client_for(url: str, settings: ServeSettings | None = None) -> TestClient:
    return TestClient(create_app(Store.open(url), settings or ServeSettings(), clock=lambda: NOW))


def test_the_api_serves_the_same_numbers_as_the_exports(filled: str) -> None:
    expected = summary_of(filled)
    with client_for(filled) as client:
        served = client.get("/api/v2/summary")
        assert served.status_code == 200
        assert served.headers["cache-control"] == "no-store"
        validate(served.json())
        assert served.json() == json.loads(json.dumps(expected))

        table = client.get("/api/v2/summary.csv")
        assert table.headers["content-type"] == "text/csv; charset=utf-8"
        assert table.text == summary_csv(expected)

        one = client.get("/api/v2/key-results/revenue").json()
        assert one == {"objective_id": "grow", **json.loads(json.dumps(by_id(expected)["revenue"]))}
        missing = client.get("/api/v2/key-results/nope")
        assert (missing.status_code, missing.json()) == (404, {"error": "no key result 'nope'"})
        assert client.get("/api/v2/schema").json() == SCHEMA

        # /api/v1 keeps version 1's shape for the tools written for it
        older = client.get("/api/v1/summary").json()
        validate(older, SCHEMA_V1)
        assert older == json.loads(json.dumps(summary_v1(expected)))
        assert older["store"] == expected["ops"]["store"]
        assert "owner_name" not in client.get("/api/v1/key-results/revenue").json()
        assert client.get("/api/v1/schema").json() == SCHEMA_V1
        assert client.get("/api/v1/summary.csv").text == summary_csv(expected)
        for version in ("v1", "v2"):
            assert set(client.get(f"/api/{version}").json()["endpoints"]) == {
                f"/api/{version}/summary",
                f"/api/{version}/summary.csv",
                f"/api/{version}/key-results/{{id}}",
                f"/api/{version}/schema",
                f"/api/{version}/version",
                f"/api/{version}/changes",
            }
        page = client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        version = client.get("/api/v2/version").json()["version"]
        changes = changes_of(filled)  # the week up to the summary's generated_at
        assert page.text == render_html(expected, changes=changes, refresh=Refresh(version, 15.0))
        assert list(moved_entries(page.text)) == [
            "revenue",
            "first-response",
            "new-customers",
            "win-rate",
        ]
        assert '· <a href="changes">other dates</a>' in page.text  # the live page links them

        # read-only: nothing but GET
        for method in ("post", "put", "patch", "delete"):
            assert getattr(client, method)("/api/v2/summary").status_code == 405


def test_the_live_page_polls_a_version_that_changes_when_a_measurement_lands(filled: str) -> None:
    edited_at(filled, NOW - timedelta(days=2))
    with client_for(filled) as client:
        answer = client.get("/api/v2/version")
        assert answer.headers["cache-control"] == "no-store"
        before = answer.json()
        # the store last changed when run-1 finished; checked on serve's clock
        assert (before["updated_at"], before["checked_at"]) == (
            "2026-11-27T11:01:00+00:00",
            NOW.isoformat(),
        )
        page = client.get("/").text
        script = f'<script id="refresh" data-version="{before["version"]}" data-seconds="15.0">'
        assert script in page
        assert "connect-src 'self'" in page  # the live page may ask its own server, no other
        assert (
            client.get("/api/v1/version").json() == before
        )  # the same at either path  # nothing changed

        land_value(filled, "revenue", datetime(2026, 11, 27, 11, 30, tzinfo=UTC), 650_000.0)
        after = client.get("/api/v2/version").json()
        assert after["version"] != before["version"]
        assert after["updated_at"] == "2026-11-27T11:30:00+00:00"
        page = client.get("/").text
        assert f'data-version="{after["version"]}"' in page
        assert "650k USD" in page


TOKEN, PASSWORD = "s3cret-serve-token", "pa55-w0rd"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_token_and_basic_auth_protect_everything_and_never_leak(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(sqlite_url)
    monkeypatch.setenv("OKR_SYNC_SERVE_TOKEN", TOKEN)
    monkeypatch.setenv("OKR_SYNC_SERVE_USER", "leader")
    monkeypatch.setenv("OKR_SYNC_SERVE_PASSWORD", PASSWORD)
    seen: list[str] = []
    with client_for(sqlite_url) as client:
        for path in (
            "/",
            "/api/v1/summary",
            "/api/v2/summary",
            "/api/v2/summary.csv",
            "/api/v2/schema",
            "/api/v2/version",
        ):
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                basic("leader", "wrong"),
                basic("someone", PASSWORD),
                {"Authorization": "Basic !!!"},
            ):
                refused = client.get(path, headers=headers)
                assert refused.status_code == 401, (path, headers)
                assert refused.headers["www-authenticate"] == 'Basic realm="okr-sync"'
                seen += [refused.text, str(refused.headers)]
            for headers in ({"Authorization": f"Bearer {TOKEN}"}, basic("leader", PASSWORD)):
                allowed = client.get(path, headers=headers)
                assert allowed.status_code == 200, (path, headers)
                seen += [allowed.text, str(allowed.headers)]
    assert not [text[:80] for text in seen if TOKEN in text or PASSWORD in text]


def test_serve_refuses_half_configured_basic_auth(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SYNC_SERVE_USER", "leader")
    monkeypatch.delenv("OKR_SYNC_SERVE_PASSWORD", raising=False)
    result = invoke("serve", "--store", sqlite_url, "--port", "0")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: set both OKR_SYNC_SERVE_USER and OKR_SYNC_SERVE_PASSWORD for basic auth, or neither"
    )


# --- end to end: the demo company synced from its sandboxes ------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_a_real_sync_exports_schema_valid_json_and_a_page_with_every_key_result(
    sqlite_url: str, sources_env: dict[str, RunningServer], tmp_path: Path
) -> None:
    synced = invoke("sync", "--okr-file", str(DEMO_OKRS), "--store", sqlite_url)
    assert synced.exit_code == 0, synced.output
    exported = invoke("report", "--store", sqlite_url, "--format", "json")
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.stdout)
    validate(document)
    krs = [kr for _o, kr in key_results(document)]
    assert len(krs) >= 15
    measured = [kr for kr in krs if kr["why"] is not None]
    assert measured, "the sync measured nothing"
    for kr in measured:
        why = kr["why"]
        assert why["record_count"] == kr["records"]
        assert len(why["records"]) == min(kr["records"], 25)
        assert why["run_status"] == "complete"
    page = tmp_path / "okrs.html"
    written = invoke("report", "--store", sqlite_url, "--format", "html", "--output", str(page))
    assert written.exit_code == 0, written.output
    html = page.read_text(encoding="utf-8")
    for kr in krs:
        assert f'id="why-{kr["id"]}"' in html


@pytest.mark.usefixtures("prefect_harness")
def test_the_markdown_summary_is_a_prefect_artifact(sqlite_url: str) -> None:
    """What the sync's artifact will carry: the same table, stored by Prefect."""
    fill_store(sqlite_url)

    @flow
    def publish() -> None:
        store = Store.open(sqlite_url)
        try:
            create_markdown_artifact(store_summary_markdown(store, NOW), key="okr-summary")
        finally:
            store.dispose()

    publish()
    stored: Any = Artifact.get("okr-summary")  # the sync variant: no event loop runs here
    assert stored is not None
    assert stored.type == "markdown"
    assert stored.data == summary_markdown(summary_of(sqlite_url))


def test_serve_command_answers_on_the_port_it_reports(sqlite_url: str, tmp_path: Path) -> None:
    """The real ``okr-sync serve`` process: --port 0, a token, then a busy port."""
    fill_store(sqlite_url)
    command = [str(Path(sys.executable).parent / "okr-sync"), "serve", "--store", sqlite_url]
    environment = {**os.environ, "OKR_SYNC_SERVE_TOKEN": TOKEN}
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([*command, "--port", "0"], env=environment, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        base, port = found.group(0), found.group(1)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        while True:  # the line is printed just before uvicorn starts accepting
            try:
                answer = httpx.get(base + "api/v2/summary", headers=bearer)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "serve did not accept connections"
                time.sleep(0.2)
        assert answer.status_code == 200
        validate(answer.json())
        assert httpx.get(base + "api/v2/summary").status_code == 401
        busy = invoke("serve", "--store", sqlite_url, "--port", port)
        assert busy.exit_code == 1
        assert busy.stderr.strip().splitlines()[-1] == (
            f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert TOKEN not in log.read_text()
