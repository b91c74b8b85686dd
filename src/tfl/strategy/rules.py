"""Setup filters, the entry trigger and fill, the exit ladder and the stop ratchet.

These are the rules of sections 3, 4 and 6 of the strategy page as small pure functions
on floats, used unchanged by the backtester, the paper broker and the live engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfl.costs import CostModel
from tfl.domain import ExitReason, Side
from tfl.settings import StrategySettings


@dataclass(frozen=True)
class Setup:
    """A valid setup at the close of bar T-1, tradeable during bar T only."""

    symbol: str
    side: Side
    setup_ts: int
    entry_ts: int
    pattern_high: float
    pattern_low: float
    rsi: float

    @property
    def trigger(self) -> float:
        return self.pattern_high if self.side is Side.LONG else self.pattern_low

    @property
    def initial_stop(self) -> float:
        return self.pattern_low if self.side is Side.LONG else self.pattern_high

    @property
    def priority(self) -> float:
        """Higher is taken first: RSI for longs, 100 - RSI for shorts (one shared list)."""
        return priority_score(self.side, self.rsi)


def priority_score(side: Side, rsi: float) -> float:
    return rsi if side is Side.LONG else 100.0 - rsi


def setup_passes(side: Side, rsi_prev: float, close: float, trend_line: float, p: StrategySettings) -> bool:
    """Momentum and trend filters at the close of the setup bar (NaN inputs fail)."""
    if math.isnan(rsi_prev) or math.isnan(trend_line):
        return False
    if side is Side.LONG:
        return rsi_prev > p.long_rsi_min and close > trend_line
    return rsi_prev < p.short_rsi_max and close < trend_line


def planned_entry(side: Side, trigger: float, cost: CostModel) -> float:
    """The price sizing assumes: the stop level plus slippage."""
    return cost.adverse(trigger, side is Side.LONG)


def entry_fill(side: Side, trigger: float, o: float, h: float, lo: float, cost: CostModel) -> float | None:
    """Fill of a stop entry during one bar, or None if the bar does not reach the trigger.

    A gap through the trigger fills at the open; slippage is always against the trader.
    """
    if side is Side.LONG:
        return cost.adverse(max(trigger, o), True) if h >= trigger else None
    return cost.adverse(min(trigger, o), False) if lo <= trigger else None


@dataclass
class Position:
    """An open position and the exit levels in force for its next bar."""

    symbol: str
    side: Side
    qty: int
    setup_ts: int
    entry_ts: int
    entry_price: float
    initial_stop: float
    stop: float
    target: float
    r: float  # risk per share measured from the fill
    planned_risk: float  # qty x planned risk per share: what the risk budget counts
    rsi: float
    entry_charges: float
    best: float = math.nan

    @property
    def stop_reason(self) -> ExitReason:
        return ExitReason.STOP if self.stop == self.initial_stop else ExitReason.TRAIL


def open_position(
    setup: Setup,
    qty: int,
    fill: float,
    entry_ts: int,
    planned_risk: float,
    entry_charges: float,
    p: StrategySettings,
) -> Position:
    stop = setup.initial_stop
    r = abs(fill - stop)
    target = fill + setup.side * p.target_r * r
    return Position(
        setup.symbol,
        setup.side,
        qty,
        setup.setup_ts,
        entry_ts,
        fill,
        stop,
        stop,
        target,
        r,
        planned_risk,
        setup.rsi,
        entry_charges,
        best=-math.inf if setup.side is Side.LONG else math.inf,
    )


def entry_bar_exit(pos: Position, lo: float, h: float, cost: CostModel) -> tuple[float, ExitReason] | None:
    """On the entry bar only the initial stop is checked, and it is assumed hit if touched."""
    if pos.side is Side.LONG:
        if lo <= pos.initial_stop:
            return cost.adverse(pos.initial_stop, False), ExitReason.STOP
    elif h >= pos.initial_stop:
        return cost.adverse(pos.initial_stop, True), ExitReason.STOP
    return None


def bar_exit(pos: Position, o: float, h: float, lo: float, cost: CostModel) -> tuple[float, ExitReason] | None:
    """Exit during a bar with the levels set at the previous close: gap, stop, then target.

    The stop is assumed to come first when both lie inside the bar (pessimistic). Stops
    slip; the target is a limit order and fills at max(target, open) without slippage.
    """
    stop = pos.stop
    if pos.side is Side.LONG:
        if o <= stop:
            return cost.adverse(o, False), pos.stop_reason
        if lo <= stop:
            return cost.adverse(stop, False), pos.stop_reason
        if h >= pos.target:
            return max(pos.target, o), ExitReason.TARGET
        return None
    if o >= stop:
        return cost.adverse(o, True), pos.stop_reason
    if h >= stop:
        return cost.adverse(stop, True), pos.stop_reason
    if lo <= pos.target:
        return min(pos.target, o), ExitReason.TARGET
    return None


def ratchet(pos: Position, h: float, lo: float, atr: float, p: StrategySettings) -> None:
    """Tighten the stop after a bar closes: breakeven at 1R, then the ATR trail; never loosen."""
    e, r = pos.entry_price, pos.r
    if pos.side is Side.LONG:
        pos.best = max(pos.best, h)
        if pos.best >= e + p.breakeven_trigger_r * r:
            pos.stop = max(pos.stop, e + p.breakeven_lock_r * r)
        k = p.aggressive_trail_atr if pos.best >= e + p.long_aggressive_r * r else p.long_trail_atr
        if not math.isnan(atr):
            pos.stop = max(pos.stop, h - k * atr)
    else:
        pos.best = min(pos.best, lo)
        if pos.best <= e - p.breakeven_trigger_r * r:
            pos.stop = min(pos.stop, e - p.breakeven_lock_r * r)
        k = p.aggressive_trail_atr if pos.best <= e - p.short_aggressive_r * r else p.short_trail_atr
        if not math.isnan(atr):
            pos.stop = min(pos.stop, lo + k * atr)


def market_exit(side: Side, price: float, cost: CostModel) -> float:
    """A market order closing a position (EOD, kill switch): slips against the trader."""
    return cost.adverse(price, side is Side.SHORT)
