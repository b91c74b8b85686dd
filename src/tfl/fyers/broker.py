"""FYERS as a :class:`~tfl.live.broker.Broker`: orders over REST, updates over the order socket.

Each order carries our client id as its ``orderTag``, so a restarted trader finds its own
orders (and adopts those still working, so their fills are watched). Prices are rounded to
the instrument's tick here and only here (stops and targets away from the market). An
ambiguous answer (timeout, code 201, 5xx) becomes
:class:`~tfl.live.broker.BrokerTimeoutError`: the engine looks the order up by tag and
never re-sends it blind; a refusal (code -99 with FYERS' reason) is a
:class:`~tfl.live.broker.BrokerError`, a crossed stop trigger a
:class:`~tfl.live.broker.StopCrossedError`. Updates come from the order socket,
de-duplicated by FYERS order id (a fill by order id and trade number); when the socket has
been silent for a while and orders are working, the order book and trade book are read
instead, on a thread of their own so a slow FYERS never stalls the trading thread. A row
FYERS sends that cannot be read is logged (once per kind) and skipped, never raised.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from tfl.core.orders import OrderRequest, OrderType, is_client_id
from tfl.fyers.book_poller import BookPoller
from tfl.fyers.errors import (
    FyersAmbiguous,
    FyersAuthError,
    FyersError,
    FyersIpRefused,
    FyersRateLimited,
    FyersRejected,
    FyersStopCrossed,
    FyersTickError,
    rejection,
)
from tfl.fyers.payloads import PayloadError, parse_time, read_fill, read_order, read_position, strip_tag
from tfl.fyers.preflight import IP_FIX
from tfl.fyers.rest import FyersRest
from tfl.fyers.sockets import OrderStream
from tfl.fyers.symbols import SymbolMap, round_to_tick
from tfl.live.broker import (
    STOP_CROSSED,
    BrokerError,
    BrokerEvent,
    BrokerOrder,
    BrokerTimeoutError,
    Fill,
    OrderUpdate,
    StopCrossedError,
)

log = logging.getLogger("tfl.fyers.broker")

TYPE_CODE = {OrderType.LIMIT: 1, OrderType.MARKET: 2, OrderType.STOP: 3}
TERMINAL = {"CANCELLED", "EXPIRED", "FILLED", "REJECTED"}
WORKING = {"PENDING", "PARTIAL"}

__all__ = ["FyersBroker", "parse_time", "strip_tag"]


def _tick_alert(exc: FyersError, symbol: str, price: float, tick: float) -> None:
    """An off-tick price is a bug in our tick table, never retried silently: say which."""
    if isinstance(exc, FyersTickError):
        log.critical(
            "FYERS refused a price off the tick: the tick table is wrong (bug)",
            extra={"fields": {"symbol": symbol, "price": price, "tick": tick, "fyers": exc.reason}},
        )


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
        poller: BookPoller | None = None,
    ) -> None:
        self.rest = rest
        self.symbols = symbols
        self.stream = stream
        self._fallback = fallback_seconds
        self._clock = clock
        self.on_auth_error = on_auth_error or (lambda why: None)
        self._product = product
        # The books are read off the trading thread, on a REST client of its own (same limiter).
        self.poller = poller if poller is not None else BookPoller(rest.twin())
        self._ids: dict[str, str] = {}  # tag -> broker order id
        self._placed: dict[str, tuple[str, str, int, str, int]] = {}  # tag -> (id, symbol, side, type, qty)
        self._working: set[str] = set()  # our tags that are not terminal yet (placed here or adopted)
        self._seen_status: set[tuple[str, str, str, int]] = set()  # (order id, tag, status, filled)
        self._seen_fills: set[str] = set()  # fill ids: FYERS order id and trade number
        self._warned: set[str] = set()  # kinds of unreadable rows already logged
        self._last_poll = clock()
        self._book_cache: tuple[float, list[dict[str, Any]]] | None = None

    def close(self) -> None:
        """Stop reading the books and close the order socket (the end of a live session)."""
        self.poller.close()
        if self.stream is not None:
            self.stream.close()

    @property
    def working_tags(self) -> frozenset[str]:
        """Our orders the adapter watches (placed by this process or adopted from the book)."""
        return frozenset(self._working)

    # ------------------------------------------------------------------ errors

    def _translate(self, exc: FyersError) -> Exception:
        if isinstance(exc, FyersAuthError):
            self.on_auth_error(str(exc))
            return BrokerError(f"{exc} (the access token is not valid)")
        if isinstance(exc, FyersAmbiguous | FyersRateLimited):
            return BrokerTimeoutError(str(exc))
        if isinstance(exc, FyersIpRefused):  # a refusal that names its fix (the static-IP rule)
            return BrokerError(f"{exc}: order calls refused from this IP; {IP_FIX}")
        if isinstance(exc, FyersStopCrossed):  # __cause__ is exc: the caller exits at market
            return StopCrossedError(f"{exc} (trigger crossed: the price is already beyond the stop)")
        return BrokerError(str(exc))

    # ------------------------------------------------------------------ requests

    def place(self, req: OrderRequest, ts: int) -> BrokerOrder:
        inst = self.symbols.instrument(req.symbol)
        buy = req.side > 0
        tick = self.symbols.tick_for(req.symbol, max(req.trigger or 0.0, req.limit or 0.0))
        limit = round_to_tick(req.limit, tick, up=not buy) if req.limit is not None else 0.0
        trigger = round_to_tick(req.trigger, tick, up=buy) if req.trigger is not None else 0.0
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
            _tick_alert(exc, req.symbol, trigger or limit, tick)
            raise self._translate(exc) from exc
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
        tick = self.symbols.tick_for(symbol, max(trigger or 0.0, limit or 0.0))
        changes: dict[str, Any] = {"type": {"STOP": 3, "LIMIT": 1, "MARKET": 2}[typ]}
        if trigger is not None:
            changes["stopPrice"] = round_to_tick(trigger, tick, up=side > 0)
        if limit is not None:
            changes["limitPrice"] = round_to_tick(limit, tick, up=side < 0)
        if qty is not None:
            changes["qty"] = qty
        try:
            self.rest.modify(oid, **changes)
        except FyersError as exc:
            _tick_alert(exc, symbol, changes.get("stopPrice") or changes.get("limitPrice") or 0.0, tick)
            raise self._translate(exc) from exc
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

    def _unreadable(self, exc: PayloadError) -> None:
        """A row FYERS sent that cannot be read: one WARNING per kind, then quiet."""
        if exc.kind not in self._warned:
            self._warned.add(exc.kind)
            log.warning(
                "skipped a FYERS row that cannot be read", extra={"fields": {"kind": exc.kind, "detail": str(exc)}}
            )

    def _to_order(self, item: Any) -> BrokerOrder | None:
        try:
            order = read_order(item, self.symbols)
        except PayloadError as exc:
            self._unreadable(exc)
            return None
        if order.tag:
            self._ids.setdefault(order.tag, order.broker_id)
        return order

    def _adopt(self, order: BrokerOrder) -> None:
        """One of our orders still working at FYERS (placed by an earlier process, say): watch it,
        so its fills are read from the books while the order socket is silent."""
        if order.status in WORKING and is_client_id(order.tag):
            self._ids.setdefault(order.tag, order.broker_id)
            if order.tag not in self._working:
                self._working.add(order.tag)
                log.info(
                    "watching a working order found at FYERS",
                    extra={"fields": {"tag": order.tag, "order_id": order.broker_id}},
                )

    def order_by_tag(self, tag: str, fresh: bool = False) -> BrokerOrder | None:
        """FYERS' order with our tag; a row with the tag that cannot be read is no answer
        (BrokerTimeoutError), never "no such order" (that would send it again)."""
        rows = [i for i in self._orderbook(fresh) if isinstance(i, dict) and strip_tag(i.get("orderTag")) == tag]
        matches = [o for o in (self._to_order(i) for i in rows) if o is not None]
        if len(matches) < len(rows):
            raise BrokerTimeoutError(f"order {tag}: FYERS' order book row cannot be read")
        if len(matches) > 1:
            log.critical("FYERS holds more than one order with our tag", extra={"fields": {"tag": tag}})
        if matches:
            self._adopt(matches[-1])
        return matches[-1] if matches else None

    def orders(self) -> list[BrokerOrder]:
        """Today's order book (what reconciliation reads at start-up): our working orders are
        adopted here, so a restarted trader watches the stops its predecessor placed."""
        out = [o for o in (self._to_order(i) for i in self._orderbook(fresh=True)) if o is not None]
        for o in out:
            self._adopt(o)
        return out

    def _to_fill(self, t: Any) -> Fill | None:
        try:
            return read_fill(t, self.symbols)
        except PayloadError as exc:
            self._unreadable(exc)
            return None

    def fills(self) -> list[Fill]:
        try:
            book = self.rest.tradebook()
        except FyersError as exc:
            raise self._translate(exc) from None
        return [f for f in (self._to_fill(t) for t in book) if f is not None]

    def positions(self) -> dict[str, int]:
        """Net quantity by symbol. A row whose quantity cannot be read makes the answer
        unknown (BrokerTimeoutError): a wrong count would send or skip a real order."""
        try:
            rows = self.rest.positions()
        except FyersError as exc:
            raise self._translate(exc) from None
        out: dict[str, int] = {}
        for p in rows:
            try:
                sym, net = read_position(p, self.symbols)
            except PayloadError as exc:
                self._unreadable(exc)
                raise BrokerTimeoutError(f"FYERS' positions cannot be read ({exc.kind})") from None
            if net:
                out[sym] = out.get(sym, 0) + net
        return out

    # ------------------------------------------------------------------ events

    def poll(self) -> list[BrokerEvent]:
        """New fills and status changes: from the socket, and from the books when it has been
        silent (read by the poller thread; this never waits for FYERS and never raises)."""
        events: list[BrokerEvent] = []
        if self.stream is not None:
            for kind, body in self.stream.drain():
                if kind == "trades":
                    self._emit_fill(self._to_fill(body), events)
                elif kind == "orders":
                    self._emit_status(self._to_order(body), events)
        for books in self.poller.drain():
            if books.error is not None:
                err = self._translate(books.error)
                log.warning("orderbook poll failed", extra={"fields": {"error": str(err)}})
                continue
            orders = [self._to_order(i) for i in books.orders]
            for t in books.trades:
                self._emit_fill(self._to_fill(t), events)
            for o in orders:
                self._emit_status(o, events)
        silent = self.stream is None or self.stream.silent_for() >= self._fallback
        if self._working and silent and self._clock() - self._last_poll >= self._fallback:
            self._last_poll = self._clock()
            self.poller.request()
        return events

    def _emit_fill(self, f: Fill | None, events: list[BrokerEvent]) -> None:
        if f is None or f.fill_id in self._seen_fills:
            return  # an untagged fill goes on too: the broker's own square-off has no tag of ours
        if not f.tag:  # one of our own orders' trades reported without its tag: named by its order id
            tag = next((t for t, oid in self._ids.items() if oid == f.broker_id), "")
            f = dataclasses.replace(f, tag=tag) if tag else f
        self._seen_fills.add(f.fill_id)
        events.append(f)

    def _emit_status(self, o: BrokerOrder | None, events: list[BrokerEvent]) -> None:
        if o is None:
            return
        key = (o.broker_id, o.tag, o.status, o.filled)
        if not o.tag or key in self._seen_status:
            return
        self._seen_status.add(key)
        if o.status in TERMINAL:
            self._working.discard(o.tag)
            reason = o.reason
            if o.status == "REJECTED" and isinstance(rejection("order", reason, None, None), FyersStopCrossed):
                reason = f"{STOP_CROSSED}{reason}"  # refused after it was accepted: exit at market
            events.append(OrderUpdate(o.tag, o.broker_id, o.status, o.filled, reason))
