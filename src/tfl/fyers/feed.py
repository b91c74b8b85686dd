"""Market data from the FYERS data socket as a :class:`~tfl.live.feed.Feed`.

What the SDK (fyers-apiv3 3.2.0, ``FyersWebsocket/data_ws.py``) really sends, and what we
make of it (docs/fyers.md, "The data socket"):

- A merged snapshot of every field of a symbol whenever any field changes, quotes
  (bid/ask) included, and one snapshot per symbol after each (re)subscribe. So a message
  is a trade only when ``vol_traded_today`` rises for its symbol; the first message
  after a subscribe sets the baseline. Trades are timed by ``last_traded_time`` (the
  trade's time; ``exch_feed_time`` is the time of the update, a quote's too). Only
  traded prices reach the bars.
- The socket is a process-wide singleton that forgets its subscriptions when it
  reconnects: we subscribe in every ``on_connect``. Subscribing makes one REST call
  (symbol-token) per 500 symbols, so each subscribe first takes its slots from the
  shared rate limiter.
- It can go silent or give up without ``on_close``: a watchdog forces a reconnect after
  ``silence_seconds`` without any message, in market hours only (silence before the open
  is normal), with exponential backoff and jitter. The reconnect runs on a worker thread:
  the SDK's ``close_connection()`` joins its threads (seconds), and the trading loop must
  keep managing exits meanwhile.
- A refused token (the SDK's ``on_error`` messages for an expired or invalid token, or a
  failed authentication) raises one clear alert: nothing will come until a new login.
- A payload with a time or value we do not expect is logged (once per kind) and skipped.

While the market is quiet the feed returns :class:`~tfl.live.feed.Clock` events so bars
still close on time, and at the session's close a :class:`~tfl.live.feed.SessionEnd`.
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

from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.sockets import DataSocketFactory, subscribe_all
from tfl.fyers.symbols import SymbolMap
from tfl.live.feed import Clock, FeedEvent, SessionEnd, Tick
from tfl.live.runtime import log_alert

log = logging.getLogger("tfl.fyers.feed")

SYMBOLS_PER_TOKEN_CALL = 500  # data_ws.py: symbols go to the symbol-token API in chunks of 500
REPAIR_LEAD_SECONDS = 60.0  # a closed socket is reopened from this long before the open
MAX_BACKOFF_SECONDS = 60.0
# Epoch seconds between 2000 and 2100: anything else (milliseconds, a clock time) is not a time we know.
EPOCH_SECONDS_RANGE = (946_684_800, 4_102_444_800)
# defines.py: TOKEN_EXPIRED_MSG, INVALID_TOKEN (access_token_to_hsmtoken) and AUTH_FAIL (__auth_resp),
# all sent to on_error with type AUTH_TYPE ("cn").
TOKEN_REFUSALS = ("Token is expired", "Please provide valid token", "Authentication failed")
AUTH_TYPE = "cn"
SUBSCRIBE_TYPE = "sub"  # a refused symbol-token call comes back as type "sub" with the REST message


def token_refusal(msg: Any) -> str | None:
    """The SDK's words if ``msg`` (an ``on_error`` payload) says the token was refused, else None."""
    if not isinstance(msg, dict):
        return None
    text = str(msg.get("message", ""))
    kind = msg.get("type")
    if kind == AUTH_TYPE or text in TOKEN_REFUSALS:  # every on_error of the auth step is a refusal
        return text or "authentication refused"
    if kind == SUBSCRIBE_TYPE and any(w in text.lower() for w in ("token", "authenticat")):
        return text
    return None


def _number(value: Any) -> float | None:
    """A finite int or float (the SDK's numbers); anything else is None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def epoch_seconds(value: Any) -> int | None:
    """``last_traded_time`` as UTC epoch seconds, or None if it is not one (a string, milliseconds...)."""
    number = _number(value)
    if number is None or not EPOCH_SECONDS_RANGE[0] <= number < EPOCH_SECONDS_RANGE[1]:
        return None
    return int(number)


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
        open_ts: int | None = None,
        limiter: RateLimiter | None = None,
        alert: Callable[[str, str], None] = log_alert,
        silence_seconds: float = 20.0,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        """``open_ts``: the session's open (UTC epoch); before it, silence is normal and no
        reconnect is forced (None: the feed starts inside market hours). ``limiter``: the
        process's FYERS rate limiter, taken before every subscribe (the SDK calls REST there).
        ``now`` is market time (epoch seconds), ``monotonic`` measures silence and backoff."""
        self._factory = factory
        self._token = access_token
        self._symbols = symbols
        self._tickers = [symbols.ticker(n) for n in names]
        self._close_ts = close_ts
        self._open_ts = open_ts if open_ts is not None else 0
        self._limiter = limiter
        self._alert = alert
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
        self._base: dict[str, float] = {}  # each symbol's day volume at its last message since the subscribe
        self._odd_seen: set[str] = set()
        self._alerts: list[tuple[str, str]] = []  # raised on the trading thread, in next()
        self._token_alerted = False
        self.last_tick = monotonic()  # the last trade given out
        self.last_heard = self.last_tick  # the last message of any kind (the socket is alive)
        self._started = self.last_tick
        self._quiet_since = self.last_tick  # silence before the open counts from the open
        self.reconnects = 0
        self.errors: list[str] = []
        self._ended = False
        self._closed = False
        self._next_attempt = 0.0
        self._cv = threading.Condition()
        self._pending: str | None = None  # a reconnect the worker is to make
        self._busy = False  # the worker is making one
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ socket (SDK threads)

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
        # The SDK calls this after every (re)connect and forgets subscriptions: subscribe each
        # time. Its answer is a snapshot per symbol, which sets the baseline (not a trade).
        with self._lock:
            self._base.clear()
        try:
            if self._limiter is not None:  # subscribe calls the symbol-token REST API
                for _ in range(-(-len(self._tickers) // SYMBOLS_PER_TOKEN_CALL)):
                    self._limiter.acquire()
            subscribe_all(self._sock, self._tickers)
        except Exception as exc:
            self._on_error({"message": str(exc)})

    def _on_close(self, msg: Any) -> None:
        # With reconnect on, the SDK calls on_close only when it is not reconnecting by itself
        # (closed for good, or it gave up): the watchdog reconnects.
        self._closed = True
        log.warning("data socket closed", extra={"fields": {"detail": str(msg)[:100]}})

    def _on_error(self, msg: Any) -> None:
        log.error("data socket error", extra={"fields": {"detail": str(msg)[:200]}})
        self.errors.append(str(msg)[:200])
        refused = token_refusal(msg)
        if refused is None:
            return
        with self._lock:
            if self._token_alerted:
                return
            self._token_alerted = True
            self._alerts.append(
                (
                    "ERROR",
                    f"TFL: the FYERS data socket refuses the access token ({refused[:80]}): no market data "
                    "until a new login, so no new entries; log in again (tfl auth login)",
                )
            )

    def _on_message(self, msg: Any) -> None:
        self.last_heard = self._mono()
        try:
            self._take(msg)
        except Exception as exc:  # a payload nobody foresaw: skipped, never an exception into the SDK
            self._odd(f"unreadable payload ({type(exc).__name__})", "", msg)

    def _take(self, msg: Any) -> None:
        if not isinstance(msg, dict) or "symbol" not in msg:
            return  # control messages: authenticated, subscribed, mode
        sym = self._symbols.symbol(str(msg["symbol"]))
        if sym is None:
            return
        volume = _number(msg.get("vol_traded_today"))
        if volume is None or volume < 0:
            self._odd("vol_traded_today is not a day volume", sym, msg.get("vol_traded_today"))
            return
        with self._lock:
            base = self._base.get(sym)
            self._base[sym] = volume
            self._token_alerted = False  # the socket took the token
        if base is None or volume == base:
            return  # the snapshot after a subscribe, or a quote (bid/ask) change: no trade
        if volume < base:
            self._odd("vol_traded_today went down", sym, msg.get("vol_traded_today"))
            return
        price = _number(msg.get("ltp"))
        if price is None or price <= 0:
            self._odd("ltp is not a price", sym, msg.get("ltp"))
            return
        ts = epoch_seconds(msg.get("last_traded_time"))
        if ts is None:
            self._odd("last_traded_time is not epoch seconds", sym, msg.get("last_traded_time"))
            return
        with self._lock:
            self._seq = max(self._seq + 1, int(self._now() * 1_000_000))
            seq = self._seq
            self.reconnects = 0  # trades flow: the next failure starts the backoff afresh
        self._q.put(Tick(sym, ts, price, volume, seq))

    def _odd(self, problem: str, sym: str, value: Any) -> None:
        kind = f"{problem} ({type(value).__name__})"
        with self._lock:
            if kind in self._odd_seen:
                return
            self._odd_seen.add(kind)
        log.warning(
            "data socket payload skipped (logged once per kind)",
            extra={"fields": {"kind": kind, "symbol": sym, "value": repr(value)[:80]}},
        )

    # ------------------------------------------------------------------ reconnects (worker thread)

    def reconnect(self, why: str) -> None:
        """Ask the worker to tear the socket down and build a new one (the SDK may have given up
        silently). Never blocks: attempts are spaced by exponential backoff with jitter, and the
        trading loop keeps running (and managing exits) while the worker reconnects."""
        self._request(why, force=False)

    def _request(self, why: str, *, force: bool) -> None:
        with self._cv:
            if self._ended or self._pending is not None or (self._busy and not force):
                return
            now = self._mono()
            if force:
                self.reconnects, self._next_attempt = 0, 0.0
            elif now < self._next_attempt:
                return
            self.reconnects += 1
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** min(self.reconnects, 6)) * (0.5 + self._rng.random())
            self._next_attempt = now + delay
            self._pending = why
            if self._worker is None:
                self._worker = threading.Thread(target=self._reconnect_loop, name="fyers-data-reconnect", daemon=True)
                self._worker.start()
            self._cv.notify_all()
            attempt = self.reconnects
        log.warning(
            "forcing a data socket reconnect",
            extra={"fields": {"why": why, "attempt": attempt, "next_in_s": round(delay, 1)}},
        )

    def _reconnect_loop(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._ended:
                    self._cv.wait()
                if self._ended:
                    return
                self._pending, self._busy = None, True
            try:
                old = self._sock
                if old is not None:
                    try:
                        old.close_connection()  # the SDK joins its threads here: seconds
                    except Exception as exc:
                        self._on_error({"message": f"close failed: {exc}"})
                if not self._ended:
                    self.start()
            except Exception as exc:
                self._on_error({"message": f"reconnect failed: {type(exc).__name__}: {exc}"})
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    @property
    def reconnecting(self) -> bool:
        """A reconnect is asked for or under way on the worker thread."""
        with self._cv:
            return self._pending is not None or self._busy

    def refresh(self) -> None:
        """A new access token is in the store: reconnect with it now (any time of day)."""
        with self._lock:
            self._token_alerted = False
        self._request("new access token", force=True)

    def _watch(self, now: float) -> None:
        """The watchdog, on the trading thread: ask for a reconnect when the socket closed or
        went silent, in market hours only."""
        mono = self._mono()
        if now < self._open_ts:
            self._quiet_since = mono  # silence before the open is normal: it counts from the open
            if self._closed and now >= self._open_ts - REPAIR_LEAD_SECONDS:
                self.reconnect("the socket closed")
            return
        if self._closed:
            self.reconnect("the socket closed")
        elif mono - max(self.last_heard, self._started, self._quiet_since) > self._silence:
            self.reconnect(f"no data for {self._silence:.0f} s")

    # ------------------------------------------------------------------ Feed (trading thread)

    def next(self, timeout: float) -> FeedEvent | None:
        if self._ended:
            return None
        if self._alerts:
            with self._lock:
                alerts, self._alerts = self._alerts, []
            for level, message in alerts:
                self._alert(level, message)
        try:
            tick = self._q.get(timeout=0 if self._now() >= self._close_ts else timeout)
        except queue.Empty:
            now = self._now()
            if now >= self._close_ts:  # the close, once every queued tick is out
                self._ended = True
                return SessionEnd(self._close_ts)
            self._watch(now)
            return Clock(math.floor(now))
        self.last_tick = self._mono()
        return tick

    @property
    def exhausted(self) -> bool:
        return False  # a live feed ends with the session's SessionEnd, never by running dry

    def close(self) -> None:
        self._ended = True
        with self._cv:
            self._cv.notify_all()
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self._sock.close_connection()
