"""The cash-limited quantity search gives the same integer as a plain bisection.

:func:`tfl.strategy.sizing.max_qty_for_cash` starts from a proportional guess and gallops;
the answer must be exactly the largest quantity whose cash need fits (the plain bisection
over 0..upper below, written independently), for both cost models, any margin, and cash
right at, just under and just over the need of some quantity (where an off-by-one shows).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.costs import CostModel
from tfl.domain import Side
from tfl.settings import Settings
from tfl.strategy.sizing import cash_needed, max_qty_for_cash

BASE = Settings()
MODELS = [
    CostModel(BASE.costs),
    CostModel(BASE.replace({"costs.model": "flat"}).costs),
    CostModel(BASE.replace({"costs.brokerage_cap": 0.5}).costs),  # the cap bites at once: charges bend
    CostModel(BASE.replace({"costs.brokerage_pct": 5.0, "costs.brokerage_cap": 1e6}).costs),  # steep charges
]


def bisection(side: Side, upper: int, price: float, cash: float, cost: CostModel, margin: float) -> int:
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cash_needed(side, mid, price, cost, margin) <= cash:
            lo = mid
        else:
            hi = mid - 1
    return lo


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(MODELS),
    st.sampled_from([Side.LONG, Side.SHORT]),
    st.integers(0, 2_000_000),
    st.floats(0.05, 100_000.0),
    st.floats(1.0, 20.0),
    st.floats(0.0, 1.0),
    st.sampled_from(["at", "under", "over", "free"]),
    st.floats(-1000.0, 1e9),
)
def test_the_search_finds_what_the_bisection_finds(
    cost: CostModel, side: Side, upper: int, price: float, margin: float, frac: float, where: str, free: float
) -> None:
    if where == "free":
        cash = free
    else:  # exactly the need of some quantity, or one step of float either side of it
        need = cash_needed(side, int(upper * frac), price, cost, margin)
        cash = {"at": need, "under": math.nextafter(need, -math.inf), "over": math.nextafter(need, math.inf)}[where]
    assert max_qty_for_cash(side, upper, price, cash, cost, margin) == bisection(side, upper, price, cash, cost, margin)


def test_small_and_degenerate_cases() -> None:
    cost = MODELS[0]
    for upper in range(0, 40):
        for cash in (-1.0, 0.0, 1.0, 99.9, 100.0, 250.0, 1e4):
            got = max_qty_for_cash(Side.LONG, upper, 100.0, cash, cost, 1.0)
            assert got == bisection(Side.LONG, upper, 100.0, cash, cost, 1.0), (upper, cash)
    for price in (math.nan, math.inf):  # nothing fits a price that is not a number, as in the bisection
        for cash in (0.0, 1e6, math.inf):
            assert max_qty_for_cash(Side.SHORT, 50, price, cash, cost, 1.0) == bisection(
                Side.SHORT, 50, price, cash, cost, 1.0
            )
