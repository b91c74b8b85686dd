"""The request handler (shared by the local server and the Lambda), the local server and
``tfl status``: login, refusals that all look alike, controls, and no secret on the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from status_helpers import MIDDAY_CUT, Clock, Journals, copy_journal

from tfl.live.journal import ReadOnlySqliteJournal
from tfl.live.ops_store import CommandKind, SqliteOpsStore
from tfl.status.app import REFUSED_BODY, Request, Response, StatusApp
from tfl.status.auth import COOKIE_NAME, Signer, local_key, login_link
from tfl.status.facts import Sources
from tfl.status.server import make_server

TFL = str(Path(sys.executable).with_name("tfl"))
KEY = bytes(range(100, 132))
NOW = MIDDAY_CUT + 5
PAGE = {"x-tfl-page": "1"}


@pytest.fixture
def setup(journals: Journals, tmp_path: Path) -> Iterator[tuple[StatusApp, Clock, SqliteOpsStore]]:
    path = copy_journal(journals.midday, tmp_path)
    clock = Clock(NOW)
    store = SqliteOpsStore(path)
    journal = ReadOnlySqliteJournal(path)
    app = StatusApp(journal, store, Sources(path.name), Signer(KEY, clock))
    yield app, clock, store
    journal.close()
    store.close()


def _login(app: StatusApp) -> str:
    token = app.signer.login_token()
    got = app.handle(Request("GET", "/login", f"t={token}"))
    assert got.status == 200 and b'method="post"' in got.body
    resp = app.handle(Request("POST", "/login", body=f"t={token}".encode()))
    assert resp.status == 303 and dict(resp.headers)["Location"] == "/"
    return resp.cookies[0].split(";")[0]


def _post(app: StatusApp, path: str, cookie: str, data: object, headers: dict[str, str] = PAGE) -> Response:
    return app.handle(Request("POST", path, headers={"cookie": cookie, **headers}, body=json.dumps(data).encode()))


def test_login_then_page_and_facts(setup: tuple[StatusApp, Clock, SqliteOpsStore]) -> None:
    app, _, _ = setup
    assert app.handle(Request("GET", "/")).body == REFUSED_BODY
    cookie = _login(app)
    page = app.handle(Request("GET", "/", headers={"cookie": cookie}))
    assert page.status == 200 and b'data-panel="positions"' in page.body
    headers = dict(page.all_headers())
    assert headers["Cache-Control"] == "no-store" and "default-src 'none'" in headers["Content-Security-Policy"]
    facts = json.loads(app.handle(Request("GET", "/api/status", headers={"cookie": cookie})).body)
    assert {p["symbol"] for p in facts["positions"]} == {"TRENT", "ICICIBANK", "DLF"}
    assert app.handle(Request("GET", "/nothing", headers={"cookie": cookie})).status == 404


def test_expired_reused_and_forged_links_get_the_same_refusal(setup: tuple[StatusApp, Clock, SqliteOpsStore]) -> None:
    app, clock, _ = setup
    used = app.signer.login_token()
    assert app.handle(Request("POST", "/login", body=f"t={used}".encode())).status == 303
    expiring = app.signer.login_token()
    forged = Signer(bytes(32), clock).login_token()
    clock.t = app.signer.check(expiring, "login").expires_at
    answers = [
        app.handle(Request("POST", "/login", body=f"t={t}".encode())) for t in (used, expiring, forged, "garbage")
    ] + [app.handle(Request("GET", "/login", f"t={t}")) for t in (expiring, forged)]
    assert {(r.status, r.body, r.cookies) for r in answers} == {(403, REFUSED_BODY, ())}


def test_a_control_needs_the_cookie_the_header_a_fresh_link_and_the_word(
    setup: tuple[StatusApp, Clock, SqliteOpsStore],
) -> None:
    app, clock, store = setup
    cookie = _login(app)
    ask = {"kind": "exit_position", "symbol": "dlf"}
    assert _post(app, "/api/link", cookie, ask, headers={}).status == 403  # no page header
    assert _post(app, "/api/link", f"{COOKIE_NAME}=x", ask).status == 403
    assert _post(app, "/api/link", cookie, {"kind": "flatten_halt", "symbol": "DLF"}).status == 403
    assert _post(app, "/api/link", cookie, {"kind": "sell_everything"}).status == 403
    link = json.loads(_post(app, "/api/link", cookie, ask).body)
    assert link["confirm"] == "DLF" and link["expires_at"] == NOW + 300
    wrong = _post(app, "/api/command", cookie, {"token": link["token"], "confirm": "FLATTEN"})
    assert wrong.status == 400 and store.pending() == []
    ok = _post(app, "/api/command", cookie, {"token": link["token"], "confirm": "dlf", "reason": "news"})
    assert ok.status == 200
    [cmd] = store.pending()
    assert (cmd.kind, cmd.symbol, cmd.source, cmd.reason, cmd.id) == (
        CommandKind.EXIT_POSITION,
        "DLF",
        "page",
        "news",
        json.loads(ok.body)["id"],
    )
    again = _post(app, "/api/command", cookie, {"token": link["token"], "confirm": "DLF"})
    assert (again.status, again.body) == (403, REFUSED_BODY) and len(store.pending()) == 1
    late = json.loads(_post(app, "/api/link", cookie, {"kind": "flatten_halt"}).body)
    clock.t = late["expires_at"]
    assert _post(app, "/api/command", cookie, {"token": late["token"], "confirm": "FLATTEN"}).status == 403
    assert len(store.pending()) == 1


def test_no_secret_or_token_reaches_the_page_or_its_json(
    journals: Journals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, secret = "PLANTED-ACCESS-TOKEN-7f3e9a", "PLANTED-APP-SECRET-c41d02"
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"access_token": token, "secret_key": secret}))
    os.chmod(secrets_file, 0o600)
    monkeypatch.setenv("TFL_FYERS_ACCESS_TOKEN", token)
    monkeypatch.setenv("TFL_FYERS_SECRET_KEY", secret)
    path = copy_journal(journals.midday, tmp_path / "j")
    log = path.with_name(path.name + ".log")
    log.write_text(json.dumps({"time": "t", "level": "ERROR", "event": "token refused", "access_token": "***"}) + "\n")
    key_file = tmp_path / "status.key"
    key = local_key(key_file)
    store = SqliteOpsStore(path)
    app = StatusApp(ReadOnlySqliteJournal(path), store, Sources(path.name, log), Signer(key, Clock(NOW)))
    cookie = _login(app)
    bodies = [
        app.handle(Request("GET", "/", headers={"cookie": cookie})).body,
        app.handle(Request("GET", "/api/status", headers={"cookie": cookie})).body,
    ]
    assert b"token refused" in bodies[1]  # the log line is there, its secret field masked
    forbidden = [token, secret, key.hex(), key_file.read_text().strip(), cookie.split("=", 1)[1]]
    for body in bodies:
        for value in forbidden:
            assert value.encode() not in body
    store.close()


def test_local_server_binds_127_0_0_1_and_serves_the_handler(setup: tuple[StatusApp, Clock, SqliteOpsStore]) -> None:
    app, _, _ = setup
    server = make_server(app, 0)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/status", timeout=30)
        assert refused.value.code == 403 and refused.value.read() == REFUSED_BODY
        cookie = _login(app)
        req = urllib.request.Request(f"{base}/api/status", headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=30) as got:
            assert json.loads(got.read())["session"] == "2023-05-16"
    finally:
        server.shutdown()
        server.server_close()


def _tfl(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFL_")}
    env["HOME"] = str(home)
    return subprocess.run([TFL, *args], capture_output=True, text=True, env=env, timeout=600, check=False)


def test_cli_prints_facts_and_creates_nothing(journals: Journals, tmp_path: Path) -> None:
    path = copy_journal(journals.midday, tmp_path / "j")
    before = sorted(p.name for p in path.parent.iterdir())
    got = _tfl("status", "--journal", str(path), home=tmp_path / "home")
    assert got.returncode == 0, got.stderr
    assert "trader NOT RUNNING" in got.stdout and "DLF" in got.stdout and "stop at broker: yes" in got.stdout
    assert sorted(p.name for p in path.parent.iterdir()) == before
    assert not (tmp_path / "home").exists()


def test_cli_refuses_a_missing_journal_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "journal.sqlite"
    for extra in ((), ("--link",), ("--serve", "--port", "0")):
        got = _tfl("status", "--journal", str(missing), *extra, home=tmp_path / "home")
        assert got.returncode == 2 and got.stdout == ""
        assert got.stderr.count("\n") == 1 and "no such file" in got.stderr
    assert not missing.parent.exists() and not (tmp_path / "home").exists()


def test_cli_link_is_accepted_by_the_handler_once(journals: Journals, tmp_path: Path) -> None:
    path = copy_journal(journals.midday, tmp_path / "j")
    key_file = tmp_path / "k" / "status.key"
    got = _tfl(
        "status",
        "--journal",
        str(path),
        "--link",
        "--key-file",
        str(key_file),
        "--base-url",
        "https://status.example/",
        home=tmp_path / "home",
    )
    assert got.returncode == 0, got.stderr
    link = got.stdout.strip()
    assert link.startswith("https://status.example/login?t=")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    token = link.split("t=", 1)[1]
    store = SqliteOpsStore(path)
    import time

    app = StatusApp(
        ReadOnlySqliteJournal(path), store, Sources(path.name), Signer(local_key(key_file), lambda: int(time.time()))
    )
    assert app.handle(Request("POST", "/login", body=f"t={token}".encode())).status == 303
    assert app.handle(Request("POST", "/login", body=f"t={token}".encode())).status == 403
    assert login_link("http://h/", app.signer).startswith("http://h/login?t=")
    store.close()


def test_cli_serve_binds_loopback_and_prints_a_link(journals: Journals, tmp_path: Path) -> None:
    path = copy_journal(journals.midday, tmp_path / "j")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFL_")}
    env["HOME"] = str(tmp_path / "home")
    args = [TFL, "status", "--journal", str(path), "--serve", "--port", "0", "--link"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        link = proc.stdout.readline().strip()
        assert first.startswith("serving the status page on http://127.0.0.1:")
        base = first.split(" on ", 1)[1].split("/ ", 1)[0]
        assert link.startswith(f"{base}/login?t=")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/", timeout=30)
        assert refused.value.code == 403
        data = urllib.parse.urlencode({"t": link.split("t=", 1)[1]}).encode()
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as signed:
            opener.open(urllib.request.Request(f"{base}/login", data=data), timeout=30)
        assert signed.value.code == 303 and "HttpOnly" in signed.value.headers["Set-Cookie"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None
