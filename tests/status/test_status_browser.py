"""The status page in a real browser: Playwright driving Debian's Chromium against the local
server (plain http on 127.0.0.1), in a phone and a desktop viewport.

Checked: the login link is exchanged once for a cookie that Chromium keeps with its flags
(HttpOnly, Secure, SameSite=Strict; Chromium treats http://127.0.0.1 as a secure context,
so it stores and sends the Secure cookie without https), every panel is drawn inside the
viewport, a control goes from pending to acknowledged within 2 s, expired and reused links
get the plain refusal, and the page makes no request to any other host.

The page tests on fixture journals (no trader running) have a stand-in acknowledge the
command (:func:`status_helpers.ack_pending_stand_in`); the last test does the round trip
against a real `tfl trade` replay session, which polls and acknowledges it itself.

The browser is pytest-playwright's ``browser`` fixture, launched as Debian's Chromium
(``browser_type_launch_args`` in conftest.py). Chromium missing is a failure, not a skip:
`make test` installs it (`make browser`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from status_helpers import DAY, SYMBOLS, Journals, ack_pending_stand_in, copy_journal

from tfl.live.journal import ReadOnlySqliteJournal
from tfl.live.ops_store import Beat, SqliteOpsStore
from tfl.status.app import StatusApp
from tfl.status.auth import COOKIE_NAME, LOGIN, Signer, day_end
from tfl.status.facts import Sources
from tfl.status.page import PANELS
from tfl.status.server import make_server

VIEWPORTS = {"phone": (390, 844), "desktop": (1366, 900)}
ROUND_TRIP_MS = 2_000  # the issue's bound: sent -> acknowledged on the page
WAIT_MS = 30_000  # a ceiling for a loaded machine, not a measurement
KEY = bytes(range(7, 39))
TFL = str(Path(sys.executable).with_name("tfl"))


def _now() -> int:
    return int(time.time())


@dataclass
class Served:
    base: str
    signer: Signer
    store: SqliteOpsStore
    release: threading.Event  # set: the stand-in acknowledges what is pending


def _serve(path: Path, log: Path | None = None) -> tuple[Any, SqliteOpsStore, Signer, str]:
    store = SqliteOpsStore(path)
    signer = Signer(KEY, _now)  # the browser drops cookies that expired by its own clock: real time
    app = StatusApp(ReadOnlySqliteJournal(path), store, Sources(path.name, log), signer)
    server = make_server(app, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, store, signer, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def served(journals: Journals, tmp_path: Path) -> Iterator[Served]:
    path = copy_journal(journals.midday, tmp_path)
    server, store, signer, base = _serve(path)
    now = _now()
    store.write_beat(Beat(now, "paper", DAY.isoformat(), "ACTIVE", "", now - 1, True, True, now + 3600, 1, ()))
    release, stop = threading.Event(), threading.Event()
    helper = SqliteOpsStore(path)

    def stand_in() -> None:  # TEST STAND-IN for the runtime (see the module's docstring)
        while not stop.is_set():
            if release.wait(0.05):
                ack_pending_stand_in(helper, _now())

    t = threading.Thread(target=stand_in, daemon=True)
    t.start()
    yield Served(base, signer, store, release)
    stop.set()
    t.join()
    server.shutdown()
    server.server_close()
    helper.close()
    store.close()


def _page(browser: Any, base: str, size: tuple[int, int]) -> tuple[Any, Any, list[str]]:
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def route(r: Any) -> None:
        if r.request.url.startswith(base):
            r.continue_()
        else:
            problems.append(f"request: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    return ctx, page, problems


def _sign_in(page: Any, base: str, signer: Signer) -> None:
    page.goto(f"{base}/login?t={signer.login_token()}")
    page.click("#signin")
    page.wait_for_url(f"{base}/")
    from playwright.sync_api import expect

    # the page's CSP has no 'unsafe-eval', so Playwright's wait_for_function cannot run in it
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=WAIT_MS)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_panel_drawn_and_a_control_acknowledged(browser: Any, served: Served, viewport: str) -> None:
    from playwright.sync_api import expect

    width, height = VIEWPORTS[viewport]
    ctx, page, problems = _page(browser, served.base, (width, height))
    try:
        _sign_in(page, served.base, served.signer)
        [cookie] = ctx.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (
            COOKIE_NAME,
            True,
            True,
            "Strict",
        )
        assert abs(cookie["expires"] - day_end(_now())) <= 2  # 17:00 IST
        assert page.evaluate("document.cookie") == ""  # HttpOnly: the script cannot read it
        for name in PANELS:
            panel = page.locator(f'[data-panel="{name}"]')
            expect(panel).to_be_visible()
            box = panel.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 20, name
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, f"{name} overflows the {viewport} viewport"
        expect(page.locator('[data-panel="state"] [data-state]')).to_have_attribute("data-state", "ACTIVE")
        expect(page.locator("#panel-positions tr")).to_have_count(4)  # a header and three positions
        assert page.locator("#panel-positions td b.ok").count() == 3  # every stop rests at the broker

        page.click('#panel-controls button[data-act="flatten_halt"]')
        expect(page.locator("#confirm-word")).to_have_text("FLATTEN")
        page.fill("#confirm-input", "FLATTEN")
        page.click("#confirm-send")
        sent = page.locator("#control-msg")
        expect(sent).to_have_attribute("data-command", re.compile(r"^\d+-[0-9a-f]+$"), timeout=WAIT_MS)
        cid = sent.get_attribute("data-command")
        assert [c.id for c in served.store.pending()] == [cid]
        state = page.locator(f'.cmd-state[data-id="{cid}"]')
        expect(state).to_have_attribute("data-state", "pending", timeout=WAIT_MS)
        served.release.set()  # the runtime (here its stand-in) acknowledges
        expect(state).to_have_attribute("data-state", "done", timeout=ROUND_TRIP_MS)
        assert problems == []
        page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"tfl-status-{viewport}.png"), full_page=True)
    finally:
        ctx.close()


def test_expired_reused_and_missing_credentials_are_refused(browser: Any, served: Served) -> None:
    ctx, page, problems = _page(browser, served.base, VIEWPORTS["phone"])
    try:
        expired = served.signer.issue(LOGIN, _now() - 1)
        resp = page.goto(f"{served.base}/login?t={expired}")
        assert resp is not None and resp.status == 403 and page.inner_text("body").strip() == "refused"
        token = served.signer.login_token()
        page.goto(f"{served.base}/login?t={token}")
        page.click("#signin")
        page.wait_for_url(f"{served.base}/")
        ctx.clear_cookies()
        page.goto(f"{served.base}/login?t={token}")  # the same link again
        with page.expect_response(f"{served.base}/login") as got:
            page.click("#signin")
        assert got.value.status == 403 and page.inner_text("body").strip() == "refused"
        resp = page.goto(f"{served.base}/")
        assert resp is not None and resp.status == 403 and ctx.cookies() == []
        assert problems == [] or all("403" in p for p in problems)
    finally:
        ctx.close()


def _in_session(journal: Path) -> bool:
    """The trader has written its journal's SESSION_OPEN (so its tables exist)."""
    try:
        j = ReadOnlySqliteJournal(journal)
    except Exception:  # not there yet, or being created
        return False
    try:
        return any(r.kind == "SESSION_OPEN" for r in j.records())
    except Exception:
        return False
    finally:
        j.close()


def test_round_trip_with_a_running_replay(browser: Any, nse_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    journal = tmp_path / "journal.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFL_")}
    trader = subprocess.Popen(
        [TFL, "trade", "--world", "replay", "--data", str(nse_dir), "--date", DAY.isoformat(), "--journal",
         str(journal), "--symbols", ",".join(SYMBOLS), "--bias", "auto", "--speed", "100",
         "--set", "live.command_poll_seconds=0.25"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    server = None
    try:
        deadline = time.monotonic() + WAIT_MS / 1000
        while not _in_session(journal) and trader.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for the trader to open its session decides nothing the test sees
        assert _in_session(journal) and trader.poll() is None
        server, store, signer, base = _serve(journal, journal.with_name(journal.name + ".log"))
        ctx, page, problems = _page(browser, base, VIEWPORTS["desktop"])
        try:
            _sign_in(page, base, signer)
            page.click('#panel-controls button[data-act="stop_entries"]')
            page.fill("#confirm-input", "STOP")
            page.click("#confirm-send")
            sent = page.locator("#control-msg")
            expect(sent).to_have_attribute("data-command", re.compile(r"^\d+-[0-9a-f]+$"), timeout=WAIT_MS)
            cid = sent.get_attribute("data-command")
            assert store.commands(1)[0].command.id == cid
            state = page.locator(f'.cmd-state[data-id="{cid}"]')
            expect(state).to_have_attribute("data-state", "done", timeout=ROUND_TRIP_MS)
            assert problems == []
        finally:
            ctx.close()
            store.close()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        trader.terminate()
        trader.wait(timeout=60)
