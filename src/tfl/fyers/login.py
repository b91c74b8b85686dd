"""The FYERS login pieces that need no HTTP library: URL, state, redirect, code exchange.

Standard library only, so the AWS login callback (a Lambda without ``requests``) and
``tfl auth login`` share them. Errors name the FYERS code and message, never the auth code,
the app secret or a token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


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


def _scrub(text: str, *hidden: str) -> str:
    """FYERS' message, short, with anything we sent it masked (it should never echo them)."""
    out = text[:200]
    for value in hidden:
        if value:
            out = out.replace(value, "***")
    return out


def validate_authcode(api_url: str, app_id_hash: str, code: str, timeout: float = 10) -> dict[str, Any]:
    """Exchange an auth code for a token at FYERS' ``validate-authcode``; the answer's payload.

    Classified like :mod:`tfl.fyers.rest`: ``s == "ok"`` is success, anything else a
    :class:`LoginError` naming the HTTP status, FYERS' code and message.
    """
    url = f"{api_url.rstrip('/')}/validate-authcode"
    body = json.dumps({"grant_type": "authorization_code", "appIdHash": app_id_hash, "code": code}).encode()
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "version": "3"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except TimeoutError:
        raise LoginError(f"FYERS validate-authcode: no answer within {timeout} s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise LoginError(f"FYERS validate-authcode: no answer within {timeout} s") from None
        raise LoginError(f"FYERS validate-authcode: network failure ({type(exc.reason).__name__})") from None
    except OSError as exc:
        raise LoginError(f"FYERS validate-authcode: network failure ({type(exc).__name__})") from None
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        raise LoginError(f"FYERS validate-authcode: unexpected answer (HTTP {status})")
    if payload.get("s") == "ok" and status < 400:
        return payload
    fy_code = payload.get("code")
    message = _scrub(str(payload.get("message") or "no message"), code, app_id_hash)
    raise LoginError(f"FYERS validate-authcode refused the code: {message} (code {fy_code}, HTTP {status})")
