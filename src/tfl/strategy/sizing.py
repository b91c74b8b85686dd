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


# The answer for each reason an entry gets no shares (immutable: one of each is enough).
_REFUSED = {
    r: Sizing(0, 0.0, r)
    for r in (
        RejectReason.MAX_POSITIONS,
        RejectReason.RISK_BUDGET,
        RejectReason.QTY_ZERO,
        RejectReason.INSUFFICIENT_CASH,
    )
}


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
        return _REFUSED[RejectReason.MAX_POSITIONS]
    desired = equity * p.risk_per_trade_pct / 100.0
    budget = equity * p.open_risk_budget_pct / 100.0 - open_risk
    risk_amount = min(desired, budget)
    if risk_amount <= 0:
        return _REFUSED[RejectReason.RISK_BUDGET]
    rps = abs(planned - stop)
    qty_risk = math.floor(risk_amount / rps) if rps > 0 else 0
    qty_cap = math.floor(equity * p.max_position_pct / 100.0 / planned)
    qty = min(qty_risk, qty_cap)
    if qty <= 0:
        return _REFUSED[RejectReason.QTY_ZERO]
    m = p.margin_multiplier
    if cash_needed(side, qty, planned, cost, m) > cash:
        qty = max_qty_for_cash(side, qty, planned, cash, cost, m)
        if qty <= 0:
            return _REFUSED[RejectReason.INSUFFICIENT_CASH]
    return Sizing(qty, qty * rps, None)


def max_qty_for_cash(side: Side, upper: int, price: float, cash: float, cost: CostModel, margin: float) -> int:
    """Largest quantity in 1..``upper`` whose cash need fits ``cash``, else 0.

    The cash need only grows with the quantity (every rate is non-negative, and rounding
    keeps the order), so the answer is found exactly by a search; it starts from the
    proportional guess (the need of ``upper`` scaled down to ``cash``), which is right or
    within a share or two almost always, gallops to bracket the answer and bisects the bracket.
    The same integer as a plain bisection of 0..``upper``, in a few evaluations instead of ~log2(upper).
    """
    if upper <= 0:
        return 0
    need = cash_needed(side, upper, price, cost, margin)
    if need <= cash:
        return upper
    # Invariants: ``ok`` is 0 or a quantity that fits; ``bad`` is a quantity that does not.
    ok, bad = 0, upper
    guess = min(upper - 1, max(1, int(upper * (cash / need)))) if 0 < cash < need else 0  # (not for a NaN need)
    if guess > 0:
        if cash_needed(side, guess, price, cost, margin) <= cash:
            ok, step = guess, 1
            while ok + step < bad:
                if cash_needed(side, ok + step, price, cost, margin) <= cash:
                    ok += step
                    step *= 2
                else:
                    bad = ok + step
                    break
        else:
            bad, step = guess, 1
            while bad - step > 0:
                if cash_needed(side, bad - step, price, cost, margin) <= cash:
                    ok = bad - step
                    break
                bad -= step
                step *= 2
    while bad - ok > 1:
        mid = (ok + bad) // 2
        if cash_needed(side, mid, price, cost, margin) <= cash:
            ok = mid
        else:
            bad = mid
    return ok
