"""Position sizing under the portfolio limits (strategy page, section 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfl.costs import CostModel
from tfl.domain import RejectReason, Side
from tfl.settings import RiskSettings


@dataclass(frozen=True)
class Sizing:
    qty: int
    planned_risk: float
    reject: RejectReason | None


def sizing_equity(equity: float, initial_capital: float, p: RiskSettings) -> float:
    """Equity used for sizing: current equity capped at a multiple of the initial capital."""
    return min(equity, p.equity_cap_multiple * initial_capital)


def cash_needed(side: Side, qty: int, price: float, cost: CostModel, margin: float) -> float:
    """Cash an entry ties up: the position (over the margin multiplier) plus its charges."""
    turnover = qty * price
    return turnover / margin + cost.charge_total(turnover, side is Side.LONG)


def size_entry(
    side: Side,
    planned: float,
    stop: float,
    equity: float,
    open_risk: float,
    open_positions: int,
    cash: float,
    cost: CostModel,
    p: RiskSettings,
) -> Sizing:
    """Quantity for one entry, resized (not rejected) to fit risk budget, capital and cash.

    ``equity`` is the (capped) sizing equity taken once at the start of the bar;
    ``open_risk``, ``open_positions`` and ``cash`` reflect entries already taken.
    """
    if open_positions >= p.max_positions:
        return Sizing(0, 0.0, RejectReason.MAX_POSITIONS)
    desired = equity * p.risk_per_trade_pct / 100.0
    budget = equity * p.open_risk_budget_pct / 100.0 - open_risk
    risk_amount = min(desired, budget)
    if risk_amount <= 0:
        return Sizing(0, 0.0, RejectReason.RISK_BUDGET)
    rps = abs(planned - stop)
    qty_risk = math.floor(risk_amount / rps) if rps > 0 else 0
    qty_cap = math.floor(equity * p.max_position_pct / 100.0 / planned)
    qty = min(qty_risk, qty_cap)
    if qty <= 0:
        return Sizing(0, 0.0, RejectReason.QTY_ZERO)
    m = p.margin_multiplier
    if cash_needed(side, qty, planned, cost, m) > cash:
        qty = max_qty_for_cash(side, qty, planned, cash, cost, m)
        if qty <= 0:
            return Sizing(0, 0.0, RejectReason.INSUFFICIENT_CASH)
    return Sizing(qty, qty * rps, None)


def max_qty_for_cash(side: Side, upper: int, price: float, cash: float, cost: CostModel, margin: float) -> int:
    """Largest quantity <= ``upper`` whose cash need fits ``cash`` (binary search)."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cash_needed(side, mid, price, cost, margin) <= cash:
            lo = mid
        else:
            hi = mid - 1
    return lo
