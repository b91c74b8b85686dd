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
from fyers_harness import DAY, SYMBOLS
from wire_run import EXIT_TIMEOUT, WireRun, run_wire

from tfl.live.journal import SqliteJournal, to_event
from tfl.live.report import day_report, rebuild
from tfl.timeutil import epoch_of_ist

pytestmark = pytest.mark.wire


def check_session(run: WireRun, expected_rc: int = 0) -> Any:
    """The process exited with its code; flat at FYERS; each order once; every fill booked."""
    assert run.rc is not None, (
        f"the trader did not exit within {EXIT_TIMEOUT:.0f} s of the close (a thread held the exit)\n{run.output[-3000:]}"
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
    assert {t["tradeNumber"] for t in fake.trades} == state.fills_seen, "a fill was lost (or invented)"
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
