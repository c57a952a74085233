"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

Chromium comes from the ``chromium`` package (``/usr/bin/chromium``, or
``OKR_SYNC_CHROMIUM``); Playwright never downloads a browser. In CI (``CI=true``, where
``.ci/run`` installs it) a missing Chromium fails these tests; elsewhere they skip with the
reason. Screenshots go to the test's temporary folder; ``python -m
tests.dashboard_screenshots`` takes the docs' ones of the demo store at the same two sizes.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from okr_sync.serve import ServeSettings, create_app
from okr_targets.formatting import format_value
from okr_targets.status import STATUS_LABELS
from okr_targets.store import Store
from okr_targets.summary import key_results
from tests.dashboard_screenshots import CHROMIUM, VIEWPORTS, bottom_of, open_page, shoot
from tests.okr_fixture import (
    NOW,
    PERIOD,
    STATUSES,
    TEAMS,
    TREE,
    edited_at,
    fill_store,
    land_value,
    page_of,
    summary_of,
)

# The colours the stylesheet gives each status (GitHub Primer's accessible palette).
STATUS_RGB = {
    "on_track": "rgb(26, 127, 55)",
    "at_risk": "rgb(154, 103, 0)",
    "off_track": "rgb(207, 34, 46)",
    "no_data": "rgb(89, 99, 110)",
    "stale": "rgb(130, 80, 223)",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; required when CI=true")
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), chromium_sandbox=False)
        yield launched
        launched.close()


@pytest.fixture
def page_file(sqlite_url: str, tmp_path: Path) -> Path:
    """The static report (``okr-sync report --format html``) of the fixture's store."""
    fill_store(sqlite_url)
    path = tmp_path / "okrs.html"
    path.write_text(page_of(sqlite_url), encoding="utf-8")
    return path


@pytest.fixture
def summary(page_file: Path, sqlite_url: str) -> dict[str, Any]:
    """The summary the page shows."""
    return summary_of(sqlite_url)


@pytest.fixture
def page(browser: Browser, page_file: Path) -> Iterator[Page]:
    """The static report opened from disk, with every request it makes recorded."""
    path = page_file
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    requests: list[str] = []
    opened.on("request", lambda request: requests.append(request.url))
    opened.goto(path.as_uri())
    opened.wait_for_load_state("load")
    assert requests == [path.as_uri()], "the page fetched something besides itself"
    yield opened
    context.close()


def relative_luminance(rgb: str) -> float:
    """WCAG 2.x relative luminance of a CSS ``rgb(r, g, b)`` colour."""
    channels = [int(part) / 255 for part in rgb.removeprefix("rgb(").rstrip(")").split(",")[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio, (L1 + 0.05) / (L2 + 0.05) with L1 the lighter."""
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_wcag_reference_values() -> None:
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21.0)
    assert contrast("rgb(255, 255, 255)", "rgb(255, 255, 255)") == pytest.approx(1.0)
    assert contrast("rgb(118, 118, 118)", "rgb(255, 255, 255)") == pytest.approx(4.54, abs=0.01)


def style(page: Page, selector: str, prop: str) -> str:
    return str(page.locator(selector).first.evaluate(f"e => getComputedStyle(e).{prop}"))


def test_tree_status_colours_and_drill_down(
    page: Page, summary: dict[str, Any], tmp_path: Path
) -> None:
    # the cascade: alice sits in sales, which sits in the company objective
    chain = page.locator('[data-objective="alice"]').evaluate(
        """e => { const ids = []; let node = e.parentElement.closest('[data-objective]');
                  while (node) { ids.push(node.dataset.objective);
                                 node = node.parentElement.closest('[data-objective]'); }
                  return ids; }"""
    )
    assert chain == ["sales", "grow"]
    parent = "e => e.parentElement.closest('[data-objective]').dataset.objective"
    assert page.locator('[data-objective="support"]').evaluate(parent) == "grow"
    expect(page.locator('[data-objective="grow"] > section > h2')).to_contain_text("Grow objective")

    # each key result shows its status, with the colour of that status
    for kr_id, status in STATUSES.items():
        badge = page.locator(f'[data-kr="{kr_id}"] .badge[data-status]')
        expect(badge).to_contain_text(STATUS_LABELS[status])
        assert (
            style(page, f'[data-kr="{kr_id}"] .badge[data-status]', "backgroundColor")
            == (STATUS_RGB[status])
        )
    expect(page.locator('[data-kr="first-response"] .badge[data-status]')).to_have_text(
        "stale (last seen on track)"
    )
    expect(page.locator('[data-kr="first-response"] .stale-reason')).to_have_text(
        "Stale: zendesk data is 3 days old (limit 24 h)"
    )
    revenue = page.locator('[data-kr="revenue"]')
    expect(revenue.locator(".why-button")).to_contain_text("600k USD")
    expect(revenue.locator(".target")).to_have_text("target 1M USD")
    expect(revenue.locator(".freshness")).to_contain_text("updated 2026-11-27 11:00 UTC")
    expect(revenue.locator(".freshness")).to_contain_text("(61 min old)")
    expect(revenue.locator("svg circle")).to_have_count(5)  # the fixture's five days
    expect(revenue.locator("svg .forecast-line")).to_have_count(1)
    forecast = next(kr for _, kr in key_results(summary) if kr["id"] == "revenue")["forecast"]
    expect(revenue.locator(".forecast")).to_contain_text(format_value(forecast, "USD"))

    # "why this number": a click opens the metric, the run and the records
    dialog = page.locator("#why-revenue")
    expect(dialog).to_be_hidden()
    revenue.locator(".why-button").click()
    expect(dialog).to_be_visible()
    heading = dialog.get_by_role("heading", name="Why 600k USD? Book 1M in won revenue")
    expect(heading).to_be_visible()
    expect(dialog).to_contain_text("won_revenue")
    expect(dialog).to_contain_text("run-1 (complete), Prefect flow run flow-run-1")
    expect(dialog.locator("tbody tr")).to_have_count(3)
    expect(dialog.locator("tbody")).to_contain_text("250,000.00 USD")
    page.screenshot(path=tmp_path / "drill-down.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.locator('[data-kr="win-rate"] .why-button').click()
    page.locator("#why-win-rate").get_by_role("button", name="Close").first.click()
    expect(page.locator("#why-win-rate")).to_be_hidden()

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert shot.stat().st_size > 20_000


def test_markup_is_accessible(page: Page) -> None:
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.title().startswith("OKR dashboard")
    # headings: one h1, and no level skipped on the way down
    levels = page.locator("h1, h2, h3, h4, h5, h6").evaluate_all(
        "els => els.map(e => Number(e.tagName[1]))"
    )
    assert levels.count(1) == 1
    assert levels[0] == 1
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), levels
    # labels: every control, bar and chart has an accessible name
    for kr_id, status in STATUSES.items():
        title = page.locator(f"#kr-{kr_id}").inner_text()
        expect(page.get_by_role("progressbar", name=f"Progress of {title}")).to_have_count(1)
        # a key result never measured has no chart drawn as empty axes, but says so
        charts = 0 if status == "no_data" else 1
        expect(page.get_by_role("img", name=f"Trend of {title}:")).to_have_count(charts)
    measured = len([s for s in STATUSES.values() if s != "no_data"])
    expect(page.get_by_role("button", name="why this number?")).to_have_count(measured)
    expect(page.get_by_role("button", name="why no number?")).to_have_count(1)
    expect(page.locator('[data-kr="alice-deals"] .no-chart')).to_have_text(
        f"No chart or forecast yet: nothing measured in {PERIOD}."
    )
    expect(page.locator('[data-kr="alice-deals"] .meta')).to_contain_text(
        "not measured yet, 62% of"
    )
    unnamed = page.locator("button, [role=progressbar], svg[role=img], dialog").evaluate_all(
        """els => els.filter(e => !(e.getAttribute('aria-label')
                   || (e.getAttribute('aria-labelledby')
                       && document.getElementById(e.getAttribute('aria-labelledby')))
                   || e.textContent.trim())).map(e => e.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []

    # contrast (WCAG 2.1): text 4.5:1 (1.4.3), the bar's fill against its track 3:1 (1.4.11)
    for status in STATUS_RGB:
        badge = f".legend .status-{status}"
        ratio = contrast(style(page, badge, "color"), style(page, badge, "backgroundColor"))
        assert ratio >= 4.5, (status, ratio)
    for kr_id, status in STATUSES.items():
        if status == "no_data":
            continue  # an empty bar has no fill to see
        fill = style(page, f'[data-kr="{kr_id}"] .bar .fill', "backgroundColor")
        track = style(page, f'[data-kr="{kr_id}"] .bar', "backgroundColor")
        assert contrast(fill, track) >= 3.0, (status, contrast(fill, track))
    card = '[data-kr="revenue"] article'
    panel = style(page, card, "backgroundColor")
    for text in (".kr-title", ".freshness", ".why-button", ".forecast"):
        colour = style(page, f"{card} {text}", "color")
        assert contrast(colour, panel) >= 4.5, (text, contrast(colour, panel))
    stale = '[data-kr="first-response"]'
    colour = style(page, f"{stale} .stale-reason", "color")
    assert contrast(colour, style(page, f"{stale} article", "backgroundColor")) >= 4.5

    # reflow (WCAG 1.4.10): at 320 CSS pixels wide nothing needs scrolling sideways
    page.set_viewport_size({"width": 320, "height": 640})
    assert page.evaluate("document.documentElement.scrollWidth") <= 320


@pytest.fixture
def live(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``okr-sync serve``'s app on a free port, behind basic auth."""
    fill_store(sqlite_url)
    monkeypatch.setenv("OKR_SYNC_SERVE_USER", "leader")
    monkeypatch.setenv("OKR_SYNC_SERVE_PASSWORD", "pa55-w0rd")
    store = Store.open(sqlite_url)
    app = create_app(store, ServeSettings(), clock=lambda: NOW)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    store.dispose()


def test_the_live_dashboard_matches_its_api(browser: Browser, live: str) -> None:
    outsider = browser.new_context()
    assert outsider.request.get(live + "/").status == 401  # the browser would ask for a login
    outsider.close()

    context = browser.new_context(http_credentials={"username": "leader", "password": "pa55-w0rd"})
    page = context.new_page()
    response = page.goto(live + "/")
    assert response is not None
    assert response.status == 200
    api = context.request.get(live + "/api/v2/summary").json()
    for objective in api["objectives"]:
        for kr in objective["key_results"]:
            card = page.locator(f'[data-kr="{kr["id"]}"]')
            shown = format_value(kr["value"], kr["unit"])
            expect(card.locator(".why-button")).to_contain_text(shown)
            badge = card.locator(".badge[data-status]")
            expect(badge).to_have_attribute("data-status", kr["status"])
    page.locator('[data-kr="first-response"] .why-button').click()
    expect(page.locator("#why-first-response")).to_contain_text("zendesk.ticket: 1")
    page.keyboard.press("Escape")  # the dialog is modal: the page waits behind it
    page.goto(live + "/?status=off_track")  # a filtered link to the live page
    expect(page.locator("h1")).to_contain_text("Grow Co")
    expect(page.get_by_label("Status", exact=True)).to_have_value("off_track")
    assert visible(page, "li[data-kr]", "kr") == {"win-rate"}
    expect(page.locator('li[data-change="win-rate"]')).to_contain_text("first measured")
    page.get_by_role("link", name="other dates").click()
    assert page.url == live + "/changes"  # the same week, with a form for other dates
    expect(page.locator("input[name=since]")).to_have_value("2026-11-20")
    page.go_back()
    page.get_by_role("link", name="JSON").click()
    assert page.url == live + "/api/v2/summary"
    context.close()


# --- the answer first: above the fold, and filters kept in the URL ---------------------------


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_the_counts_and_what_needs_attention_show_before_scrolling(
    browser: Browser, page_file: Path, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    context, page = open_page(browser, page_file, width, height)
    expect(page.locator("h1")).to_have_text("Grow Co OKRs 2026-Q4")
    counts = page.locator(".counts")
    for status in STATUSES.values():
        expect(counts).to_contain_text(f"1 {STATUS_LABELS[status]}")
    items = page.locator(".attention li")
    expect(items).to_have_count(3)  # off track, at risk, stale
    expect(items.nth(0)).to_contain_text("Raise the win rate")
    expect(items.nth(0)).to_contain_text("Samantha Seller")
    expect(items.nth(0)).to_contain_text("10% done, 62% expected")
    for selector in ("h1", ".counts", ".attention"):
        assert bottom_of(page, selector) <= height, (viewport, selector)
    # what changed this week follows the header, before the cascade
    changes = page.locator("#changes")
    expect(changes.locator("h2")).to_have_text("What changed in the last 7 days")
    expect(changes.locator("li[data-change]")).to_have_count(4)
    expect(changes.locator("li[data-change]:visible")).to_have_count(1)  # revenue; 3 new
    assert bottom_of(page, "#summary") <= bottom_of(page, "#changes h2")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # the item leads to its card
    items.nth(2).get_by_role("link", name="Answer within 4 hours").click()
    expect(page.locator("#kr-first-response")).to_be_in_viewport()
    context.close()


def test_screenshots_of_both_sizes(browser: Browser, page_file: Path, tmp_path: Path) -> None:
    written = shoot(browser, page_file, tmp_path)
    assert set(written) == set(VIEWPORTS)
    for path in written.values():
        assert path.read_bytes().startswith(b"\x89PNG")


OWNER = {  # key result -> its owner's e-mail (the fixture's objective owners)
    kr: f"{objective}@example.com"
    for kr, objective in {
        "revenue": "grow",
        "win-rate": "sales",
        "new-customers": "sales",
        "first-response": "support",
        "alice-deals": "alice",
    }.items()
}


def visible(page: Page, selector: str, attribute: str) -> set[str]:
    """The ``data-{attribute}`` of the elements shown (not hidden, nor in a closed <details>)."""
    return {
        str(element.get_attribute(f"data-{attribute}"))
        for element in page.locator(f"{selector}:visible").all()
    }


def test_filters_hide_cards_and_live_in_the_url(browser: Browser, page_file: Path) -> None:
    context, page = open_page(browser, page_file, 1400, 1000)
    cards, objectives, moved = "li[data-kr]", "li[data-objective]", "li[data-change]"
    assert visible(page, cards, "kr") == set(STATUSES)
    # the week up to NOW (tests/okr_fixture.py): revenue moved; all but alice's were first
    # measured, listed behind a disclosure
    assert visible(page, moved, "change") == {"revenue"}
    page.get_by_text("3 first measured in the last 7 days").click()
    assert visible(page, moved, "change") == set(STATUSES) - {"alice-deals"}
    expect(page.locator("#changes-filtered")).to_be_hidden()

    page.get_by_label("Status", exact=True).select_option("off_track")
    assert page.url.endswith("?status=off_track")
    assert visible(page, cards, "kr") == {"win-rate"}
    assert visible(page, "li[data-attention]", "attention") == {"win-rate"}
    assert visible(page, moved, "change") == {"win-rate"}  # what changed is filtered too
    assert visible(page, objectives, "objective") == {"grow", "sales"}  # its ancestors
    expect(page.locator("#filter-note")).to_have_text("showing 1 of 5 key results")

    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_label("Team", exact=True).select_option("Enterprise")
    enterprise = {kr for kr, email in OWNER.items() if TEAMS.get(email) == "Enterprise"}
    assert visible(page, cards, "kr") == enterprise == {"win-rate", "new-customers", "alice-deals"}
    assert visible(page, moved, "change") == {"win-rate", "new-customers"}
    expect(page.locator("#changes-filtered")).to_be_visible()  # revenue is grow's, no team
    page.get_by_label("Owner", exact=True).select_option(label="Alice Adams")
    assert page.url.endswith("?team=Enterprise&owner=alice%40example.com")
    assert visible(page, cards, "kr") == {"alice-deals"}
    assert visible(page, moved, "change") == set()  # alice's never measured: it did not move
    expect(page.locator("#changes-filtered")).to_have_text("None of the key results shown moved.")
    assert visible(page, objectives, "objective") == {"grow", "sales", "alice"}

    # a link to the view reproduces it
    filtered = page.url
    page.goto("about:blank")
    page.goto(filtered)
    expect(page.get_by_label("Team", exact=True)).to_have_value("Enterprise")
    expect(page.get_by_label("Owner", exact=True)).to_have_value("alice@example.com")
    assert visible(page, cards, "kr") == {"alice-deals"}

    page.get_by_role("button", name="show all").click()
    assert "?" not in page.url
    assert visible(page, cards, "kr") == set(STATUSES)
    assert visible(page, objectives, "objective") == set(TREE)

    # a count in the header filters by its status
    page.locator(".counts").get_by_role("button", name="1 stale").click()
    assert page.url.endswith("?status=stale")
    assert visible(page, cards, "kr") == {"first-response"}
    page.get_by_text("3 first measured in the last 7 days").click()  # closed since reopened
    assert visible(page, moved, "change") == {"first-response"}
    expect(page.locator("#changes-filtered")).to_be_visible()  # first measured, not moved

    # new cards swapped in (the live refresh) are filtered again on its event
    page.evaluate(
        """() => { document.querySelectorAll('li[data-kr]').forEach(e => { e.hidden = false; });
                   document.dispatchEvent(new Event('okr:refreshed')); }"""
    )
    assert visible(page, cards, "kr") == {"first-response"}
    context.close()


class ServeProcess:
    """A real ``okr-sync serve`` process on a store, behind basic auth, that the page polls
    twice a second; it can be stopped and started again on the same port."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log, self.port = url, log, 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        command = [str(Path(sys.executable).parent / "okr-sync"), "serve", "--store", self.url]
        environment = {
            **os.environ,
            "OKR_SYNC_SERVE_USER": "leader",
            "OKR_SYNC_SERVE_PASSWORD": "pa55-w0rd",
            "OKR_SYNC_SERVE_REFRESH_SECONDS": "0.5",
        }
        self.log.write_text("")
        with self.log.open("w") as stderr:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)], env=environment, stderr=stderr
            )
        deadline = time.monotonic() + 60
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", self.log.read_text())):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        self.port = int(found.group(1))
        while True:  # the line is printed just before uvicorn starts accepting
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return f"http://127.0.0.1:{self.port}"
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "serve did not accept connections"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def serving(sqlite_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    fill_store(sqlite_url)
    edited_at(sqlite_url, NOW - timedelta(days=2))  # the fixture's OKRs, as of before NOW
    server = ServeProcess(sqlite_url, tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def test_the_live_page_shows_a_new_measurement_in_place_without_reloading(
    browser: Browser, serving: ServeProcess, sqlite_url: str, tmp_path: Path
) -> None:
    base = serving.start()
    context = browser.new_context(
        http_credentials={"username": "leader", "password": "pa55-w0rd"},
        viewport={"width": 1400, "height": 1000},
    )
    page = context.new_page()
    address = base + "/?team=Enterprise#objective-sales"  # a filter and an anchor, both kept
    page.goto(address)
    status = page.locator("#live-status")
    # serve runs on the real clock; the store last changed when run-1 ended (NOW − 59 min)
    checked = r"^Live · checked \d\d:\d\d:\d\d UTC, updated (2026-11-27 )?"
    expect(status).to_have_text(re.compile(checked + "11:01$"))
    # a line above the header, in the page's flow: it covers no card, on a phone neither
    for width, height in VIEWPORTS.values():
        page.set_viewport_size({"width": width, "height": height})
        header = page.locator("#summary").bounding_box()
        assert header is not None
        assert bottom_of(page, "#live-status") <= header["y"], (width, height)
    page.set_viewport_size({"width": 1400, "height": 1000})
    revenue = page.locator('[data-kr="revenue"]')
    expect(revenue.locator(".why-button")).to_contain_text("600k USD")
    # a marker a reload would lose, where the reader is, and an open "why" dialog
    page.evaluate(
        """() => { window.marker = "same page"; window.refreshed = 0;
                   document.addEventListener("okr:refreshed", () => window.refreshed++);
                   scrollTo(0, 300); }"""
    )
    page.locator('[data-kr="win-rate"] .why-button').click()
    expect(page.locator("#why-win-rate")).to_be_visible()
    scrolled = page.evaluate("scrollY")
    assert scrolled > 0

    # a sync measures revenue again: the open page shows the new value by itself
    land_value(sqlite_url, "revenue", NOW - timedelta(minutes=30), 650_000.0)
    expect(revenue.locator(".why-button")).to_contain_text("650k USD")
    expect(status).to_have_text(re.compile(checked + "11:30$"))
    assert page.evaluate("window.marker") == "same page"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("window.refreshed") == 1
    assert page.url == address
    enterprise = {kr for kr, email in OWNER.items() if TEAMS.get(email) == "Enterprise"}
    assert visible(page, "li[data-kr]", "kr") == enterprise  # the new cards are filtered too
    expect(page.get_by_label("Team", exact=True)).to_have_value("Enterprise")
    assert page.evaluate("scrollY") == scrolled
    expect(page.locator("#why-win-rate")).to_be_visible()  # still open, over the new page
    page.screenshot(path=tmp_path / "refreshed.png")

    # the server goes away: the page says so and keeps its numbers; a sync lands meanwhile,
    # and once the server is back the page shows it
    serving.stop()
    expect(status).to_contain_text("Cannot reach the server since")
    expect(status).to_have_attribute("data-state", "down")
    expect(status).to_have_css("position", "fixed")  # lost: seen wherever the reader is
    expect(revenue.locator(".why-button")).to_contain_text("650k USD")
    land_value(sqlite_url, "revenue", NOW - timedelta(minutes=10), 700_000.0)
    assert serving.start() == base
    expect(revenue.locator(".why-button")).to_contain_text("700k USD")
    expect(status).to_have_text(re.compile(checked + "11:50$"))
    expect(status).to_have_attribute("data-state", "ok")
    assert page.evaluate("[window.marker, window.refreshed]") == ["same page", 2]
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    context.close()


def test_an_open_disclosure_of_what_changed_stays_open_when_the_page_refreshes(
    browser: Browser, serving: ServeProcess, sqlite_url: str
) -> None:
    """serve runs on the real clock: a revenue measured an hour ago, without lineage, moved
    it from the fixture's 600k USD (deals 006-0..2) within the week; the page refreshes
    when the next lands."""
    now = datetime.now(UTC)
    land_value(sqlite_url, "revenue", now - timedelta(hours=1), 650_000.0)
    base = serving.start()
    context = browser.new_context(
        http_credentials={"username": "leader", "password": "pa55-w0rd"},
        viewport={"width": 1400, "height": 1000},
    )
    page = context.new_page()
    page.goto(base + "/")
    entry = page.locator('li[data-change="revenue"]')
    expect(entry).to_contain_text("+50k USD since")
    expect(entry).to_contain_text("deals: 3 removed")
    entry.get_by_text("3 record(s) behind it").click()
    expect(entry.locator('tr[data-record="006-1"]')).to_be_visible()

    land_value(sqlite_url, "revenue", now - timedelta(minutes=30), 700_000.0)
    expect(entry).to_contain_text("+100k USD since")  # swapped in place
    expect(entry.locator('tr[data-record="006-1"]')).to_be_visible()  # still open
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    context.close()


def test_the_charts_have_readable_axes_on_a_phone(page: Page, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    charts = page.locator("svg.trend")
    # one per key result with a value; the one never measured has none (test_markup…)
    assert charts.count() == len([s for s in STATUSES.values() if s != "no_data"])
    for n in range(charts.count()):
        chart = charts.nth(n)
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 390
        for axis in ("y-tick", "x-tick"):
            labels = chart.locator(f"text.{axis}")
            assert 2 <= labels.count() <= 4, (n, axis, labels.count())
            boxes = labels.evaluate_all(
                """els => els.map(e => { const r = e.getBoundingClientRect();
                                         return [r.left, r.top, r.right, r.bottom]; })"""
            )
            sizes = labels.evaluate_all("els => els.map(e => getComputedStyle(e).fontSize)")
            assert set(sizes) == {"12px"}, sizes
            # drawn at that size, not scaled down with the chart: a 12 px line is 12-18 px tall
            assert all(12 <= bottom - top <= 18 for _l, top, _r, bottom in boxes), boxes
            for left, top, right, bottom in boxes:  # inside the chart
                assert box["x"] <= left, (n, axis)
                assert right <= box["x"] + box["width"], (n, axis)
                assert box["y"] <= top, (n, axis)
                assert bottom <= box["y"] + box["height"], (n, axis)
            for first, second in itertools.combinations(boxes, 2):  # apart from each other
                apart = (
                    first[2] <= second[0]
                    or second[2] <= first[0]
                    or first[3] <= second[1]
                    or second[3] <= first[1]
                )
                assert apart, (n, axis, first, second)
    page.locator('[data-kr="revenue"] figure').screenshot(path=tmp_path / "chart-390.png")
