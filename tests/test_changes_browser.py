"""The What changed page in Debian's headless Chromium, at a desktop's and a phone's size.

The page loads nothing but itself, its answer (the first movement and its reasons) is above
the fold at 1400×1000 and 390×844, and nothing makes a phone scroll sideways: a wide records
table scrolls inside its own box. The store is tests/test_changes.py's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from okr_targets.changes import what_changed
from okr_targets.changes_page import render_changes_html
from okr_targets.store import Store
from tests.okr_fixture import fill_store
from tests.test_changes import SINCE, UNTIL, later_changes
from tests.test_dashboard_browser import browser  # noqa: F401  (the Chromium fixture)


@pytest.mark.parametrize(("width", "height"), [(1400, 1000), (390, 844)])
def test_the_answer_is_above_the_fold_on_a_desktop_and_a_phone(
    browser: Browser,  # noqa: F811
    sqlite_url: str,
    tmp_path: Path,
    width: int,
    height: int,
) -> None:
    fill_store(sqlite_url)
    later_changes(sqlite_url)
    store = Store.open(sqlite_url)
    with store.session() as session:
        html = render_changes_html(what_changed(session, SINCE, UNTIL))
    store.dispose()
    path = tmp_path / "changes.html"
    path.write_text(html, encoding="utf-8")
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    assert requests == [path.as_uri()], "the page fetched something besides itself"

    first = page.locator("li[data-kr]").first
    assert first.get_attribute("data-kr") == "q3-revenue"  # moved first, by id
    headline = first.locator(".headline")
    assert headline.inner_text() == "100k USD → 112k USD (+12.3k USD)"
    box = headline.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= height, "the first movement is below the fold"
    reason = first.locator("ul.reasons li").first.bounding_box()
    assert reason is not None
    assert reason["y"] + reason["height"] <= height, "its reason is below the fold"
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    page.screenshot(path=tmp_path / f"changes-{width}.png", full_page=True)
    context.close()
