"""FYERS as a :class:`~tfl.live.broker.Broker`: orders over REST, updates over the order socket.

Each order carries our client id as its ``orderTag``, so a restarted trader finds its own
orders. Prices are rounded to the instrument's tick here and only here (stops and
targets away from the market). An ambiguous answer (timeout, code 201 or -99, 5xx)
becomes :class:`~tfl.live.broker.BrokerTimeoutError`: the engine looks the order up by tag
and never re-sends it blind. Updates come from the order socket, de-duplicated; when the
socket has been silent for a while and orders are working, the orderbook and tradebook
are polled instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from tfl.core.orders import OrderRequest, OrderType
from tfl.fyers.errors import FyersAmbiguous, FyersAuthError, FyersError, FyersIpRefused, FyersRateLimited, FyersRejected
from tfl.fyers.preflight import IP_FIX
from tfl.fyers.rest import FyersRest
from tfl.fyers.sockets import OrderStream
from tfl.fyers.symbols import SymbolMap, round_to_tick
from tfl.live.broker import BrokerError, BrokerEvent, BrokerOrder, BrokerTimeoutError, Fill, OrderUpdate
from tfl.timeutil import IST

log = logging.getLogger("tfl.fyers.broker")

TYPE_CODE = {OrderType.LIMIT: 1, OrderType.MARKET: 2, OrderType.STOP: 3}
STATUS = {1: "CANCELLED", 2: "FILLED", 4: "PENDING", 5: "REJECTED", 6: "PENDING", 7: "EXPIRED"}
TERMINAL = {"CANCELLED", "EXPIRED", "FILLED", "REJECTED"}


def strip_tag(raw: Any) -> str:
    """FYERS returns tags as '1:<ours>' (user) or '2:...' (internal)."""
    text = str(raw or "")
    head, sep, tail = text.partition(":")
    return tail if sep and head in ("1", "2") else text


def parse_time(text: Any) -> int:
    """'09-Mar-2023 09:34:38' (REST) or '09-03-2023 09:34:38' (order socket), IST; or epoch."""
    if isinstance(text, int | float):
        return int(text)
    s = str(text).strip()
    for fmt in ("%d-%b-%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return int(dt.datetime.strptime(s, fmt).replace(tzinfo=IST).timestamp())
        except ValueError:
            continue
    if s.isdigit():
        return int(s)
    raise ValueError(f"unrecognised FYERS time '{s[:30]}'")


class FyersBroker:
    def __init__(
        self,
        rest: FyersRest,
        symbols: SymbolMap,
        *,
        stream: OrderStream | None = None,
        fallback_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_auth_error: Callable[[str], None] | None = None,
        product: str = "INTRADAY",
    ) -> None:
        self.rest = rest
        self.symbols = symbols
        self.stream = stream
        self._fallback = fallback_seconds
        self._clock = clock
        self.on_auth_error = on_auth_error or (lambda why: None)
        self._product = product
        self._ids: dict[str, str] = {}  # tag -> broker order id
        self._placed: dict[str, tuple[str, str, int, str, int]] = {}  # tag -> (id, symbol, side, type, qty)
        self._working: set[str] = set()  # our tags that are not terminal yet
        self._seen_status: set[tuple[str, str, int]] = set()
        self._seen_fills: set[str] = set()
        self._last_poll = clock()
        self._book_cache: tuple[float, list[dict[str, Any]]] | None = None

    # ------------------------------------------------------------------ errors

    def _translate(self, exc: FyersError) -> Exception:
        if isinstance(exc, FyersAuthError):
            self.on_auth_error(str(exc))
            return BrokerError(f"{exc} (the access token is not valid)")
        if isinstance(exc, FyersAmbiguous | FyersRateLimited):
            return BrokerTimeoutError(str(exc))
        if isinstance(exc, FyersIpRefused):  # a refusal that names its fix (the static-IP rule)
            return BrokerError(f"{exc}: order calls refused from this IP; {IP_FIX}")
        return BrokerError(str(exc))

    # ------------------------------------------------------------------ requests

    def place(self, req: OrderRequest, ts: int) -> BrokerOrder:
        inst = self.symbols.instrument(req.symbol)
        buy = req.side > 0
        limit = round_to_tick(req.limit, inst.tick, up=not buy) if req.limit is not None else 0.0
        trigger = round_to_tick(req.trigger, inst.tick, up=buy) if req.trigger is not None else 0.0
        body = {
            "symbol": inst.ticker,
            "qty": req.qty,
            "type": TYPE_CODE[req.type],
            "side": req.side,
            "productType": self._product,
            "limitPrice": limit,
            "stopPrice": trigger,
            "validity": "DAY",
            "disclosedQty": 0,
            "offlineOrder": False,
            "stopLoss": 0,
            "takeProfit": 0,
            "orderTag": req.client_id,
        }
        try:
            oid = self.rest.place(body)
        except FyersError as exc:
            raise self._translate(exc) from None
        self._ids[req.client_id] = oid
        self._placed[req.client_id] = (oid, req.symbol, req.side, req.type.value, req.qty)
        self._working.add(req.client_id)
        self._book_cache = None
        return BrokerOrder(
            oid,
            req.client_id,
            req.symbol,
            req.side,
            req.type.value,
            req.qty,
            trigger or None,
            limit or None,
            "PENDING",
            0,
            0.0,
        )

    def modify(
        self, tag: str, ts: int, *, trigger: float | None = None, limit: float | None = None, qty: int | None = None
    ) -> BrokerOrder:
        """One PATCH when we placed the order ourselves (its id, type and side are known)."""
        known = self._placed.get(tag)
        if known is None:
            order = self.order_by_tag(tag)
            if order is None:
                raise BrokerError(f"order {tag}: not found at FYERS")
            known = (order.broker_id, order.symbol, order.side, order.type, order.qty)
        oid, symbol, side, typ, placed_qty = known
        inst = self.symbols.instrument(symbol)
        changes: dict[str, Any] = {"type": {"STOP": 3, "LIMIT": 1, "MARKET": 2}[typ]}
        if trigger is not None:
            changes["stopPrice"] = round_to_tick(trigger, inst.tick, up=side > 0)
        if limit is not None:
            changes["limitPrice"] = round_to_tick(limit, inst.tick, up=side < 0)
        if qty is not None:
            changes["qty"] = qty
        try:
            self.rest.modify(oid, **changes)
        except FyersError as exc:
            raise self._translate(exc) from None
        self._book_cache = None
        if qty is not None:
            self._placed[tag] = (oid, symbol, side, typ, qty)
        return BrokerOrder(
            oid,
            tag,
            symbol,
            side,
            typ,
            qty if qty is not None else placed_qty,
            changes.get("stopPrice"),
            changes.get("limitPrice"),
            "PENDING",
            0,
            0.0,
        )

    def cancel(self, tag: str, ts: int) -> BrokerOrder:
        """One DELETE; if FYERS says the order is not pending any more, look at what it became."""
        oid = self._ids.get(tag)
        if oid is None:
            order = self.order_by_tag(tag)
            if order is None:
                raise BrokerError(f"order {tag}: unknown, cannot cancel")
            if order.status in TERMINAL:
                return order
            oid = order.broker_id
        try:
            self.rest.cancel(oid)
        except FyersRejected as exc:
            fresh = self.order_by_tag(tag, fresh=True)
            if fresh is not None and fresh.status in TERMINAL:
                return fresh  # it filled, or was already cancelled, in the meantime
            raise self._translate(exc) from None
        except FyersError as exc:
            raise self._translate(exc) from None
        self._book_cache = None
        self._working.discard(tag)
        known = self._placed.get(tag, (oid, "", 0, "MARKET", 0))
        done = BrokerOrder(oid, tag, known[1], known[2], known[3], known[4], None, None, "CANCELLED", 0, 0.0)
        # What traded before the cancel took effect: the answer does not say, the order book
        # does (a stop that sold 30 of 100 before its square-off cancel must not be exited as 100).
        try:
            seen = self.order_by_tag(tag, fresh=True)
        except (BrokerError, BrokerTimeoutError):
            return done
        if seen is not None and seen.filled > 0:
            return dataclasses.replace(done, filled=seen.filled, avg_price=seen.avg_price)
        return done

    def on_token_rejected(self, callback: Callable[[str], None]) -> None:
        self.on_auth_error = callback

    def refresh_auth(self) -> None:
        """A new access token: re-open the order socket with it and re-read the books."""
        if self.stream is not None:
            self.stream.restart()
        self._book_cache = None
        self._last_poll = 0.0

    # ------------------------------------------------------------------ queries

    def _orderbook(self, fresh: bool = False) -> list[dict[str, Any]]:
        now = self._clock()
        if not fresh and self._book_cache is not None and now - self._book_cache[0] < 1.0:
            return self._book_cache[1]
        try:
            book = self.rest.orderbook()
        except FyersError as exc:
            raise self._translate(exc) from None
        self._book_cache = (now, book)
        return book

    def _to_order(self, item: dict[str, Any]) -> BrokerOrder:
        tag = strip_tag(item.get("orderTag"))
        status = STATUS.get(int(item.get("status", 4)), "PENDING")
        filled = int(item.get("filledQty") or 0)
        if status == "PENDING" and filled > 0:
            status = "PARTIAL"
        typ = {1: "LIMIT", 2: "MARKET", 3: "STOP", 4: "STOP"}.get(int(item.get("type", 2)), "MARKET")
        sym = self.symbols.symbol(str(item.get("symbol", ""))) or str(item.get("symbol", ""))
        oid = str(item.get("id"))
        if tag:
            self._ids.setdefault(tag, oid)
        return BrokerOrder(
            oid,
            tag,
            sym,
            int(item.get("side", 0)),
            typ,
            int(item.get("qty", 0)),
            float(item.get("stopPrice") or 0) or None,
            float(item.get("limitPrice") or 0) or None,
            status,
            filled,
            float(item.get("tradedPrice") or 0.0),
            str(item.get("message", ""))[:200],
        )

    def order_by_tag(self, tag: str, fresh: bool = False) -> BrokerOrder | None:
        matches = [self._to_order(i) for i in self._orderbook(fresh) if strip_tag(i.get("orderTag")) == tag]
        if len(matches) > 1:
            log.critical("FYERS holds more than one order with our tag", extra={"fields": {"tag": tag}})
        return matches[-1] if matches else None

    def orders(self) -> list[BrokerOrder]:
        return [self._to_order(i) for i in self._orderbook(fresh=True)]

    def _to_fill(self, t: dict[str, Any]) -> Fill:
        sym = self.symbols.symbol(str(t.get("symbol", ""))) or str(t.get("symbol", ""))
        return Fill(
            str(t.get("tradeNumber")),
            str(t.get("orderNumber")),
            strip_tag(t.get("orderTag")),
            sym,
            int(t.get("side", 0)),
            int(t.get("tradedQty", 0)),
            float(t.get("tradePrice", 0.0)),
            parse_time(t.get("orderDateTime")),
        )

    def fills(self) -> list[Fill]:
        try:
            book = self.rest.tradebook()
        except FyersError as exc:
            raise self._translate(exc) from None
        return [self._to_fill(t) for t in book]

    def positions(self) -> dict[str, int]:
        try:
            rows = self.rest.positions()
        except FyersError as exc:
            raise self._translate(exc) from None
        out: dict[str, int] = {}
        for p in rows:
            net = int(p.get("netQty") or 0)
            if net:
                sym = self.symbols.symbol(str(p.get("symbol", ""))) or str(p.get("symbol", ""))
                out[sym] = out.get(sym, 0) + net
        return out

    # ------------------------------------------------------------------ events

    def poll(self) -> list[BrokerEvent]:
        """New fills and status changes: from the socket, or from the books if it is silent."""
        events: list[BrokerEvent] = []
        if self.stream is not None:
            for kind, body in self.stream.drain():
                if kind == "trades":
                    self._emit_fill(self._to_fill(body), events)
                elif kind == "orders":
                    self._emit_status(self._to_order(body), events)
        silent = self.stream is None or self.stream.silent_for() >= self._fallback
        if self._working and silent and self._clock() - self._last_poll >= self._fallback:
            self._last_poll = self._clock()
            try:
                for f in self.fills():
                    self._emit_fill(f, events)
                for o in self.orders():
                    self._emit_status(o, events)
            except (BrokerError, BrokerTimeoutError) as exc:
                log.warning("orderbook poll failed", extra={"fields": {"error": str(exc)}})
        return events

    def _emit_fill(self, f: Fill, events: list[BrokerEvent]) -> None:
        if f.fill_id in self._seen_fills or not f.tag:
            return
        self._seen_fills.add(f.fill_id)
        events.append(f)

    def _emit_status(self, o: BrokerOrder, events: list[BrokerEvent]) -> None:
        key = (o.tag, o.status, o.filled)
        if not o.tag or key in self._seen_status:
            return
        self._seen_status.add(key)
        if o.status in TERMINAL:
            self._working.discard(o.tag)
        if o.status in TERMINAL:
            events.append(OrderUpdate(o.tag, o.broker_id, o.status, o.filled, o.reason))
