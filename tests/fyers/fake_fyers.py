"""A local fake of FYERS API v3 for tests: REST over real HTTP on 127.0.0.1, and the two
sockets faked at the boundary the SDK exposes (objects with its methods and callbacks).

The fake runs a small exchange: orders placed over REST rest in a matching engine (the
paper broker's crossing model, keyed by FYERS order ids so duplicate tags are visible) and
fill against a market replayed from historical bars on a simulated clock. Payloads,
paths and error codes follow the FYERS documentation (see docs/fyers.md). Scenario knobs
script the failures: rejections, ambiguous answers, timeouts, 429 with Retry-After, token
expiry, dropped or silent sockets, duplicate socket events, external orders, and raw answers
of any shape for any path. Like FYERS, it refuses a price off the instrument's tick (-50,
tick from NSE's price bands) and a stop whose trigger the price has already crossed (-99).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tfl.core.orders import OrderRequest, OrderType, broker_fill_id
from tfl.data.market import Market
from tfl.fyers.symbols import SymbolMap
from tfl.fyers.ticks import band_tick
from tfl.live.broker import Fill, OrderUpdate
from tfl.live.feed import ReplayFeed, SessionEnd, Tick, session_ticks
from tfl.live.paper import LateFill, PaperBroker
from tfl.settings import FyersSettings
from tfl.timeutil import date_to_day, epoch_of_ist

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
TYPE_OF = {1: OrderType.LIMIT, 2: OrderType.MARKET, 3: OrderType.STOP}
STATUS_CODE = {"PENDING": 6, "PARTIAL": 6, "FILLED": 2, "CANCELLED": 1, "REJECTED": 5}
IP_REFUSAL = {"s": "error", "code": -403, "message": "Order request not allowed: the request IP is not whitelisted"}
RATE_LIMITED = {"s": "error", "code": -429, "message": "Request limit reached"}


def make_token(exp: int, name: str = "TEST") -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    # hsm_key: what the SDK's data socket logs in with (it decodes the token for it)
    claims = {"exp": exp, "fy_id": name, "sub": "access_token", "hsm_key": f"hsm{name}"}
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.sig"


# The fake's ticks reach its exchange engine with sequence numbers this far apart, so a market
# order filled between two ticks can be matched on a sequence number of its own.
TICK_SEQ_STEP = 1000


@dataclass
class Scenario:
    reject_symbols: set[str] = field(default_factory=set)
    # per place call: "ok", "201" (no acknowledgement), "-99" (refused, with a reason), "timeout", "drop"
    place_outcomes: list[str] = field(default_factory=list)
    rate_limited_requests: int = 0  # the next N requests get HTTP 429 + Retry-After
    retry_after: float = 1.0
    partial_fills: bool = False
    token_expires_at: float | None = None  # simulated epoch: tokens stop working
    duplicate_socket_events: bool = False
    data_socket_drop_at: float | None = None  # simulated epoch: on_close, then nothing
    data_socket_silent_from: float | None = None  # simulated epoch: nothing, no close
    silent_for: float = 0.0  # how long (simulated) the silence lasts
    external_orders: list[dict[str, Any]] = field(default_factory=list)
    at: list[tuple[float, Callable[[], None]]] = field(default_factory=list)  # (simulated time, action)
    start_clock: float | None = None  # simulated epoch the clock starts at (default 08:45 of the session)
    nse_holiday: bool = False  # the market status shows NSE's capital market shut all day
    market_status_down: bool = False  # the market status answers HTTP 500
    # Odd reports: the first of our entry orders cancelled unfilled fills as the cancel arrives
    # (reported after the cancel's answer); the first entry that fills gets extra shares.
    late_fill_on_cancel: LateFill | None = None
    overfill_first_entry: int = 0
    # Market orders in these symbols stand unfilled until ``mpp_until`` (simulated epoch):
    # FYERS' price protection turned them into limits the market moved away from. Any
    # other market order fills at once at the last price, as in a liquid stock.
    mpp_unfilled: set[str] = field(default_factory=set)
    mpp_until: float = 0.0
    # The next N protective stops (and M of them as crossed: the price already beyond the
    # trigger) are refused with -99 and a reason, as FYERS' risk system does.
    refuse_stops: int = 0
    cross_stops: int = 0
    # Answers sent as they are, whatever FYERS would say: path -> queue of (HTTP status, body);
    # a str body is sent as text (not JSON). One is used per request to that path.
    raw_answers: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    ticks: dict[str, float] = field(default_factory=dict)  # the exchange's tick, where not the band table's
    # FYERS' static-IP rule: order calls (place, modify, cancel, exit) from this client are refused
    # with ``ip_refusal`` (FYERS' exact answer is not documented: HTTP 403 and words about the IP).
    ip_not_whitelisted: bool = False
    ip_refusal: tuple[int, dict[str, Any]] = field(default_factory=lambda: (403, dict(IP_REFUSAL)))
    # FYERS' per-minute limit (on the simulated clock): requests beyond it get 429; an app that
    # breaches it more than ``block_after_breaches`` times is blocked for the day (every request 429).
    per_minute_limit: int | None = None
    block_after_breaches: int = 3
    # The pre-open takes no trigger (stop) or market orders: before the open they are refused.
    refuse_orders_before_open: bool = False


@dataclass
class FakeOrder:
    id: str
    tag: str
    ticker: str
    symbol: str
    side: int
    type: int
    qty: int
    limit: float
    stop: float
    status: int = 6
    filled: int = 0
    traded: float = 0.0
    message: str = ""
    placed: int = 0
    filled_at: int | None = None  # simulated epoch of the first fill


class FakeFyers:
    def __init__(
        self,
        market: Market,
        session: dt.date,
        symbols: list[str],
        *,
        client_id: str = "TESTAPP-100",
        secret: str = "s3cr3t-v4lu3",
        scenario: Scenario | None = None,
        tick_pause: float = 0.0005,
        bar_pause: float = 0.05,
        history_dir: Market | None = None,
    ) -> None:
        self.market = market
        self.session = session
        self.symbols = symbols
        self.client_id = client_id
        self.secret = secret
        self.s = scenario or Scenario()
        self.tick_pause = tick_pause
        self.bar_pause = bar_pause
        self.open_ts = epoch_of_ist(session, 555)
        self.close_ts = epoch_of_ist(session, 930)
        self.clock = float(self.open_ts - 1800 if self.s.start_clock is None else self.s.start_clock)  # 08:45
        self.lock = threading.RLock()
        self.engine = PaperBroker(":memory:", slippage_pct=0.05)
        self.orders: dict[str, FakeOrder] = {}
        self.trades: list[dict[str, Any]] = []
        self.tokens: dict[str, float] = {}
        self.codes: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.place_calls = 0
        self._ids = itertools.count(1)
        # Trade numbers are the exchange's, counted per symbol: two symbols' trades carry the same
        # numbers (FYERS does not promise them unique across symbols; see docs/fyers.md).
        self._trade_numbers: dict[str, itertools.count[int]] = {}
        self.odd_rows: dict[str, list[Any]] = {"orders": [], "trades": [], "positions": []}  # unreadable rows
        self.data_sockets: list[FakeDataSocket] = []
        self.order_sockets: list[FakeOrderSocket] = []
        self.order_sockets_made: list[FakeOrderSocket] = []  # including those closed since
        # A slow FYERS: while books_open is clear, order-book and trade-book reads wait for it
        # (book_read_held is set once one is waiting), like answers that take seconds.
        self.books_open = threading.Event()
        self.books_open.set()
        self.book_read_held = threading.Event()
        self.ltp: dict[str, float] = {}
        self._tick_seq = 0  # the exchange engine's tick sequence (ticks step by TICK_SEQ_STEP)
        self.last_data: dict[str, dict[str, Any]] = {}  # each ticker's last data-socket message
        self.rms_orders: list[str] = []  # orders FYERS' own square-off placed
        self.before_rms: set[str] | None = None  # the order ids that existed when it began
        self.refused_stops: list[str] = []  # tags of protective stops a scenario refused
        self.trade_log: list[tuple[int, str, int]] = []  # (simulated epoch, symbol, signed qty) per trade
        self.market_done = threading.Event()
        self.late_filled = ""  # the tag of the order the late-fill scenario hit
        self.after_next_orderbook: list[Any] = []  # engine events held back until the next order-book read
        self.overfilled = ""  # and the over-fill scenario
        self.start_market_on_subscribe = False
        self.ip_refused = 0  # order calls refused for the IP
        self.minute_counts: dict[int, int] = {}  # requests per simulated minute (the per-minute limit)
        self.breach_minutes: set[int] = set()
        self.day_blocked = False
        self.after_block = 0  # requests that reached the fake once it had blocked the app
        self.preopen_refused: list[str] = []  # tags of stop and market orders refused before the open
        self.bar_gate: Callable[[int], None] | None = None  # called with each boundary after its first tick
        self.market_started = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        for ext in self.s.external_orders:
            self._seed_external(ext)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeFyers:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    @property
    def api_url(self) -> str:
        return self.url + "/api/v3"

    @property
    def data_url(self) -> str:
        return self.url + "/data"

    def issue_token(self, exp: float | None = None) -> str:
        exp = exp if exp is not None else self.close_ts + 6 * 3600
        token = make_token(int(exp), f"T{next(self._ids)}")
        self.tokens[token] = exp
        return token

    def token_ok(self, token: str) -> bool:
        exp = self.tokens.get(token)
        if exp is None or self.clock >= exp:
            return False
        return self.s.token_expires_at is None or self.clock < self.s.token_expires_at

    def now(self) -> float:
        return self.clock

    # ------------------------------------------------------------------ the market

    def run_market(self) -> None:
        """Replay the session's bars as ticks on the simulated clock (call in a thread)."""
        day = date_to_day(self.session)
        planned = session_ticks({s: self.market.intraday[s] for s in self.symbols}, day, self.close_ts)
        last_bar = None
        for ev in ReplayFeed(planned):
            if isinstance(ev, SessionEnd):
                break
            assert isinstance(ev, Tick)
            bar = (ev.ts - self.open_ts) // 900
            for when, action in list(self.s.at):
                if ev.ts >= when:
                    self.s.at.remove((when, action))
                    action()
            with self.lock:
                self.clock = float(ev.ts)
                self.ltp[ev.symbol] = ev.price
                self._tick_seq = ev.seq * TICK_SEQ_STEP
                self.engine.on_tick(ev.symbol, ev.ts, ev.price, self._tick_seq)
                self._publish(self.engine.poll())
            self._send_tick(ev)
            if bar != last_bar:
                last_bar = bar
                time.sleep(self.bar_pause)  # a trader has a moment at each bar boundary
                if self.bar_gate is not None and bar > 0:  # or waits until the trader has acted on it
                    self.bar_gate(self.open_ts + bar * 900)
            time.sleep(self.tick_pause)
        time.sleep(self.bar_pause * 6)  # the last bar's late orders still reach the exchange
        with self.lock:
            self.clock = float(self.close_ts)
            self.engine.close_session(self.close_ts, 10**15)
            self._publish(self.engine.poll())
        self.market_done.set()

    def _send_tick(self, t: Tick) -> None:
        s = self.s
        if s.data_socket_drop_at is not None and t.ts >= s.data_socket_drop_at:
            for sock in list(self.data_sockets):
                sock.drop()
            s.data_socket_drop_at = None
        silent = (
            s.data_socket_silent_from is not None
            and s.data_socket_silent_from <= t.ts < s.data_socket_silent_from + s.silent_for
        )
        msg = {
            "ltp": t.price,
            "vol_traded_today": int(t.volume),
            "last_traded_time": t.ts,
            "exch_feed_time": t.ts,
            "symbol": f"NSE:{t.symbol}-EQ",
            "type": "sf",
            "ch": 0.0,
            "chp": 0.0,
        }
        with self.lock:  # one order for trades and subscribe snapshots
            self.last_data[msg["symbol"]] = msg
            if silent:
                return
            for sock in list(self.data_sockets):
                sock.deliver(msg)

    def snapshot(self, ticker: str) -> dict[str, Any] | None:
        """The SDK's answer to a subscribe, per symbol: its merged state (data_ws.py, data type 83).
        Before the first trade of the day: the previous close, no volume yet."""
        with self.lock:
            last = self.last_data.get(ticker)
            if last is not None:
                return dict(last, exch_feed_time=int(self.clock))
            series = self.market.intraday.get(ticker.partition(":")[2].removesuffix("-EQ"))
            i = -1 if series is None else int(series.ts.searchsorted(self.open_ts, "left")) - 1
            if series is None or i < 0:
                return None
            prev = {"ltp": float(series.close[i]), "last_traded_time": int(series.ts[i]) + 899}
            return prev | {"vol_traded_today": 0, "exch_feed_time": int(self.clock), "symbol": ticker, "type": "sf"}

    def _publish(self, events: list[Any]) -> None:
        for ev in events:
            o = self.orders.get(ev.tag)  # the engine is keyed by FYERS order id
            if o is None:
                continue
            if isinstance(ev, Fill):
                extra = self.s.overfill_first_entry if len(o.tag) > 10 and o.tag[10] == "E" else 0
                if extra:  # FYERS reports more shares than the order asked for
                    self.s.overfill_first_entry = 0
                    self.overfilled = o.tag
                    self._record_trade(o, ev.qty + extra, ev.price, ev.ts)
                elif self.s.partial_fills and ev.qty > 1 and o.type in (2, 3) and o.filled == 0:
                    first = ev.qty // 2
                    self._record_trade(o, first, ev.price, ev.ts)
                    self._record_trade(o, ev.qty - first, ev.price, ev.ts)
                else:
                    self._record_trade(o, ev.qty, ev.price, ev.ts)
            elif isinstance(ev, OrderUpdate):
                o.status = STATUS_CODE.get(ev.status, o.status)
                self._socket_order(o)

    def _record_trade(self, o: FakeOrder, qty: int, price: float, ts: int) -> None:
        o.traded = (o.traded * o.filled + price * qty) / (o.filled + qty)
        if o.filled_at is None:
            o.filled_at = ts
        o.filled += qty
        self.trade_log.append((ts, o.symbol, o.side * qty))
        if o.status not in (1, 7):  # a fill after the cancel (or expiry) does not re-open the order
            o.status = 2 if o.filled >= o.qty else 6
        trade = {
            "tradeNumber": self._trade_number(o.ticker),
            "orderNumber": o.id,
            "tradedQty": qty,
            "tradePrice": price,
            "tradeValue": qty * price,
            "symbol": o.ticker,
            "side": o.side,
            "orderType": o.type,
            "productType": "INTRADAY",
            "orderDateTime": _fmt(ts),
            "exchangeOrderNo": f"X{o.id}",
            "orderTag": f"1:{o.tag}",
            "row": len(self.trades) + 1,
        }
        self.trades.append(trade)
        for sock in list(self.order_sockets):
            sock.send("trades", dict(trade, orderDateTime=_fmt(ts, "%d-%m-%Y %H:%M:%S")))
        self._socket_order(o)

    def _trade_number(self, ticker: str) -> str:
        return str(next(self._trade_numbers.setdefault(ticker, itertools.count(52605001))))

    def send_raw(self, kind: str, msg: Any) -> None:
        """A message exactly as the SDK hands it to the callback (odd ones included)."""
        for sock in list(self.order_sockets):
            if kind in sock.topics:
                sock.cb[kind](msg)

    def _socket_order(self, o: FakeOrder) -> None:
        for sock in list(self.order_sockets):
            sock.send("orders", self._order_json(o))

    def _order_json(self, o: FakeOrder) -> dict[str, Any]:
        return {
            "id": o.id,
            "exchOrdId": f"X{o.id}",
            "symbol": o.ticker,
            "qty": o.qty,
            "remainingQuantity": o.qty - o.filled,
            "filledQty": o.filled,
            "status": o.status,
            "message": o.message,
            "segment": 10,
            "limitPrice": o.limit,
            "stopPrice": o.stop,
            "productType": "INTRADAY",
            "type": o.type,
            "side": o.side,
            "orderValidity": "DAY",
            "orderDateTime": _fmt(o.placed),
            "tradedPrice": o.traded,
            "source": "ITS",
            "fyToken": "101",
            "offlineOrder": False,
            "clientId": "XY00001",
            "exchange": 10,
            "instrument": 0,
            "orderTag": f"1:{o.tag}" if o.tag else "2:Untagged",
            "orderNumStatus": f"{o.id}:{o.status}",
        }

    # ------------------------------------------------------------------ orders

    def _new_id(self) -> str:
        return f"2611{next(self._ids):08d}"

    def over_limit(self, path: str) -> bool:
        """FYERS' per-minute limit and its day block (only when the scenario sets a limit)."""
        limit = self.s.per_minute_limit
        if limit is None or path == "/sym_details/NSE_CM.csv":
            return False
        if self.day_blocked:
            self.after_block += 1
            return True
        minute = int(self.clock // 60)
        self.minute_counts[minute] = self.minute_counts.get(minute, 0) + 1
        if self.minute_counts[minute] <= limit:
            return False
        self.breach_minutes.add(minute)
        self.day_blocked = len(self.breach_minutes) > self.s.block_after_breaches
        return True

    def place(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        """Returns (HTTP status, JSON, behaviour) for POST /orders/sync."""
        self.place_calls += 1
        if self.s.refuse_orders_before_open and self.clock < self.open_ts and int(body.get("type", 0)) != 1:
            self.preopen_refused.append(str(body.get("orderTag", "")))
            message = "Order type not allowed in the pre-open session"
            return 200, {"s": "error", "code": -99, "message": message}, "refused"
        outcome = self.s.place_outcomes.pop(0) if self.s.place_outcomes else "ok"
        if outcome == "drop":
            return 500, {"s": "error", "code": -1, "message": "Internal error"}, outcome
        tag = str(body.get("orderTag", ""))
        ticker = str(body["symbol"])
        symbol = ticker[4:-3]
        o = FakeOrder(
            self._new_id(),
            tag,
            ticker,
            symbol,
            int(body["side"]),
            int(body["type"]),
            int(body["qty"]),
            float(body.get("limitPrice") or 0),
            float(body.get("stopPrice") or 0),
            placed=int(self.clock),
        )
        if not tag.isalnum() or len(tag) > 30:
            return 400, {"s": "error", "code": -50, "message": "Invalid orderTag"}, outcome
        off_tick = self._off_tick(symbol, body)
        if off_tick:
            return 400, {"s": "error", "code": -50, "message": off_tick}, outcome
        self.orders[o.id] = o
        crossed = self._crossed(symbol, o.side, o.type, o.stop)
        protective = len(tag) > 10 and tag[10] == "S"
        if protective and self.s.cross_stops > 0 and not crossed:
            self.s.cross_stops -= 1
            self.refused_stops.append(tag)
            side = "sell" if o.side < 0 else "buy"
            crossed = f"RMS:Trigger price for stop loss {side} orders is beyond the last traded price"
        elif protective and self.s.refuse_stops > 0:
            self.s.refuse_stops -= 1
            self.refused_stops.append(tag)
            outcome = "-99"
        if symbol in self.s.reject_symbols or outcome == "-99" or crossed:
            o.status = 5
            o.message = crossed or "RMS:Rule: Check circuit limit including square off order exceeds"
            self._socket_order(o)
            return 200, {"s": "error", "code": -99, "message": o.message}, outcome
        req = OrderRequest(o.id, symbol, o.side, TYPE_OF[o.type], o.qty, trigger=o.stop or None, limit=o.limit or None)
        self.engine.place(req, int(self.clock))
        self._socket_order(o)
        self._fill_market_now(o)
        if outcome == "201":
            return 200, {"s": "ok", "code": 201, "message": "Request in transit", "id": ""}, outcome
        return (
            200,
            {
                "s": "ok",
                "code": 1101,
                "message": f"Order submitted successfully. Your Order Ref. No.{o.id}",
                "id": o.id,
            },
            outcome,
        )

    def _fill_market_now(self, o: FakeOrder) -> None:
        """A market order meets the book at once, at the last price (the exchange engine sees
        the last trade again); one a scenario's price protection holds stands until then."""
        held = o.symbol in self.s.mpp_unfilled and self.clock < self.s.mpp_until
        if o.type != 2 or held or o.symbol not in self.ltp:
            return
        self._tick_seq += 1  # between the last tick and the next one
        self.engine.on_tick(o.symbol, int(self.clock), self.ltp[o.symbol], self._tick_seq)
        self._publish(self.engine.poll())

    def modify(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        o = self.orders.get(str(body.get("id")))
        if o is None:
            return 400, {"s": "error", "code": -51, "message": "Invalid order id"}
        if o.status != 6:
            return 400, {"s": "error", "code": -52, "message": "Order is not pending"}
        off_tick = self._off_tick(o.symbol, body)
        if off_tick:
            return 400, {"s": "error", "code": -50, "message": off_tick}
        crossed = self._crossed(o.symbol, o.side, o.type, float(body.get("stopPrice") or 0))
        if crossed:  # the order keeps resting at its old trigger
            return 400, {"s": "error", "code": -99, "message": crossed}
        if "stopPrice" in body:
            o.stop = float(body["stopPrice"])
            self.engine.modify(o.id, int(self.clock), trigger=o.stop)
        if "limitPrice" in body:
            o.limit = float(body["limitPrice"])
            self.engine.modify(o.id, int(self.clock), limit=o.limit)
        if "qty" in body:
            if int(body["qty"]) <= o.filled:
                return 400, {"s": "error", "code": -53, "message": "Quantity below the traded quantity"}
            o.qty = int(body["qty"])
            self.engine.modify(o.id, int(self.clock), qty=o.qty)
        self._socket_order(o)
        return 200, {"s": "ok", "code": 1102, "message": "Successfully modified order", "id": o.id}

    def tick_of(self, symbol: str) -> float:
        """The exchange's tick: NSE's band for the previous session's close (the monthly
        review uses the last month's close; the day before is close enough here)."""
        if symbol in self.s.ticks:
            return self.s.ticks[symbol]
        ref = 0.0
        daily = self.market.daily.get(symbol)
        if daily is not None:
            before = daily.close[daily.ts < epoch_of_ist(self.session, 0)]
            ref = float(before[-1]) if before.shape[0] else 0.0
        if ref <= 0:
            intraday = self.market.intraday.get(symbol)
            ref = float(intraday.open[intraday.ts >= self.open_ts][0]) if intraday is not None else 100.0
        return band_tick(ref)

    def _off_tick(self, symbol: str, body: dict[str, Any]) -> str:
        """FYERS' -50 message for a price that is not a multiple of the tick, or ''."""
        tick = self.tick_of(symbol)
        for key, name in (("limitPrice", "Limit price"), ("stopPrice", "Stop price")):
            price = float(body.get(key) or 0)
            if price and abs(price / tick - round(price / tick)) > 1e-6:
                return f"{name} not a multiple of tick size {tick:.4f}"
        return ""

    def _crossed(self, symbol: str, side: int, typ: int, trigger: float) -> str:
        """The refusal of a stop whose trigger the last price has reached, or ''."""
        ltp = self.ltp.get(symbol)
        if typ not in (3, 4) or not trigger or ltp is None:
            return ""
        if side < 0 and trigger >= ltp:
            return f"RMS:Trigger price for stop loss sell orders should be lower than the last traded price {ltp:.2f}"
        if side > 0 and trigger <= ltp:
            return f"RMS:Trigger price for stop loss buy orders should be higher than the last traded price {ltp:.2f}"
        return ""

    def cancel(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        o = self.orders.get(str(body.get("id")))
        if o is None:
            return 400, {"s": "error", "code": -51, "message": "Invalid order id"}
        if o.status != 6:
            return 400, {"s": "error", "code": -52, "message": "Order is not pending"}
        late = self.s.late_fill_on_cancel
        crossing = late is not None and len(o.tag) > 10 and o.tag[10] == "E" and o.filled == 0
        if crossing:
            self.engine.quirks.late_fill[o.id] = late
            self.s.late_fill_on_cancel = None
            self.late_filled = o.tag
        self.engine.cancel(o.id, int(self.clock))
        events = self.engine.poll()
        if crossing and late is not None and late.after_ack:
            # The crossing trade reaches FYERS' books after the cancel's answer and after the
            # order-book read a client makes right after it: it is published once that read is
            # answered, so what the client sees does not depend on thread timing.
            self._publish([ev for ev in events if not isinstance(ev, Fill)])
            self.after_next_orderbook.extend(ev for ev in events if isinstance(ev, Fill))
        else:
            self._publish(events)
        return 200, {"s": "ok", "code": 1103, "message": "Successfully cancelled order", "id": o.id}

    def rms_square_off(self) -> None:
        """FYERS' risk system at its intraday square-off: every pending order of a symbol with
        an open intraday position is cancelled, then the position is closed by a market order
        of its own (no tag of the client's), at the last price. Call with the lock held."""
        self.clock = max(self.clock, float(epoch_of_ist(self.session, 15 * 60 + 15)))
        self.before_rms = set(self.orders)
        for p in self.positions():
            net, symbol = int(p["netQty"]), str(p["symbol"])[4:-3]
            if not net or symbol not in self.ltp:
                continue
            for o in [o for o in self.orders.values() if o.symbol == symbol and o.status == 6]:
                self.engine.cancel(o.id, int(self.clock))
                self._publish(self.engine.poll())
                o.status, o.message = 1, "Cancelled by RMS: intraday square-off"
                self._socket_order(o)
            o = FakeOrder(self._new_id(), "", p["symbol"], symbol, -1 if net > 0 else 1, 2, abs(net), 0.0, 0.0)
            o.placed = int(self.clock)
            self.orders[o.id] = o
            self.rms_orders.append(o.id)
            self._record_trade(o, abs(net), self.ltp[symbol], int(self.clock))

    def positions(self) -> list[dict[str, Any]]:
        net: dict[str, int] = {}
        for t in self.trades:
            net[t["symbol"]] = net.get(t["symbol"], 0) + int(t["side"]) * int(t["tradedQty"])
        return [
            {
                "symbol": k,
                "id": f"{k}-INTRADAY",
                "netQty": v,
                "qty": abs(v),
                "side": (v > 0) - (v < 0),
                "productType": "INTRADAY",
                "netAvg": 0.0,
                "realized_profit": 0.0,
                "unrealized_profit": 0.0,
                "pl": 0.0,
            }
            for k, v in sorted(net.items())
        ]

    def _seed_external(self, ext: dict[str, Any]) -> None:
        o = FakeOrder(
            self._new_id(),
            ext.get("tag", ""),
            f"NSE:{ext['symbol']}-EQ",
            ext["symbol"],
            int(ext["side"]),
            2,
            int(ext["qty"]),
            0.0,
            0.0,
            status=2,
            filled=int(ext["qty"]),
            traded=float(ext.get("price", 100.0)),
        )
        self.orders[o.id] = o
        self.trades.append(
            {
                "tradeNumber": self._trade_number(o.ticker),
                "orderNumber": o.id,
                "tradedQty": o.qty,
                "tradePrice": o.traded,
                "tradeValue": o.qty * o.traded,
                "symbol": o.ticker,
                "side": o.side,
                "orderType": 2,
                "productType": "INTRADAY",
                "orderDateTime": _fmt(self.open_ts - 3600),
                "exchangeOrderNo": "X",
                "orderTag": f"1:{o.tag}" if o.tag else "2:Untagged",
                "row": 0,
            }
        )

    def net_at(self, ts: float) -> dict[str, int]:
        """Each symbol's net position after the trades up to ``ts`` (simulated epoch)."""
        net: dict[str, int] = {}
        for when, symbol, qty in self.trade_log:
            if when <= ts:
                net[symbol] = net.get(symbol, 0) + qty
        return {k: v for k, v in net.items() if v}

    def fill_ids(self, order_ids: set[str] | None = None) -> set[str]:
        """The fills FYERS reported (of these orders), as the trader identifies them."""
        return {
            broker_fill_id(t["orderNumber"], t["tradeNumber"])
            for t in self.trades
            if order_ids is None or t["orderNumber"] in order_ids
        }

    def duplicate_tags(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.orders.values():
            if o.tag:
                counts[o.tag] = counts.get(o.tag, 0) + 1
        return {k: v for k, v in counts.items() if v > 1}

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: avoid the 40 ms delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(
                self,
                status: int,
                body: Any,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
            ) -> None:
                data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any]:
                n = int(self.headers.get("Content-Length") or 0)
                if not n:
                    return {}
                try:
                    return dict(json.loads(self.rfile.read(n)))
                except (ValueError, TypeError):
                    return {}

            def _authed(self) -> bool:
                auth = self.headers.get("Authorization", "")
                app, _, token = auth.partition(":")
                if app != fake.client_id or not fake.token_ok(token):
                    self._send(401, {"s": "error", "code": -16, "message": "Could not authenticate the user"})
                    return False
                return True

            def _route(self, method: str) -> None:
                url = urllib.parse.urlparse(self.path)
                path = url.path
                q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                body = self._body() if method in ("POST", "PATCH", "DELETE") else {}
                with fake.lock:
                    fake.requests.append((method, path))
                    raw = fake.s.raw_answers.get(path)
                    if raw:
                        status, payload = raw.pop(0)
                        kind = "text/html" if isinstance(payload, str) else "application/json"
                        self._send(status, payload, content_type=kind)
                        return
                    if fake.s.rate_limited_requests > 0 and path != "/sym_details/NSE_CM.csv":
                        fake.s.rate_limited_requests -= 1
                        self._send(
                            429,
                            {"s": "error", "code": -429, "message": "Request limit reached"},
                            {"Retry-After": str(fake.s.retry_after)},
                        )
                        return
                    if fake.over_limit(path):  # FYERS' answer to a blocked app is not documented: a 429 like any
                        self._send(429, dict(RATE_LIMITED), {"Retry-After": str(fake.s.retry_after)})
                        return
                if path == "/api/v3/generate-authcode":
                    code = make_token(int(fake.clock) + 300, "AUTHCODE")
                    fake.codes[code] = q.get("state", "")
                    target = f"{q['redirect_uri']}?s=ok&code=200&auth_code={code}&state={q.get('state', '')}"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path == "/api/v3/validate-authcode":
                    expected = hashlib.sha256(f"{fake.client_id}:{fake.secret}".encode()).hexdigest()
                    if body.get("appIdHash") != expected:
                        self._send(
                            400,
                            {
                                "s": "error",
                                "code": -371,
                                "message": "Please provide sha256 hash of appId and app secret",
                            },
                        )
                    elif body.get("code") not in fake.codes or body.get("grant_type") != "authorization_code":
                        self._send(400, {"s": "error", "code": -441, "message": "invalid auth code"})
                    else:
                        fake.codes.pop(str(body["code"]))
                        self._send(
                            200,
                            {
                                "s": "ok",
                                "code": 200,
                                "message": "",
                                "access_token": fake.issue_token(),
                                "refresh_token": "unused",
                            },
                        )
                    return
                if path == "/sym_details/NSE_CM.csv":
                    rows = [
                        f"10100000{i:06d},{s} LTD,0,1,{fake.tick_of(s)},INE{i:06d}01,0915-1530|1815-1915:,2026-10-03,,"
                        f"NSE:{s}-EQ,10,10,{i},{s},{i},-1.0,XX,10100000{i:06d},None,None,None"
                        for i, s in enumerate(fake.symbols, 1)
                    ]
                    rows.append(
                        "10100000999999,SOME BOND,2,1,0.01,INE999,0915-1530|,2026-10-03,,"
                        "NSE:SOMEBOND-GB,10,10,9,X,9,-1.0,XX,1,,,"
                    )
                    self._send(200, "\n".join(rows) + "\n", content_type="text/csv")
                    return
                if not self._authed():
                    return
                if method == "GET" and path in ("/api/v3/orders", "/api/v3/tradebook") and not fake.books_open.is_set():
                    fake.book_read_held.set()
                    fake.books_open.wait()
                with fake.lock:
                    reply = self._authed_route(method, path, q, body)
                if reply is not None:  # a scripted slow answer: wait outside the exchange's lock
                    time.sleep(3.0)  # longer than the client waits
                    self._send(*reply)

            def _authed_route(
                self, method: str, path: str, q: dict[str, str], body: dict[str, Any]
            ) -> tuple[int, dict[str, Any]] | None:
                ok = {"s": "ok", "code": 200, "message": ""}
                order_call = method != "GET" and path.startswith(("/api/v3/orders", "/api/v3/positions"))
                if fake.s.ip_not_whitelisted and order_call:
                    fake.ip_refused += 1
                    self._send(*fake.s.ip_refusal)
                    return None
                if path == "/api/v3/profile":
                    self._send(200, {**ok, "data": {"name": "TEST USER", "fy_id": "XY00001", "email_id": "t***@x.in"}})
                elif path == "/api/v3/funds":
                    self._send(
                        200,
                        {
                            **ok,
                            "fund_limit": [
                                {
                                    "id": 10,
                                    "title": "Available Balance",
                                    "equityAmount": 1_000_000.0,
                                    "commodityAmount": 0,
                                }
                            ],
                        },
                    )
                elif path == "/api/v3/orders" and method == "GET":
                    self._send(
                        200,
                        {
                            **ok,
                            "orderBook": [fake._order_json(o) for o in fake.orders.values()] + fake.odd_rows["orders"],
                        },
                    )
                    held, fake.after_next_orderbook = fake.after_next_orderbook, []
                    fake._publish(held)
                elif path == "/api/v3/tradebook":
                    self._send(200, {**ok, "tradeBook": list(fake.trades) + fake.odd_rows["trades"]})
                elif path == "/api/v3/positions":
                    self._send(
                        200, {**ok, "netPositions": fake.positions() + fake.odd_rows["positions"], "overall": {}}
                    )
                elif path == "/api/v3/orders/sync" and method == "POST":
                    status, payload, outcome = fake.place(body)
                    if outcome == "timeout":
                        return status, payload
                    self._send(status, payload)
                elif path == "/api/v3/orders/sync" and method == "PATCH":
                    self._send(*fake.modify(body))
                elif path == "/api/v3/orders/sync" and method == "DELETE":
                    self._send(*fake.cancel(body))
                elif path == "/data/quotes":
                    d = [
                        {"n": t, "s": "ok", "v": {"lp": fake.ltp.get(t[4:-3], 0.0), "symbol": t}}
                        for t in q.get("symbols", "").split(",")
                        if t
                    ]
                    self._send(200, {**ok, "d": d})
                elif path == "/data/history":
                    self._send(*fake.history(q))
                elif path == "/data/marketStatus":
                    self._send(*fake.market_status())
                else:
                    self._send(404, {"s": "error", "code": -1, "message": f"no route {method} {path}"})
                return None

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler

    def market_status(self) -> tuple[int, dict[str, Any]]:
        """FYERS' market status on the simulated clock, shaped like the docs' sample (several segments).

        Before the pre-open (09:00) NSE's capital market shows CLOSED on a session day too
        (the safe reading: the status is the state now, not a calendar)."""
        if self.s.market_status_down:
            return 500, {"s": "error", "code": -1, "message": "internal server error"}
        ist = dt.datetime.fromtimestamp(self.clock, IST)
        minute = ist.hour * 60 + ist.minute
        if self.s.nse_holiday or ist.date() != self.session or minute < 9 * 60:
            cash = "CLOSED"
        elif minute < 9 * 60 + 8:
            cash = "PREOPEN"
        elif minute < 555:
            cash = "PREOPEN_CLOSED"
        elif minute < 930:
            cash = "OPEN"
        else:
            cash = "POSTCLOSE_CLOSED"
        rows = [
            {"exchange": 10, "market_type": "NORMAL", "segment": 11, "status": "CLOSED"},
            {"exchange": 10, "market_type": "ODD_LOT", "segment": 10, "status": "CLOSED"},
            {"exchange": 11, "market_type": "NORMAL", "segment": 20, "status": "OPEN"},  # MCX trades on NSE holidays
            {"exchange": 10, "market_type": "NORMAL", "segment": 10, "status": cash},
            {"exchange": 12, "market_type": "NORMAL", "segment": 10, "status": cash},
        ]
        return 200, {"s": "ok", "code": 200, "message": "", "marketStatus": rows}

    def history(self, q: dict[str, str]) -> tuple[int, dict[str, Any]]:
        ticker, res = q.get("symbol", ""), q.get("resolution", "")
        try:
            lo, hi = int(q["range_from"]), int(q["range_to"])
        except (KeyError, ValueError):
            return 400, {"s": "error", "code": -50, "message": "Invalid range"}
        limit_days = 366 if res in ("D", "1D") else 100
        if hi - lo > limit_days * 86400:
            return 400, {"s": "error", "code": -50, "message": f"range cannot exceed {limit_days} days"}
        sym = ticker[4:-3] if ticker.endswith("-EQ") else SymbolMap(FyersSettings()).symbol(ticker) or ticker
        series = (self.market.daily if res in ("D", "1D") else self.market.intraday).get(sym)
        if series is None:
            return 400, {"s": "error", "code": -300, "message": "Invalid symbol"}
        ts = series.ts + (0 if res not in ("D", "1D") else 19800)  # daily candles are stamped at midnight UTC
        sel = (ts >= lo) & (ts <= hi)
        candles = [
            [int(t), float(o), float(h), float(lo_), float(c), float(v)]
            for t, o, h, lo_, c, v in zip(
                ts[sel],
                series.open[sel],
                series.high[sel],
                series.low[sel],
                series.close[sel],
                series.volume[sel],
                strict=True,
            )
        ]
        return 200, {"s": "ok", "candles": candles}


def _fmt(ts: int, fmt: str = "%d-%b-%Y %H:%M:%S") -> str:
    return dt.datetime.fromtimestamp(ts, IST).strftime(fmt)


class FakeDataSocket:
    """The SDK's FyersDataSocket at its boundary: connect, subscribe, callbacks."""

    def __init__(
        self,
        fake: FakeFyers,
        *,
        access_token: str,
        on_message: Callable[[Any], None],
        on_connect: Callable[[], None],
        on_close: Callable[[Any], None],
        on_error: Callable[[Any], None],
        **_: Any,
    ) -> None:
        self.fake = fake
        self.token = access_token.partition(":")[2]
        self.on_message, self.on_connect, self.on_close, self.on_error = on_message, on_connect, on_close, on_error
        self.subscribed: set[str] = set()
        self.alive = False

    def connect(self) -> None:
        if not self.fake.token_ok(self.token):
            self.on_error({"type": "cn", "code": -99, "message": "Token is expired", "s": "error"})
        else:
            self.alive = True
            self.fake.data_sockets.append(self)
            self.on_message({"type": "cn", "code": 200, "message": "Authentication done", "s": "ok"})
        self.on_connect()  # like the SDK: called whether or not the connection worked

    def subscribe(self, symbols: list[str], data_type: str = "SymbolUpdate", **_: Any) -> None:
        if self.alive:
            self.subscribed |= set(symbols)
            if self.fake.start_market_on_subscribe and not self.fake.market_started:
                self.fake.market_started = True
                threading.Thread(target=self.fake.run_market, daemon=True).start()
            self.on_message({"type": "sub", "code": 200, "message": "Subscribed", "s": "ok"})
            with self.fake.lock:  # like the SDK: a snapshot of each symbol follows the subscribe
                for ticker in symbols:
                    snap = self.fake.snapshot(ticker)
                    if snap is not None:
                        self.on_message(snap)

    def deliver(self, msg: dict[str, Any]) -> None:
        if self.alive and msg["symbol"] in self.subscribed:
            if not self.fake.token_ok(self.token):
                self.drop()
                return
            self.on_message(dict(msg))

    def drop(self) -> None:
        self.alive = False
        if self in self.fake.data_sockets:
            self.fake.data_sockets.remove(self)
        self.on_close({"code": 1006, "message": "connection lost"})

    def close_connection(self) -> None:
        self.alive = False
        if self in self.fake.data_sockets:
            self.fake.data_sockets.remove(self)


class FakeOrderSocket:
    def __init__(
        self,
        fake: FakeFyers,
        *,
        access_token: str,
        on_orders: Callable[[Any], None],
        on_trades: Callable[[Any], None],
        on_positions: Callable[[Any], None],
        on_connect: Callable[[], None],
        on_close: Callable[[Any], None],
        on_error: Callable[[Any], None],
        **_: Any,
    ) -> None:
        self.fake = fake
        self.token = access_token.partition(":")[2]
        self.cb = {"orders": on_orders, "trades": on_trades, "positions": on_positions}
        self.on_connect, self.on_close, self.on_error = on_connect, on_close, on_error
        self.topics: set[str] = set()
        fake.order_sockets_made.append(self)
        self.sent_twice = 0  # reports sent twice (the duplicate-events scenario)

    def connect(self) -> None:
        if self.fake.token_ok(self.token):
            self.fake.order_sockets.append(self)
        else:
            self.on_error({"code": 403, "message": "Forbidden"})
        self.on_connect()

    def subscribe(self, data_type: str) -> None:
        names = {"OnOrders": "orders", "OnTrades": "trades", "OnPositions": "positions"}
        self.topics |= {names[d] for d in data_type.split(",") if d in names}

    def send(self, kind: str, body: dict[str, Any]) -> None:
        if kind not in self.topics:
            return
        if not self.fake.token_ok(self.token):
            self.close_connection()
            self.on_close({"code": 1008, "message": "token expired"})
            return
        times = 2 if self.fake.s.duplicate_socket_events else 1
        self.sent_twice += times - 1
        for _ in range(times):
            self.cb[kind]({"s": "ok", kind: dict(body)})

    def close_connection(self) -> None:
        if self in self.fake.order_sockets:
            self.fake.order_sockets.remove(self)
