"""Setups, their filters, positions and the stop ratchet (strategy page, sections 3, 4, 6).

Small pure functions on floats. How orders fill is the fill model's job
(:mod:`tfl.core.fills`); when to act is the core's (:mod:`tfl.core.decide`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfl.costs import CostModel
from tfl.domain import Bias, ExitReason, Side
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
    """Momentum and trend filters at the close of the setup bar (NaN inputs fail). A filter
    switched off is not applied; the RSI must still be known, as it orders the setups, but
    the trend line is then not consulted at all."""
    if math.isnan(rsi_prev):
        return False
    long = side is Side.LONG
    trend_ok = not p.use_trend_filter or (close > trend_line if long else close < trend_line)
    rsi_ok = not p.use_rsi_filter or (rsi_prev > p.long_rsi_min if long else rsi_prev < p.short_rsi_max)
    return trend_ok and rsi_ok


def session_bias(bias: Bias, reason: str, p: StrategySettings) -> tuple[Bias, str]:
    """The bias a session trades: the traffic light's, or BOTH when the bias filter is switched
    off (``strategy.use_bias``). The backtester and the live runtime both ask this."""
    if p.use_bias:
        return bias, reason
    return Bias.BOTH, f"strategy.use_bias is false: both sides (the bias was {bias.value}: {reason})"


def planned_entry(side: Side, trigger: float, cost: CostModel) -> float:
    """The price sizing assumes: the stop level plus slippage."""
    return cost.adverse(trigger, side is Side.LONG)


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
    symbol: str,
    side: Side,
    setup_ts: int,
    entry_ts: int,
    initial_stop: float,
    rsi: float,
    qty: int,
    fill: float,
    planned_risk: float,
    p: StrategySettings,
) -> Position:
    """A position from its setup and its actual fill: R and the target are measured from the fill."""
    r = abs(fill - initial_stop)
    return Position(
        symbol,
        side,
        qty,
        setup_ts,
        entry_ts,
        fill,
        initial_stop,
        initial_stop,
        fill + side * p.target_r * r,
        r,
        planned_risk,
        rsi,
        0.0,
        best=-math.inf if side is Side.LONG else math.inf,
    )


def ratchet(pos: Position, h: float, lo: float, atr: float, p: StrategySettings) -> tuple[float, float]:
    """The stop and best price after a bar closes: breakeven at 1R, then the ATR trail (each
    unless switched off); the stop never loosens. Pure: the caller records the result (an event)."""
    e, r, stop = pos.entry_price, pos.r, pos.stop
    if pos.side is Side.LONG:
        best = max(pos.best, h)
        if p.use_breakeven and best >= e + p.breakeven_trigger_r * r:
            stop = max(stop, e + p.breakeven_lock_r * r)
        k = p.aggressive_trail_atr if best >= e + p.long_aggressive_r * r else p.long_trail_atr
        if p.use_trail and not math.isnan(atr):
            stop = max(stop, h - k * atr)
        return stop, best
    best = min(pos.best, lo)
    if p.use_breakeven and best <= e - p.breakeven_trigger_r * r:
        stop = min(stop, e - p.breakeven_lock_r * r)
    k = p.aggressive_trail_atr if best <= e - p.short_aggressive_r * r else p.short_trail_atr
    if p.use_trail and not math.isnan(atr):
        stop = min(stop, lo + k * atr)
    return stop, best
