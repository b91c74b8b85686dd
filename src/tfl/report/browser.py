"""Open a report in headless Chromium (Playwright driving Debian's chromium): for the test
suite's browser checks and for screenshots a person can look at.

Playwright's own browser download is not used: the machine's ``/usr/bin/chromium`` is (the
Makefile's ``browser`` target installs it). Any request that is not a local file is refused
and recorded, so a page that tried to reach the network shows up as a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("TFL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
READY_TIMEOUT_MS = 60_000  # a ceiling for a loaded machine, not a measurement
VIEWPORTS = {"desktop": (1280, 960), "tablet": (700, 960), "phone": (390, 844)}


class BrowserMissingError(RuntimeError):
    """Chromium is not installed where the checks expect it."""


@dataclass
class PageLog:
    """What went wrong while a page was open: console errors, uncaught errors, network."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return (
            [f"console: {m}" for m in self.console_errors]
            + [f"page error: {m}" for m in self.page_errors]
            + [f"network request: {u}" for u in self.blocked_requests]
        )


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, closed on exit; :class:`BrowserMissingError` names the fix if absent."""
    if not CHROMIUM.is_file():
        raise BrowserMissingError(f"{CHROMIUM} is missing: run `make browser` (apt-get installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(browser: Browser, path: Path, width: int, height: int) -> Iterator[tuple[Page, PageLog]]:
    """The page at ``path`` loaded at the given viewport, with its problems recorded."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    log = PageLog()
    page = browser.new_page(viewport={"width": width, "height": height})
    page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))

    def route(r):  # type: ignore[no-untyped-def]
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            log.blocked_requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        try:  # the page's script marks the body once every chart's drawing has settled
            page.wait_for_function("document.body.dataset.ready === '1'", timeout=READY_TIMEOUT_MS)
        except PlaywrightTimeout:
            log.page_errors.append(f"the page's script did not finish within {READY_TIMEOUT_MS} ms")
        yield page, log
    finally:
        page.close()


def screenshot_report(path: Path, out_dir: Path, viewports: dict[str, tuple[int, int]] | None = None) -> list[Path]:
    """Full-page screenshots of the report at each viewport; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium() as browser:
        for name, (w, h) in (viewports or VIEWPORTS).items():
            with open_page(browser, path, w, h) as (page, log):
                shot = out_dir / f"{path.stem}-{name}-{w}px.png"
                page.screenshot(path=str(shot), full_page=True)
                written.append(shot)
                if log.problems:
                    raise RuntimeError(f"{path} at {w}px: " + "; ".join(log.problems))
    return written
