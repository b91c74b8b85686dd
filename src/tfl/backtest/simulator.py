"""The portfolio simulation: one pass over the union of all symbols' bar times.

Signals come pre-computed (vectorised) from :mod:`tfl.backtest.signals`; the loop only
does work where something can happen (a triggered setup or an open position), so the
whole universe runs in seconds. Every decision inside a bar uses the shared rule
functions of :mod:`tfl.strategy`, in the order the strategy page fixes: exits, then
entries by priority (sizing on the equity at the start of the bar), then entry-bar
stops, then the stop ratchet at the close.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tfl.backtest.signals import SymbolFrame
from tfl.costs import CostModel
from tfl.data.bars import F64, I64
from tfl.domain import Bias, ExitReason, RejectReason, Side
from tfl.settings import Settings, parse_hhmm
from tfl.strategy.allocation import Allocation, allocate, loss_limit_hit
from tfl.strategy.book import Book, Trade
from tfl.strategy.rules import (
    Setup,
    bar_exit,
    entry_bar_exit,
    entry_fill,
    market_exit,
    open_position,
    planned_entry,
    ratchet,
)
from tfl.strategy.sizing import size_entry, sizing_equity
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY


@dataclass(frozen=True)
class Rejection:
    ts: int
    symbol: str
    side: Side
    reason: RejectReason
    rsi: float


@dataclass
class SimResult:
    trades: list[Trade]
    rejections: list[Rejection]
    equity_ts: I64
    equity: F64
    cash: F64
    open_positions: I64
    exposed: NDArray[np.bool_]
    max_open_risk_ratio: float = 0.0
    invariant_log: list[tuple[int, float, float]] = field(default_factory=list)


def simulate(
    frames: list[SymbolFrame],
    bias_by_day: Mapping[int, Bias],
    start_day: int,
    end_day: int,
    settings: Settings,
    *,
    progress: Callable[[int], None] | None = None,
    check_invariants: bool = False,
) -> SimResult:
    """Run the portfolio over sessions ``start_day``..``end_day`` (IST day numbers)."""
    cost = CostModel(settings.costs)
    st = settings.strategy
    risk = settings.risk
    capital = settings.backtest.capital
    book = Book(capital, cost, risk.margin_multiplier)
    sq_minute = parse_hhmm(st.squareoff_time)

    by_sym = {f.symbol: f for f in frames}
    windows: dict[str, tuple[int, int]] = {}
    ts_parts = []
    for f in frames:
        lo = int(np.searchsorted(f.day, start_day, side="left"))
        hi = int(np.searchsorted(f.day, end_day, side="right"))
        windows[f.symbol] = (lo, hi)
        ts_parts.append(f.bars.ts[lo:hi])
    grid = np.unique(np.concatenate(ts_parts)) if ts_parts else np.zeros(0, dtype=np.int64)
    grid_day = (grid + IST_OFFSET_S) // SECONDS_PER_DAY
    grid_min = ((grid + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
    last_of_day = np.ones(grid.shape[0], dtype=bool)
    if grid.shape[0] > 1:
        last_of_day[:-1] = grid_day[1:] != grid_day[:-1]

    # Candidate setups the day's bias allows, grouped by the global step of their entry bar.
    allowed_long = {d for d, b in bias_by_day.items() if b.allows(Side.LONG)}
    allowed_short = {d for d, b in bias_by_day.items() if b.allows(Side.SHORT)}
    cands: dict[int, list[tuple[Setup, SymbolFrame, int]]] = {}
    entry_bar: dict[tuple[str, int], tuple[SymbolFrame, int]] = {}
    for f in frames:
        lo, hi = windows[f.symbol]
        entry = f.setup_idx + 1
        eday = f.day[np.minimum(entry, f.day.shape[0] - 1)]
        ok = (entry >= lo) & (entry < hi)
        ok &= np.where(
            f.side == 1,
            np.isin(eday, np.fromiter(allowed_long, dtype=np.int64)),
            np.isin(eday, np.fromiter(allowed_short, dtype=np.int64)),
        )
        sel = np.flatnonzero(ok)
        if sel.shape[0] == 0:
            continue
        gsteps = np.searchsorted(grid, f.bars.ts[entry[sel]]).tolist()
        ts = f.bars.ts
        for j, g in zip(sel.tolist(), gsteps, strict=True):
            if last_of_day[g]:  # the session's last bar is its square-off bar: no entries on it
                continue
            e = int(entry[j])
            setup = Setup(
                f.symbol,
                Side.LONG if f.side[j] == 1 else Side.SHORT,
                int(ts[e - 1]),
                int(ts[e]),
                float(f.pattern_high[j]),
                float(f.pattern_low[j]),
                float(f.rsi[j]),
            )
            cands.setdefault(g, []).append((setup, f, e))
            entry_bar[f.symbol, setup.entry_ts] = (f, e)

    n = grid.shape[0]
    eq_out = np.empty(n)
    cash_out = np.empty(n)
    nopen_out = np.zeros(n, dtype=np.int64)
    exposed = np.zeros(n, dtype=bool)
    ptr: dict[str, int] = {}
    marks: dict[str, float] = {}
    rejections: list[Rejection] = []
    equity_prev = capital
    day_start_equity = capital
    halted = False  # the daily loss limit was hit: flatten, no new entries until tomorrow
    reserved: list[Allocation] = []  # reserve mode: allocations made at the previous close
    max_ratio = 0.0
    inv_log: list[tuple[int, float, float]] = []
    reserve_mode = risk.allocation == "reserve"

    def open_entry(setup: Setup, f: SymbolFrame, e: int, qty: int, planned_risk: float, fill: float) -> None:
        nonlocal max_ratio
        book.open(open_position(setup, qty, fill, t, planned_risk, 0.0, st))
        budget = sizing_equity(equity_start, capital, risk) * risk.open_risk_budget_pct / 100.0
        max_ratio = max(max_ratio, book.open_risk / budget)
        if check_invariants:
            inv_log.append((t, book.open_risk, budget))
        ptr[setup.symbol] = e + 1
        marks[setup.symbol] = float(f.bars.close[e])
        new_entries.append(setup.symbol)

    for g in range(n):
        t = int(grid[g])
        todays = cands.get(g)
        if g > 0 and grid_day[g] != grid_day[g - 1]:
            day_start_equity = equity_prev
            halted = False
        idle = not book.positions and todays is None and not reserved
        if idle and not (reserve_mode and (g + 1) in cands):
            eq_out[g] = equity_prev
            cash_out[g] = float(book.cash)
            if progress is not None and g % 2048 == 0:
                progress(g)
            continue
        exposed[g] = bool(book.positions)
        held_at_start = set(book.positions)
        equity_start = equity_prev
        squareoff = int(grid_min[g]) >= sq_minute
        flatten_reason = ExitReason.EOD if squareoff else (ExitReason.KILL_SWITCH if halted else None)

        # 1. exits (or the square-off / loss-limit flatten) with the levels set at the previous close
        for sym in list(book.positions):
            pos = book.positions[sym]
            f = by_sym[sym]
            p = ptr[sym]
            has_bar = p < f.bars.ts.shape[0] and int(f.bars.ts[p]) == t
            if flatten_reason is not None:
                price = float(f.bars.open[p]) if has_bar else marks[sym]
                book.close(sym, market_exit(pos.side, price, cost), t, flatten_reason)
                if has_bar:
                    ptr[sym] = p + 1
                continue
            if not has_bar:
                continue
            b = f.bars
            ex = bar_exit(pos, float(b.open[p]), float(b.high[p]), float(b.low[p]), cost)
            if ex is not None:
                book.close(sym, ex[0], t, ex[1])
                ptr[sym] = p + 1

        # 2. entries
        new_entries: list[str] = []
        if reserve_mode:
            # Orders rest from the previous close with their reserved quantities; a setup that
            # got no reservation but triggers anyway is a recorded rejection.
            for alloc in reserved:
                setup = alloc.setup
                f, e = entry_bar[setup.symbol, setup.entry_ts]
                b = f.bars
                fill = entry_fill(setup.side, setup.trigger, float(b.open[e]), float(b.high[e]), float(b.low[e]), cost)
                if fill is None:
                    continue
                if alloc.reject is not None:
                    rejections.append(Rejection(t, setup.symbol, setup.side, alloc.reject, setup.rsi))
                    continue
                open_entry(setup, f, e, alloc.qty, alloc.planned_risk, fill)
            reserved = []
        elif todays is not None and not halted:
            size_eq = sizing_equity(equity_start, capital, risk)
            triggered: list[tuple[Setup, SymbolFrame, int, float]] = []
            for setup, f, e in todays:
                b = f.bars
                fill = entry_fill(setup.side, setup.trigger, float(b.open[e]), float(b.high[e]), float(b.low[e]), cost)
                if fill is not None:
                    triggered.append((setup, f, e, fill))
            triggered.sort(key=lambda x: (-x[0].priority, x[0].symbol))
            for setup, f, e, fill in triggered:
                if setup.symbol in held_at_start:
                    rejections.append(Rejection(t, setup.symbol, setup.side, RejectReason.POSITION_OPEN, setup.rsi))
                    continue
                planned = planned_entry(setup.side, setup.trigger, cost)
                sz = size_entry(
                    setup.side,
                    planned,
                    setup.initial_stop,
                    size_eq,
                    book.open_risk,
                    len(book.positions),
                    float(book.cash),
                    cost,
                    risk,
                )
                if sz.reject is not None:
                    rejections.append(Rejection(t, setup.symbol, setup.side, sz.reject, setup.rsi))
                    continue
                open_entry(setup, f, e, sz.qty, sz.planned_risk, fill)
        exposed[g] = exposed[g] or bool(new_entries)

        # 3. entry-bar stops, after all entries of the bar
        for sym in new_entries:
            pos = book.positions[sym]
            f = by_sym[sym]
            e = ptr[sym] - 1
            ex = entry_bar_exit(pos, float(f.bars.low[e]), float(f.bars.high[e]), cost)
            if ex is not None:
                book.close(sym, ex[0], t, ex[1])

        # 4. the close: ratchet stops, mark to market
        for sym, pos in book.positions.items():
            f = by_sym[sym]
            p = ptr[sym]
            if sym in new_entries:
                p -= 1
            elif p < f.bars.ts.shape[0] and int(f.bars.ts[p]) == t:
                ptr[sym] = p + 1
            else:
                continue
            b = f.bars
            ratchet(pos, float(b.high[p]), float(b.low[p]), float(f.atr[p]), st)
            marks[sym] = float(b.close[p])

        # 5. a session that ends before the square-off time: flatten at the last prices
        if last_of_day[g] and book.positions:
            for sym in list(book.positions):
                pos = book.positions[sym]
                book.close(sym, market_exit(pos.side, marks[sym], cost), t, ExitReason.EOD)

        equity_prev = book.equity(marks)
        eq_out[g] = equity_prev
        cash_out[g] = float(book.cash)
        nopen_out[g] = len(book.positions)

        # 6. the daily loss limit, checked at every bar close: flatten at the next bar
        if not halted and loss_limit_hit(equity_prev, day_start_equity, risk):
            halted = True

        # 7. reserve mode: size the setups of the next bar now, at this close
        if reserve_mode and not halted and g + 1 < n and not last_of_day[g]:
            nxt = cands.get(g + 1)
            if nxt is not None:
                reserved = allocate(
                    (c[0] for c in nxt),
                    equity=equity_prev,
                    initial_capital=capital,
                    cash=float(book.cash),
                    open_risk=book.open_risk,
                    open_positions=len(book.positions),
                    held=set(book.positions),
                    cost=cost,
                    risk=risk,
                )
        if progress is not None and g % 2048 == 0:
            progress(g)

    if progress is not None:
        progress(n)
    return SimResult(
        book.trades,
        rejections,
        grid,
        eq_out,
        cash_out,
        nopen_out,
        exposed,
        max_open_risk_ratio=max_ratio,
        invariant_log=inv_log,
    )
