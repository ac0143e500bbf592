"""/api/docs/ in a real browser: Swagger UI renders every operation with no CSP violation or script error.

Uses Debian's Chromium through Playwright, like tests/browser (`tests.chromium.ensure_chromium`: installed
where PKI_BROWSER_INSTALL=1 allows, else the test is skipped with a message).
"""

from __future__ import annotations

import pytest

from tests.chromium import ensure_chromium


@pytest.fixture
def chromium(committed_audit_events_removed, live_server):
    """Started after the live server (and its database set-up): Playwright's sync API runs an event loop here."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = ensure_chromium()
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.mark.slow
def test_swagger_ui_renders_under_the_strict_csp(chromium, live_server):
    page = chromium.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock", timeout=30000)
    document = page.evaluate("fetch('/api/schema/?format=json').then(r => r.json())")
    operations = sum(len(methods) for methods in document["paths"].values())
    assert page.locator(".opblock").count() == operations
    assert page.locator(".title").first.inner_text().startswith("Private PKI API")
    assert problems == []
    assert all(url.startswith(live_server.url) for url in requests), "every asset comes from this server"
    page.close()
