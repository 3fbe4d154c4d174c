"""The Chromium fixtures every browser test shares: Debian's chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `playwright install` is never run
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, request, tmp_path) -> Iterator[object]:
    """A fresh page (viewport from the test's indirect param, if any); no script errors."""
    viewport = getattr(request, "param", None) or {"width": 1280, "height": 900}
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        opened.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
