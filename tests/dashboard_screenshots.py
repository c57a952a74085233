"""Screenshots of the dashboard's first screen, desktop and phone, for docs/ and the tests.

``python -m tests.dashboard_screenshots [--store URL] [--out docs]`` renders the static
page (``okr-sync report --format html``) of a store, the demo's by default (``make demo``
leaves it in ``okr-sync.db``), and saves what a 1400×1000 desktop and a 390×844 phone show
before scrolling: ``dashboard-desktop.png`` and ``dashboard-phone.png``. It drives Debian's
Chromium (``/usr/bin/chromium`` or ``OKR_SYNC_CHROMIUM``) through Playwright, as
tests/test_dashboard_browser.py does, which checks the same two viewports.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from okr_targets.changes import recent_changes
from okr_targets.dashboard import render_html
from okr_targets.store import Store
from okr_targets.summary import build_summary

CHROMIUM = Path(os.environ.get("OKR_SYNC_CHROMIUM", "/usr/bin/chromium"))
VIEWPORTS = {"desktop": (1400, 1000), "phone": (390, 844)}
"""Name -> (width, height) in CSS pixels: a laptop browser window and an iPhone 14."""


def open_page(
    browser: Browser, page_file: Path, width: int, height: int
) -> tuple[BrowserContext, Page]:
    """The static page opened from disk in a fresh context of that viewport."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    return context, page


def bottom_of(page: Page, selector: str) -> float:
    """Where the element ends, in CSS pixels from the top of the page."""
    box = page.locator(selector).bounding_box()
    if box is None:
        raise AssertionError(f"{selector} is not rendered")
    return box["y"] + box["height"]


def shoot(browser: Browser, page_file: Path, out: Path) -> dict[str, Path]:
    """One screenshot per viewport of what shows before scrolling."""
    written = {}
    for name, (width, height) in VIEWPORTS.items():
        context, page = open_page(browser, page_file, width, height)
        written[name] = out / f"dashboard-{name}.png"
        page.screenshot(path=written[name])
        context.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", default=os.environ.get("OKR_SYNC_STORE_URL", "sqlite:///okr-sync.db")
    )
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"error: Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
        return 1
    store = Store.open(args.store)
    now = datetime.now(UTC)
    with store.session() as session:
        summary = build_summary(session, now, store.display_url)
        changes = recent_changes(session, now)
    store.dispose()
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        page_file = Path(folder) / "okrs.html"
        page_file.write_text(render_html(summary, changes=changes), encoding="utf-8")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), chromium_sandbox=False)
        for path in shoot(browser, page_file, args.out).values():
            print(f"wrote {path}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
