"""The fill model: how a resting order fills against a trade price, on a tick or on a bar.

One model for every simulated world. The paper broker matches real (or replayed) ticks
with :func:`match`; the backtester walks each bar along :func:`bar_path` and matches the
same way, so a bar fills exactly as the replay feed's ticks of that bar would.

- A stop fills when the price reaches its trigger; a limit when the price reaches its
  limit. Triggered by the first trade of a bar (a gap), an order fills at that price;
  triggered later in the bar, at its own level (prices are continuous inside a bar).
- Stops and market orders slip against the trader; a limit does not.
- A bar's path is open, the adverse extreme, the favourable extreme, the adverse extreme
  again, close (for a long: O, L, H, L, C). That is the pessimistic reading of an
  ambiguous bar: a stop is taken before a target, and a stop touched after an entry on
  the entry bar counts. Which side is "adverse" is the side of what the symbol has
  working at the bar's start (its position, else its entry order); see :func:`path_side`.
"""

from __future__ import annotations

from tfl.core.orders import OrderType
from tfl.domain import Side


def adverse(price: float, buy: bool, slip: float) -> float:
    """``price`` moved against the trader by ``slip`` (a fraction): buys pay more, sells get less."""
    return price * (1.0 + slip) if buy else price * (1.0 - slip)


def match(
    typ: OrderType, buy: bool, trigger: float | None, limit: float | None, price: float, first: bool, slip: float
) -> float | None:
    """The fill price of one order against a trade at ``price``, or None if it does not fill.

    ``first``: the trade is the first this order sees in its bar (a gap fills at the price).
    """
    if typ is OrderType.MARKET:
        return adverse(price, buy, slip)
    if typ is OrderType.STOP:
        assert trigger is not None
        if price >= trigger if buy else price <= trigger:
            return adverse(price if first else trigger, buy, slip)
        return None
    assert limit is not None
    if price <= limit if buy else price >= limit:
        return price if first else limit
    return None


def at_the_close(typ: OrderType, buy: bool, last: float | None, slip: float) -> float | None:
    """When the market closes: a market order fills at the symbol's last price (slipped);
    anything else (and a market order with no price at all) expires."""
    if typ is OrderType.MARKET and last is not None:
        return adverse(last, buy, slip)
    return None


def bar_path(o: float, h: float, lo: float, c: float, side: Side) -> tuple[float, float, float, float, float]:
    """The trades a bar is taken to be, adverse extreme first for ``side``."""
    if side is Side.SHORT:
        return (o, h, lo, h, c)
    return (o, lo, h, lo, c)


def touches(side: Side, trigger: float, h: float, lo: float) -> bool:
    """Whether a bar reaches a stop entry's trigger (a setup "triggers")."""
    return h >= trigger if side is Side.LONG else lo <= trigger
