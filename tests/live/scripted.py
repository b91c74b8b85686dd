"""A scripted broker and a trader on an in-memory journal: one scenario at a time, by hand.

The broker keeps an order book and fills only when a test tells it to, so a test can make
fills cross cancels, arrive in pieces, time out or come late, exactly where it wants.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable

from tfl.core.decide import ClosedBar, SessionPlan
from tfl.core.events import Allocated, OrderPlaced
from tfl.core.orders import Leg, OrderRecord, OrderRequest, OrderType, client_id
from tfl.domain import Bias, Side
from tfl.live.broker import BrokerError, BrokerEvent, BrokerOrder, Fill, OrderUpdate
from tfl.live.execution import Execution
from tfl.live.journal import Journal, MemoryJournal
from tfl.live.trader import Trader
from tfl.settings import Settings
from tfl.timeutil import epoch_of_ist

S = Settings()
DATE = dt.date(2024, 3, 6)
OPEN = epoch_of_ist(DATE, 9 * 60 + 15)
PLAN = SessionPlan(DATE, OPEN, epoch_of_ist(DATE, 15 * 60 + 15), epoch_of_ist(DATE, 15 * 60 + 15))


def at(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return epoch_of_ist(DATE, h * 60 + m)


class ScriptedBroker:
    def __init__(self) -> None:
        self.book: dict[str, BrokerOrder] = {}
        self.fill_list: list[Fill] = []
        self.events: list[BrokerEvent] = []
        self.calls: list[tuple[object, ...]] = []
        self.on_place: Callable[[OrderRequest], None] | None = None  # may raise
        self.on_cancel: Callable[[str], None] | None = None
        self.on_positions: Callable[[], None] | None = None
        self._ids = itertools.count(1)

    def place(self, req: OrderRequest, ts: int) -> BrokerOrder:
        self.calls.append(("place", req.client_id, req.qty))
        if self.on_place is not None:
            self.on_place(req)
        o = BrokerOrder(
            f"B{next(self._ids)}", req.client_id, req.symbol, req.side, req.type.value, req.qty, req.trigger,
            req.limit, "PENDING", 0, 0.0,
        )  # fmt: skip
        self.book[req.client_id] = o
        return o

    def modify(
        self, tag: str, ts: int, *, trigger: float | None = None, limit: float | None = None, qty: int | None = None
    ) -> BrokerOrder:
        self.calls.append(("modify", tag, trigger, qty))
        o = self.book.get(tag)
        if o is None or o.status not in ("PENDING", "PARTIAL"):
            raise BrokerError(f"order {tag}: not pending")
        o = dataclasses.replace(o, trigger=trigger if trigger is not None else o.trigger, qty=qty or o.qty)
        self.book[tag] = o
        return o

    def cancel(self, tag: str, ts: int) -> BrokerOrder:
        self.calls.append(("cancel", tag))
        if self.on_cancel is not None:
            self.on_cancel(tag)
        o = self.book.get(tag)
        if o is None:
            raise BrokerError(f"order {tag}: unknown, cannot cancel")
        if o.status in ("PENDING", "PARTIAL"):
            o = dataclasses.replace(o, status="CANCELLED")
            self.book[tag] = o
        return o

    def order_by_tag(self, tag: str) -> BrokerOrder | None:
        return self.book.get(tag)

    def orders(self) -> list[BrokerOrder]:
        return list(self.book.values())

    def fills(self) -> list[Fill]:
        return list(self.fill_list)

    def positions(self) -> dict[str, int]:
        if self.on_positions is not None:
            self.on_positions()
        out: dict[str, int] = {}
        for f in self.fill_list:
            out[f.symbol] = out.get(f.symbol, 0) + f.side * f.qty
        return {k: v for k, v in out.items() if v}

    def poll(self) -> list[BrokerEvent]:
        ev, self.events = self.events, []
        return ev

    def on_token_rejected(self, callback: Callable[[str], None]) -> None:
        return None

    # ------------------------------------------------------------------ the market, by hand

    def fill(self, tag: str, qty: int, price: float, ts: int, *, report: bool = True) -> Fill:
        """The exchange fills ``qty`` of an order (reported on the next poll unless not ``report``)."""
        o = self.book[tag]
        f = Fill(f"{o.broker_id}-{o.filled + qty}", o.broker_id, tag, o.symbol, o.side, qty, price, ts)
        self.fill_list.append(f)
        status = "FILLED" if o.filled + qty >= o.qty else ("PARTIAL" if o.status == "PENDING" else o.status)
        self.book[tag] = dataclasses.replace(o, filled=o.filled + qty, status=status)
        if report:
            self.events.append(f)
            if status == "FILLED":
                self.events.append(OrderUpdate(tag, o.broker_id, "FILLED", o.filled + qty))
        return f

    def working(self, symbol: str) -> list[BrokerOrder]:
        return [o for o in self.book.values() if o.symbol == symbol and o.status in ("PENDING", "PARTIAL")]


def new_trader(journal: Journal | None = None, broker: ScriptedBroker | None = None) -> tuple[Trader, ScriptedBroker]:
    broker = broker or ScriptedBroker()
    trader = Trader(S, journal or MemoryJournal(), Execution(broker, OPEN), PLAN)
    trader.load()
    trader.open_session(OPEN, Bias.LONGS, "test", {"AAA": 100.0})
    trader.gate.reconciled = trader.gate.feed_fresh = True
    return trader, broker


def restart(trader: Trader, broker: ScriptedBroker, alert: Callable[[str, str], None] | None = None) -> Trader:
    """A new process on the same journal and broker, reconciled (its alerts to ``alert``)."""
    from tfl.live.reconcile import reconcile

    again = Trader(S, trader.journal, Execution(broker, OPEN), PLAN)
    if alert is not None:
        again.alert = alert
    again.load()
    again.gate.feed_fresh = True
    reconcile(again, again.state.last_slot or OPEN)
    return again


def enter(trader: Trader, qty: int = 100, trigger: float = 101.0, stop: float = 99.0, setup: str = "09:30") -> str:
    """Decide (as the core would) a long entry on AAA for the bar after ``setup``."""
    s_ts = at(setup)
    cid = client_id(DATE, "AAA", s_ts, Leg.ENTRY)
    risk = (trigger - stop) * qty
    trader.decide(
        [
            Allocated(cid, "AAA", Side.LONG, trigger, stop, qty, trigger, risk, 80.0, s_ts, s_ts + 900, None),
            OrderPlaced(cid, Leg.ENTRY, "AAA", 1, OrderType.STOP, qty, trigger, None, None, s_ts),
        ],
        s_ts + 900,
    )
    return cid


def poll(trader: Trader, ts: int) -> None:
    ex = trader.execution
    trader.facts(ex.facts(ex.poll()), ts)


def bar(hhmm: str, o: float = 101.0, h: float = 101.5, lo: float = 100.5, c: float = 101.2) -> ClosedBar:
    return ClosedBar("AAA", at(hhmm), o, h, lo, c, 1.0)


def leg_of(tag: str) -> Leg:
    """The leg a client id names."""
    return Leg(tag[10])


def placed(broker: ScriptedBroker, leg: Leg) -> int:
    """How many orders of ``leg`` the broker was asked to place."""
    return sum(1 for c in broker.calls if c[0] == "place" and leg_of(str(c[1])) is leg)


def legs(trader: Trader, leg: Leg) -> list[OrderRecord]:
    return [r for r in trader.state.orders.values() if r.leg is leg]
