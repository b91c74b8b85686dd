"""Whole live sessions at the wire: ``tfl trade --world live`` as its own process, with the
SDK's real ``FyersDataSocket`` and ``FyersOrderSocket`` (binary HSM protocol, JSON order
updates, the SDK's threads and reconnects) pointed by the URL settings at local servers
driven by the fake exchange. Each session must end flat at the broker, with no duplicate
order, no lost fill and no secret in any log, and the process must exit with its code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fake_fyers import Scenario
from fyers_harness import DAY
from wire_run import EXIT_TIMEOUT, WireRun, run_wire

from tfl.live.journal import SqliteJournal, to_event
from tfl.live.report import day_report, rebuild
from tfl.timeutil import epoch_of_ist

pytestmark = pytest.mark.wire


def check_session(run: WireRun, expected_rc: int = 0) -> Any:
    """The process exited with its code; flat at FYERS; each order once; every fill booked."""
    assert run.rc is not None, (
        f"the trader did not exit within {EXIT_TIMEOUT:.0f} s of the close (a thread held the exit)\n"
        + run.output[-3000:]
    )
    assert run.rc == expected_rc, run.output[-3000:]
    assert run.extra["gate"].timed_out == [], "the trader did not act on every boundary in time"
    assert "data not back in time" not in run.wire.events
    fake = run.fake
    journal = SqliteJournal(run.journal)
    try:
        state = rebuild(journal)
        events = list(journal.records())
    finally:
        journal.close()
    rep = day_report([(r, to_event(r)) for r in events], DAY)
    assert rep.trades, "the session traded"
    assert fake.duplicate_tags() == {}, f"duplicate orders at FYERS: {fake.duplicate_tags()}"
    assert {o.tag for o in fake.orders.values()} == set(state.orders)
    assert fake.fill_ids() == state.fills_seen, "a fill was lost (or invented)"
    open_at_fyers = {p["symbol"]: p["netQty"] for p in fake.positions() if p["netQty"]}
    assert open_at_fyers == {}, f"positions left open at FYERS: {open_at_fyers}"
    assert not state.book.positions and not rep.open_positions
    for secret in run.secrets:
        for where, text in (("log", run.log_text), ("output", run.output), ("SDK logs", run.sdk_logs)):
            assert secret not in text, f"a secret in the {where}"
    return state


def test_a_live_session_over_the_wire_trades_and_exits(fyers_market, nse_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = run_wire(fyers_market, nse_dir, tmp_path)
    check_session(run)
    wire = run.wire
    assert wire.data_auths >= 1 and wire.token_lookups >= 1 and wire.order_connects >= 1
    assert wire.acks > 0, "the SDK acknowledged data frames (the HSM acknowledgement window)"
    # the fills reached the trader through the order socket, not only the order-book fallback
    assert any(r["event"] == "session closed" for r in run.records())


def _at(ist_minute: int, *actions: Any) -> list[tuple[float, Any]]:
    """Scenario actions at an IST minute of the session, run in order on the exchange's thread."""
    return [(float(epoch_of_ist(DAY, ist_minute)), lambda: [a() for a in actions])]


def test_the_server_drops_the_data_socket_and_the_sdk_reconnects(fyers_market, nse_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """FYERS closes the data connection at 11:00: the SDK reconnects by itself (its watchdog-free
    path: the trader's silence limit is set far beyond the SDK's 5 s wait), logs in again,
    resubscribes, and the session goes on to trade and end flat."""
    scenario = Scenario()

    def setup(fake: Any, wire: Any) -> None:
        scenario.at.extend(_at(11 * 60, wire.drop_data, wire.hold_market))

    run = run_wire(
        fyers_market, nse_dir, tmp_path, scenario, env={"TFL_FYERS__SOCKET_SILENCE_SECONDS": "600"}, setup=setup
    )
    check_session(run)
    events = run.wire.events
    assert "data dropped" in events and events.index("data back") > events.index("data dropped")
    assert run.wire.data_auths >= 2, "the SDK logged in again after the drop"
    ticks = [r["ticks"] for r in run.records() if r["event"] == "heartbeat" and "ticks" in r]
    assert ticks and ticks[-1] > 0


def test_a_silent_data_socket_is_replaced_by_the_watchdog(fyers_market, nse_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """At 11:00 the data connection stays open but carries nothing more (a half-dead TCP link):
    the SDK cannot notice; the trader's watchdog must reconnect, and the day goes on. (The
    silence limit must exceed the SDK's connect time, 2.5 s of sleeps before it subscribes.)"""
    scenario = Scenario()

    def setup(fake: Any, wire: Any) -> None:
        scenario.at.extend(_at(11 * 60, wire.mute_data, wire.hold_market))

    run = run_wire(
        fyers_market, nse_dir, tmp_path, scenario, env={"TFL_FYERS__SOCKET_SILENCE_SECONDS": "5"}, setup=setup
    )
    check_session(run)
    events = run.wire.events
    assert "data muted" in events and events.index("data back") > events.index("data muted")
    assert run.wire.data_auths >= 2, "a new data connection after the silence"


def test_duplicate_order_socket_messages_book_each_fill_once(fyers_market, nse_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every order and trade report arrives twice over the wire (as the SDK maps it): each
    fill is booked once, no order is sent twice."""
    run = run_wire(fyers_market, nse_dir, tmp_path, Scenario(duplicate_socket_events=True))
    state = check_session(run)
    assert run.wire.duplicates > 0
    journal = SqliteJournal(run.journal)
    try:
        booked = [r for r in journal.records() if r.kind == "FILL"]
    finally:
        journal.close()
    assert len(booked) == len(run.fake.trades) == len(state.fills_seen), "each fill booked once"


def test_no_token_exits_with_its_code(fyers_market, nse_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Started after the token deadline with a token FYERS refuses: exit 4 (final), promptly."""

    def setup(fake: Any, wire: Any) -> None:
        fake.clock = float(epoch_of_ist(DAY, 9 * 60 + 11))
        fake.s.token_expires_at = fake.clock - 60

    run = run_wire(fyers_market, nse_dir, tmp_path, setup=setup)
    assert run.rc == 4, run.output[-2000:]
    assert re.search(r"token", run.log_text)
    for secret in run.secrets:
        assert secret not in run.log_text and secret not in run.output


def test_a_day_that_ends_unflat_exits_3_with_both_sockets_reconnecting(
    fyers_market, nse_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The token dies at 14:50 with positions open and nobody logs in again: FYERS closes both
    sockets and refuses every reconnect, the SDK keeps retrying on its own threads, no exit
    can be sent, and the day ends unflat. The trader must still exit, with 3 (final)."""
    expiry = float(epoch_of_ist(DAY, 14 * 60 + 50))
    wait = 5.0  # live.close_wait_seconds: the runtime waits (wall clock) this long at the close for fills
    run = run_wire(
        fyers_market,
        nse_dir,
        tmp_path,
        Scenario(token_expires_at=expiry),
        exit_timeout=wait + EXIT_TIMEOUT,
        env={"TFL_LIVE__CLOSE_WAIT_SECONDS": str(wait)},
    )
    assert run.rc is not None, "the trader did not exit: a thread held it\n" + run.output[-3000:]
    assert run.rc == 3, run.output[-3000:]
    assert run.exit_after("session closed") < EXIT_TIMEOUT
    journal = SqliteJournal(run.journal)
    try:
        rep = day_report([(r, to_event(r)) for r in journal.records()], DAY)
    finally:
        journal.close()
    assert rep.open_positions, "the day ended with positions (the scenario's point)"
    assert run.wire.data_refused + run.fake.requests.count(("GET", "/api/v3/profile")) > 0
    assert any(r["level"] in ("ERROR", "FATAL") and "token" in r["event"].lower() for r in run.records())
    for secret in run.secrets:
        for text in (run.log_text, run.output, run.sdk_logs):
            assert secret not in text
