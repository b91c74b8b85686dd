"""Alerts to a Telegram chat through the Bot API (a plain HTTPS POST to ``sendMessage``).

The bot token is a secret: it is read from the secrets store (``telegram_bot_token``), it
is part of the request URL, and it never reaches a log line, an exception or an alert
(errors name the HTTP status or the exception's class only). A send never sleeps and never
raises: a 429 (Telegram's flood control) is honoured by sending nothing to Telegram for
its ``retry_after`` seconds (SNS still gets every alert); a 401 (a revoked token) stops
Telegram for the rest of the run, with one ERROR line.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

from tfl.live.alerts import AlertSink, FanOut
from tfl.secrets import SecretError

if TYPE_CHECKING:
    from tfl.secrets import SecretStore
    from tfl.settings import Settings

log = logging.getLogger("tfl.alerts.telegram")

TOKEN_SECRET = "telegram_bot_token"  # its name in the secrets store
MAX_TEXT = 4096  # Telegram's limit on a message's text
_DEFAULT_RETRY_AFTER = 30.0  # a 429 without parameters.retry_after

Post = Callable[[str, bytes, float], tuple[int, bytes]]  # (url, JSON body, timeout) -> (status, body)


def _post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    """POST JSON; the HTTP status and body, error statuses included (they carry Telegram's reason)."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # the URL is a setting, https by default
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read() or b"")


class TelegramNotifier:
    """One chat, one bot. ``send`` returns whether Telegram took the message."""

    name = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: str,
        *,
        api_url: str = "https://api.telegram.org",
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        post: Post = _post,
    ) -> None:
        if not token or not chat_id:
            raise ValueError("a Telegram channel needs a bot token and a chat id")
        self._token = token
        self.chat_id = chat_id
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self.timeout = timeout
        self._clock = clock
        self._post = post
        self._quiet_until = 0.0  # flood control: nothing is sent before this (clock time)
        self.disabled = False  # the token was refused: nothing more is sent this run
        self.skipped = 0  # messages not sent because of flood control or a refused token

    def __repr__(self) -> str:  # never the token
        return f"TelegramNotifier(chat_id={self.chat_id!r})"

    def send(self, level: str, message: str) -> bool:
        if self.disabled or self._clock() < self._quiet_until:
            self.skipped += 1
            log.warning("telegram alert skipped", extra={"fields": {"why": self._why_quiet(), "level": level}})
            return False
        text = f"TFL {level}: {message}"
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 3] + "..."
        body = json.dumps({"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}).encode()
        try:
            status, raw = self._post(self._url, body, self.timeout)
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
            # The exception's text could name the URL, which holds the token: only its class is logged.
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            error = "timeout" if isinstance(reason, TimeoutError) else type(reason).__name__
            log.error("telegram alert failed", extra={"fields": {"error": error, "timeout_seconds": self.timeout}})
            return False
        answer = _json(raw)
        if status == 200 and answer.get("ok") is True:
            return True
        self._refused(status, answer)
        return False

    def _refused(self, status: int, answer: dict[str, object]) -> None:
        description = self._clean(str(answer.get("description", "")))[:200]
        fields: dict[str, object] = {"status": status, "description": description}
        if status == 429:
            params = answer.get("parameters")
            wait = params.get("retry_after") if isinstance(params, dict) else None
            seconds = float(wait) if isinstance(wait, int | float) and wait > 0 else _DEFAULT_RETRY_AFTER
            self._quiet_until = self._clock() + seconds
            fields["retry_after"] = seconds
            log.error("telegram flood control: no Telegram alerts for a while", extra={"fields": fields})
        elif status in (401, 404):  # Telegram answers 404 for a malformed token
            self.disabled = True
            log.error("telegram refused the bot token: Telegram alerts off for this run", extra={"fields": fields})
        else:
            log.error("telegram alert refused", extra={"fields": fields})

    def _why_quiet(self) -> str:
        return "the bot token was refused" if self.disabled else "flood control"

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "***")


def _json(raw: bytes) -> dict[str, object]:
    try:
        data = json.loads(raw.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def telegram_channel(settings: Settings, store: SecretStore) -> TelegramNotifier | None:
    """The Telegram channel when ``alerts.telegram_chat_id`` is set and the store has the bot token;
    None (and a line saying why) otherwise."""
    a = settings.alerts
    if not a.telegram_chat_id:
        return None
    try:
        token = store.get(TOKEN_SECRET)
    except SecretError as exc:
        log.error("telegram alerts off: the bot token cannot be read", extra={"fields": {"error": str(exc)}})
        return None
    if not token:
        log.error(
            "telegram alerts off: alerts.telegram_chat_id is set but the secrets store has no telegram_bot_token",
            extra={"fields": {"secret": TOKEN_SECRET}},
        )
        return None
    log.info("telegram alerts on", extra={"fields": {"chat_id": a.telegram_chat_id}})
    return TelegramNotifier(token, a.telegram_chat_id, api_url=a.telegram_api_url, timeout=a.telegram_timeout_seconds)


def with_telegram(settings: Settings, store: SecretStore, sink: AlertSink) -> AlertSink:
    """``sink`` (the log line and SNS), then Telegram when it is configured."""
    channel = telegram_channel(settings, store)
    return sink if channel is None else FanOut([channel], first=sink)


def token_expiry(store: SecretStore) -> float | None:
    """When the stored broker token expires (its JWT's ``exp``); None when it cannot be told."""
    from tfl.fyers.login import jwt_expiry

    try:
        token = store.get("access_token")
    except SecretError:
        return None
    exp = jwt_expiry(token) if token else None
    return float(exp) if exp is not None else None
