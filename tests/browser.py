"""A page opened in Debian's headless Chromium through Playwright (no browser download): what it logged as
errors, its section headings and text, and how many of its images failed to decode."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@dataclass
class OpenedPage:
    errors: list[str]
    headings: list[str]
    text: str
    broken_images: int
    images: int


def open_page(path: Path) -> OpenedPage:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: make test installs it (scripts/install_system_deps.sh)"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: errors.append(f"failed to load {request.url[:80]}"))
            page.goto(path.absolute().as_uri())
            page.wait_for_load_state("load")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
            return OpenedPage(errors, page.locator("h2").all_inner_texts(), page.inner_text("body"), int(broken),
                              page.locator("img").count())
        finally:
            browser.close()
