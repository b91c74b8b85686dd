"""The FYERS data feed: trades (not snapshots or quotes) make the bars, timed by the trade.

The SDK (fyers-apiv3 3.2.0, data_ws.py) calls ``on_message`` with a merged snapshot of
all of a symbol's fields whenever any field changes (bid/ask too), and once per symbol
after every (re)subscribe. These tests call the feed's callbacks with such payloads, or
run it against the in-process FakeDataSocket; all times are injected.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_fyers import FakeDataSocket, FakeFyers
from fyers_harness import DAY, SYMBOLS
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.fyers.feed import FyersFeed
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.symbols import SymbolMap
from tfl.live.bars import BarBuilder
from tfl.live.feed import Clock, Tick
from tfl.settings import Settings
from tfl.timeutil import epoch_of_ist

OPEN = epoch_of_ist(DAY, 555)
CLOSE = epoch_of_ist(DAY, 930)
SYM = "SAIL"
TICKER = f"NSE:{SYM}-EQ"
WAIT = 30.0  # generous: a condition, not a pace


class SimClock:
    """Market time (epoch seconds) and a monotonic clock, both moved by the test."""

    def __init__(self, market: float) -> None:
        self.market = float(market)
        self.mono = 1000.0

    def step(self, seconds: float) -> None:
        self.market += seconds
        self.mono += seconds


class StubSocket:
    """Stands in for the SDK object where only the callbacks matter (they are called directly)."""

    def __init__(self, **_: Any) -> None:
        self.subscribed: list[str] = []

    def connect(self) -> None:
        return None

    def subscribe(self, symbols: list[str], data_type: str = "SymbolUpdate") -> None:
        self.subscribed = list(symbols)

    def close_connection(self) -> None:
        return None


def wait_until(cond: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def bare_feed(tmp: Path, clock: SimClock, alerts: list[tuple[str, str]] | None = None, **kw: Any) -> FyersFeed:
    sink = alerts if alerts is not None else []
    return FyersFeed(
        StubSocket,
        lambda: "APP-100:token",
        SymbolMap(Settings().fyers),
        [SYM],
        CLOSE,
        log_dir=tmp,
        open_ts=OPEN,
        now=lambda: clock.market,
        monotonic=lambda: clock.mono,
        alert=lambda level, msg: sink.append((level, msg)),
        rng=random.Random(3),
        **kw,
    )


def drain(feed: FyersFeed) -> list[Tick]:
    out: list[Tick] = []
    while True:
        ev = feed.next(0.0)
        if not isinstance(ev, Tick):
            return out
        out.append(ev)


class Market:
    """One symbol's merged state as the SDK keeps it, and the messages it would send."""

    def __init__(self, clock: SimClock, price: float = 100.0, volume: int = 0) -> None:
        self.clock = clock
        self.state: dict[str, Any] = {
            "ltp": price,
            "vol_traded_today": volume,
            "last_traded_time": OPEN - 18 * 3600,  # yesterday's last trade
            "exch_feed_time": int(clock.market),
            "bid_price": price - 0.05,
            "ask_price": price + 0.05,
            "bid_size": 100,
            "ask_size": 100,
            "symbol": TICKER,
            "type": "sf",
        }

    def message(self) -> dict[str, Any]:
        self.state["exch_feed_time"] = int(self.clock.market)
        return dict(self.state)

    def trade(self, price: float, qty: int) -> dict[str, Any]:
        self.state.update(ltp=price, last_traded_time=int(self.clock.market))
        self.state["vol_traded_today"] += qty
        return self.message()

    def quote(self, bid: float, ask: float) -> dict[str, Any]:
        self.state.update(bid_price=bid, ask_price=ask, bid_size=self.state["bid_size"] + 1)
        return self.message()


# --------------------------------------------------------------------------- trades only


def test_snapshots_and_quotes_are_not_trades(tmp_path: Path) -> None:
    clock = SimClock(OPEN + 60)
    feed = bare_feed(tmp_path, clock)
    mkt = Market(clock, volume=50_000)
    feed._on_message(mkt.message())  # the snapshot after the subscribe
    clock.step(2)
    feed._on_message(mkt.quote(99.9, 100.2))  # a quote: same volume
    assert drain(feed) == []
    clock.step(3)
    feed._on_message(mkt.trade(100.1, 25))
    ticks = drain(feed)
    assert [(t.ts, t.price, t.volume) for t in ticks] == [(int(clock.market), 100.1, 50_025.0)]


def test_trades_are_timed_by_last_traded_time(tmp_path: Path) -> None:
    clock = SimClock(OPEN + 14 * 60 + 57)  # 09:29:57
    feed = bare_feed(tmp_path, clock)
    mkt = Market(clock, volume=10)
    feed._on_message(mkt.message())
    feed._on_message(mkt.trade(101.0, 5))
    clock.step(1)
    msg = mkt.trade(101.5, 5)
    clock.step(4)  # the update reaches us after the boundary, stamped with the feed's time
    msg["exch_feed_time"] = int(clock.market)
    feed._on_message(msg)
    clock.step(1)
    feed._on_message(mkt.quote(101.4, 101.6))  # a quote after the boundary: the bar is not touched
    ticks = drain(feed)
    assert [t.ts for t in ticks] == [OPEN + 897, OPEN + 898]
    bars = BarBuilder(OPEN)
    for t in ticks:
        assert bars.on_tick(t)
    done = bars.close_until(OPEN + 3600)
    assert [(b.start, b.close) for b in done] == [(OPEN, 101.5)]


def test_resubscribe_snapshot_is_a_baseline_and_the_bar_volume_stays_right(tmp_path: Path) -> None:
    clock = SimClock(OPEN + 30)
    feed = bare_feed(tmp_path, clock)
    feed.start()
    assert wait_until(lambda: feed._sock is not None)
    mkt = Market(clock, volume=1_000)
    feed._on_message(mkt.message())
    clock.step(5)
    feed._on_message(mkt.trade(100.5, 10))  # 1,010
    clock.step(5)
    mkt.trade(103.0, 40)  # traded while the socket was away: never seen as a trade
    feed._on_connect()  # the SDK reconnected and we subscribed again
    clock.step(1)
    feed._on_message(mkt.message())  # its snapshot: ltp 103.0, volume 1,050
    clock.step(5)
    feed._on_message(mkt.trade(102.0, 5))  # 1,055
    ticks = drain(feed)
    assert [(t.price, t.volume) for t in ticks] == [(100.5, 1_010.0), (102.0, 1_055.0)]
    bars = BarBuilder(OPEN)
    for t in ticks:
        bars.on_tick(t)
    (bar,) = bars.close_until(OPEN + 900)
    assert (bar.high, bar.low) == (102.0, 100.5)  # 103.0 is not in it: we never saw that trade
    assert bar.volume == 1_055.0  # the day's volume so far, the missed trade included


events = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), st.integers(0, 400), st.integers(-8, 8), st.integers(1, 300)),
        st.tuples(st.just("quote"), st.integers(0, 400), st.integers(-8, 8), st.integers(1, 8)),
        st.tuples(st.just("away"), st.integers(0, 60), st.integers(0, 4), st.integers(0, 0)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(start=st.integers(-600, 1800), script=events)
def test_bars_hold_only_traded_prices(tmp_path_factory: pytest.TempPathFactory, start: int, script: list) -> None:  # type: ignore[type-arg]
    """Arbitrary interleavings of quote updates, trades and resubscribes: every bar's open,
    high, low and close is a price that traded inside the bar's window, and the bars' volumes
    add up to the day volume of the last trade they took."""
    clock = SimClock(OPEN + start)
    feed = bare_feed(tmp_path_factory.mktemp("feed"), clock)
    feed.start()
    assert wait_until(lambda: feed._sock is not None)
    mkt = Market(clock, volume=0)
    feed._on_message(mkt.message())
    traded: list[tuple[int, float]] = []
    price = 100.0
    for kind, dt, move, size in script:
        clock.step(dt)
        if kind == "trade":
            price = min(110.0, max(90.0, round(price + 0.05 * move, 2)))
            feed._on_message(mkt.trade(price, size))
            traded.append((int(clock.market), price))
        elif kind == "quote":
            feed._on_message(mkt.quote(round(price - 0.05 * size, 2), round(price + 0.05 * (size + move % 3), 2)))
        else:  # the socket drops: trades happen unseen, then the SDK resubscribes and sends a snapshot
            for _ in range(move):
                price = min(110.0, max(90.0, round(price + 0.05, 2)))
                mkt.trade(price, 7)
                traded.append((int(clock.market), price))
            feed._on_connect()
            feed._on_message(mkt.message())
    builder = BarBuilder(OPEN)
    last_volume = 0.0
    for t in drain(feed):
        if builder.on_tick(t):
            last_volume = t.volume
    bars = builder.close_until(2**40)
    for bar in bars:
        inside = {p for ts, p in traded if bar.start <= ts < bar.start + 900}
        assert {bar.open, bar.high, bar.low, bar.close} <= inside, (bar, sorted(inside))
    assert sum(b.volume for b in bars) == last_volume


# --------------------------------------------------------------------------- odd payloads


def test_unexpected_times_and_values_are_logged_once_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SimClock(OPEN + 120)
    feed = bare_feed(tmp_path, clock)
    mkt = Market(clock, volume=100)
    feed._on_message(mkt.message())
    odd = [
        {"last_traded_time": "09:17:01"},  # a clock time, not an epoch
        {"last_traded_time": (OPEN + 121) * 1000},  # milliseconds
        {"last_traded_time": None},
        {"ltp": "101.2"},
        {"ltp": float("nan")},
    ]
    with caplog.at_level(logging.WARNING, logger="tfl.fyers.feed"):
        for _ in range(3):  # every kind three times
            for change in odd:
                clock.step(1)
                feed._on_message(mkt.trade(101.0, 1) | change)
        feed._on_message(mkt.message() | {"vol_traded_today": "12"})
        feed._on_message(["not", "a", "dict"])
        feed._on_message({"symbol": TICKER, "ltp": 100.0, "vol_traded_today": 5})  # volume went down
        assert drain(feed) == []
        feed._on_message(mkt.trade(101.5, 1))  # good trades still go through
        (good,) = drain(feed)
    assert good.price == 101.5 and good.ts == int(clock.market)
    skipped = [r for r in caplog.records if "payload skipped" in r.getMessage()]
    kinds = [r.__dict__["fields"]["kind"] for r in skipped]
    # last_traded_time as str, int (ms), None; ltp as str, float (NaN); volume as str; volume down: each once
    assert len(kinds) == len(set(kinds)) == 7, kinds
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --------------------------------------------------------------------------- the token


SDK_REFUSALS = [
    {"type": "cn", "code": -99, "message": "Token is expired", "s": "error"},  # access_token_to_hsmtoken
    {"type": "cn", "code": -300, "message": "Please provide valid token", "s": "error"},  # same, unreadable
    {"type": "cn", "code": 11001, "message": "Authentication failed", "s": "error"},  # __auth_resp
    {"code": -300, "message": "Could not authenticate the user", "s": "error", "type": "sub"},  # symbol-token REST
]


@pytest.mark.parametrize("payload", SDK_REFUSALS)
def test_a_refused_token_is_one_clear_alert(tmp_path: Path, payload: dict[str, Any]) -> None:
    clock = SimClock(OPEN + 60)
    alerts: list[tuple[str, str]] = []
    feed = bare_feed(tmp_path, clock, alerts)
    for _ in range(4):
        feed._on_error(dict(payload))
        feed.next(0.0)
    assert len(alerts) == 1
    level, text = alerts[0]
    assert level == "ERROR" and "refuses the access token" in text and "tfl auth login" in text


def test_other_socket_errors_are_not_token_alerts(tmp_path: Path) -> None:
    alerts: list[tuple[str, str]] = []
    feed = bare_feed(tmp_path, SimClock(OPEN + 60), alerts)
    feed._on_error({"code": -300, "message": "Please provide a valid symbol", "s": "error", "type": "sub"})
    feed._on_error("Connection to remote host was lost.")
    feed.next(0.0)
    assert alerts == []


def test_a_data_socket_that_keeps_refusing_the_token_alerts_once(
    fyers_market: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeFyers(fyers_market, DAY, SYMBOLS)
    clock = SimClock(OPEN - 1200)
    fake.clock = clock.market
    token = fake.issue_token(exp=OPEN - 3600)  # expired before the trader started
    made: list[FakeDataSocket] = []
    alerts: list[tuple[str, str]] = []

    def factory(**kw: Any) -> FakeDataSocket:
        made.append(FakeDataSocket(fake, **kw))
        return made[-1]

    feed = FyersFeed(
        factory,
        lambda: f"{fake.client_id}:{token}",
        SymbolMap(Settings().fyers),
        SYMBOLS,
        CLOSE,
        log_dir=tmp_path,
        open_ts=OPEN,
        now=lambda: clock.market,
        monotonic=lambda: clock.mono,
        alert=lambda level, msg: alerts.append((level, msg)),
        silence_seconds=20.0,
        rng=random.Random(5),
    )
    with caplog.at_level(logging.INFO):
        feed.start()
        assert wait_until(lambda: len(feed.errors) == 1)
        clock.step(1200 + 21)  # the open, and 21 s without a message
        for _ in range(3):  # reconnect after reconnect, each refused
            assert isinstance(feed.next(0.0), Clock)
            assert wait_until(lambda: not feed.reconnecting and len(feed.errors) == len(made))
            clock.step(61)  # past any backoff
        feed.next(0.0)
        assert wait_until(lambda: not feed.reconnecting and len(feed.errors) == len(made))
        feed.close()
    assert len(made) >= 4
    assert len(feed.errors) >= 4 and all("Token is expired" in e for e in feed.errors[:4])
    assert [lvl for lvl, _ in alerts] == ["ERROR"]
    assert "tfl auth login" in alerts[0][1]
    assert token not in caplog.text and all(token not in m for _, m in alerts)


# --------------------------------------------------------------------------- reconnects


def fake_feed(
    fake: FakeFyers, clock: SimClock, tmp: Path, made: list[FakeDataSocket], kind: type = FakeDataSocket, **kw: Any
) -> FyersFeed:
    token = fake.issue_token()

    def factory(**k: Any) -> FakeDataSocket:
        sock = kind(fake, **k)
        heard = [0]

        def counting(msg: Any) -> None:
            k["on_message"](msg)
            heard[0] += 1

        sock.on_message = counting
        sock.heard = heard  # type: ignore[attr-defined]
        made.append(sock)
        return sock

    options: dict[str, Any] = {"open_ts": OPEN, "rng": random.Random(11), "silence_seconds": 20.0} | kw
    return FyersFeed(
        factory,
        lambda: f"{fake.client_id}:{token}",
        SymbolMap(Settings().fyers),
        SYMBOLS,
        CLOSE,
        log_dir=tmp,
        now=lambda: clock.market,
        monotonic=lambda: clock.mono,
        **options,
    )


def ready(sock: FakeDataSocket) -> bool:
    """The socket is authenticated, subscribed, and the feed has taken every symbol's snapshot."""
    heard: list[int] = getattr(sock, "heard", [0])
    return heard[0] >= 2 + len(SYMBOLS)


def test_a_reconnect_never_blocks_the_trading_thread(fyers_market: Any, tmp_path: Path) -> None:
    fake = FakeFyers(fyers_market, DAY, SYMBOLS)
    clock = SimClock(OPEN + 600)
    fake.clock = clock.market
    made: list[FakeDataSocket] = []
    entered, release = threading.Event(), threading.Event()

    class SlowCloseSocket(FakeDataSocket):
        """The SDK's close_connection joins its threads (about 7.5 s): here it waits for the test."""

        def close_connection(self) -> None:
            entered.set()
            release.wait(WAIT)
            super().close_connection()

    feed = fake_feed(fake, clock, tmp_path, made, SlowCloseSocket)
    feed.start()
    assert wait_until(lambda: ready(made[0]))
    drain(feed)  # nothing to give (the snapshots are not trades)
    clock.step(25)  # silent for longer than silence_seconds
    got: list[Any] = []
    loop = threading.Thread(target=lambda: got.extend(feed.next(0.0) for _ in range(5)), daemon=True)
    loop.start()
    try:
        assert entered.wait(WAIT), "the watchdog did not reconnect"
        loop.join(WAIT)
        assert not loop.is_alive(), "the trading loop waited for close_connection()"
        assert len(got) == 5 and all(isinstance(ev, Clock) for ev in got)
        assert len(made) == 1  # the old socket is still closing
    finally:
        release.set()
    assert wait_until(lambda: len(made) == 2 and ready(made[1]))
    assert feed.reconnects == 1


def test_no_forced_reconnect_before_the_open(fyers_market: Any, tmp_path: Path) -> None:
    fake = FakeFyers(fyers_market, DAY, SYMBOLS)
    clock = SimClock(OPEN - 22 * 60)  # 08:53
    fake.clock = clock.market
    made: list[FakeDataSocket] = []
    feed = fake_feed(fake, clock, tmp_path, made)
    feed.start()
    assert wait_until(lambda: ready(made[0]))
    drain(feed)
    for _ in range(20 * 60 // 5):  # twenty silent minutes before the open
        clock.step(5)
        drain(feed)
    assert feed.reconnects == 0 and len(made) == 1
    made[0].drop()  # closed for good at 09:13
    assert isinstance(feed.next(0.0), Clock)
    assert feed.reconnects == 0, "reopened more than a minute before the open"
    clock.step(70)  # 09:14:10: a closed socket is reopened in time for the open
    feed.next(0.0)
    assert wait_until(lambda: not feed.reconnecting and len(made) == 2 and ready(made[1]))
    for _ in range(50 + 19):  # to the open, and 19 s into the session: silence counts from the open
        clock.step(1)
        feed.next(0.0)
    assert feed.reconnects == 1 and len(made) == 2
    clock.step(1.5)
    feed.next(0.0)
    assert wait_until(lambda: len(made) == 3), "no reconnect after 21 s of silence in market hours"


def test_reconnects_back_off_with_jitter(fyers_market: Any, tmp_path: Path) -> None:
    fake = FakeFyers(fyers_market, DAY, SYMBOLS)
    clock = SimClock(OPEN + 3600)
    fake.clock = clock.market
    made: list[FakeDataSocket] = []
    feed = fake_feed(fake, clock, tmp_path, made, rng=random.Random(2), silence_seconds=0.5)
    feed.start()
    assert wait_until(lambda: ready(made[0]))
    attempts: list[float] = []  # the monotonic time of each forced reconnect
    while len(attempts) < 5:  # a socket that answers the subscribe and then says nothing
        clock.step(0.25)
        before = feed.reconnects
        feed.next(0.0)
        if feed.reconnects > before:
            attempts.append(clock.mono)
            assert wait_until(lambda: not feed.reconnecting and len(made) == len(attempts) + 1 and ready(made[-1]))
    rng = random.Random(2)
    delays = [min(60.0, 2.0**n) * (0.5 + rng.random()) for n in range(1, 5)]
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for gap, delay in zip(gaps, delays, strict=True):
        assert delay <= gap <= delay + 0.5  # the jittered backoff, seen at the test's quarter-second steps


def test_every_subscribe_goes_through_the_rate_limiter(fyers_market: Any, tmp_path: Path) -> None:
    fake = FakeFyers(fyers_market, DAY, SYMBOLS)
    clock = SimClock(OPEN + 3600)
    fake.clock = clock.market
    lim_now = [0.0]
    waits: list[float] = []

    def lim_sleep(s: float) -> None:
        waits.append(s)
        lim_now[0] += s

    limiter = RateLimiter(1, 200, clock=lambda: lim_now[0], sleep=lim_sleep)
    limiter.acquire()  # another FYERS call this second
    made: list[FakeDataSocket] = []
    feed = fake_feed(fake, clock, tmp_path, made, limiter=limiter)
    feed.start()
    assert wait_until(lambda: ready(made[0]))
    assert waits == [1.0]  # the subscribe waited for its slot
    made[0].connect()  # the SDK reconnected by itself and calls on_connect again
    assert waits == [1.0, 1.0]
    clock.step(21)
    feed.next(0.0)  # a forced reconnect
    assert wait_until(lambda: len(made) == 2 and ready(made[1]))
    assert waits == [1.0, 1.0, 1.0]
