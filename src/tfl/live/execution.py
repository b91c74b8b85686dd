"""Execution: the only code that talks to a broker.

It carries out the core's order decisions (send, cancel, modify) and turns every answer
into a fact, an event for the trader to journal: an order accepted, rejected, of unknown
outcome, cancelled, expired, or filled. An ambiguous answer (a timeout) makes an order
UNKNOWN; it is then looked up by its tag and never re-sent blind. A broker error never
escapes from here: a failed request is logged and answered with what is known.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

from tfl.core.events import Event, Filled, OrderReported
from tfl.core.orders import OrderRecord, Report
from tfl.live.broker import (
    STOP_CROSSED,
    Broker,
    BrokerError,
    BrokerEvent,
    BrokerOrder,
    BrokerTimeoutError,
    Fill,
    OrderUpdate,
    StopCrossedError,
)
from tfl.live.faults import CrashPoints
from tfl.timeutil import slot_of

log = logging.getLogger("tfl.execution")

# A broker's order status as a fact about the order (fills are facts of their own).
STATUS_REPORT: dict[str, Report | None] = {
    "PENDING": Report.ACCEPTED,
    "PARTIAL": Report.ACCEPTED,
    "FILLED": None,  # the fills say how much, and they are booked as they come
    "CANCELLED": Report.CANCELLED,
    "EXPIRED": Report.EXPIRED,
    "REJECTED": Report.REJECTED,
}


def _report_of(status: str) -> Report | None:
    """The fact a broker status stands for; one we do not know is read as still working, and said."""
    if status in STATUS_REPORT:
        return STATUS_REPORT[status]
    log.warning("unknown broker order status: taken as still working", extra={"fields": {"status": status}})
    return Report.ACCEPTED


class Modified(enum.Enum):
    """The broker's answer to a stop modification."""

    CONFIRMED = "confirmed"
    REFUSED = "refused"  # the broker said no: the order stands as it was (or is no longer working)
    CROSSED = "crossed"  # refused because the price has already crossed the new trigger
    UNKNOWN = "unknown"  # no answer: ask again later (a modification sets absolute values)


class Execution:
    def __init__(
        self,
        broker: Broker,
        open_ts: int,
        *,
        crash: CrashPoints | None = None,
        on_latency: Callable[[float, str], None] | None = None,
    ) -> None:
        self.broker = broker
        self.open_ts = open_ts
        self.crash = crash
        self._on_latency = on_latency  # wall-clock only: never journalled, never decides anything

    # ------------------------------------------------------------------ requests

    def place(self, rec: OrderRecord, ts: int) -> list[Event]:
        req = rec.request
        started = time.perf_counter()
        try:
            try:
                order = self.broker.place(req, ts)
            finally:
                if self._on_latency is not None:
                    self._on_latency((time.perf_counter() - started) * 1000.0, rec.leg.value)
            self._hit("broker")
        except StopCrossedError as exc:
            return [OrderReported(req.client_id, Report.REJECTED, reason=f"{STOP_CROSSED}{exc}"[:200])]
        except BrokerError as exc:
            return [OrderReported(req.client_id, Report.REJECTED, reason=str(exc)[:200])]
        except BrokerTimeoutError as exc:
            log.error(
                "order outcome unknown: will look it up by tag, never re-send blind",
                extra={"fields": {"cid": req.client_id, "symbol": req.symbol}},
            )
            return [OrderReported(req.client_id, Report.UNKNOWN, reason=str(exc)[:200])]
        return self.adopt(rec, order)

    def cancel(self, rec: OrderRecord, ts: int) -> list[Event]:
        cid = rec.request.client_id
        try:
            order = self.broker.cancel(cid, ts)
            self._hit("broker")
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("cancel failed", extra={"fields": {"cid": cid, "error": str(exc)}})
            return []  # still PENDING_CANCEL: the next step asks again
        return self.adopt(rec, order)

    def modify(self, rec: OrderRecord, ts: int, trigger: float, qty: int | None = None) -> Modified:
        """Move (or resize) a resting stop."""
        cid = rec.request.client_id
        try:
            self.broker.modify(cid, ts, trigger=trigger, qty=qty)
            self._hit("broker")
        except BrokerError as exc:
            log.error("stop modification refused", extra={"fields": {"cid": cid, "error": str(exc)}})
            return Modified.CROSSED if isinstance(exc, StopCrossedError) else Modified.REFUSED
        except BrokerTimeoutError as exc:
            log.error("stop modification unanswered", extra={"fields": {"cid": cid, "error": str(exc)}})
            return Modified.UNKNOWN
        return Modified.CONFIRMED

    # ------------------------------------------------------------------ what the broker knows

    def lookup(self, rec: OrderRecord) -> list[Event] | None:
        """The broker's facts about ``rec`` (found by its tag), or None if it has no such order.
        A lookup that fails says nothing: an empty list, and the order stays as it is."""
        try:
            order = self.broker.order_by_tag(rec.request.client_id)
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("order lookup failed", extra={"fields": {"cid": rec.request.client_id, "error": str(exc)}})
            return []
        if order is None:
            return None
        return self.adopt(rec, order)

    def broker_order(self, rec: OrderRecord) -> BrokerOrder | None:
        """The order as the broker has it now; None if it has none or cannot be asked."""
        try:
            return self.broker.order_by_tag(rec.request.client_id)
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("order lookup failed", extra={"fields": {"cid": rec.request.client_id, "error": str(exc)}})
            return None

    def adopt(self, rec: OrderRecord, order: BrokerOrder) -> list[Event]:
        """The broker's word for an order: its status and any fills we have not booked."""
        out: list[Event] = []
        booked = rec.filled
        if order.filled > rec.filled:  # fills first: they happened before the status the order ended in
            try:
                fills = self.broker.fills()
            except (BrokerError, BrokerTimeoutError) as exc:
                log.error("could not read the broker's fills", extra={"fields": {"error": str(exc)}})
                fills = []
            new = [self.fill_fact(f) for f in fills if f.tag == order.tag and not rec.has_fill(f.fill_id)]
            booked += sum(f.qty for f in new)
            out.extend(new)
        report = _report_of(order.status)
        if booked < order.filled and report in (Report.CANCELLED, Report.EXPIRED, None):
            # Some of its fills could not be read: the order is not called over before they are
            # booked (the journal would forget shares that traded). The next look settles it.
            log.warning(
                "an order is over at the broker but its fills are not all booked yet",
                extra={"fields": {"cid": rec.request.client_id, "filled": order.filled, "booked": booked}},
            )
            return out
        if report is None and order.filled < rec.request.qty:
            # Done at the broker for fewer shares than the journal asked for (a resize it never
            # took), and every fill of it is booked: the rest will not fill, so the order is over.
            why = f"filled {order.filled} of {rec.request.qty} at the broker: the rest will not fill"
            out.append(OrderReported(rec.request.client_id, Report.CANCELLED, order.broker_id, why))
        elif report is not None:
            out.append(OrderReported(rec.request.client_id, report, order.broker_id, order.reason[:200]))
        elif order.broker_id and not rec.broker_id:
            out.append(OrderReported(rec.request.client_id, Report.ACCEPTED, order.broker_id))
        return out

    def fill_fact(self, f: Fill) -> Filled:
        return Filled(f.fill_id, f.tag, f.qty, f.price, f.ts, slot_of(f.ts, self.open_ts), f.symbol, f.side)

    def facts(self, events: list[BrokerEvent]) -> list[Event]:
        """Broker reports (the order socket, the paper broker) as facts."""
        out: list[Event] = []
        for ev in events:
            match ev:
                case Fill():
                    out.append(self.fill_fact(ev))
                case OrderUpdate():
                    report = _report_of(ev.status)
                    if report is not None:
                        out.append(OrderReported(ev.tag, report, ev.broker_id, ev.reason[:200]))
        return out

    def poll(self) -> list[BrokerEvent]:
        try:
            return self.broker.poll()
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("polling the broker failed", extra={"fields": {"error": str(exc)}})
            return []

    def holds(self, symbol: str) -> int | None:
        """The broker's net position in ``symbol`` (signed), or None if it cannot be asked."""
        try:
            return self.broker.positions().get(symbol, 0)
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("could not read the broker's positions", extra={"fields": {"error": str(exc)}})
            return None

    # The books, for reconciliation (a failure raises: reconciliation waits for the broker).

    def broker_orders(self) -> list[BrokerOrder]:
        return self.broker.orders()

    def broker_fills(self) -> list[Fill]:
        return self.broker.fills()

    def broker_positions(self) -> dict[str, int]:
        return self.broker.positions()

    def _hit(self, where: str) -> None:
        if self.crash is not None:
            self.crash.hit(where)
