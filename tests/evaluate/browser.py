"""Open an HTML report in Debian's headless Chromium through Playwright (its own browser
download does not work offline, so ``executable_path`` points at ``chromium``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def check_report(report: Path, screenshot: Path) -> dict[str, Any]:
    """Load ``report`` with every network request refused, find the figures, click into the
    first example, and save a screenshot. Returns what it saw (console errors included)."""
    exe = shutil.which("chromium")
    if exe is None:
        raise AssertionError(
            "The report test needs Debian's chromium: run `make setup` (apt-get install chromium)."
        )
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {"errors": [], "blocked": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))

            def route(r: Any) -> None:
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    seen["blocked"].append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(report.resolve().as_uri())
            seen["title"] = page.title()
            seen["funnel_bars"] = page.locator("#fig-funnel svg rect.bar").count()
            seen["passk_points"] = page.locator("#fig-passk svg circle.point").count()
            seen["kind_bars"] = page.locator("#fig-kind svg rect.bar").count()
            seen["errclass_bars"] = page.locator("#fig-errclass svg rect.bar").count()
            seen["rows"] = page.locator("tr.ex").count()
            seen["detail_visible_before"] = page.locator("#detail").is_visible()
            page.locator("tr.ex").first.click()
            page.locator("#detail pre.output").wait_for(state="visible")
            seen["detail_text"] = page.locator("#detail").inner_text()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return seen
