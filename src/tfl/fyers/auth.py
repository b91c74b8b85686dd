"""The daily FYERS login (2FA every trading day since April 2026) and token checks.

``tfl auth login`` prints the login URL with a random ``state``; the operator logs in and
pastes back the redirect URL (or just the code); the state is checked, the code exchanged
(appIdHash = sha256("APP_ID:SECRET")), and the token stored in the secrets store with the
date it was issued. A token is trusted only after a cheap authenticated call (profile)
succeeds, not because its JWT says it has not expired.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from tfl.fyers.rest import FyersAuthError, FyersError, FyersRest
from tfl.secrets import SecretStore

log = logging.getLogger("tfl.fyers.auth")
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


class LoginError(RuntimeError):
    """The login could not be completed; the message never contains a code or token."""


def app_id_hash(client_id: str, secret_key: str) -> str:
    return hashlib.sha256(f"{client_id}:{secret_key}".encode()).hexdigest()


def login_url(api_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urllib.parse.urlencode(
        {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "state": state}
    )
    return f"{api_url.rstrip('/')}/generate-authcode?{query}"


def new_state() -> str:
    return secrets.token_urlsafe(16)


def parse_redirect(text: str, expected_state: str | None) -> str:
    """The auth code from a pasted redirect URL (state checked) or from a bare code."""
    text = text.strip()
    if "://" not in text and "auth_code=" not in text:
        if not text:
            raise LoginError("no code given")
        return text
    query = urllib.parse.urlparse(text).query or text.partition("?")[2] or text
    params = urllib.parse.parse_qs(query)
    if params.get("s", ["ok"])[0] != "ok":
        raise LoginError(f"the login failed at FYERS: {params.get('message', ['no reason given'])[0][:100]}")
    code = params.get("auth_code", [""])[0]
    if not code:
        raise LoginError("the redirect URL carries no auth_code")
    state = params.get("state", [""])[0]
    if expected_state is not None and not secrets.compare_digest(state, expected_state):
        raise LoginError("the redirect's state does not match this login (stale or forged link): start again")
    return code


def jwt_expiry(token: str) -> int | None:
    """The ``exp`` claim of a JWT, without verifying it (advisory only)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return int(json.loads(base64.urlsafe_b64decode(payload)).get("exp"))
    except (IndexError, ValueError, TypeError, json.JSONDecodeError):
        return None


def exchange_code(rest: FyersRest, store: SecretStore, code: str, today: dt.date) -> None:
    secret = store.get("secret_key")
    if not secret:
        raise LoginError("no FYERS secret_key in the secrets store (set it once: tfl auth secret)")
    try:
        payload = rest.validate_authcode(app_id_hash(rest.client_id, secret), code)
    except FyersError as exc:
        raise LoginError(f"exchanging the code failed: {exc}") from None
    token = payload.get("access_token")
    if not token:
        raise LoginError("FYERS answered without an access token")
    store.put("access_token", str(token))
    store.put("token_date", today.isoformat())
    log.info("FYERS access token stored", extra={"fields": {"for": today.isoformat()}})


@dataclass
class TokenCheck:
    ok: bool
    reason: str


def check_token(rest: FyersRest, store: SecretStore, today: dt.date) -> TokenCheck:
    """Is there a token from today that FYERS accepts? (A login is needed every trading day.)"""
    token = store.get("access_token")
    if not token:
        return TokenCheck(False, "no access token: run `tfl auth login`")
    issued = store.get("token_date")
    if issued and issued != today.isoformat():
        return TokenCheck(False, f"the access token is from {issued}: a fresh login is needed every trading day")
    try:
        rest.profile()
    except FyersAuthError as exc:
        return TokenCheck(False, f"FYERS refused the token ({exc.code})")
    except FyersError as exc:
        return TokenCheck(False, f"could not check the token ({type(exc).__name__})")
    return TokenCheck(True, "token accepted")


def wait_for_token(
    rest: FyersRest,
    store: SecretStore,
    today: dt.date,
    deadline: dt.datetime,
    *,
    now: Callable[[], dt.datetime],
    sleep: Callable[[float], None] = time.sleep,
    alert: Callable[[str, str], None] = lambda level, msg: None,
    retry_seconds: float = 30.0,
) -> TokenCheck:
    """Retry until a valid token appears or the deadline passes; alert once when missing."""
    alerted = False
    while True:
        check = check_token(rest, store, today)
        if check.ok:
            return check
        if not alerted:
            log.error(
                "no valid FYERS token: not trading until one is stored",
                extra={"fields": {"reason": check.reason, "deadline": deadline.isoformat()}},
            )
            alert("ERROR", f"TFL cannot trade: {check.reason}. Log in before {deadline:%H:%M} IST.")
            alerted = True
        if now() >= deadline:
            log.critical(
                "no valid FYERS token by the deadline: no trading today", extra={"fields": {"reason": check.reason}}
            )
            alert("CRITICAL", f"TFL will not trade today: no valid FYERS token by {deadline:%H:%M} IST")
            return check
        sleep(retry_seconds)
