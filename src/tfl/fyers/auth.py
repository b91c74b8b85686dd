"""The daily FYERS login (2FA every trading day since April 2026) and token checks.

``tfl auth login`` prints the login URL with a random ``state``; the operator logs in and
pastes back the redirect URL (or just the code); the state is checked, the code exchanged
(appIdHash = sha256("APP_ID:SECRET")), and the token stored in the secrets store with the
date it was issued. A token is trusted only after a cheap authenticated call (profile)
succeeds, not because its JWT says it has not expired.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from tfl.fyers.errors import FyersAuthError, FyersError
from tfl.fyers.login import LoginError, app_id_hash, jwt_expiry, login_url, new_state, parse_redirect
from tfl.fyers.rest import FyersRest
from tfl.secrets import SecretStore
from tfl.timeutil import IST

log = logging.getLogger("tfl.fyers.auth")

# The pure pieces live in tfl.fyers.login (no ``requests``, so the AWS login callback can
# import them); they are re-exported here for the CLI and the existing callers.
__all__ = [
    "IST",
    "LoginError",
    "TokenCheck",
    "app_id_hash",
    "check_token",
    "exchange_code",
    "jwt_expiry",
    "login_url",
    "new_state",
    "parse_redirect",
    "wait_for_token",
]


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
    transient: bool = False  # FYERS could not be reached: the token itself may be fine


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
        return TokenCheck(False, f"could not check the token ({type(exc).__name__})", transient=True)
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
    grace: dt.datetime | None = None,
) -> TokenCheck:
    """Retry until a valid token appears or the deadline passes.

    Until ``grace`` (the operator has the login link and normally logs in before it) waiting
    is expected: one WARNING line, no alert. From ``grace`` on, a missing token is an ERROR
    and one alert; at the deadline a CRITICAL "no trading today".
    """
    warned = alerted = False
    while True:
        check = check_token(rest, store, today)
        if check.ok:
            if warned or alerted:
                log.info("FYERS token accepted: going on", extra={"fields": {"at": now().isoformat()}})
            return check
        t = now()
        if t >= deadline:
            log.critical(
                "no valid FYERS token by the deadline: no trading today", extra={"fields": {"reason": check.reason}}
            )
            alert("CRITICAL", f"TFL will not trade today: no valid FYERS token by {deadline:%H:%M} IST")
            return check
        if grace is not None and t < grace:
            if not warned:
                log.warning(
                    "waiting for the daily FYERS login",
                    extra={"fields": {"reason": check.reason, "alert_at": grace.isoformat()}},
                )
                warned = True
        elif not alerted:
            log.error(
                "no valid FYERS token: not trading until one is stored",
                extra={"fields": {"reason": check.reason, "deadline": deadline.isoformat()}},
            )
            alert("ERROR", f"TFL cannot trade: {check.reason}. Log in before {deadline:%H:%M} IST.")
            alerted = True
        sleep(retry_seconds)
