"""FYERS' two websockets and the data socket's HTTP look-ups, served over real sockets on
127.0.0.1 (aiohttp), driven by the fake exchange in ``fake_fyers.py``.

Each connected client registers with the fake like its in-process sockets do (in
``fake.data_sockets`` / ``fake.order_sockets``, with the same ``deliver``/``drop``/``send``
methods), so the exchange publishes ticks and order reports through the wire unchanged:
the real ``FyersDataSocket`` and ``FyersOrderSocket`` of the SDK, pointed here by the URL
settings, decode them with their own threads, protocol code, reconnects and field mapping.

Faults at the wire: ``drop_data`` closes the data connections from the server's side (the
SDK reconnects by itself); ``mute_data`` leaves them open but sends nothing more on them
(only the trader's watchdog can notice). While a dropped or muted client is away, the
exchange's replay waits for a new subscription (``hold_market``), so what the trader sees
does not depend on how fast its reconnect is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

import wire_data as hsm
import wire_order
from aiohttp import WSMsgType, web
from fake_fyers import FakeFyers

HOLD_TIMEOUT = 120.0  # generous: the SDK waits 5 s before its first reconnect, plus 2 s in connect()


def fy_token(index: int) -> str:
    """The FYERS token of the fake's index-th symbol (exchange segment 1010 = NSE cash)."""
    return f"10100000{index:06d}"


def hsm_key_of(token: str) -> str:
    """The ``hsm_key`` claim of an access token (what the data socket authenticates with)."""
    try:
        payload = token.split(".")[1]
        return str(json.loads(base64.urlsafe_b64decode(payload + "===")).get("hsm_key", ""))
    except (IndexError, ValueError):
        return ""


class WireFyers:
    """The wire servers in front of one :class:`FakeFyers`."""

    def __init__(self, fake: FakeFyers, *, ack_every: int = 20) -> None:
        self.fake = fake
        self.ack_every = ack_every
        self.tickers = [f"NSE:{s}-EQ" for s in fake.symbols]
        self.topic_of = {t: f"sf|nse_cm|{fy_token(i)[10:]}" for i, t in enumerate(self.tickers, 1)}
        self.ticker_of = {v: k for k, v in self.topic_of.items()}
        self.quotes: dict[str, dict[str, float]] = {}  # the last full quote of each ticker
        self.data_auths = 0  # successful data-socket logins (connections)
        self.data_refused = 0
        self.order_connects = 0
        self.acks = 0
        self.duplicates = 0  # order-socket reports sent twice
        self.token_lookups = 0
        self.subscribed = threading.Event()  # a data client subscribed since the last drop/mute
        self.order_subscribed = threading.Event()
        self.events: list[str] = []  # what happened at the wire, in order (for the test's messages)
        self.wait_for_order_socket = True
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="wire-fyers", daemon=True)
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> WireFyers:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/hsm/v1-5/prod", self._data_ws)
        app.router.add_get("/trade/v3", self._order_ws)
        app.router.add_post("/data/symbol-token", self._symbol_token)
        app.router.add_get("/sym_details/index_hsm_mapping.json", self._index_map)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def env(self) -> dict[str, str]:
        """The settings that point the trader's SDK sockets here."""
        base = f"127.0.0.1:{self.port}"
        return {
            "TFL_FYERS_DATA_SOCKET_URL": f"ws://{base}/hsm/v1-5/prod",
            "TFL_FYERS_ORDER_SOCKET_URL": f"ws://{base}/trade/v3",
            "TFL_FYERS_SYMBOL_TOKEN_URL": f"http://{base}/data/symbol-token",
            "TFL_FYERS_INDEX_MAP_URL": f"http://{base}/sym_details/index_hsm_mapping.json",
        }

    # ------------------------------------------------------------------ faults

    def drop_data(self) -> None:
        """Close every data connection from the server's side (the SDK reconnects)."""
        self.subscribed.clear()
        for conn in [c for c in list(self.fake.data_sockets) if isinstance(c, DataConn)]:
            conn.drop()
        self.events.append("data dropped")

    def mute_data(self) -> None:
        """Send nothing more on the current data connections, and keep them open."""
        self.subscribed.clear()
        for conn in [c for c in list(self.fake.data_sockets) if isinstance(c, DataConn)]:
            conn.muted = True
            if conn in self.fake.data_sockets:
                self.fake.data_sockets.remove(conn)
        self.events.append("data muted")

    def hold_market(self) -> None:
        """Called on the exchange's thread: wait until a data client has subscribed again."""
        self.events.append("data back" if self.subscribed.wait(HOLD_TIMEOUT) else "data not back in time")

    def quote(self, ticker: str) -> dict[str, float]:
        """The ticker's last quote; before its first trade of the day, the previous session's
        close (traded then, no volume today). What FYERS puts in a snapshot before the open is
        not documented: this is the reading that gives a client the least to trade on."""
        known = self.quotes.get(ticker)
        if known is not None:
            return known
        series = self.fake.market.intraday[ticker[4:-3]]
        before = series.ts < self.fake.open_ts
        last = int(before.sum()) - 1
        close = float(series.close[last])
        return {
            "ltp": close,
            "prev_close_price": close,
            "vol_traded_today": 0.0,
            "last_traded_time": float(series.ts[last] + 899),
            "exch_feed_time": float(int(self.fake.clock)),
        }

    # ------------------------------------------------------------------ HTTP look-ups

    async def _symbol_token(self, request: web.Request) -> web.Response:
        self.token_lookups += 1
        token = request.headers.get("Authorization", "")
        if not self.fake.token_ok(token):
            return web.json_response({"s": "error", "code": -16, "message": "Could not authenticate the user"})
        body = await request.json()
        valid = {t: fy_token(self.tickers.index(t) + 1) for t in body.get("symbols", []) if t in self.tickers}
        invalid = [t for t in body.get("symbols", []) if t not in self.tickers]
        return web.json_response({"s": "ok", "validSymbol": valid, "invalidSymbol": invalid})

    async def _index_map(self, request: web.Request) -> web.Response:
        return web.json_response({"NSE:NIFTY50-INDEX": "Nifty 50"})

    # ------------------------------------------------------------------ sockets

    async def _data_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = DataConn(self, ws)
        pump = asyncio.create_task(conn.pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    conn.on_request(bytes(msg.data))
        finally:
            conn.gone()
            pump.cancel()
        return ws

    async def _order_ws(self, request: web.Request) -> web.StreamResponse:
        app_id, _, token = request.headers.get("authorization", "").partition(":")
        if app_id != self.fake.client_id or not self.fake.token_ok(token):
            return web.Response(status=401, text="Unauthorized")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.order_connects += 1
        conn = OrderConn(self, ws, token)
        pump = asyncio.create_task(conn.pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    conn.on_text(msg.data)
        finally:
            conn.gone()
            pump.cancel()
        return ws

    def call(self, fn: Any, *args: Any) -> None:
        self._loop.call_soon_threadsafe(fn, *args)


class _Conn:
    """One client connection: frames go out in order through one queue."""

    def __init__(self, server: WireFyers, ws: web.WebSocketResponse) -> None:
        self.server = server
        self.ws = ws
        self.out: asyncio.Queue[bytes | str | None] = asyncio.Queue()

    async def pump(self) -> None:
        while True:
            item = await self.out.get()
            if item is None:
                await self.ws.close()
                return
            if isinstance(item, bytes):
                await self.ws.send_bytes(item)
            else:
                await self.ws.send_str(item)

    def put(self, item: bytes | str | None) -> None:
        """Queue a frame (any thread); None closes the connection after what is queued."""
        self.server.call(self.out.put_nowait, item)


class DataConn(_Conn):
    """A data-socket client, registered with the fake once it has authenticated."""

    def __init__(self, server: WireFyers, ws: web.WebSocketResponse) -> None:
        super().__init__(server, ws)
        self.token = ""
        self.alive = False
        self.muted = False
        self.lite = False
        self.topics: dict[str, int] = {}  # topic -> topic id
        self.number = 0

    def on_request(self, data: bytes) -> None:
        srv = self.server
        req = hsm.parse_request(data)
        if req.kind == hsm.AUTH:
            key = req.fields.get(1, b"").decode()
            self.token = next((t for t in srv.fake.tokens if hsm_key_of(t) == key), "")
            ok = bool(key) and srv.fake.token_ok(self.token)
            self.put(hsm.auth_answer(ok, srv.ack_every))
            if ok:
                srv.data_auths += 1
                self.alive = True
                srv.fake.data_sockets.append(self)
            else:
                srv.data_refused += 1
        elif req.kind == hsm.MODE:
            self.lite = req.fields.get(2, b"") == bytes([hsm.LITE_MODE])
            self.put(hsm.ok_answer(hsm.MODE))
        elif req.kind == hsm.SUBSCRIBE and self.alive:
            for topic in hsm.topics_of(req):
                if topic in srv.ticker_of:
                    self.topics.setdefault(topic, len(self.topics) + 1)
            self.put(hsm.ok_answer(hsm.SUBSCRIBE))
            # a snapshot of every topic, on every subscription (the SDK ignores updates before it)
            scrips = [
                hsm.snapshot(tid, topic, srv.quote(srv.ticker_of[topic]), topic.split("|")[2], srv.ticker_of[topic])
                for topic, tid in self.topics.items()
            ]
            self.number += 1
            self.put(hsm.data_frame(self.number, scrips))
            srv.subscribed.set()
            srv.events.append("data subscribed")
            self._start_market()
        elif req.kind == hsm.UNSUBSCRIBE:
            for topic in hsm.topics_of(req):
                self.topics.pop(topic, None)
            self.put(hsm.ok_answer(hsm.UNSUBSCRIBE))
        elif req.kind in (hsm.PAUSE, hsm.RESUME):
            self.put(hsm.ok_answer(req.kind))
        elif req.kind == hsm.ACK:
            srv.acks += 1

    def _start_market(self) -> None:
        fake, srv = self.server.fake, self.server
        if not fake.start_market_on_subscribe or fake.market_started:
            return
        fake.market_started = True

        def run() -> None:
            if srv.wait_for_order_socket:  # the trader's order reports must not be missed at the start
                srv.order_subscribed.wait(HOLD_TIMEOUT)
            fake.run_market()

        threading.Thread(target=run, name="fake-market", daemon=True).start()

    # the fake exchange's side (FakeDataSocket's methods)

    def deliver(self, msg: dict[str, Any]) -> None:
        ticker = str(msg["symbol"])
        srv = self.server
        quote = srv.quotes.setdefault(ticker, dict(srv.quote(ticker)))
        quote.update({k: float(v) for k, v in msg.items() if k in hsm.FIELDS})
        if not self.alive or self.muted:
            return
        if not srv.fake.token_ok(self.token):
            self.drop()
            return
        topic = srv.topic_of.get(ticker)
        tid = self.topics.get(topic or "")
        if tid is None:
            return
        self.number += 1
        body = hsm.lite_update(tid, quote["ltp"]) if self.lite else hsm.full_update(tid, quote)
        self.put(hsm.data_frame(self.number, [body]))

    def drop(self) -> None:
        self.alive = False
        if self in self.server.fake.data_sockets:
            self.server.fake.data_sockets.remove(self)
        self.put(None)

    def close_connection(self) -> None:
        self.drop()

    def gone(self) -> None:
        self.alive = False
        if self in self.server.fake.data_sockets:
            self.server.fake.data_sockets.remove(self)


class OrderConn(_Conn):
    """An order-socket client (FakeOrderSocket's methods, over the wire)."""

    def __init__(self, server: WireFyers, ws: web.WebSocketResponse, token: str) -> None:
        super().__init__(server, ws)
        self.token = token
        self.topics: set[str] = set()
        self.sent_twice = 0
        server.fake.order_sockets.append(self)

    def on_text(self, text: str) -> None:
        if text == "ping":
            self.put("pong")
            return
        try:
            msg = json.loads(text)
        except ValueError:
            return
        subscribed = wire_order.topics(msg) if isinstance(msg, dict) else None
        if subscribed is not None:
            self.topics |= subscribed
            self.put(json.dumps(wire_order.SUBSCRIBED))
            self.server.order_subscribed.set()

    def send(self, kind: str, body: dict[str, Any]) -> None:
        if kind not in self.topics:
            return
        if not self.server.fake.token_ok(self.token):
            self.close_connection()
            return
        times = 2 if self.server.fake.s.duplicate_socket_events else 1
        self.sent_twice += times - 1
        self.server.duplicates += times - 1
        frame = json.dumps(wire_order.to_wire(kind, body))
        for _ in range(times):
            self.put(frame)

    def close_connection(self) -> None:
        self.gone()
        self.put(None)

    def gone(self) -> None:
        if self in self.server.fake.order_sockets:
            self.server.fake.order_sockets.remove(self)
