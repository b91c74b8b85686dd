"""The FYERS login callback: a Lambda function URL used as the app's redirect URI.

FYERS redirects the operator's browser here with ``auth_code`` and ``state``. The state must
be the one the ops job stored with today's login link (compared in constant time, good once:
it is consumed before the exchange). The code is then exchanged at FYERS and the access token
stored in the token secret with today's date, in one write. Every outcome is an HTML page.
The address is public, so a request that is not the operator's pending login (no state, no
login pending, a forged or old link) is only logged (WARNING); once a request carries
today's pending state, a failure of the exchange or of the storage is an ERROR alert. The
code, the token and the app secret never appear in a log line, a page or an alert; the page
also tells the browser not to send its URL anywhere.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from tfl.aws.lambdas.common import (
    ConfigError,
    LambdaConfig,
    alert,
    decide,
    entry,
    ist_today,
    publish,
)
from tfl.aws.notify import SnsNotifier
from tfl.fyers.login import LoginError, app_id_hash, validate_authcode
from tfl.secrets import SecretError

log = logging.getLogger("tfl.aws.lambdas.login")
MAX_CODE_CHARS = 4096
MAX_STATE_CHARS = 256

_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


def page(status: int, title: str, text: str) -> dict[str, Any]:
    """A function URL response: a small self-contained HTML page."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>TFL: {html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return {"statusCode": status, "headers": dict(_HEADERS), "body": body}


def query_params(event: Mapping[str, Any]) -> dict[str, str]:
    """The query string of a payload-2.0 event (parsed from rawQueryString when present)."""
    raw = event.get("rawQueryString")
    if isinstance(raw, str) and raw:
        parsed = urllib.parse.parse_qs(raw, keep_blank_values=True)
        return {k: v[0] if len(v) == 1 else "" for k, v in parsed.items()}  # a repeated parameter counts as absent
    qs = event.get("queryStringParameters")
    if isinstance(qs, Mapping):
        return {str(k): str(v) for k, v in qs.items()}
    return {}


def _ignore(status: int, title: str, reason: str, day: dt.date) -> dict[str, Any]:
    """A request that is not the operator's pending login (junk, a replay, a forgery, an old
    link): the address is public, so it is logged at WARNING and alerts nobody."""
    decide(log, "login refused", logging.WARNING, status=status, reason=reason, session=day.isoformat())
    return page(status, title, reason)


def _fail(notifier: SnsNotifier | None, status: int, title: str, reason: str, day: dt.date) -> dict[str, Any]:
    """The operator's login (it carried today's pending state) failed: an ERROR alert."""
    decide(log, "login failed", logging.ERROR, status=status, reason=reason, session=day.isoformat())
    alert(notifier, "ERROR", f"TFL: FYERS login for {day} failed: {reason}")
    return page(status, title, reason)


def run(event: dict[str, Any], cfg: LambdaConfig, now: dt.datetime | None = None) -> dict[str, Any]:
    """The callback. The date is always today in IST: a request from the internet cannot choose it."""
    day = ist_today(now)
    ctx = event.get("requestContext")
    http = ctx.get("http") if isinstance(ctx, Mapping) else None
    method = str(http.get("method", "GET") if isinstance(http, Mapping) else "GET").upper()
    if method != "GET":
        decide(log, "login refused: method", logging.WARNING, method=method[:10])
        return page(405, "Not allowed", "This address only accepts the FYERS login redirect.")
    params = query_params(event)
    if params.get("s", "ok") != "ok":
        return _ignore(400, "Login failed", "FYERS reported that the login did not succeed: try again", day)
    code = params.get("auth_code", "")
    state = params.get("state", "")
    if not code or not state:
        return _ignore(400, "Login refused", "the redirect carries no auth_code or no state", day)
    if len(code) > MAX_CODE_CHARS or len(state) > MAX_STATE_CHARS:
        return _ignore(400, "Login refused", "the redirect's parameters are too long", day)
    try:
        store = cfg.secrets()
        pending = store.get("login_state")
        pending_date = store.get("login_state_date")
    except (ConfigError, SecretError) as exc:
        # Cannot tell the operator's login from junk yet: the log (ERROR) only, no alert per request.
        reason = f"the secrets cannot be read ({exc})"
        decide(log, "login not possible: secrets", logging.ERROR, reason=reason, session=day.isoformat())
        return page(500, "Login not possible", "The login cannot be checked now; see the login function's log.")
    if pending is None:
        reason = "no login is pending: the link was used already, or no link was sent (ops action 'link' sends one)"
        return _ignore(400, "Login refused", reason, day)
    if not secrets.compare_digest(state.encode(), pending.encode()):
        reason = "the link does not match the pending login (an old or forged link): use the latest link"
        return _ignore(400, "Login refused", reason, day)
    if pending_date != day.isoformat():
        reason = f"the link is from {pending_date or 'an unknown day'}, not {day}: use today's link"
        return _ignore(400, "Login refused", reason, day)
    # From here on the request is the operator's (it carries today's pending state): failures alert.
    notifier = cfg.notifier()
    try:
        store.put("login_state", "")  # good once, even if the exchange fails
        client_id = store.get("client_id")
        secret_key = store.get("secret_key")
    except SecretError as exc:
        return _fail(notifier, 500, "Login not possible", f"the login state cannot be updated ({exc})", day)
    if client_id is None or secret_key is None:
        reason = f"replace the placeholders in {cfg.settings.aws.credentials_secret} (client_id, secret_key)"
        return _fail(notifier, 500, "Login not possible", reason, day)
    try:
        payload = validate_authcode(
            cfg.settings.fyers.api_url,
            app_id_hash(client_id, secret_key),
            code,
            timeout=cfg.settings.fyers.http_timeout_seconds,
        )
    except LoginError as exc:
        return _fail(notifier, 502, "Login failed", f"{exc}; ask for a new link (ops action 'link')", day)
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        return _fail(notifier, 502, "Login failed", "FYERS answered without an access token", day)
    try:
        # one write: the trader never reads a token without its day
        store.put_many({"access_token": token, "token_date": day.isoformat()})
    except SecretError as exc:
        return _fail(notifier, 500, "Login not stored", f"the token could not be stored ({exc})", day)
    published = publish(
        notifier,
        f"TFL: FYERS login OK for {day}",
        f"The FYERS access token for the {day} session is stored; the trader picks it up by itself.",
    )
    decide(log, "FYERS login stored", session=day.isoformat(), notified=published)
    return page(200, "Logged in", "Logged in. You can close this tab.")


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (function URL, payload format 2.0)."""
    return entry(
        "login",
        log,
        run,
        event,
        on_config_error=lambda ev, reason: page(
            500, "Login not possible", "The login function is misconfigured; see its log."
        ),
        # the page must say something; the details go to the log only
        on_bug=lambda ev, cfg, _: page(
            500, "Login not possible", "Something went wrong; see the login function's log."
        ),
    )
