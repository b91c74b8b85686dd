"""The backtest world: the core's decisions over the whole universe, filled on bars.

Signals come pre-computed (vectorised) from :mod:`tfl.backtest.signals`. The loop walks
the union of all symbols' bar times and does work only where something can happen (an
order rests, a position is open, a setup is about to be reserved or may trigger without
a reservation), so the whole universe runs in seconds. At each such bar it does what the
live trader does between two 15-minute boundaries and at the next one:

1. the bar trades: the simulated exchange (:mod:`tfl.backtest.exchange`) fills resting
   orders along the bar's path, and each fill goes to the core (:meth:`Core.on_fill`),
   whose reactions (a protective stop) join the same bar;
2. the bar closes: :meth:`Core.on_close` decides expiries, rejections, the ratchet,
   targets, the square-off or the loss limit, and the next bar's reservations.

Every decision is an event from :mod:`tfl.core.decide`, applied with the same reducer the
live trader replays from its journal.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tfl.backtest.exchange import SimExchange
from tfl.backtest.signals import SymbolFrame
from tfl.core.decide import ClosedBar, Core, SessionPlan
from tfl.core.events import (
    CancelRequested,
    Event,
    Filled,
    OrderPlaced,
    OrderReported,
    SessionOpened,
    SignalRejected,
    SlotClosed,
    StopMoved,
)
from tfl.core.fills import bar_path, match
from tfl.core.orders import Leg, OrderType, Report
from tfl.core.state import CoreState, apply, path_side
from tfl.data.bars import F64, I64, sorted_unique
from tfl.domain import Bias, Side
from tfl.settings import Settings, parse_hhmm
from tfl.strategy.book import Trade
from tfl.strategy.rules import Setup
from tfl.strategy.sizing import sizing_equity
from tfl.timeutil import BAR_SECONDS, IST_OFFSET_S, SECONDS_PER_DAY, day_to_date, epoch_of_ist


@dataclass
class SimResult:
    trades: list[Trade]
    rejections: list[SignalRejected]
    equity_ts: I64
    equity: F64
    cash: F64
    open_positions: I64
    exposed: NDArray[np.bool_]
    max_open_risk_ratio: float = 0.0
    invariant_log: list[tuple[int, float, float]] = field(default_factory=list)


class _BarIndex:
    """Which bar of a symbol is at a step of the grid (the union of all symbols' bar times).

    A symbol's bars inside the run are the grid steps from its first to its last bar, less
    a few it lacks (a halt, a late listing): a short sorted list of those missing steps turns
    a step into a bar index with one bisection, and costs almost no memory. It is built the
    first time the loop asks about the symbol."""

    __slots__ = ("_base", "_grid", "_known", "_ranges", "_slot_step")

    def __init__(self, grid: I64, ranges: dict[str, tuple[int, int]]) -> None:
        self._grid = grid
        self._ranges = ranges  # symbol -> its bars inside the run: [lo, hi)
        self._known: dict[str, tuple[int, int, int, list[int]]] = {}
        self._base = int(grid[0]) if grid.shape[0] else 0
        self._slot_step: I64 | None = None
        if grid.shape[0] and not ((grid - self._base) % BAR_SECONDS).any():
            slots = (grid - self._base) // BAR_SECONDS
            self._slot_step = np.full(int(slots[-1]) + 1, -1, dtype=np.int64)
            self._slot_step[slots] = np.arange(grid.shape[0], dtype=np.int64)

    def _layout(self, f: SymbolFrame) -> tuple[int, int, int, list[int]]:
        """(first bar index, its grid step, the last bar's step, the steps missing between)."""
        known = self._known.get(f.symbol)
        if known is None:
            lo, hi = self._ranges[f.symbol]
            if hi <= lo:
                known = (lo, 0, -1, [])
            else:
                ts = f.bars.ts[lo:hi]
                if self._slot_step is not None:  # the grid is on the lattice, so are its parts
                    where = self._slot_step[(ts - self._base) // BAR_SECONDS]
                else:
                    where = np.searchsorted(self._grid, ts)
                missing: list[int] = []
                for i in np.flatnonzero(np.diff(where) > 1).tolist():
                    missing.extend(range(int(where[i]) + 1, int(where[i + 1])))
                known = (lo, int(where[0]), int(where[-1]), missing)
            self._known[f.symbol] = known
        return known

    def at(self, f: SymbolFrame, g: int) -> int:
        """Index of ``f``'s bar at grid step ``g``, or -1."""
        known = self._known.get(f.symbol)
        lo, first, last, missing = known if known is not None else self._layout(f)
        if g < first or g > last:
            return -1
        if not missing:
            return lo + g - first
        k = bisect_left(missing, g)
        if k < len(missing) and missing[k] == g:
            return -1
        return lo + g - first - k

    @staticmethod
    def last_before(f: SymbolFrame, t: int) -> int:
        """Index of ``f``'s last bar starting at or before ``t``, or -1."""
        return int(np.searchsorted(f.bars.ts, t, side="right")) - 1


def simulate(
    frames: list[SymbolFrame],
    bias_by_day: Mapping[int, Bias],
    start_day: int,
    end_day: int,
    settings: Settings,
    *,
    progress: Callable[[int], None] | None = None,
    check_invariants: bool = False,
    prep: SimPrep | None = None,
) -> SimResult:
    """Run the portfolio over sessions ``start_day``..``end_day`` (IST day numbers); ``prep``
    is :func:`prepare`'s answer for the same frames, bias days and period, when the caller has it."""
    with _cyclic_gc_paused():
        return _Backtest(frames, bias_by_day, start_day, end_day, settings, check_invariants, prep).run(progress)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The loop makes a few hundred thousand short-lived events and records, and no reference
    cycles (reference counting frees them all): the cycle collector would only walk them, for
    about a tenth of the loop's time. It is paused for the loop, and restored as it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Backtest:
    def __init__(
        self,
        frames: list[SymbolFrame],
        bias_by_day: Mapping[int, Bias],
        start_day: int,
        end_day: int,
        settings: Settings,
        check_invariants: bool,
        prep: SimPrep | None,
    ) -> None:
        self.s = settings
        self.bias_by_day = bias_by_day
        self.state = CoreState.fresh(settings)
        self.exchange = SimExchange(settings.costs.slippage_pct)
        self.by_sym = {f.symbol: f for f in frames}
        self.reserve = settings.risk.allocation == "reserve"
        self.check = check_invariants
        self.max_ratio = 0.0
        self.inv_log: list[tuple[int, float, float]] = []
        self.entries = 0  # entry fills in the current bar
        self.core: Core | None = None
        self.t = 0

        got = prep if prep is not None else prepare(frames, bias_by_day, start_day, end_day)
        self.grid, self.bar_index, self.grid_day, self.cands = got.grid, got.bar_index, got.grid_day, got.cands

    # ------------------------------------------------------------------ the loop

    def run(self, progress: Callable[[int], None] | None) -> SimResult:
        st = self.state
        grid, grid_day = self.grid, self.grid_day
        n = grid.shape[0]
        eq_out = np.empty(n)
        cash_out = np.empty(n)
        nopen_out = np.zeros(n, dtype=np.int64)
        exposed = np.zeros(n, dtype=bool)
        last_of_day = np.ones(n, dtype=bool)
        if n > 1:
            last_of_day[:-1] = grid_day[1:] != grid_day[:-1]
        first_of_day = np.ones(n, dtype=bool)
        if n > 1:
            first_of_day[1:] = grid_day[1:] != grid_day[:-1]
        day_first = 0
        cands = self.cands
        exchange, book, unreserved, reserve = self.exchange, st.book, st.unreserved, self.reserve
        times, firsts, lasts = grid.tolist(), first_of_day.tolist(), last_of_day.tolist()  # plain lists: cheap to index
        cash_dec, cash_f = book.cash, float(book.cash)  # the ledger's Decimal as a float, redone when it changes
        for g in range(n):
            t = times[g]
            if firsts[g]:
                day_first = g
                self.core = None
            busy = bool(exchange) or bool(book.positions) or (g + 1) in cands or t in unreserved
            if not busy and not (g in cands and not reserve):
                eq_out[g] = st.last_equity
                if book.cash is not cash_dec:
                    cash_dec, cash_f = book.cash, float(book.cash)
                cash_out[g] = cash_f
                if progress is not None and g % 2048 == 0:
                    progress(g)
                continue
            core = self.core or self._open_session(day_first, g)
            self.t = t
            held_at_start = bool(book.positions)
            held = set(book.positions) if not reserve else set()  # read only by the "bar" rule
            self._trade_bar(g)
            last = lasts[g]
            if not reserve and not last:
                self._bar_entries(core, g, t, held)
            exposed[g] = held_at_start or self.entries > 0
            boundary = t + BAR_SECONDS
            setups = cands.get(g + 1, ()) if reserve and not last else ()
            self._do(core.on_close(st, boundary, self._closed_bars(g, t), setups))
            if last:
                self._end_session(core, t)
            eq_out[g] = st.equity()
            apply(st, SlotClosed(boundary, eq_out[g]))
            if book.cash is not cash_dec:
                cash_dec, cash_f = book.cash, float(book.cash)
            cash_out[g] = cash_f
            nopen_out[g] = len(book.positions)
            if progress is not None and g % 2048 == 0:
                progress(g)
        if progress is not None:
            progress(n)
        return SimResult(
            st.book.trades,
            st.rejections,
            grid,
            eq_out,
            cash_out,
            nopen_out,
            exposed,
            max_open_risk_ratio=self.max_ratio,
            invariant_log=self.inv_log,
        )

    def _open_session(self, first: int, g: int) -> Core:
        """The session of grid step ``first``: its plan comes from the data's grid."""
        day = int(self.grid_day[first])
        last = first
        while last + 1 < self.grid.shape[0] and self.grid_day[last + 1] == day:
            last += 1
        date = day_to_date(day)
        last_bar = int(self.grid[last])
        squareoff = min(epoch_of_ist(date, parse_hhmm(self.s.strategy.squareoff_time)), last_bar + BAR_SECONDS)
        self.core = Core(self.s, SessionPlan(date, int(self.grid[first]), last_bar, squareoff))
        bias = self.bias_by_day.get(day, Bias.NO_TRADES)
        apply(self.state, SessionOpened(date.isoformat(), bias, "", self.s.backtest.capital, (), None))
        return self.core

    # ------------------------------------------------------------------ the bar trades

    def _trade_bar(self, g: int) -> None:
        self.entries = 0
        ex = self.exchange
        if not ex:
            return
        by_sym, at = self.by_sym, self.bar_index.at
        for sym in sorted(ex.book):
            f = by_sym[sym]
            p = at(f, g)
            if p < 0:
                continue  # no bar: its orders keep resting (a market order fills at its next bar)
            b = f.bars
            h, lo = b.high.item(p), b.low.item(p)
            if not ex.reaches(sym, h, lo):
                continue  # nothing of its path can fill (the walk would do nothing)
            side = path_side(self.state, sym)
            ex.run_bar(sym, b.open.item(p), h, lo, b.close.item(p), side, self._on_fill)

    def _bar_entries(self, core: Core, g: int, t: int, held: set[str]) -> None:
        """The research-only "bar" rule: setups triggered in this bar compete after its exits."""
        todays = self.cands.get(g)
        if not todays:
            return
        slip = self.s.costs.slippage_pct / 100.0
        triggered: list[tuple[Setup, float]] = []
        for setup in todays:
            f = self.by_sym[setup.symbol]
            p = self.bar_index.at(f, g)
            b = f.bars
            fill = _first_fill(setup, b.open.item(p), b.high.item(p), b.low.item(p), b.close.item(p), slip)
            if fill is not None:
                triggered.append((setup, fill))
        evs = core.enter_in_bar(self.state, t, triggered, held)
        self._do(evs)
        symbols = sorted({e.symbol for e in evs if isinstance(e, OrderPlaced)})
        for sym in symbols:
            f = self.by_sym[sym]
            p = self.bar_index.at(f, g)
            b = f.bars
            side = path_side(self.state, sym)
            self.exchange.run_bar(
                sym, b.open.item(p), b.high.item(p), b.low.item(p), b.close.item(p), side, self._on_fill
            )

    def _on_fill(self, cid: str, qty: int, price: float) -> None:
        st = self.state
        fill = Filled(f"{cid}-{st.orders[cid].filled + qty}", cid, qty, price, self.t, self.t)
        apply(st, fill)
        rec = st.orders[cid]
        if rec.leg is Leg.ENTRY:
            self.entries += 1
            risk = self.s.risk
            budget = sizing_equity(st.last_equity, self.s.backtest.capital, risk) * risk.open_risk_budget_pct / 100.0
            self.max_ratio = max(self.max_ratio, st.book.open_risk / budget)
            if self.check:
                self.inv_log.append((self.t, st.book.open_risk, budget))
        assert self.core is not None
        self._do(self.core.on_fill(st, fill, self.t))

    # ------------------------------------------------------------------ the bar closes

    def _closed_bars(self, g: int, t: int) -> list[ClosedBar]:
        """The bars of this step that the core needs: open positions and unreserved setups."""
        st = self.state
        pending = st.unreserved.get(t)
        want = st.book.positions.keys() | pending.keys() if pending else st.book.positions
        out = []
        by_sym, at = self.by_sym, self.bar_index.at
        for sym in sorted(want):
            f = by_sym[sym]
            p = at(f, g)
            if p < 0:
                continue
            b = f.bars
            out.append(ClosedBar(sym, t, b.open.item(p), b.high.item(p), b.low.item(p), b.close.item(p), f.atr.item(p)))
        return out

    def _end_session(self, core: Core, t: int) -> None:
        """The market closed: market orders fill at each symbol's last price; the rest expire."""
        if not self.exchange:
            return
        self.t = core.plan.close_ts

        def last_price(sym: str) -> float | None:
            f = self.by_sym[sym]
            p = self.bar_index.last_before(f, t)
            return float(f.bars.close[p]) if p >= 0 else None

        for cid in self.exchange.end_session(last_price, self._on_fill):
            apply(self.state, OrderReported(cid, Report.EXPIRED, reason="the session ended"))
        self.t = t

    # ------------------------------------------------------------------ carrying out decisions

    def _do(self, events: list[Event]) -> None:
        st, ex = self.state, self.exchange
        for ev in events:
            apply(st, ev)
            if isinstance(ev, OrderPlaced):
                ex.place(ev)
            elif isinstance(ev, CancelRequested):
                if ex.cancel(ev.cid):
                    apply(st, OrderReported(ev.cid, Report.CANCELLED))
            elif isinstance(ev, StopMoved):
                ex.modify(ev.cid, ev.trigger, ev.qty)


@dataclass(frozen=True)
class SimPrep:
    """What a run's layout is, given its setups, bias days and period: the grid (the union of
    the symbols' bar times), which bar of each symbol is at each step, and the candidate
    setups by the step of their entry bar. Research trials that share setups, bias and
    period share it (nothing in it changes during a run; the bar index only memoises)."""

    grid: I64
    bar_index: _BarIndex
    grid_day: I64
    cands: dict[int, list[Setup]]


def prepare(frames: list[SymbolFrame], bias_by_day: Mapping[int, Bias], start_day: int, end_day: int) -> SimPrep:
    """The layout of a run over ``frames`` from ``start_day`` to ``end_day`` (IST day numbers)."""
    parts = []
    ranges: dict[str, tuple[int, int]] = {}
    for f in frames:
        lo, hi = f.bars.day_range(start_day, end_day)
        parts.append(f.bars.ts[lo:hi])
        ranges[f.symbol] = (lo, hi)
    grid = _union(parts)
    bar_index = _BarIndex(grid, ranges)
    grid_day = (grid + IST_OFFSET_S) // SECONDS_PER_DAY
    # Candidate setups the day's bias allows, by the grid step of their entry bar.
    # Per day of the run (index: day - start_day), whether the bias allows longs / shorts:
    # a lookup rather than a set membership test per symbol.
    span = max(end_day - start_day + 1, 1)
    long_day = np.zeros(span, dtype=bool)
    short_day = np.zeros(span, dtype=bool)
    for d, b in bias_by_day.items():
        if start_day <= d <= end_day:
            long_day[d - start_day] = b.allows(Side.LONG)
            short_day[d - start_day] = b.allows(Side.SHORT)
    cands: dict[int, list[Setup]] = {}
    long, short = Side.LONG, Side.SHORT
    n = grid.shape[0]
    for f in frames:
        if f.setup_idx.shape[0] == 0:
            continue
        entry = f.setup_idx + 1
        ets = f.bars.ts[entry]
        eday = (ets + IST_OFFSET_S) // SECONDS_PER_DAY
        ok = (ets >= (grid[0] if n else 0)) & (eday >= start_day) & (eday <= end_day)
        at = np.clip(eday - start_day, 0, span - 1)  # outside the run: ``ok`` is False already
        ok &= np.where(f.side == 1, long_day[at], short_day[at])
        sel = np.flatnonzero(ok)
        if sel.shape[0] == 0:
            continue
        gsteps = np.searchsorted(grid, ets[sel]).tolist()
        rows = zip(
            gsteps,
            f.side[sel].tolist(),
            f.bars.ts[entry[sel] - 1].tolist(),
            ets[sel].tolist(),
            f.pattern_high[sel].tolist(),
            f.pattern_low[sel].tolist(),
            f.rsi[sel].tolist(),
            strict=True,
        )
        sym = f.symbol
        for g, side, setup_ts, entry_ts, ph, pl, rsi in rows:
            setup = Setup(sym, long if side == 1 else short, setup_ts, entry_ts, ph, pl, rsi)
            cands.setdefault(g, []).append(setup)
    return SimPrep(grid, bar_index, grid_day, cands)


def _union(parts: list[I64]) -> I64:
    """The sorted union of bar times (each part sorted). On the 15-minute grid a presence mark
    per part is cheaper than a sort, and per part its temporaries stay small (one array of the
    whole universe's times would be allocated and touched several times over)."""
    nonempty = [p for p in parts if p.shape[0]]
    if not nonempty:
        return np.zeros(0, dtype=np.int64)
    base = min(int(p[0]) for p in nonempty)
    top = max(int(p[-1]) for p in nonempty)
    present = np.zeros((top - base) // BAR_SECONDS + 1, dtype=bool)
    for p in nonempty:
        off = p - base
        if (off % BAR_SECONDS).any():  # off the lattice: the general way
            return sorted_unique(np.concatenate(nonempty))
        present[off // BAR_SECONDS] = True
    return base + np.flatnonzero(present).astype(np.int64) * BAR_SECONDS


def _first_fill(setup: Setup, o: float, h: float, lo: float, c: float, slip: float) -> float | None:
    """Where a stop entry resting from the bar's open fills, if the bar's path reaches it."""
    buy = setup.side is Side.LONG
    for i, price in enumerate(bar_path(o, h, lo, c, setup.side)):
        px = match(OrderType.STOP, buy, setup.trigger, None, price, i == 0, slip)
        if px is not None:
            return px
    return None
