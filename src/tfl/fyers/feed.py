"""Market data from the FYERS data socket as a :class:`~tfl.live.feed.Feed`.

Ticks carry the exchange's timestamp and the cumulative day volume. The SDK socket is a
process-wide singleton that forgets its subscriptions on reconnect and can go silent or
give up without calling ``on_close``; so we subscribe in every ``on_connect``, and a
watchdog that sees no tick for ``socket_silence_seconds`` during the session forces a
reconnect, with exponential backoff and jitter. While the market is quiet the feed
returns :class:`~tfl.live.feed.Clock` events so bars still close on time, and at the
session's close a :class:`~tfl.live.feed.SessionEnd`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfl.fyers.sockets import DataSocketFactory, subscribe_all
from tfl.fyers.symbols import SymbolMap
from tfl.live.feed import Clock, FeedEvent, SessionEnd, Tick

log = logging.getLogger("tfl.fyers.feed")


class FyersFeed:
    def __init__(
        self,
        factory: DataSocketFactory,
        access_token: Callable[[], str],
        symbols: SymbolMap,
        names: list[str],
        close_ts: int,
        *,
        log_dir: Path,
        url: str | None = None,
        silence_seconds: float = 20.0,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._factory = factory
        self._token = access_token
        self._symbols = symbols
        self._tickers = [symbols.ticker(n) for n in names]
        self._close_ts = close_ts
        self._log_dir = log_dir
        self._url = url
        self._silence = silence_seconds
        self._now = now
        self._mono = monotonic
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._q: queue.Queue[Tick] = queue.Queue()
        self._sock: Any = None
        self._seq = 0
        self._lock = threading.Lock()
        self.last_tick = monotonic()
        self._started = self.last_tick
        self.reconnects = 0
        self.errors: list[str] = []
        self._ended = False
        self._closed = False
        self._next_attempt = 0.0

    # ------------------------------------------------------------------ socket

    def start(self) -> None:
        self._closed = False
        self._sock = self._factory(
            access_token=self._token(),
            log_dir=self._log_dir,
            url=self._url,
            on_message=self._on_message,
            on_connect=self._on_connect,
            on_close=self._on_close,
            on_error=self._on_error,
        )
        threading.Thread(target=self._sock.connect, name="fyers-data-socket", daemon=True).start()
        self._started = self._mono()

    def _on_connect(self) -> None:
        try:  # the SDK calls this after every (re)connect and forgets subscriptions: subscribe each time
            subscribe_all(self._sock, self._tickers)
        except Exception as exc:
            self._on_error({"message": str(exc)})

    def _on_close(self, msg: Any) -> None:
        # With reconnect on, the SDK calls on_close only when it is not reconnecting by itself
        # (closed for good, or it gave up): reconnect from the consumer's thread.
        self._closed = True
        log.warning("data socket closed", extra={"fields": {"detail": str(msg)[:100]}})

    def _on_error(self, msg: Any) -> None:
        self.errors.append(str(msg)[:200])
        log.error("data socket error", extra={"fields": {"detail": str(msg)[:200]}})

    def _on_message(self, msg: Any) -> None:
        if not isinstance(msg, dict) or "ltp" not in msg or "symbol" not in msg:
            return  # control messages: connected, subscribed, mode
        sym = self._symbols.symbol(str(msg["symbol"]))
        if sym is None:
            return
        try:
            price = float(msg["ltp"])
            ts = int(msg.get("exch_feed_time") or msg.get("last_traded_time") or self._now())
            volume = float(msg.get("vol_traded_today") or 0.0)
        except (TypeError, ValueError):
            log.warning("malformed tick dropped", extra={"fields": {"symbol": sym}})
            return
        with self._lock:
            self._seq = max(self._seq + 1, int(self._now() * 1_000_000))
            seq = self._seq
        self._q.put(Tick(sym, ts, price, volume, seq))

    def reconnect(self, why: str) -> None:
        """Tear the socket down and build a new one (the SDK may have given up silently).

        Never sleeps on the caller's thread: attempts are spaced by exponential backoff
        with jitter, and the trading loop keeps running (and managing exits) in between.
        """
        now = self._mono()
        if now < self._next_attempt:
            return
        self.reconnects += 1
        delay = min(60.0, 2.0 ** min(self.reconnects, 6)) * (0.5 + self._rng.random())
        self._next_attempt = now + delay
        log.warning(
            "forcing a data socket reconnect",
            extra={"fields": {"why": why, "attempt": self.reconnects, "next_in_s": round(delay, 1)}},
        )
        try:
            if self._sock is not None:
                self._sock.close_connection()
        except Exception as exc:
            self._on_error({"message": f"close failed: {exc}"})
        self.start()

    def refresh(self) -> None:
        """A new access token is in the store: reconnect with it now."""
        self._next_attempt = 0.0
        self.reconnects = 0
        self.reconnect("new access token")

    # ------------------------------------------------------------------ Feed

    def next(self, timeout: float) -> FeedEvent | None:
        if self._ended:
            return None
        try:
            tick = self._q.get(timeout=0 if self._now() >= self._close_ts else timeout)
        except queue.Empty:
            if self._now() >= self._close_ts:  # the close, once every queued tick is out
                self._ended = True
                return SessionEnd(self._close_ts)
            if self._closed:
                self.reconnect("the socket closed")
            elif self._mono() - max(self.last_tick, self._started) > self._silence:
                self.reconnect(f"no tick for {self._silence:.0f} s")
            return Clock(math.floor(self._now()))
        self.last_tick = self._mono()
        self.reconnects = 0
        return tick

    @property
    def exhausted(self) -> bool:
        return False  # a live feed ends with the session's SessionEnd, never by running dry

    def close(self) -> None:
        self._ended = True
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self._sock.close_connection()
