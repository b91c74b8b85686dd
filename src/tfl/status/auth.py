"""One-time links and the session cookie of the status page.

The function URL is public, so the page authenticates itself. A link is a token: a purpose
(``login``, or an action such as ``act:exit_position:SBIN``), a random nonce and an expiry,
signed with HMAC-SHA256 under a key that lives in the secret store (a 0600 key file
locally, a Secrets Manager secret on AWS) and never on the page. A link works once: its
nonce is marked used in the operator store (:meth:`~tfl.live.ops_store.OpsStore.use_once`).
A login link is exchanged for a cookie (``HttpOnly; Secure; SameSite=Strict``) that
expires at 17:00 IST, when the operator's day ends. Every control needs a fresh action
link plus a typed confirmation.

Whatever is wrong with a link or a cookie (forged, expired, reused, for another purpose),
the caller gets the same :class:`Refused`; the reason goes to the log, never to the client.
Time comes from an injected clock.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tfl.live.ops_store import CommandKind, OpsStore
from tfl.timeutil import IST

Clock = Callable[[], int]  # UTC epoch seconds

COOKIE_NAME = "tfl_status"
LOGIN = "login"
SESSION = "session"
DAY_END_IST = dt.time(17, 0)  # the cookie's expiry: the operator's day ends after the post-market report
ACTION_LINK_SECONDS = 300  # an action link is used at once or not at all
KEY_BYTES = 32
MIN_TEXT_KEY = 32  # characters of a generated (non-hex) key
DEFAULT_KEY_FILE = Path.home() / ".tfl" / "status.key"


class Refused(Exception):  # noqa: N818 - an outcome, named for what the client sees
    """A link or cookie that does not open the page; the message is for the log only."""


class KeyFileError(ValueError):
    """The signing key file cannot be used."""


def day_end(now: int) -> int:
    """The next 17:00 IST at or after ``now``: a login after 17:00 lasts until tomorrow's."""
    local = dt.datetime.fromtimestamp(now, IST)
    end = dt.datetime.combine(local.date(), DAY_END_IST, IST)
    if local >= end:
        end += dt.timedelta(days=1)
    return int(end.timestamp())


def action_purpose(kind: CommandKind, symbol: str = "") -> str:
    return f"act:{kind.value}:{symbol.upper()}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Token:
    purpose: str
    nonce: str
    expires_at: int


class Signer:
    """Signs and checks tokens ``b64(purpose).nonce.expiry.signature``."""

    def __init__(self, key: bytes, clock: Clock) -> None:
        if len(key) < 16:
            raise KeyFileError("the status signing key is shorter than 16 bytes")
        self._key = key
        self.clock = clock

    def _sig(self, purpose: str, nonce: str, expires_at: int) -> str:
        msg = f"{purpose}\x1f{nonce}\x1f{expires_at}".encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest())

    def issue(self, purpose: str, expires_at: int) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{_b64(purpose.encode())}.{nonce}.{expires_at}.{self._sig(purpose, nonce, expires_at)}"

    def check(self, token: str, purpose: str) -> Token:
        """The token's contents if it is genuine, unexpired and for ``purpose``; else :class:`Refused`."""
        parts = token.split(".")
        if len(parts) != 4:
            raise Refused("malformed token")
        p64, nonce, exp_text, sig = parts
        try:
            got_purpose = unb64(p64).decode()
            expires_at = int(exp_text)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise Refused("malformed token") from None
        if p64 != _b64(got_purpose.encode()) or exp_text != str(expires_at):  # one spelling per token
            raise Refused("malformed token")
        if not hmac.compare_digest(self._sig(got_purpose, nonce, expires_at), sig):
            raise Refused("bad signature")
        if not hmac.compare_digest(got_purpose, purpose):
            raise Refused(f"token for {got_purpose!r}, not {purpose!r}")
        if self.clock() >= expires_at:
            raise Refused("expired")
        return Token(got_purpose, nonce, expires_at)

    def use(self, token: str, purpose: str, ops: OpsStore) -> Token:
        """Check a one-time token and mark it used; a second use is refused."""
        t = self.check(token, purpose)
        if not ops.use_once(f"link:{t.nonce}", t.expires_at):
            raise Refused("used already")
        return t

    # -- links and the cookie

    def login_token(self) -> str:
        return self.issue(LOGIN, day_end(self.clock()))

    def action_token(self, kind: CommandKind, symbol: str = "") -> tuple[str, int]:
        exp = min(self.clock() + ACTION_LINK_SECONDS, day_end(self.clock()))
        return self.issue(action_purpose(kind, symbol), exp), exp

    def session_cookie(self, secure: bool = True) -> str:
        """The ``Set-Cookie`` value of a new session, expiring at 17:00 IST."""
        exp = day_end(self.clock())
        value = self.issue(SESSION, exp)
        expires = dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        max_age = exp - self.clock()
        flags = "; Secure" if secure else ""
        return f"{COOKIE_NAME}={value}; Path=/; Expires={expires}; Max-Age={max_age}; HttpOnly{flags}; SameSite=Strict"

    def check_cookie(self, cookie_header: str) -> Token:
        value = cookie_value(cookie_header, COOKIE_NAME)
        if value is None:
            raise Refused("no session cookie")
        return self.check(value, SESSION)


def cookie_value(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k == name:
            return v
    return None


def login_link(base_url: str, signer: Signer) -> str:
    return f"{base_url.rstrip('/')}/login?t={signer.login_token()}"


def local_key(path: Path = DEFAULT_KEY_FILE) -> bytes:
    """The signing key in a 0600 file, created with a fresh random key the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(KEY_BYTES) + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"status key file {path} is readable by others (mode {mode:o}); chmod 600 it")
    return key_from_text(path.read_text(encoding="ascii"), str(path))


def key_from_text(text: str, where: str) -> bytes:
    """A key written as hex (the local key file), or a long random string as its bytes (the
    secret CloudFormation generates)."""
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = text.encode() if len(text) >= MIN_TEXT_KEY else b""
    if len(key) < 16:
        raise KeyFileError(f"status key {where}: too short (hex of 16+ bytes, or {MIN_TEXT_KEY}+ characters)")
    return key


def secret_key(client: object, secret_id: str) -> bytes:
    """The signing key held in Secrets Manager (hex text)."""
    got = client.get_secret_value(SecretId=secret_id)  # type: ignore[attr-defined]
    return key_from_text(str(got["SecretString"]), f"secret {secret_id}")
