"""The trader's state, rebuilt from the journal by one reducer.

The engine never changes state directly: it appends an event and this reducer applies
it. A restarted process replays the same events through the same reducer, so the state
it resumes from is, by construction, the state the dead process had. Positions and cash
live in the backtester's own :class:`~tfl.strategy.book.Book`, so a day traded here is
accounted to the same paisa as the same day in a backtest.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tfl.costs import CostModel
from tfl.domain import ExitReason, RejectReason, Side
from tfl.live.journal import Event
from tfl.live.orders import Leg, OrderRecord, OrderRequest, OrderState, OrderType, check_transition
from tfl.settings import Settings
from tfl.strategy.book import Book, Trade
from tfl.strategy.rules import Position

log = logging.getLogger(__name__)
BAR_SECONDS = 900


@dataclass(frozen=True)
class Rejected:
    ts: int
    symbol: str
    side: Side
    reason: RejectReason
    rsi: float


@dataclass
class TraderState:
    settings: Settings
    book: Book
    session: str | None = None
    day_start_equity: float = 0.0
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    allocations: dict[str, dict[str, Any]] = field(default_factory=dict)  # entry client id -> allocation
    rejections: list[Rejected] = field(default_factory=list)
    fills_seen: set[str] = field(default_factory=set)
    marks: dict[str, float] = field(default_factory=dict)
    last_slot: int = 0
    halted: str = ""  # reason, empty when not halted
    reduce_only: str = ""
    closed_sessions: set[str] = field(default_factory=set)
    position_legs: dict[str, dict[str, str]] = field(default_factory=dict)  # symbol -> {"S": cid, "T": cid}
    exit_pending: dict[str, tuple[str, int]] = field(default_factory=dict)  # symbol -> (reason, exit_ts)
    session_bias: str = "NO_TRADES"
    leg_owner: dict[str, int] = field(default_factory=dict)  # order client id -> setup bar of its position
    orphan_fills: list[str] = field(default_factory=list)  # exit fills for a position that is not open

    @staticmethod
    def fresh(settings: Settings) -> TraderState:
        cost = CostModel(settings.costs)
        return TraderState(settings, Book(settings.backtest.capital, cost, settings.risk.margin_multiplier))

    def equity(self) -> float:
        return self.book.equity(self.marks)


def slot_of(ts: int, session_open_ts: int) -> int:
    return session_open_ts + ((ts - session_open_ts) // BAR_SECONDS) * BAR_SECONDS


def apply(state: TraderState, ev: Event) -> None:
    """Apply one journal event to the state."""
    d = ev.data
    k = ev.kind
    if k == "SESSION_OPEN":
        state.session = ev.session
        state.day_start_equity = float(state.book.cash)
        state.halted = ""
        state.session_bias = str(d.get("bias", "NO_TRADES"))
        state.last_slot = 0
        for sym, price in d.get("marks", {}).items():
            state.marks[sym] = float(price)
    elif k == "ALLOC":
        state.allocations[d["cid"]] = d
    elif k == "REJECT":
        state.rejections.append(
            Rejected(int(d["ts"]), d["symbol"], Side(int(d["side"])), RejectReason(d["reason"]), float(d["rsi"]))
        )
    elif k == "INTENT":
        req = OrderRequest(
            d["cid"],
            d["symbol"],
            int(d["side"]),
            OrderType(d["type"]),
            int(d["qty"]),
            d.get("trigger"),
            d.get("limit"),
            d.get("oco"),
        )
        if d["cid"] not in state.orders:
            state.orders[d["cid"]] = OrderRecord(req, Leg(d["leg"]))
        if "setup_ts" in d:
            state.leg_owner[d["cid"]] = int(d["setup_ts"])
        leg = Leg(d["leg"])
        if leg in (Leg.STOP, Leg.TARGET):
            state.position_legs.setdefault(d["symbol"], {})[leg.value] = d["cid"]
        if leg is Leg.EXIT:
            state.exit_pending[d["symbol"]] = (d["reason"], int(d["exit_ts"]))
    elif k == "ORDER":
        rec = state.orders.get(d["cid"])
        if rec is None:
            log.error("journal: status for an unknown order", extra={"fields": {"cid": d["cid"]}})
            return
        new = OrderState(d["state"])
        check_transition(rec.state, new)
        rec.state = new
        if d.get("broker_id"):
            rec.broker_id = d["broker_id"]
    elif k == "MODIFY":
        rec = state.orders[d["cid"]]
        r = rec.request
        rec.request = OrderRequest(
            r.client_id, r.symbol, r.side, r.type, r.qty, d.get("trigger", r.trigger), d.get("limit", r.limit), r.oco
        )
        rec.modifications = int(d["n"])
    elif k == "FILL":
        _apply_fill(state, ev)
    elif k == "LEVELS":
        pos = state.book.positions.get(d["symbol"])
        if pos is not None:
            pos.stop = float(d["stop"])
            pos.best = float(d["best"])
        state.marks[d["symbol"]] = float(d["mark"])
    elif k == "MARKS":
        for sym, price in d["marks"].items():
            state.marks[sym] = float(price)
    elif k == "SLOT":
        state.last_slot = int(d["slot"])
    elif k == "HALT":
        state.halted = str(d["reason"])
    elif k == "REDUCE_ONLY":
        state.reduce_only = str(d["reason"])
    elif k == "SESSION_CLOSE":
        state.closed_sessions.add(ev.session)
    # RECONCILE, NOTE and unknown kinds carry information only


def _apply_fill(state: TraderState, ev: Event) -> None:
    d = ev.data
    if d["fill_id"] in state.fills_seen:
        return
    state.fills_seen.add(d["fill_id"])
    rec = state.orders.get(d["cid"])
    if rec is None:
        log.error("journal: fill for an unknown order", extra={"fields": {"cid": d["cid"]}})
        return
    qty, price, ts = int(d["qty"]), float(d["price"]), int(d["ts"])
    rec.filled += qty
    rec.fill_ids.add(d["fill_id"])
    sym = rec.request.symbol
    book = state.book
    if rec.leg is Leg.ENTRY:
        a = state.allocations[rec.request.client_id]
        pos = book.positions.get(sym)
        if pos is None:
            side = Side(int(a["side"]))
            stop = float(a["stop"])
            r = abs(price - stop)
            p = state.settings.strategy
            book.open(
                Position(
                    sym,
                    side,
                    qty,
                    int(a["setup_ts"]),
                    int(a["entry_ts"]),
                    price,
                    stop,
                    stop,
                    price + side * p.target_r * r,
                    r,
                    float(a["planned_risk"]) * qty / int(a["qty"]),
                    float(a["rsi"]),
                    0.0,
                    best=-math.inf if side is Side.LONG else math.inf,
                )
            )
        else:
            book.add(sym, qty, price)
        state.marks.setdefault(sym, price)
        return
    pos = book.positions.get(sym)
    owner = state.leg_owner.get(d["cid"])
    if pos is None or (owner is not None and owner != pos.setup_ts):
        # A leg of a position that is already closed filled (no broker-side OCO, a race):
        # never book it against another position; the engine goes reduce-only and alerts.
        state.orphan_fills.append(d["fill_id"])
        log.error(
            "journal: exit fill for a position that is not open",
            extra={"fields": {"cid": d["cid"], "symbol": sym, "qty": qty}},
        )
        return
    if rec.leg is Leg.TARGET:
        reason, exit_ts = ExitReason.TARGET, int(d["slot"])
    elif rec.leg is Leg.STOP:
        reason, exit_ts = pos.stop_reason, int(d["slot"])
    else:
        why, exit_ts = state.exit_pending.get(sym, (ExitReason.MANUAL.value, int(d["slot"])))
        reason = ExitReason(why)
    trade = book.reduce(sym, qty, price, exit_ts, reason)
    if trade is not None:
        state.position_legs.pop(sym, None)
        state.exit_pending.pop(sym, None)
    del ts


def trades(state: TraderState) -> list[Trade]:
    return list(state.book.trades)


def cash(state: TraderState) -> Decimal:
    return state.book.cash
