"""One-time links and the session cookie: expiry at 17:00 IST, reuse, forgery, tampering,
the cookie's flags, and the key file. The clock is injected; nothing sleeps."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from status_helpers import Clock

from tfl.live.journal import SqliteJournal
from tfl.live.ops_store import CommandKind, SqliteOpsStore
from tfl.status.auth import (
    COOKIE_NAME,
    LOGIN,
    KeyFileError,
    Refused,
    Signer,
    action_purpose,
    cookie_value,
    day_end,
    local_key,
    unb64,
)

KEY = bytes(range(32))
# 2026-12-07 08:45 IST is 03:15 UTC; that day's 17:00 IST is 11:30 UTC.
MORNING = int(dt.datetime(2026, 12, 7, 3, 15, tzinfo=dt.UTC).timestamp())
FIVE_PM = int(dt.datetime(2026, 12, 7, 11, 30, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def store(tmp_path: Path) -> SqliteOpsStore:
    path = tmp_path / "j.sqlite"
    SqliteJournal(path).close()
    return SqliteOpsStore(path)


def test_day_end_is_the_next_five_pm_ist() -> None:
    assert day_end(MORNING) == FIVE_PM
    assert day_end(FIVE_PM - 1) == FIVE_PM
    assert day_end(FIVE_PM) == FIVE_PM + 86_400  # a login at 17:00 lasts until tomorrow's
    midnight_ist = int(dt.datetime(2026, 12, 6, 18, 30, tzinfo=dt.UTC).timestamp())  # 00:00 IST on the 7th
    assert day_end(midnight_ist) == FIVE_PM


def test_login_link_works_until_five_pm_ist_and_only_once(store: SqliteOpsStore) -> None:
    clock = Clock(MORNING)
    s = Signer(KEY, clock)
    token = s.login_token()
    clock.t = FIVE_PM - 1
    assert s.use(token, LOGIN, store).expires_at == FIVE_PM
    with pytest.raises(Refused, match="used already"):
        s.use(token, LOGIN, store)
    late = Signer(KEY, Clock(MORNING)).login_token()
    clock.t = FIVE_PM
    with pytest.raises(Refused, match="expired"):
        s.use(late, LOGIN, store)


def test_forged_links_are_refused(store: SqliteOpsStore) -> None:
    s = Signer(KEY, Clock(MORNING))
    token = s.login_token()
    other = Signer(bytes(32), Clock(MORNING)).login_token()  # the right shape, the wrong key
    with pytest.raises(Refused, match="signature"):
        s.use(other, LOGIN, store)
    p64, nonce, exp, sig = token.split(".")
    with pytest.raises(Refused, match="signature"):  # a later expiry with the old signature
        s.check(f"{p64}.{nonce}.{int(exp) + 86_400}.{sig}", LOGIN)
    action = s.issue(action_purpose(CommandKind.FLATTEN_HALT), FIVE_PM)
    with pytest.raises(Refused, match="not 'login'"):  # a genuine action link is no login link
        s.check(action, LOGIN)
    for bad in ("", "a.b.c", "....", "x.y.z.w", token + "x"):
        with pytest.raises(Refused):
            s.check(bad, LOGIN)
    assert s.check(token, LOGIN).purpose == LOGIN  # the untouched token still works


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(min_value=0, max_value=10_000), ch=st.sampled_from("AQgw0459-_.x=+ "))
def test_any_one_character_change_is_refused(pos: int, ch: str) -> None:
    s = Signer(KEY, Clock(MORNING))
    token = s.issue(LOGIN, FIVE_PM)
    i = pos % len(token)
    mutated = token[:i] + ch + token[i + 1 :]
    if mutated == token:
        return
    with pytest.raises(Refused):
        s.check(mutated, LOGIN)


def test_a_second_spelling_of_the_same_token_is_refused() -> None:
    """Base64 without padding has spare bits in its last character: another spelling decodes
    to the same purpose, and a signed expiry can gain a leading zero. Neither may pass."""
    s = Signer(KEY, Clock(MORNING))
    token = s.issue(LOGIN, FIVE_PM)
    p64, nonce, exp, sig = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twins = [p64[:-1] + c for c in alphabet if c != p64[-1]]
    twins = [t for t in twins if unb64(t) == unb64(p64)]
    assert twins  # "login" leaves two spare bits
    for twin in twins:
        with pytest.raises(Refused):
            s.check(f"{twin}.{nonce}.{exp}.{sig}", LOGIN)
    with pytest.raises(Refused):
        s.check(f"{p64}.{nonce}.0{exp}.{sig}", LOGIN)


def test_session_cookie_flags_and_expiry() -> None:
    s = Signer(KEY, Clock(MORNING))
    header = s.session_cookie()
    parts = [p.strip() for p in header.split(";")]
    assert parts[0].startswith(f"{COOKIE_NAME}=")
    assert {"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} <= set(parts)
    assert "Expires=Mon, 07 Dec 2026 11:30:00 GMT" in parts  # 17:00 IST
    assert f"Max-Age={FIVE_PM - MORNING}" in parts
    cookie = parts[0]
    assert s.check_cookie(f"other=1; {cookie}").expires_at == FIVE_PM
    assert "Secure" not in Signer(KEY, Clock(MORNING)).session_cookie(secure=False).split("; ")


def test_tampered_missing_or_expired_cookies_are_refused() -> None:
    clock = Clock(MORNING)
    s = Signer(KEY, clock)
    value = cookie_value(s.session_cookie().split(";")[0], COOKIE_NAME)
    assert value is not None
    p64, nonce, exp, sig = value.split(".")
    for bad in (f"{p64}.{nonce}.{int(exp) + 3600}.{sig}", f"{p64}.{nonce}x.{exp}.{sig}", value[:-2]):
        with pytest.raises(Refused):
            s.check_cookie(f"{COOKIE_NAME}={bad}")
    with pytest.raises(Refused, match="no session cookie"):
        s.check_cookie("")
    login = s.login_token()  # a login link is no session
    with pytest.raises(Refused):
        s.check_cookie(f"{COOKIE_NAME}={login}")
    clock.t = FIVE_PM
    with pytest.raises(Refused, match="expired"):
        s.check_cookie(f"{COOKIE_NAME}={value}")


def test_action_links_are_bound_to_their_action_and_symbol(store: SqliteOpsStore) -> None:
    clock = Clock(MORNING)
    s = Signer(KEY, clock)
    token, exp = s.action_token(CommandKind.EXIT_POSITION, "sbin")
    assert exp == MORNING + 300
    with pytest.raises(Refused):
        s.use(token, action_purpose(CommandKind.EXIT_POSITION, "TCS"), store)
    with pytest.raises(Refused):
        s.use(token, action_purpose(CommandKind.FLATTEN_HALT), store)
    clock.t = exp
    with pytest.raises(Refused, match="expired"):
        s.use(token, action_purpose(CommandKind.EXIT_POSITION, "SBIN"), store)
    clock.t = exp - 1
    assert s.use(token, action_purpose(CommandKind.EXIT_POSITION, "SBIN"), store).purpose.endswith(":SBIN")


def test_key_file_is_created_0600_and_a_readable_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "status.key"
    key = local_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_key(path) == key  # kept, not replaced
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        local_key(path)
