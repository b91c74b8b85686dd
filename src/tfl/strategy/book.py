"""The portfolio ledger: cash, open positions, closed trades.

Cash is a ``Decimal`` built from the exact binary value of every amount, so the ledger
never accumulates rounding error however many trades it books; marks to market are
floats because they are recomputed, never summed into the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from tfl.costs import Charges, CostModel
from tfl.domain import ExitReason, Side
from tfl.strategy.rules import Position


@dataclass(frozen=True)
class Trade:
    symbol: str
    side: Side
    setup_ts: int
    entry_ts: int
    entry_price: float
    qty: int
    exit_ts: int
    exit_price: float
    exit_reason: ExitReason
    initial_stop: float
    r: float
    rsi: float
    entry_charges: Charges
    exit_charges: Charges

    @property
    def gross_pnl(self) -> float:
        return self.side * self.qty * (self.exit_price - self.entry_price)

    @property
    def charges(self) -> float:
        return self.entry_charges.total + self.exit_charges.total

    @property
    def pnl(self) -> float:
        """Net of both sides' charges."""
        return self.gross_pnl - self.charges

    @property
    def r_multiple(self) -> float:
        """Net P&L in units of the initial risk taken (qty x R)."""
        return self.pnl / (self.qty * self.r)


class Book:
    """Cash, positions and trades for one portfolio (one account)."""

    def __init__(self, capital: float, cost: CostModel, margin: float = 1.0) -> None:
        self.initial_capital = capital
        self.cash = Decimal(capital)
        self.cost = cost
        self.margin = margin
        self.positions: dict[str, Position] = {}
        self.entry_charges: dict[str, Charges] = {}
        self.trades: list[Trade] = []
        self.open_risk = 0.0
        self._partials: dict[str, list[tuple[int, float, Charges]]] = {}
        # Shares the broker holds that no position accounts for (an over-fill, a stop that
        # filled after its position had closed), signed, with their average price.
        self.stray: dict[str, tuple[int, float]] = {}
        # ``float(self.cash)`` for the Decimal it was taken from: equity is asked far more
        # often than cash changes (every assignment makes a new Decimal, so identity tells).
        self._cash_seen = self.cash
        self._cash_float = float(self.cash)

    def open(self, pos: Position) -> Charges:
        if pos.symbol in self.positions:
            raise ValueError(f"position already open in {pos.symbol}")
        ch = self.cost.charges(pos.qty * pos.entry_price, pos.side is Side.LONG)
        pos.entry_charges = ch.total
        self.cash -= Decimal(pos.qty * pos.entry_price / self.margin) + Decimal(ch.total)
        self.positions[pos.symbol] = pos
        self.entry_charges[pos.symbol] = ch
        self.open_risk += pos.planned_risk
        return ch

    def close(self, symbol: str, price: float, ts: int, reason: ExitReason) -> Trade:
        pos = self.positions.pop(symbol)
        entry_ch = self.entry_charges.pop(symbol)
        exit_ch = self.cost.charges(pos.qty * price, pos.side is Side.SHORT)
        gross = pos.side * pos.qty * (price - pos.entry_price)
        self.cash += Decimal(pos.qty * pos.entry_price / self.margin) + Decimal(gross) - Decimal(exit_ch.total)
        self.open_risk -= pos.planned_risk
        if not self.positions:
            self.open_risk = 0.0  # no drift left behind once flat
        trade = Trade(
            pos.symbol,
            pos.side,
            pos.setup_ts,
            pos.entry_ts,
            pos.entry_price,
            pos.qty,
            ts,
            price,
            reason,
            pos.initial_stop,
            pos.r,
            pos.rsi,
            entry_ch,
            exit_ch,
        )
        self.trades.append(trade)
        return trade

    def add(self, symbol: str, qty: int, price: float, planned_risk: float = 0.0) -> Charges:
        """A further (partial) entry fill: average the price in, pay its cash and charges."""
        pos = self.positions[symbol]
        ch = self.cost.charges(qty * price, pos.side is Side.LONG)
        self.cash -= Decimal(qty * price / self.margin) + Decimal(ch.total)
        total = pos.qty + qty
        pos.entry_price = (pos.qty * pos.entry_price + qty * price) / total
        pos.qty = total
        pos.r = abs(pos.entry_price - pos.initial_stop)
        pos.planned_risk += planned_risk
        self.open_risk += planned_risk
        old = self.entry_charges[symbol]
        self.entry_charges[symbol] = _sum_charges(old, ch)
        pos.entry_charges = self.entry_charges[symbol].total
        return ch

    def reduce(self, symbol: str, qty: int, price: float, ts: int, reason: ExitReason) -> Trade | None:
        """An exit fill of ``qty``; returns the trade once the position is flat.

        A single fill of the whole position is exactly :meth:`close`; partial fills are
        booked as they come and averaged into one trade at the end.
        """
        pos = self.positions[symbol]
        parts = self._partials.get(symbol)
        if qty >= pos.qty and not parts:
            return self.close(symbol, price, ts, reason)
        exit_ch = self.cost.charges(qty * price, pos.side is Side.SHORT)
        gross = pos.side * qty * (price - pos.entry_price)
        self.cash += Decimal(qty * pos.entry_price / self.margin) + Decimal(gross) - Decimal(exit_ch.total)
        parts = self._partials.setdefault(symbol, [])
        parts.append((qty, price, exit_ch))
        if qty < pos.qty:
            pos.qty -= qty
            return None
        total_qty = sum(q for q, _, _ in parts)
        avg = sum(q * p for q, p, _ in parts) / total_qty
        charges = parts[0][2]
        for _, _, c in parts[1:]:
            charges = _sum_charges(charges, c)
        del self._partials[symbol]
        self.positions.pop(symbol)
        entry_ch = self.entry_charges.pop(symbol)
        self.open_risk -= pos.planned_risk
        if not self.positions:
            self.open_risk = 0.0
        trade = Trade(
            pos.symbol,
            pos.side,
            pos.setup_ts,
            pos.entry_ts,
            pos.entry_price,
            total_qty,
            ts,
            avg,
            reason,
            pos.initial_stop,
            pos.r,
            pos.rsi,
            entry_ch,
            charges,
        )
        self.trades.append(trade)
        return trade

    def stray_fill(self, symbol: str, qty: int, price: float) -> None:
        """Book a fill of ``qty`` signed shares that belongs to no position: cash moves as for a
        position (charges included) and P&L is realised against the stray's average price."""
        n, avg = self.stray.get(symbol, (0, 0.0))
        if n and (qty > 0) != (n > 0):
            closing = min(abs(qty), abs(n))
            sign = 1 if n > 0 else -1
            ch = self.cost.charges(closing * price, qty > 0)
            self.cash += (
                Decimal(closing * avg / self.margin) + Decimal(sign * closing * (price - avg)) - Decimal(ch.total)
            )
            n -= sign * closing
            qty += sign * closing
        if qty:
            ch = self.cost.charges(abs(qty) * price, qty > 0)
            self.cash -= Decimal(abs(qty) * price / self.margin) + Decimal(ch.total)
            avg = (abs(n) * avg + abs(qty) * price) / (abs(n) + abs(qty))
            n += qty
        if n:
            self.stray[symbol] = (n, avg)
        else:
            self.stray.pop(symbol, None)

    def correct_stray(self, symbol: str, qty: int) -> None:
        """Shrink a stray to ``qty`` shares (same sign, or none) at its own average price:
        shares the journal believed in but the broker does not hold never had a price."""
        n, avg = self.stray.get(symbol, (0, 0.0))
        keep = qty if (qty > 0) == (n > 0) and abs(qty) <= abs(n) else 0
        self.cash += Decimal((abs(n) - abs(keep)) * avg / self.margin)
        if keep:
            self.stray[symbol] = (keep, avg)
        else:
            self.stray.pop(symbol, None)

    def position_value(self, pos: Position, mark: float) -> float:
        """What a position adds to equity at ``mark``: its reserved cash plus open P&L."""
        return pos.qty * pos.entry_price / self.margin + pos.side * pos.qty * (mark - pos.entry_price)

    def equity(self, marks: Mapping[str, float], newer: Mapping[str, float] | None = None) -> float:
        """Cash plus every position at its mark (``newer`` marks first, if given)."""
        cash = self.cash
        if cash is not self._cash_seen:
            self._cash_seen = cash
            self._cash_float = float(cash)
        total = self._cash_float
        margin = self.margin
        for sym, pos in self.positions.items():
            mark = newer.get(sym) if newer else None
            if mark is None:
                mark = marks.get(sym, pos.entry_price)
            # position_value(pos, mark), inline: equity is asked at every bar close
            total += pos.qty * pos.entry_price / margin + pos.side * pos.qty * (mark - pos.entry_price)
        for sym, (n, avg) in self.stray.items():
            total += abs(n) * avg / self.margin + n * (marks.get(sym, avg) - avg)
        return total


def _sum_charges(a: Charges, b: Charges) -> Charges:
    return Charges(
        a.brokerage + b.brokerage,
        a.stt + b.stt,
        a.exchange_txn + b.exchange_txn,
        a.sebi + b.sebi,
        a.stamp + b.stamp,
        a.gst + b.gst,
    )
