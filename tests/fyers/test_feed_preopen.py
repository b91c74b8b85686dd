"""Before the open, silence is normal and snapshots are not trades.

An independent stand-in of FYERS saw the trader, between 08:53 and 09:15, force 41
reconnects, raise 34 "market feed is stale" ERROR alerts and log 840 "tick dropped ...
before the session" warnings: every resubscribe snapshot was taken for a trade and every
quiet minute for a dead socket. This runs the live runtime (paper fills) on the FYERS
feed over the in-process fake data socket through such a pre-open, on simulated clocks:
the trader starts at 08:53, gets each symbol's snapshot, quote updates from 09:00, a
reconnect of the SDK with its snapshots at 09:04, the call auction's trade at 09:08 and
then seven silent minutes; trading starts at 09:15.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_fyers import FakeDataSocket, FakeFyers
from fyers_harness import DAY, SYMBOLS

from tfl.calendar.nse import NseCalendar
from tfl.domain import Bias
from tfl.fyers.feed import FyersFeed
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.symbols import SymbolMap
from tfl.live.feed import FeedEvent, Tick
from tfl.live.journal import SqliteJournal
from tfl.live.paper import PaperBroker
from tfl.live.runtime import Controls, run_session
from tfl.settings import Settings
from tfl.timeutil import epoch_of_ist

S = Settings()
OPEN = epoch_of_ist(DAY, 555)
CLOSE = epoch_of_ist(DAY, 930)
START = OPEN - 22 * 60  # 08:53
TRADING_UNTIL = OPEN + 5 * 60  # then the test jumps to the close


def wait_until(cond: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class SimClock:
    def __init__(self, market: float) -> None:
        self.market = float(market)
        self.mono = 5000.0


class SteppedFeed:
    """The FYERS feed, with the market's clock moved one second per call of the trading loop
    and the scripted market delivered through the fake socket on the loop's thread."""

    def __init__(self, feed: FyersFeed, clock: SimClock, fake: FakeFyers, script: dict[int, Callable[[], None]]):
        self.feed, self.clock, self.fake, self.script = feed, clock, fake, script

    def next(self, timeout: float) -> FeedEvent | None:
        c = self.clock
        c.mono += 1.0
        c.market = CLOSE if c.market >= TRADING_UNTIL else c.market + 1.0
        self.fake.clock = c.market
        action = self.script.pop(int(c.market), None)
        if action is not None:
            action()
        return self.feed.next(0.0)

    @property
    def exhausted(self) -> bool:
        return False

    def refresh(self) -> None:
        self.feed.refresh()

    def close(self) -> None:
        self.feed.close()


def test_a_quiet_preopen_with_snapshots_raises_nothing(
    fyers_market: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeFyers(fyers_market, DAY, SYMBOLS)
    clock = SimClock(START)
    fake.clock = clock.market
    token = fake.issue_token()
    made: list[FakeDataSocket] = []
    heard_before_open: list[tuple[float, dict[str, Any]]] = []  # (monotonic, data message)
    tickers = [f"NSE:{s}-EQ" for s in SYMBOLS]
    volume = dict.fromkeys(SYMBOLS, 0)
    sent_after_open: list[Tick] = []

    def factory(**kw: Any) -> FakeDataSocket:
        inner = kw["on_message"]

        def heard(msg: Any) -> None:
            if clock.market < OPEN and isinstance(msg, dict) and "symbol" in msg:
                heard_before_open.append((clock.mono, msg))
            inner(msg)

        made.append(FakeDataSocket(fake, **(kw | {"on_message": heard})))
        return made[-1]

    def deliver(msg: dict[str, Any]) -> None:
        for sock in list(fake.data_sockets):
            sock.deliver(msg)

    rng = random.Random(1)

    market_sent: list[float] = []

    def quotes() -> None:  # bid/ask move; nothing trades
        market_sent.append(clock.market)
        for t in tickers:
            snap = fake.snapshot(t)
            assert snap is not None
            deliver(snap | {"bid_price": snap["ltp"] - 0.1, "bid_size": rng.randint(1, 900)})

    def sdk_reconnects() -> None:  # the SDK reconnected by itself: on_connect, a subscribe, its snapshots
        market_sent.append(clock.market)
        made[-1].on_connect()

    def trade(sym: str, ts: int, bump: float) -> None:
        snap = fake.snapshot(f"NSE:{sym}-EQ")
        assert snap is not None
        volume[sym] += 100
        tick = Tick(sym, ts, round(snap["ltp"] * (1 + bump), 2), float(volume[sym]), ts)
        fake._send_tick(tick)
        if ts >= OPEN:
            sent_after_open.append(tick)

    def auction() -> None:  # the pre-open call auction's trade: before the session, a real trade
        market_sent.append(clock.market)
        for sym in SYMBOLS:
            trade(sym, int(clock.market), 0.002)

    script: dict[int, Callable[[], None]] = {OPEN - 15 * 60 + 10 * k: quotes for k in range(48)}
    script[OPEN - 11 * 60 + 5] = sdk_reconnects
    script[OPEN - 7 * 60] = auction
    for k in range(TRADING_UNTIL - OPEN):
        script[OPEN + k] = lambda k=k: trade(SYMBOLS[k % len(SYMBOLS)], OPEN + k, 0.001 * (k % 3 - 1))

    alerts: list[tuple[str, str]] = []

    def feed_factory(events: Any, start_ts: int, side_of: Any) -> SteppedFeed:
        feed = FyersFeed(
            factory,
            lambda: f"{fake.client_id}:{token}",
            SymbolMap(S.fyers),
            SYMBOLS,
            CLOSE,
            log_dir=tmp_path / "sdk",
            silence_seconds=S.fyers.socket_silence_seconds,
            now=lambda: clock.market,
            monotonic=lambda: clock.mono,
            open_ts=start_ts,
            limiter=RateLimiter(S.fyers.max_per_second, S.fyers.max_per_minute),
            alert=lambda level, msg: alerts.append((level, msg)),
        )
        feed.start()
        subscribed = len(SYMBOLS) + 2  # authenticated, subscribed, a snapshot per symbol
        assert wait_until(lambda: len(heard_before_open) == len(SYMBOLS) and len(made[0].subscribed) + 2 == subscribed)
        return SteppedFeed(feed, clock, fake, script)

    journal = SqliteJournal(tmp_path / "journal.sqlite")
    paper = PaperBroker(tmp_path / "broker.sqlite")
    session = NseCalendar().session(DAY)
    assert session is not None
    controls = Controls(clock=lambda: clock.mono, alert=lambda level, msg: alerts.append((level, msg)))
    with caplog.at_level(logging.INFO):
        result = run_session(
            session,
            fyers_market,
            SYMBOLS,
            journal,
            paper,
            S,
            Bias.NO_TRADES,
            "test",
            controls,
            feed_factory=feed_factory,
            market_sim=paper,
        )
    journal.close()
    paper.close()
    messages = [r.getMessage() for r in caplog.records]

    # The pre-open really had snapshots (the first subscribe's and the SDK reconnect's), quote
    # updates, the auction's trades, and silences longer than both the watchdog's and the
    # stale check's limits.
    no_volume = [m for _, m in heard_before_open if m["vol_traded_today"] == 0]
    assert len(no_volume) >= (2 + 48) * len(SYMBOLS)  # at least two rounds of snapshots, 48 of quotes
    assert len(heard_before_open) - len(no_volume) >= len(SYMBOLS)  # and the auction's trades
    times = [START, *market_sent, OPEN]  # what the market sent, from the start to the open
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] == gaps[-1] == 7 * 60 > max(S.live.feed_stale_seconds, S.fyers.socket_silence_seconds)
    # ... and none of it was a forced reconnect, a stale alert or a dropped tick.
    assert len(made) == 1 and not any("forcing a data socket reconnect" in m for m in messages)
    assert not any("stale" in m for m in messages) and not any("stale" in m for _, m in alerts)
    assert not any("tick dropped" in m for m in messages)
    assert alerts == []
    # The auction's trades were noted once each, quietly; the session's trades made the bars.
    assert result.dropped["outside"] == len(SYMBOLS)
    assert result.ticks == len(sent_after_open) > 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("tfl.fyers")]
