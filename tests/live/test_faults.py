"""Faults: a feed that stalls, gaps, repeats, reorders or lies about prices; a broker that
rejects, times out or answers late. None of them may crash the runtime, send an order
twice, lose a fill, or leave a position open at the close."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from pathlib import Path

import pytest

from tfl.core.events import OrderPlaced
from tfl.core.orders import Leg, OrderRequest
from tfl.live.broker import BrokerError, BrokerEvent, BrokerOrder, BrokerTimeoutError
from tfl.live.feed import FeedEvent, ListFeed, Tick
from tfl.live.journal import SqliteJournal, read_events
from tfl.live.paper import PaperBroker
from tfl.live.runtime import Controls
from tfl.settings import Settings

from live_helpers import materialize, replay

DAY = dt.date(2020, 12, 7)  # a busy LONGS day for these symbols
SYMBOLS = [
    "ADANIENT",
    "AXISBANK",
    "BAJFINANCE",
    "BEL",
    "BHEL",
    "BPCL",
    "CANBK",
    "COALINDIA",
    "DLF",
    "GAIL",
    "HDFCBANK",
    "HINDALCO",
    "ICICIBANK",
    "IOC",
    "ITC",
    "JINDALSTEL",
    "JSWSTEEL",
    "LT",
    "MARUTI",
    "NMDC",
    "NTPC",
    "ONGC",
    "PNB",
    "RELIANCE",
    "SAIL",
    "SBIN",
    "TATASTEEL",
    "TCS",
    "TRENT",
    "VEDL",
]
S = Settings()


def key(state) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    return sorted(
        (t.symbol, t.entry_ts, t.qty, t.entry_price, t.exit_ts, t.exit_price, t.exit_reason) for t in state.book.trades
    )


def check_consistent(tmp: Path, state) -> None:  # type: ignore[no-untyped-def]
    """The broker's truth and the journal agree; the book is flat."""
    broker = PaperBroker(tmp / "broker.sqlite")
    assert broker.positions() == {}, "the broker still holds positions"
    assert not state.book.positions
    assert {f.fill_id for f in broker.fills()} == state.fills_seen, "a fill was lost or invented"
    for o in broker.orders():  # one live protective stop at a time per position, never two
        assert o.status in ("FILLED", "CANCELLED", "REJECTED"), o
    broker.close()


class Scripted:
    """A feed built from the replay ticks by a transformation, with a controllable clock."""

    def __init__(
        self,
        events: list[FeedEvent],
        clock: list[float],
        stall_at: int = -1,
        stall_calls: int = 0,
        stall_seconds: float = 0.0,
    ) -> None:
        self._inner = ListFeed(events)
        self._clock = clock
        self._n = 0
        self._stall_at, self._stall_calls, self._stall_seconds = stall_at, stall_calls, stall_seconds

    @property
    def exhausted(self) -> bool:
        return self._inner.exhausted

    def refresh(self) -> None:
        return None

    def next(self, timeout: float) -> FeedEvent | None:
        if self._n == self._stall_at and self._stall_calls > 0:
            self._stall_calls -= 1
            self._clock[0] += self._stall_seconds
            return None
        self._clock[0] += 0.001
        self._n += 1
        return self._inner.next(timeout)

    def close(self) -> None:
        self._inner.close()


def run_with(tmp: Path, market, transform=None, broker_hook=None, **scripted):  # type: ignore[no-untyped-def]
    clock = [0.0]
    controls = Controls(clock=lambda: clock[0])

    def factory(events: list, start: int, side_of) -> Scripted:  # type: ignore[no-untyped-def,type-arg]
        evs = materialize(events, start, side_of)
        return Scripted(transform(evs) if transform else evs, clock, **scripted)

    return replay(tmp, market, SYMBOLS, DAY, S, controls=controls, feed_factory=factory, broker_hook=broker_hook)


def test_duplicate_and_stale_ticks_change_nothing(market, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def mess(events: list[FeedEvent]) -> list[FeedEvent]:
        out: list[FeedEvent] = []
        ticks = [e for e in events if isinstance(e, Tick)]
        for i, e in enumerate(events):
            out.append(e)
            if isinstance(e, Tick) and i % 7 == 0:
                out.append(e)  # duplicate
            if isinstance(e, Tick) and i % 11 == 0 and i > 40:
                old = ticks[max(0, i - 40)]
                if old.symbol != e.symbol:
                    out.append(dataclasses.replace(old, ts=old.ts, seq=e.seq))  # a late, out-of-order tick
        return out

    state, res = run_with(tmp_path, market, mess)
    assert res.dropped["duplicate"] > 100 and res.dropped["out_of_order"] > 10
    assert key(state) == key(clean)
    check_consistent(tmp_path, state)


def test_bad_prices_are_dropped(market, clean, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    def poison(events: list[FeedEvent]) -> list[FeedEvent]:
        out: list[FeedEvent] = []
        for i, e in enumerate(events):
            if isinstance(e, Tick) and i % 13 == 0:
                bad = (0.0, -5.0, math.nan, e.price * 10, math.inf)[i % 5]
                out.append(dataclasses.replace(e, price=bad))
            out.append(e)
        return out

    with caplog.at_level(logging.WARNING):
        state, res = run_with(tmp_path, market, poison)
    assert res.dropped["bad_price"] > 100
    assert key(state) == key(clean)
    assert any("tick dropped" in r.message for r in caplog.records)
    check_consistent(tmp_path, state)


def test_feed_stall_blocks_entries_but_exits_still_work(
    market,
    clean,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The feed goes silent (for longer than feed_stale_seconds of wall time) just before the
    # bar in which the clean run made its first entry.
    first_entry = min(t.entry_ts for t in clean.book.trades)
    with caplog.at_level(logging.INFO):
        state, res = run_with(
            tmp_path,
            market,
            stall_at=_count_before(market, first_entry),
            stall_calls=3,
            stall_seconds=S.live.feed_stale_seconds,
        )
    assert any(r.levelname == "ERROR" and "feed stale" in r.message for r in caplog.records)
    assert any("feed recovered" in r.message for r in caplog.records)
    assert any("entries blocked" in r.message for r in caplog.records)
    assert first_entry not in {t.entry_ts for t in state.book.trades}
    assert state.book.trades  # the rest of the day traded, and every position was closed
    assert res.flat
    check_consistent(tmp_path, state)


def _count_before(market, ts: int) -> int:  # type: ignore[no-untyped-def]
    from tfl.live.feed import session_ticks
    from tfl.timeutil import date_to_day

    events = materialize(session_ticks({s: market.intraday[s] for s in SYMBOLS}, date_to_day(DAY), 0), 0)
    return sum(1 for e in events if isinstance(e, Tick) and e.ts < ts)


def test_feed_gap_for_some_symbols(market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gone = {"ADANIENT", "TRENT", "SAIL"}

    def gap(events: list[FeedEvent]) -> list[FeedEvent]:
        lo = min(e.ts for e in events) + 3600
        return [e for e in events if not (isinstance(e, Tick) and e.symbol in gone and lo <= e.ts < lo + 5400)]

    state, res = run_with(tmp_path, market, gap)
    assert res.flat
    check_consistent(tmp_path, state)


class FlakyBroker:
    """Wraps the paper broker: rejects, times out (with or without placing), answers late."""

    def __init__(
        self,
        inner: PaperBroker,
        *,
        reject_stops_once: bool = False,
        reject_exits_once: bool = False,
        timeout_every: int = 0,
        place_on_timeout: bool = True,
        delay_ticks: int = 0,
    ) -> None:
        self.inner = inner
        self.reject_stops_once = reject_stops_once
        self.reject_exits_once = reject_exits_once
        self.timeout_every = timeout_every
        self.place_on_timeout = place_on_timeout
        self.delay_ticks = delay_ticks
        self._calls = 0
        self._rejected: set[str] = set()
        self._held: list[tuple[int, BrokerEvent]] = []
        self._ticks = 0
        self.crash = None

    def place(self, req: OrderRequest, ts: int) -> BrokerOrder:
        self._calls += 1
        if self.reject_stops_once and req.client_id[10] == "S" and req.client_id[-1] == "0":
            self._rejected.add(req.client_id)
            raise BrokerError("RMS: margin shortfall (scripted)")
        if self.reject_exits_once and req.client_id[10] == "X" and req.client_id[-1] == "0":
            self._rejected.add(req.client_id)
            raise BrokerError("RMS: order value exceeds the price band (scripted)")
        if self.timeout_every and self._calls % self.timeout_every == 0:
            if self.place_on_timeout:
                self.inner.place(req, ts)
            raise BrokerTimeoutError("no answer in 10 s (scripted)")
        return self.inner.place(req, ts)

    def poll(self) -> list[BrokerEvent]:
        for e in self.inner.poll():
            self._held.append((self._ticks + self.delay_ticks, e))
        ready = [e for due, e in self._held if due <= self._ticks]
        self._held = [(due, e) for due, e in self._held if due > self._ticks]
        return ready

    def on_tick(self, symbol: str, ts: int, price: float, seq: int) -> None:
        self._ticks += 1
        self.inner.on_tick(symbol, ts, price, seq)

    def close_session(self, ts: int, seq: int) -> None:
        self.inner.close_session(ts, seq)
        self._ticks += 10**9  # release everything held

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_broker_rejects_protective_stops_then_accepts(
    market,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder: list[FlakyBroker] = []

    def hook(b: PaperBroker) -> FlakyBroker:
        holder.append(FlakyBroker(b, reject_stops_once=True))
        return holder[0]

    with caplog.at_level(logging.WARNING):
        state, res = run_with(tmp_path, market, broker_hook=hook)
    assert holder[0]._rejected
    assert any(r.levelname == "ERROR" and "rejected" in r.message for r in caplog.records)
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    placed = {ev.cid: rec.ts for rec, ev in read_events(journal) if isinstance(ev, OrderPlaced)}
    journal.close()
    for cid in holder[0]._rejected:  # each refused stop was followed by one the broker took
        refused = state.orders[cid]
        again = [
            r.request.client_id
            for r in state.orders.values()
            if r.leg is refused.leg
            and r.request.symbol == refused.request.symbol
            and r.setup_ts == refused.setup_ts
            and r.broker_id is not None
        ]
        assert again, cid
        # ... within seconds of exchange time (the next retry), not at the next boundary.
        assert placed[again[0]] - placed[cid] <= 3 * S.live.retry_seconds, cid
    assert res.flat
    check_consistent(tmp_path, state)


def test_a_rejected_square_off_is_protected_and_sent_again(market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The broker refuses the 15:15 exits: each position gets its stop back at once, the exit goes
    out again (a new attempt) at the next retry, and the book is flat."""
    holder: list[FlakyBroker] = []

    def hook(b: PaperBroker) -> FlakyBroker:
        holder.append(FlakyBroker(b, reject_exits_once=True))
        return holder[0]

    state, res = run_with(tmp_path, market, broker_hook=hook)
    assert holder[0]._rejected, "the scenario rejected square-off orders"
    assert res.flat
    check_consistent(tmp_path, state)
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    events = [ev for _, ev in read_events(journal)]
    journal.close()
    for cid in holder[0]._rejected:
        sym = state.orders[cid].request.symbol
        again = [r for r in state.orders.values() if r.leg.value == "X" and r.request.symbol == sym and r.filled]
        assert again and again[0].request.client_id[-1] == "1"  # the second attempt closed it
        # Between the refusal and the second attempt, the shares had a stop again.
        refused = next(i for i, ev in enumerate(events) if isinstance(ev, OrderPlaced) and ev.cid == cid)
        retried = next(
            i for i, ev in enumerate(events) if isinstance(ev, OrderPlaced) and ev.cid == again[0].request.client_id
        )
        assert any(
            isinstance(ev, OrderPlaced) and ev.leg is Leg.STOP and ev.symbol == sym for ev in events[refused:retried]
        ), sym


@pytest.mark.parametrize("placed", [True, False])
def test_broker_timeouts_never_double_an_order(market, clean, tmp_path: Path, placed: bool) -> None:  # type: ignore[no-untyped-def]
    state, res = run_with(
        tmp_path, market, broker_hook=lambda b: FlakyBroker(b, timeout_every=3, place_on_timeout=placed)
    )
    assert res.flat
    check_consistent(tmp_path, state)
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    unknown = [e for e in journal.records() if e.kind == "ORDER" and e.data["state"] == "UNKNOWN"]
    assert unknown, "the scenario produced ambiguous answers"
    journal.close()
    if placed:  # every ambiguous order had in fact reached the broker: adopting it changes nothing
        assert key(state) == key(clean)


def test_late_broker_answers(market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state, res = run_with(tmp_path, market, broker_hook=lambda b: FlakyBroker(b, delay_ticks=25))
    assert res.flat
    check_consistent(tmp_path, state)


def test_broker_rejects_every_entry(market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def hook(b: PaperBroker) -> PaperBroker:
        b.rejections.update(SYMBOLS)
        return b

    state, res = run_with(tmp_path, market, broker_hook=hook)
    assert state.book.trades == [] and res.flat
    assert all(o.status.value == "REJECTED" for o in state.orders.values())


def test_clock_events_close_bars_on_time_and_count_as_no_ticks(
    market,
    clean,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A live feed sends Clock events while the market is quiet: boundaries are processed on
    time, and a long run of clocks without trades is still a stale feed."""
    from tfl.live.feed import Clock

    def with_clocks(events: list[FeedEvent]) -> list[FeedEvent]:
        out: list[FeedEvent] = []
        for e in events:
            out.append(e)
            out.append(Clock(e.ts))
        return out

    state, res = run_with(tmp_path, market, with_clocks)
    assert key(state) == key(clean)
    # Now only clocks for 15 minutes of the morning, long enough in wall time to be stale.
    quiet_from = min(t.entry_ts for t in clean.book.trades) + 3600

    def silence(events: list[FeedEvent]) -> list[FeedEvent]:
        quiet = [Clock(quiet_from + k) for k in range(0, 900, 30)]
        ticks = [e for e in events if not (quiet_from <= e.ts < quiet_from + 900)]
        i = next(k for k, e in enumerate(ticks) if e.ts >= quiet_from + 900)
        return ticks[:i] + quiet + ticks[i:]

    def clocky_factory_run() -> tuple:  # type: ignore[type-arg]
        clock = [0.0]
        controls = Controls(clock=lambda: clock[0])

        class Slow(Scripted):
            def next(self, timeout: float) -> FeedEvent | None:
                ev = super().next(timeout)
                if isinstance(ev, Clock):
                    clock[0] += 2.0  # each quiet second of market time is two of wall time here
                return ev

        def factory(events: list, start: int, side_of) -> Scripted:  # type: ignore[no-untyped-def,type-arg]
            return Slow(silence(materialize(events, start, side_of)), clock)

        return replay(tmp_path / "quiet", market, SYMBOLS, DAY, S, controls=controls, feed_factory=factory)

    with caplog.at_level(logging.INFO):
        _, res2 = clocky_factory_run()
    assert any("feed stale" in r.message for r in caplog.records)
    assert res.flat and res2.flat
