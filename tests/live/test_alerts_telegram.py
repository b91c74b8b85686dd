"""The alert channels: Telegram against a local server that answers as the Bot API does
(success, flood control with retry_after, a refused token, a request that never gets an
answer), the fan-out, and the bot token kept out of every log line."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tfl.live.alerts import FanOut
from tfl.live.telegram import TOKEN_SECRET, TelegramNotifier, telegram_channel, token_expiry, with_telegram
from tfl.secrets import FileSecretStore
from tfl.settings import Settings, SettingsError, load_settings

TOKEN = "123456789:AAE-sEcReT_tOkEn_FoR_tEsTs-0123456789"
CHAT = "-1001234567890"


@dataclass
class FakeTelegram:
    """Answers each POST with the next scripted reply (then 200 ok); 'hang' holds the request
    until the test ends (the client's timeout is what is tested)."""

    replies: list[tuple[int, dict[str, object]] | str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    state = FakeTelegram()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append((self.path, json.loads(body)))
            reply = state.replies.pop(0) if state.replies else (200, {"ok": True, "result": {"message_id": 1}})
            if reply == "hang":
                state.release.wait(10)
                return
            assert not isinstance(reply, str)
            status, payload = reply
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # the http.server API
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def notifier(fake: FakeTelegram, clock: list[float] | None = None, timeout: float = 2.0) -> TelegramNotifier:
    now = clock if clock is not None else [0.0]
    return TelegramNotifier(TOKEN, CHAT, api_url=fake.url, timeout=timeout, clock=lambda: now[0])


def test_a_message_reaches_the_chat(fake: FakeTelegram) -> None:
    assert notifier(fake).send("CRITICAL", "TFL book not flat at the close: SBIN")
    (path, body) = fake.requests[0]
    assert path == f"/bot{TOKEN}/sendMessage"
    assert body["chat_id"] == CHAT and body["text"] == "TFL CRITICAL: TFL book not flat at the close: SBIN"


def test_flood_control_is_honoured_without_sleeping(fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    """A 429 with retry_after 30: nothing is sent to Telegram for 30 s of the (injected)
    clock, then sending resumes."""
    clock = [100.0]
    tg = notifier(fake, clock)
    fake.replies.append((429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 30}}))
    with caplog.at_level(logging.WARNING):
        assert not tg.send("ERROR", "first")
        clock[0] = 129.0
        assert not tg.send("ERROR", "inside the wait")
    assert len(fake.requests) == 1  # the wait was honoured: no request
    assert any("flood control" in r.message and r.levelname == "ERROR" for r in caplog.records)
    clock[0] = 130.0
    assert tg.send("ERROR", "after the wait")
    assert [b["text"] for _, b in fake.requests] == ["TFL ERROR: first", "TFL ERROR: after the wait"]


def test_a_refused_token_turns_telegram_off_for_the_run(fake: FakeTelegram) -> None:
    tg = notifier(fake)
    fake.replies.append((401, {"ok": False, "error_code": 401, "description": "Unauthorized"}))
    assert not tg.send("ERROR", "one")
    assert not tg.send("ERROR", "two")
    assert len(fake.requests) == 1 and tg.disabled and tg.skipped == 1


def test_a_request_without_an_answer_times_out_and_is_only_logged(
    fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    fake.replies.append("hang")
    tg = notifier(fake, timeout=0.2)
    with caplog.at_level(logging.ERROR):
        assert not tg.send("ERROR", "lost")
    assert any(r.message == "telegram alert failed" and r.fields["error"] == "timeout" for r in caplog.records)  # type: ignore[attr-defined]


def test_the_bot_token_never_reaches_a_log_line(fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    """Every failure (a refusal echoing the token, flood control, a timeout, nothing listening)
    logs a line, and none of them holds the token: not the message, not its fields."""
    fake.replies.extend(
        [
            (400, {"ok": False, "error_code": 400, "description": f"Bad Request: bot{TOKEN} chat not found"}),
            (429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 5}}),
            "hang",
        ]
    )
    clock = [0.0]
    tg = notifier(fake, clock, timeout=0.2)
    closed = TelegramNotifier(TOKEN, CHAT, api_url="http://127.0.0.1:9", timeout=0.5)  # nothing listens there
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            tg.send("ERROR", "x")
        clock[0] = 10.0
        tg.send("ERROR", "x")
        closed.send("ERROR", "x")
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) >= 4
    for r in caplog.records:
        text = r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str)
        assert TOKEN not in text and TOKEN.split(":")[1] not in text
    assert TOKEN not in repr(tg)


class Broken:
    name = "broken"

    def send(self, level: str, message: str) -> bool:
        raise RuntimeError(f"bug while sending {message}")


class Kept:
    name = "kept"

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def send(self, level: str, message: str) -> bool:
        self.got.append((level, message))
        return True


def test_the_fan_out_sends_to_every_channel_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    kept = Kept()
    first: list[str] = []
    sink = FanOut([Broken(), kept], first=lambda lv, m: first.append(m))
    with caplog.at_level(logging.ERROR):
        sink("CRITICAL", "stop missing")
    assert first == ["stop missing"] and kept.got == [("CRITICAL", "stop missing")]
    assert any(r.message == "alert channel raised" for r in caplog.records)


def store_with(tmp_path: Path, **values: str) -> FileSecretStore:
    path = tmp_path / "secrets.json"
    store = FileSecretStore(path, environ={})
    for k, v in values.items():
        store.put(k, v)
    return store


def test_telegram_is_on_only_with_a_chat_id_and_a_token(tmp_path: Path, fake: FakeTelegram) -> None:
    on = Settings().replace({"alerts.telegram_chat_id": CHAT, "alerts.telegram_api_url": fake.url})
    assert telegram_channel(Settings(), store_with(tmp_path / "a", **{TOKEN_SECRET: TOKEN})) is None
    assert telegram_channel(on, store_with(tmp_path / "b")) is None  # no token: off, and said
    channel = telegram_channel(on, store_with(tmp_path / "c", **{TOKEN_SECRET: TOKEN}))
    assert channel is not None
    sent: list[str] = []
    sink = with_telegram(on, store_with(tmp_path / "d", **{TOKEN_SECRET: TOKEN}), lambda lv, m: sent.append(m))
    sink("ERROR", "feed stale")
    assert sent == ["feed stale"] and fake.requests[-1][1]["text"] == "TFL ERROR: feed stale"


def test_the_token_expiry_is_read_from_the_stored_jwt(tmp_path: Path) -> None:
    import base64

    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1_700_000_000}).encode()).decode().rstrip("=")
    assert token_expiry(store_with(tmp_path / "a", access_token=f"h.{claims}.s")) == 1_700_000_000.0
    assert token_expiry(store_with(tmp_path / "b", access_token="not-a-jwt")) is None
    assert token_expiry(store_with(tmp_path / "c")) is None


def test_alert_settings_are_checked() -> None:
    assert load_settings(environ={"TFL_ALERTS__REPEAT_MINUTES": "30"}).alerts.repeat_minutes == 30.0
    with pytest.raises(SettingsError, match=r"alerts\.repeat_minutes"):
        load_settings(environ={"TFL_ALERTS__REPEAT_MINUTES": "0"})
    with pytest.raises(SettingsError, match=r"alerts\.telegram_api_url"):
        Settings().replace({"alerts.telegram_api_url": "ftp://example.org"})
