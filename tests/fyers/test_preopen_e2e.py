"""`tfl trade --world live` before and around the open, against the fake FYERS: order calls from a
non-whitelisted IP, FYERS' all-day block, and positions carried from an earlier session."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fake_fyers import FakeFyers, Scenario
from fyers_harness import SYMBOLS
from test_fyers_e2e import _session_open, trade

from tfl.cli import live_cmds
from tfl.data.market import load_market
from tfl.fyers.dayblock import BLOCKED_ALERT
from tfl.live.journal import SqliteJournal
from tfl.settings import Settings


def records(logs: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.splitlines()]


def alerts(logs: str, level: str) -> list[str]:
    """The alerts of ``level`` as the alert channel logged them (CRITICAL is written FATAL)."""
    names = {level, "FATAL"} if level == "CRITICAL" else {level}
    return [r["event"] for r in records(logs) if r["level"] in names and r["event"].startswith("ALERT: ")]


def test_a_live_session_from_a_non_whitelisted_ip_makes_no_entries_and_says_why(
    fyers_market,
    nse_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rc, fake, journal_path, logs = trade(
        fyers_market, nse_dir, tmp_path, monkeypatch, "live", Scenario(ip_not_whitelisted=True)
    )
    assert rc == 0
    assert fake.ip_refused == 1  # FYERS refused the pre-open check: the fault happened
    assert fake.place_calls == 0 and fake.orders == {}  # and not one order was sent all day
    opened = _session_open(journal_path)
    assert opened["bias"] == "NO_TRADES" and "IP" in str(opened["bias_reason"])
    critical = alerts(logs, "CRITICAL")
    assert len(critical) == 1 and "Elastic IP" in critical[0] and "FYERS API dashboard" in critical[0]


def test_fyers_day_block_is_alerted_once_and_nothing_that_cannot_succeed_is_sent(
    fyers_market,
    nse_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FYERS allows 4 requests a minute here: the trader breaches it at the open's burst, FYERS
    blocks the app for the day, and the trader must see that it is blocked (not a 429 to retry)."""
    scenario = Scenario(per_minute_limit=4, retry_after=0.05)
    done: list[tuple[int, FakeFyers, Path, str]] = []
    # A trader that keeps asking a blocked FYERS crawls through its session (each request is
    # refused and retried): the session runs in a thread so that such a regression fails the
    # test after a generous wait instead of hanging the suite. A passing run takes seconds.
    runner = threading.Thread(
        target=lambda: done.append(trade(fyers_market, nse_dir, tmp_path, monkeypatch, "live", scenario)),
        daemon=True,
    )
    runner.start()
    runner.join(timeout=SESSION_TIMEOUT)
    assert done, f"the session did not end within {SESSION_TIMEOUT} s: requests that cannot succeed stalled it"
    rc, fake, _, logs = done[0]
    assert fake.day_blocked  # FYERS blocked the app during the session: the fault happened
    assert alerts(logs, "CRITICAL").count(f"ALERT: {BLOCKED_ALERT}") == 1
    # Once blocked, what reached FYERS was the check every 15 minutes (about 20 until the close).
    assert fake.after_block <= 30
    assert rc in (0, 3)  # the run ended with its status; no exception escaped the loop


SESSION_TIMEOUT = 600.0


def carried_journal(path: Path, nse_dir: Path) -> tuple[str, int]:
    """A journal whose last session (the Friday before DAY) ended unflat: its trader died right
    after its first entry filled. Returns the symbol and the (signed) shares it holds."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "live"))
    from tfl.core.state import CoreState, apply
    from tfl.live.journal import to_event

    from live_helpers import replay

    settings = Settings()
    market = load_market(nse_dir, settings, SYMBOLS, load_universe_daily=False)
    friday = dt.date(2020, 12, 4)
    full_dir = path.parent / "friday"
    replay(full_dir, market, SYMBOLS, friday, settings, bias="LONGS")
    full = SqliteJournal(full_dir / "journal.sqlite")
    died = SqliteJournal(path)
    state = CoreState.fresh(settings)
    for rec in full.records():
        died.append(rec)
        apply(state, to_event(rec))
        if state.book.positions:
            break
    full.close()
    died.close()
    assert len(state.book.positions) == 1, "the Friday had an entry that filled"
    sym, pos = next(iter(state.book.positions.items()))
    return sym, int(pos.side) * pos.qty


def test_positions_carried_from_an_earlier_session_get_no_order_before_the_open(
    fyers_market,
    nse_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pre-open takes no stop (trigger) or market orders: a trader started before the open
    with a position in its journal that FYERS still holds must not send its stop then, but at
    the open."""
    held, shares = carried_journal(tmp_path / "j.sqlite", nse_dir)
    holder: list[FakeFyers] = []
    orig_init = FakeFyers.__init__

    def capture(self, *a, **k):  # type: ignore[no-untyped-def]
        orig_init(self, *a, **k)
        holder.append(self)

    waited: list[float] = []

    def wait(self: live_cmds.WaitBeat, seconds: float) -> None:  # the market's clock moves while TFL waits
        waited.append(seconds)
        holder[0].clock += seconds

    monkeypatch.setattr(FakeFyers, "__init__", capture)
    monkeypatch.setattr(live_cmds.WaitBeat, "__call__", wait)
    still_held = {"symbol": held, "side": 1 if shares > 0 else -1, "qty": abs(shares), "price": 100.0}
    scenario = Scenario(refuse_orders_before_open=True, external_orders=[still_held])
    _, fake, _, logs = trade(fyers_market, nse_dir, tmp_path, monkeypatch, "live", scenario)
    assert fake.preopen_refused == []  # no stop or market order reached FYERS before the open
    assert all(o.placed >= fake.open_ts for o in fake.orders.values() if o.tag)  # ours (not the seeded one)
    assert waited and fake.open_ts - 1800 + sum(waited) == fake.open_ts  # it waited from 08:45 to the open
    assert any("carried from an earlier session" in r["event"] and held in r["symbols"] for r in records(logs))
    assert any(o.symbol == held and o.type == 3 and o.tag for o in fake.orders.values())  # its stop, at the open


def test_the_hold_waits_only_for_positions_the_broker_still_holds(tmp_path: Path, nse_dir: Path) -> None:
    from tfl.live.broker import BrokerTimeoutError

    held, _ = carried_journal(tmp_path / "j.sqlite", nse_dir)
    journal = SqliteJournal(tmp_path / "j.sqlite")
    opens = 10_000.0

    def run(holds: Any) -> list[float]:
        t = [opens - 1800]
        paused: list[float] = []

        def pause(s: float) -> None:
            paused.append(s)
            t[0] += s

        live_cmds.hold_orders_until_open(journal, opens, lambda: t[0], pause, holds)
        return paused

    def unknown() -> set[str]:
        raise BrokerTimeoutError("no answer")

    try:
        assert run(set) == []  # the broker closed it: the journal is corrected, nothing is sent
        assert sum(run(lambda: {held})) == 1800  # still held: its stop waits for the open
        assert sum(run(unknown)) == 1800  # the broker cannot say: wait
    finally:
        journal.close()
