"""The backtester's exchange: resting orders filled on bars by the one fill model.

Each bar is walked along :func:`tfl.core.fills.bar_path` and every resting order of the
symbol is matched at each of its prices with :func:`tfl.core.fills.match`, exactly as the
paper broker matches the replay feed's ticks of that bar. An order placed in reaction to a
fill (a protective stop after an entry) joins from the next price of the same bar, as it
would join from the next tick.
"""

from __future__ import annotations

from collections.abc import Callable

from tfl.core.events import OrderPlaced
from tfl.core.fills import at_the_close, bar_path, match
from tfl.core.orders import OrderType
from tfl.domain import Side

# (client id, quantity, price): called for each fill, in order, while the bar is walked.
OnFill = Callable[[str, int, float], None]


class _Resting:
    __slots__ = ("buy", "cid", "limit", "qty", "trigger", "type")

    def __init__(self, ev: OrderPlaced) -> None:
        self.cid = ev.cid
        self.buy = ev.side > 0
        self.type = ev.type
        self.qty = ev.qty
        self.trigger = ev.trigger
        self.limit = ev.limit


def _reached(r: _Resting, h: float, lo: float) -> bool:
    """Whether some price in [lo, h] fills ``r`` (market orders always do)."""
    if r.type is OrderType.MARKET:
        return True
    if r.type is OrderType.STOP:
        assert r.trigger is not None
        return h >= r.trigger if r.buy else lo <= r.trigger
    assert r.limit is not None
    return lo <= r.limit if r.buy else h >= r.limit


class SimExchange:
    def __init__(self, slippage_pct: float) -> None:
        self.slip = slippage_pct / 100.0
        self.book: dict[str, list[_Resting]] = {}  # symbol -> resting orders, in arrival order
        self._where: dict[str, str] = {}  # client id -> symbol

    def place(self, ev: OrderPlaced) -> None:
        self.book.setdefault(ev.symbol, []).append(_Resting(ev))
        self._where[ev.cid] = ev.symbol

    def cancel(self, cid: str) -> bool:
        """Remove a resting order; False when it is not resting (filled, or never placed)."""
        sym = self._where.pop(cid, None)
        if sym is None:
            return False
        orders = self.book[sym]
        for i, o in enumerate(orders):
            if o.cid == cid:
                del orders[i]
                break
        if not orders:
            del self.book[sym]
        return True

    def modify(self, cid: str, trigger: float, qty: int | None = None) -> None:
        sym = self._where.get(cid)
        if sym is not None:
            for o in self.book[sym]:
                if o.cid == cid:
                    o.trigger = trigger
                    o.qty = o.qty if qty is None else qty

    def reaches(self, symbol: str, h: float, lo: float) -> bool:
        """Whether some resting order of ``symbol`` fills at some price in [lo, h]: when none
        does, :meth:`run_bar` would do nothing, whatever the bar's path."""
        orders = self.book.get(symbol)
        if not orders:
            return False
        for r in orders:
            if _reached(r, h, lo):
                break
        else:
            return False
        return True

    def run_bar(self, symbol: str, o: float, h: float, lo: float, c: float, side: Side, on_fill: OnFill) -> None:
        """Walk one bar of ``symbol`` and fill what its prices reach."""
        orders = self.book.get(symbol)
        if not orders:
            return
        for r in orders:
            if _reached(r, h, lo):
                break
        else:
            return  # nothing rests within the bar's range: no price of its path can fill anything
        slip = self.slip
        where = self._where
        for i, price in enumerate(bar_path(o, h, lo, c, side)):
            orders = self.book.get(symbol)
            if not orders:
                return
            for r in list(orders):
                if r.cid not in where:
                    continue  # cancelled by a reaction to an earlier fill at this price
                px = match(r.type, r.buy, r.trigger, r.limit, price, i == 0, slip)
                if px is not None:
                    self._remove(symbol, r)
                    on_fill(r.cid, r.qty, px)

    def end_session(self, last_price: Callable[[str], float | None], on_fill: OnFill) -> list[str]:
        """The market closed: market orders fill at the symbol's last price; the rest expire.
        Returns the client ids that expired."""
        expired: list[str] = []
        for symbol in sorted(self.book):
            for r in list(self.book.get(symbol, [])):
                self._remove(symbol, r)
                px = at_the_close(r.type, r.buy, last_price(symbol), self.slip)
                if px is not None:
                    on_fill(r.cid, r.qty, px)
                else:
                    expired.append(r.cid)
        return expired

    def _remove(self, symbol: str, r: _Resting) -> None:
        orders = self.book[symbol]
        orders.remove(r)
        del self._where[r.cid]
        if not orders:
            del self.book[symbol]

    def __bool__(self) -> bool:
        return bool(self.book)
