"""The FYERS adapter's order and trade events against the fake FYERS: fill identity, the
book poller off the trading thread, orders adopted after a restart, unreadable rows.

The trader here is the real one (journal, reducer, reconciliation) on an in-memory journal,
driving the FYERS adapter over HTTP; the fake's exchange fills only when a test says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_fyers import FakeFyers, FakeOrderSocket
from fyers_harness import DAY, SYMBOLS
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.core.decide import SessionPlan
from tfl.core.events import Allocated, Filled, OrderPlaced
from tfl.core.orders import Leg, OrderRequest, OrderType, client_id
from tfl.domain import Bias, Side
from tfl.fyers.book_poller import BookPoller
from tfl.fyers.broker import FyersBroker
from tfl.fyers.payloads import PayloadError, read_fill, read_order, read_position
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.rest import FyersRest
from tfl.fyers.sockets import OrderStream
from tfl.fyers.symbols import SymbolMap
from tfl.live.broker import BrokerTimeoutError, Fill, OrderUpdate
from tfl.live.execution import Execution
from tfl.live.journal import Journal, MemoryJournal
from tfl.live.reconcile import reconcile
from tfl.live.trader import Trader
from tfl.secrets import FileSecretStore
from tfl.settings import FyersSettings, Settings
from tfl.timeutil import epoch_of_ist, slot_of

S = Settings()
OPEN = epoch_of_ist(DAY, 9 * 60 + 15)
PLAN = SessionPlan(DAY, OPEN, epoch_of_ist(DAY, 15 * 60 + 15), epoch_of_ist(DAY, 15 * 60 + 15))
WAIT = 30.0  # generous: only a broken build ever waits this long


def at(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return epoch_of_ist(DAY, h * 60 + m)


def wait_for(cond: Callable[[], bool], what: str, step: Callable[[], None] = lambda: None) -> None:
    """Wait on a condition (never on the clock deciding what a test sees)."""
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        step()
        time.sleep(0.01)


@pytest.fixture
def fake(fyers_market: Any) -> Iterator[FakeFyers]:
    f = FakeFyers(fyers_market, DAY, SYMBOLS).start()
    f.clock = float(at("10:00"))
    yield f
    f.books_open.set()
    f.stop()


@pytest.fixture
def rest(fake: FakeFyers, tmp_path: Path) -> FyersRest:
    store = FileSecretStore(tmp_path / "secrets.json", environ={})
    store.put("access_token", fake.issue_token())
    return FyersRest(
        fake.api_url,
        fake.data_url,
        fake.client_id,
        lambda: store.get("access_token"),
        RateLimiter(500, 30_000),
        timeout=60.0,  # a slow FYERS is slow: the trading thread must not wait for it
        rate_limit_backoff=0.1,
    )


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def stream_for(fake: FakeFyers, tmp_path: Path, clock: Clock, *, up: bool = True) -> OrderStream:
    """An order socket at the fake; ``up=False``: it refuses the token and stays silent."""
    token = fake.issue_token() if up else "expired"
    stream = OrderStream(
        lambda **kw: FakeOrderSocket(fake, **kw), lambda: f"{fake.client_id}:{token}", tmp_path / "sdk", clock=clock
    )
    stream.start()
    if up:
        wait_for(lambda: bool(fake.order_sockets and fake.order_sockets[-1].topics), "the order socket")
    else:
        wait_for(lambda: bool(stream.errors), "the order socket's refusal")
    return stream


def broker_for(rest: FyersRest, **kw: Any) -> FyersBroker:
    return FyersBroker(rest, SymbolMap(FyersSettings()), **kw)


def fill_at_fake(fake: FakeFyers, broker_id: str, qty: int, price: float, ts: int) -> dict[str, Any]:
    with fake.lock:
        fake._record_trade(fake.orders[broker_id], qty, price, ts)
        return dict(fake.trades[-1])


def new_trader(broker: FyersBroker, journal: Journal | None = None, alerts: list[str] | None = None) -> Trader:
    trader = Trader(S, journal or MemoryJournal(), Execution(broker, OPEN), PLAN)  # type: ignore[arg-type]
    if alerts is not None:
        trader.alert = lambda level, msg: alerts.append(f"{level} {msg}")
    trader.load()
    trader.open_session(OPEN, Bias.LONGS, "test", {"SAIL": 100.0, "BEL": 100.0})
    trader.gate.reconciled = trader.gate.feed_fresh = True
    return trader


def restarted(old: Trader, broker: FyersBroker, alerts: list[str] | None = None) -> Trader:
    """A new process on the same journal, with a new adapter, reconciled at start-up."""
    again = Trader(S, old.journal, Execution(broker, OPEN), PLAN)  # type: ignore[arg-type]
    if alerts is not None:
        again.alert = lambda level, msg: alerts.append(f"{level} {msg}")
    again.load()
    again.gate.feed_fresh = True
    reconcile(again, at("10:30"))
    return again


def enter(trader: Trader, symbol: str, qty: int = 100, trigger: float = 101.0, stop: float = 99.0) -> str:
    """Decide (as the core would) a long entry on ``symbol`` for the 10:00 bar."""
    s_ts = at("09:45")
    cid = client_id(DAY, symbol, s_ts, Leg.ENTRY)
    risk = (trigger - stop) * qty
    trader.decide(
        [
            Allocated(cid, symbol, Side.LONG, trigger, stop, qty, trigger, risk, 80.0, s_ts, s_ts + 900, None),
            OrderPlaced(cid, Leg.ENTRY, symbol, 1, OrderType.STOP, qty, trigger, None, None, s_ts),
        ],
        s_ts + 900,
    )
    return cid


def feed(trader: Trader, ts: int) -> list[Any]:
    ex = trader.execution
    events = ex.poll()
    trader.facts(ex.facts(events), ts)
    return events


def our_order(fake: FakeFyers, tag: str) -> str:
    return next(o.id for o in fake.orders.values() if o.tag == tag)


# ---------------------------------------------------------------------- fill identity


def test_fills_with_one_trade_number_on_two_symbols_are_two_fills(
    fake: FakeFyers, rest: FyersRest, tmp_path: Path
) -> None:
    """The exchange numbers trades per symbol: SAIL's first trade and BEL's first trade carry
    the same number. Both fills reach the trader, from the socket and from the books."""
    clock = Clock()
    stream = stream_for(fake, tmp_path, clock)
    br = broker_for(rest, stream=stream, clock=clock, fallback_seconds=5.0)
    a = br.place(OrderRequest("2012070945ESAIL0000", "SAIL", 1, OrderType.STOP, 10, trigger=55.0), 0)
    b = br.place(OrderRequest("2012070945EBEL00000", "BEL", 1, OrderType.STOP, 20, trigger=90.0), 0)
    ta = fill_at_fake(fake, a.broker_id, 10, 55.0, at("10:01"))
    tb = fill_at_fake(fake, b.broker_id, 20, 90.0, at("10:02"))
    assert ta["tradeNumber"] == tb["tradeNumber"], "the fake numbered both trades alike"
    fills = [e for e in br.poll() if isinstance(e, Fill)]
    assert sorted((f.tag, f.qty) for f in fills) == [("2012070945EBEL00000", 20), ("2012070945ESAIL0000", 10)]
    assert len({f.fill_id for f in fills}) == 2
    # The books say the same: two fills, and the socket's copies are not reported again.
    assert sorted(f.fill_id for f in br.fills()) == sorted(f.fill_id for f in fills)
    stream.close()
    br.close()


def test_a_restart_on_an_old_journal_books_the_lost_fill_and_not_the_booked_one_again(
    fake: FakeFyers, rest: FyersRest
) -> None:
    """A journal of the old code: SAIL's fill booked under its bare trade number, BEL's fill
    (same number) lost as a "duplicate". The restarted trader books BEL's fill, and never
    SAIL's again (no over-fill, no stray shares)."""
    poller = BookPoller(rest, threaded=False)
    trader = new_trader(broker_for(rest, poller=poller))
    sail, bel = enter(trader, "SAIL"), enter(trader, "BEL")
    ts = at("10:05")
    trade = fill_at_fake(fake, our_order(fake, sail), 100, 101.0, ts)
    assert fill_at_fake(fake, our_order(fake, bel), 100, 101.0, ts)["tradeNumber"] == trade["tradeNumber"]
    # What the old code journalled: the bare trade number, once (BEL's fill was dropped).
    old_id = trade["tradeNumber"]
    trader.facts([Filled(old_id, sail, 100, 101.0, ts, slot_of(ts, OPEN), "SAIL", 1)], ts)
    assert set(trader.state.book.positions) == {"SAIL"}

    again = restarted(trader, broker_for(rest, poller=BookPoller(rest, threaded=False)))
    book = again.state.book.positions
    assert {s: p.qty for s, p in book.items()} == {"SAIL": 100, "BEL": 100}
    assert again.state.orders[sail].filled == 100 and again.state.orders[bel].filled == 100
    assert not again.state.anomalies and not again.state.book.stray
    assert not again.state.reduce_only
    # And a further report of SAIL's fill under its new id is a repeat, not a new fill.
    new_id = next(f.fill_id for f in again.execution.broker_fills() if f.tag == sail)
    again.facts([Filled(new_id, sail, 100, 101.0, ts, slot_of(ts, OPEN), "SAIL", 1)], ts)
    assert again.state.book.positions["SAIL"].qty == 100 and not again.state.anomalies


def test_an_over_fill_is_recorded_and_alerted_once_whichever_path_reports_it(
    fake: FakeFyers, rest: FyersRest, tmp_path: Path
) -> None:
    """FYERS reports 105 filled for an entry of 100: the order books 100, the 5 are stray
    shares, one OVERFILL anomaly and one CRITICAL alert, although the same trade arrives on
    the socket, again in the trade book, and once more after a restart."""
    clock = Clock()
    alerts: list[str] = []
    stream = stream_for(fake, tmp_path, clock)
    poller = BookPoller(rest, threaded=False)
    broker = broker_for(rest, stream=stream, clock=clock, fallback_seconds=5.0, poller=poller)
    trader = new_trader(broker, alerts=alerts)
    cid = enter(trader, "SAIL")
    ts = at("10:05")
    fill_at_fake(fake, our_order(fake, cid), 105, 101.0, ts)
    assert [type(e).__name__ for e in feed(trader, ts)].count("Fill") == 1  # the socket's report
    poller.cycle()  # the trade book says it again
    feed(trader, ts + 1)
    again = restarted(trader, broker_for(rest, poller=BookPoller(rest, threaded=False)), alerts)
    for state in (trader.state, again.state):
        assert [a.kind.value for a in state.anomalies] == ["OVERFILL"]
        assert state.orders[cid].filled == 100 and state.book.positions["SAIL"].qty == 100
        assert state.book.stray["SAIL"][0] == 5
    assert len([m for m in alerts if m.startswith("CRITICAL") and "over-fill" in m]) == 1
    stream.close()
    broker.close()


# ---------------------------------------------------------------------- the book poller


def test_a_slow_fyers_never_stalls_poll(fake: FakeFyers, rest: FyersRest) -> None:
    """The order socket is silent with an order working: the books are read on the poller's
    thread. While FYERS sits on that read, poll() returns at once, and the fill comes with a
    later poll() once FYERS answers."""
    clock = Clock()
    br = broker_for(rest, clock=clock, fallback_seconds=5.0)
    o = br.place(OrderRequest("2012070945ESAIL0000", "SAIL", 1, OrderType.STOP, 10, trigger=55.0), 0)
    fill_at_fake(fake, o.broker_id, 10, 55.0, at("10:01"))
    fake.books_open.clear()  # FYERS stops answering book reads
    clock.t += 5.0
    done = threading.Event()
    first: list[Any] = []

    def trading_thread() -> None:
        first.extend(br.poll())
        first.extend(br.poll())
        done.set()

    threading.Thread(target=trading_thread, daemon=True).start()
    assert done.wait(WAIT), "poll() waited for FYERS"
    assert fake.book_read_held.wait(WAIT), "the book read reached FYERS"
    assert first == [] and not fake.books_open.is_set()  # it returned while FYERS held the read
    fake.books_open.set()
    got: list[Any] = []
    wait_for(lambda: any(isinstance(e, Fill) for e in got), "the fill", lambda: got.extend(br.poll()))
    assert [(type(e).__name__, e.tag) for e in got] == [
        ("Fill", "2012070945ESAIL0000"),
        ("OrderUpdate", "2012070945ESAIL0000"),
    ]
    br.close()


def test_book_polling_keeps_to_the_fallback_interval_and_logs_failures(
    fake: FakeFyers, rest: FyersRest, caplog: pytest.LogCaptureFixture
) -> None:
    """One read per interval however often poll() runs; a failed read (the token refused) is
    logged and reported to the auth callback on the trading thread, never raised."""
    clock = Clock()
    poller = BookPoller(rest, threaded=False)
    refused: list[str] = []
    br = broker_for(rest, clock=clock, fallback_seconds=5.0, poller=poller, on_auth_error=refused.append)
    br.place(OrderRequest("2012070945ESAIL0000", "SAIL", 1, OrderType.STOP, 10, trigger=55.0), 0)
    for _ in range(3):
        assert br.poll() == []
    assert not poller.requested  # not before the interval
    clock.t += 5.0
    for _ in range(3):
        br.poll()
    assert poller.requested
    poller.cycle()
    assert poller.cycles == 1
    fake.tokens.clear()  # FYERS refuses the token from now on
    clock.t += 5.0
    br.poll()
    poller.cycle()
    with caplog.at_level(logging.WARNING, logger="tfl.fyers.broker"):
        assert br.poll() == []
    assert refused and any("orderbook poll failed" in r.getMessage() for r in caplog.records)


class CountingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(500, 30_000)
        self.granted = 0

    def acquire(self) -> None:
        super().acquire()
        self.granted += 1


def test_the_poller_reads_through_the_process_rate_limiter(fake: FakeFyers, rest: FyersRest) -> None:
    """The poller's reads count against the one limiter every FYERS call shares."""
    limiter = CountingLimiter()
    rest.limiter = limiter
    clock = Clock()
    br = broker_for(rest, clock=clock, fallback_seconds=5.0)
    br.place(OrderRequest("2012070945ESAIL0000", "SAIL", 1, OrderType.STOP, 10, trigger=55.0), 0)
    before = limiter.granted
    clock.t += 5.0
    br.poll()
    wait_for(lambda: br.poller.cycles == 1 and limiter.granted >= before + 2, "one read of both books")
    # The fake notes a request as it answers it, which may come a moment after the grant.
    wait_for(
        lambda: ("GET", "/api/v3/orders") in fake.requests and ("GET", "/api/v3/tradebook") in fake.requests,
        "both books read at FYERS",
    )
    br.close()


def test_close_stops_the_poller_thread(rest: FyersRest) -> None:
    br = broker_for(rest)
    assert br.poller.alive
    br.close()
    assert not br.poller.alive
    br.poller.request()  # asking after the close is harmless
    assert br.poll() == []


# ---------------------------------------------------------------------- restarts


def test_a_restarted_trader_watches_the_stop_its_predecessor_placed(
    fake: FakeFyers, rest: FyersRest, tmp_path: Path
) -> None:
    """The first process placed a protective stop and died. The restarted one finds it in the
    order book (by our tag) while its order socket is down; the stop fills at FYERS, and the
    fill is booked after one fallback interval, from the books."""
    trader = new_trader(broker_for(rest, poller=BookPoller(rest, threaded=False)))
    cid = enter(trader, "SAIL")
    ts = at("10:05")
    fill_at_fake(fake, our_order(fake, cid), 100, 101.0, ts)
    ex = trader.execution
    trader.facts(ex.facts(list(ex.broker_fills())), ts)  # the entry's fill: the stop goes out
    stop_tag = trader.state.legs["SAIL"][Leg.STOP]
    stop_id = our_order(fake, stop_tag)
    assert fake.orders[stop_id].status == 6, "the stop rests at FYERS"

    clock = Clock()
    stream = stream_for(fake, tmp_path, clock, up=False)  # the order socket refuses us
    broker = broker_for(rest, stream=stream, clock=clock, fallback_seconds=5.0)
    again = restarted(trader, broker)
    fill_at_fake(fake, stop_id, 100, 99.0, at("10:40"))
    clock.t += 5.0  # one fallback interval of silence
    wait_for(lambda: "SAIL" not in again.state.book.positions, "the stop's fill", lambda: feed(again, at("10:41")))
    assert again.state.orders[stop_tag].filled == 100 and stop_tag not in broker.working_tags
    assert [t.symbol for t in again.state.book.trades] == ["SAIL"]
    stream.close()
    broker.close()


# ---------------------------------------------------------------------- unreadable rows

BAD_TRADES: list[Any] = [
    {"tradeNumber": "1", "orderNumber": "9", "tradedQty": 5, "tradePrice": 10.0, "side": 1,
     "symbol": "NSE:SAIL-EQ", "orderDateTime": "2020/12/07 10:00", "orderTag": "1:2012070945ESAIL0000"},
    {"orderNumber": "9", "tradedQty": 5, "tradePrice": 10.0, "side": 1, "symbol": "NSE:SAIL-EQ",
     "orderDateTime": "07-Dec-2020 10:00:00", "orderTag": "1:2012070945ESAIL0000"},
    {"tradeNumber": "2", "orderNumber": "9", "tradedQty": "five", "tradePrice": 10.0, "side": 1,
     "symbol": "NSE:SAIL-EQ", "orderDateTime": "07-Dec-2020 10:00:00", "orderTag": "1:2012070945ESAIL0000"},
]  # fmt: skip
BAD_ORDERS: list[Any] = [
    {"id": "77", "status": 9, "qty": 5, "side": 1, "symbol": "NSE:SAIL-EQ", "orderTag": "1:2012070945EBEL00000"},
    {"id": "78", "status": 6, "qty": "x", "side": 1, "symbol": "NSE:SAIL-EQ", "orderTag": "1:2012070945EDLF00000"},
    {"status": 1, "qty": 5, "side": 1, "symbol": "NSE:SAIL-EQ", "orderTag": "1:2012070945EGAIL0000"},
]  # fmt: skip
BAD_POSITIONS: list[Any] = [{"symbol": "NSE:SAIL-EQ", "netQty": "ten"}]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        str(getattr(r, "fields", {}).get("kind"))
        for r in caplog.records
        if r.levelno == logging.WARNING and "cannot be read" in r.getMessage()
    ]


def test_unreadable_rows_in_the_books_are_logged_once_and_skipped(
    fake: FakeFyers, rest: FyersRest, caplog: pytest.LogCaptureFixture
) -> None:
    poller = BookPoller(rest, threaded=False)
    br = broker_for(rest, fallback_seconds=0.0, poller=poller)
    o = br.place(OrderRequest("2012070945ESAIL0000", "SAIL", 1, OrderType.STOP, 10, trigger=55.0), 0)
    fill_at_fake(fake, o.broker_id, 10, 55.0, at("10:01"))
    fake.odd_rows["trades"].extend(BAD_TRADES)
    fake.odd_rows["orders"].extend(BAD_ORDERS)
    with caplog.at_level(logging.WARNING, logger="tfl.fyers.broker"):
        for _ in range(2):
            assert [f.tag for f in br.fills()] == ["2012070945ESAIL0000"]
            assert [x.tag for x in br.orders()] == ["2012070945ESAIL0000"]
            br.poll()
            poller.cycle()
            events = br.poll()
            assert all(e.tag == "2012070945ESAIL0000" for e in events)
        with pytest.raises(BrokerTimeoutError):  # our tag's row unreadable: no answer, never "absent"
            br.order_by_tag("2012070945EBEL00000")
        fake.odd_rows["positions"].extend(BAD_POSITIONS)
        with pytest.raises(BrokerTimeoutError):  # a count we cannot read is no count
            br.positions()
    kinds = warnings_of(caplog)
    assert sorted(kinds) == sorted(set(kinds))  # once per kind
    assert {"trade:time", "trade:missing", "trade:number", "order:status", "order:number", "order:missing"} <= set(
        kinds
    ) and "position:number" in kinds
    assert Execution(br, OPEN).holds("SAIL") is None  # the trader reads it as "cannot ask"


def test_unreadable_socket_messages_are_logged_once_and_skipped(
    fake: FakeFyers, rest: FyersRest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    stream = stream_for(fake, tmp_path, clock)
    br = broker_for(rest, stream=stream, clock=clock, fallback_seconds=5.0)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            for row in BAD_TRADES:
                fake.send_raw("trades", {"s": "ok", "trades": row})
            for row in BAD_ORDERS:
                fake.send_raw("orders", {"s": "ok", "orders": row})
            fake.send_raw("positions", {"s": "ok", "positions": BAD_POSITIONS[0]})
            fake.send_raw("trades", None)  # what the SDK hands over when its own mapping failed
            assert br.poll() == []
    kinds = warnings_of(caplog)
    assert sorted(kinds) == sorted(set(kinds))
    assert {"trade:time", "trade:missing", "trade:number", "order:status", "order:number", "order:missing"} <= set(
        kinds
    )
    assert stream.unreadable == 2
    assert len([r for r in caplog.records if "without a readable body" in r.getMessage()]) == 1
    br.close()


# ---------------------------------------------------------------------- status keys


def test_status_reports_are_told_apart_by_order_id(fake: FakeFyers, rest: FyersRest, tmp_path: Path) -> None:
    """Two FYERS orders under one tag (an ambiguous placement sent twice by someone) each end:
    both ends are reported, each with its own order id; a repeat of either is not."""
    clock = Clock()
    stream = stream_for(fake, tmp_path, clock)
    br = broker_for(rest, stream=stream, clock=clock, fallback_seconds=5.0)
    tag = "2012070945ESAIL0000"
    base = {"status": 1, "qty": 10, "side": 1, "symbol": "NSE:SAIL-EQ", "orderTag": f"1:{tag}", "filledQty": 0}
    for oid in ("26110000000091", "26110000000092", "26110000000091"):
        fake.send_raw("orders", {"s": "ok", "orders": dict(base, id=oid)})
    updates = [e for e in br.poll() if isinstance(e, OrderUpdate)]
    assert [(u.tag, u.broker_id, u.status) for u in updates] == [
        (tag, "26110000000091", "CANCELLED"),
        (tag, "26110000000092", "CANCELLED"),
    ]
    br.close()


def test_tag_format_is_recognised() -> None:
    from tfl.core.orders import is_client_id

    assert is_client_id(client_id(DAY, "M&M", at("09:45"), Leg.STOP, 3))
    assert is_client_id(client_id(dt.date(2027, 1, 4), "A", at("09:30"), Leg.ENTRY))
    assert not is_client_id("MANUAL1") and not is_client_id("Untagged") and not is_client_id("")


# ---------------------------------------------------------------------- a whole session


def test_a_live_session_with_repeating_trade_numbers_loses_no_fill(fyers_market: Any, tmp_path: Path) -> None:
    """A whole live session at the fake, whose trade numbers repeat across symbols: every
    share FYERS filled for our orders is booked to its own order, and the book ends flat."""
    from fyers_harness import run_live, start_fake

    fake = start_fake(fyers_market)
    try:
        run = run_live(tmp_path / "run", fyers_market, fake)
    finally:
        fake.stop()
    ours = [o for o in fake.orders.values() if o.tag in run.state.orders]
    numbers: dict[str, set[str]] = {}
    for t in fake.trades:
        numbers.setdefault(t["tradeNumber"], set()).add(t["symbol"])
    assert any(len(syms) > 1 for syms in numbers.values()), "trade numbers repeated across symbols"
    assert ours and all(run.state.orders[o.tag].filled == min(o.filled, o.qty) for o in ours), "a fill was lost"
    assert run.result.flat and not run.state.book.positions and not run.state.anomalies
    assert {p["symbol"]: p["netQty"] for p in fake.positions() if p["netQty"]} == {}


# ---------------------------------------------------------------------- properties


class ScriptedStream:
    """The order socket's queue as the adapter reads it (drain, silence), fed by a test."""

    def __init__(self, messages: list[tuple[str, Any]]) -> None:
        self.messages = messages

    def drain(self) -> list[tuple[str, Any]]:
        out, self.messages = self.messages, []
        return out

    def silent_for(self) -> float:
        return 0.0

    def close(self) -> None:
        return None


ROW_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
)
TRADE_KEYS = ["tradeNumber", "orderNumber", "tradedQty", "tradePrice", "side", "symbol", "orderDateTime", "orderTag"]
ORDER_KEYS = ["id", "status", "qty", "filledQty", "side", "symbol", "type", "stopPrice", "limitPrice", "orderTag"]


@settings(max_examples=200, deadline=None)
@given(
    trades=st.lists(st.dictionaries(st.sampled_from(TRADE_KEYS), ROW_VALUES), max_size=6),
    orders=st.lists(st.dictionaries(st.sampled_from(ORDER_KEYS), ROW_VALUES), max_size=6),
)
def test_any_row_is_read_or_skipped_never_raised(trades: list[Any], orders: list[Any]) -> None:
    symbols = SymbolMap(FyersSettings())
    for row in [*trades, *orders, None, [], "x"]:
        for reader in (read_fill, read_order, read_position):
            with contextlib.suppress(PayloadError):
                reader(row, symbols)
    msgs = [("trades", t) for t in trades] + [("orders", o) for o in orders] + [("positions", {"netQty": "x"})]
    br = FyersBroker(
        None,  # type: ignore[arg-type]  # never called: the stream is not silent, nothing is working
        symbols,
        stream=ScriptedStream(msgs),  # type: ignore[arg-type]
        poller=_IdlePoller(),  # type: ignore[arg-type]
    )
    br.poll()  # never raises


class _IdlePoller:
    def request(self) -> None:
        return None

    def drain(self) -> list[Any]:
        return []

    def close(self) -> None:
        return None


@settings(max_examples=100, deadline=None)
@given(
    fills=st.lists(
        st.tuples(st.sampled_from(["2611001", "2611002", "2611003"]), st.integers(52605001, 52605004)),
        min_size=1,
        max_size=12,
    ),
    data=st.data(),
)
def test_each_order_and_trade_number_pair_is_one_fill(fills: list[tuple[str, int]], data: st.DataObject) -> None:
    """Whatever the repeats and the order of arrival, every (order id, trade number) pair is
    reported exactly once, and pairs sharing a trade number are all reported."""
    tags = {"2611001": "2012070945ESAIL0000", "2611002": "2012070945EBEL00000", "2611003": "2012070945XSAIL0000"}
    rows = [
        {
            "tradeNumber": str(n),
            "orderNumber": oid,
            "tradedQty": 1,
            "tradePrice": 10.0,
            "side": 1,
            "symbol": "NSE:SAIL-EQ",
            "orderDateTime": "07-12-2020 10:00:00",
            "orderTag": f"1:{tags[oid]}",
        }
        for oid, n in fills
    ]
    arrivals = data.draw(st.permutations(rows + rows[: len(rows) // 2]))
    half = len(arrivals) // 2
    stream = ScriptedStream([("trades", r) for r in arrivals[:half]])
    br = FyersBroker(None, SymbolMap(FyersSettings()), stream=stream, poller=_IdlePoller())  # type: ignore[arg-type]
    got = br.poll()
    stream.messages = [("trades", r) for r in arrivals[half:]]
    got += br.poll()
    ids = [e.fill_id for e in got if isinstance(e, Fill)]
    assert len(ids) == len(set(ids)) == len(set(fills))  # each pair once, none merged with another
    assert {e.broker_id for e in got if isinstance(e, Fill)} == {oid for oid, _ in fills}
