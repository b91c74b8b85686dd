"""Which setups get an entry order for the coming bar, and how big: the reservation rule.

At the close of bar T-1 every valid setup for bar T is sized in priority order (RSI for
longs, 100 - RSI for shorts, then symbol), and each one reserves a slot, its planned risk
and its cash until it fills or its bar ends. This is what a live trader can actually do:
it must have its stop-entry orders resting, with quantities, before bar T trades. The live
runtime and the backtester (``risk.allocation = "reserve"``, the default) both call this.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from tfl.costs import CostModel
from tfl.domain import RejectReason
from tfl.settings import RiskSettings
from tfl.strategy.rules import Setup, planned_entry, priority_score
from tfl.strategy.sizing import cash_needed, size_entry, sizing_equity


@dataclass(frozen=True)
class Allocation:
    setup: Setup
    qty: int
    planned: float  # the planned entry price sizing assumed
    planned_risk: float
    reject: RejectReason | None


def by_priority(setups: Iterable[Setup]) -> list[Setup]:
    return sorted(setups, key=_priority_key)


def _priority_key(s: Setup) -> tuple[float, str]:
    return -priority_score(s.side, s.rsi), s.symbol  # -s.priority, without the property's call


def allocate(
    setups: Iterable[Setup],
    *,
    equity: float,
    initial_capital: float,
    cash: float,
    open_risk: float,
    open_positions: int,
    held: Collection[str],
    cost: CostModel,
    risk: RiskSettings,
) -> list[Allocation]:
    """Size every setup for the coming bar, reserving resources in priority order."""
    size_eq = sizing_equity(equity, initial_capital, risk)
    out: list[Allocation] = []
    for s in by_priority(setups):
        planned = planned_entry(s.side, s.trigger, cost)
        if s.symbol in held:
            out.append(Allocation(s, 0, planned, 0.0, RejectReason.POSITION_OPEN))
            continue
        sz = size_entry(s.side, planned, s.initial_stop, size_eq, open_risk, open_positions, cash, cost, risk)
        if sz.reject is not None:
            out.append(Allocation(s, 0, planned, 0.0, sz.reject))
            continue
        open_risk += sz.planned_risk
        open_positions += 1
        cash -= cash_needed(s.side, sz.qty, planned, cost, risk.margin_multiplier)
        out.append(Allocation(s, sz.qty, planned, sz.planned_risk, None))
    return out


def loss_limit_hit(equity: float, day_start_equity: float, risk: RiskSettings) -> bool:
    """The daily loss limit: equity at a bar close at or below the day's start minus the limit."""
    return equity <= day_start_equity * (1.0 - risk.daily_loss_limit_pct / 100.0)
