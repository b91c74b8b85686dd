"""FYERS' order book and trade book, read off the trading thread.

When the order socket is quiet, the broker adapter falls back to reading the books. A slow
FYERS (10 s timeouts, a 429 back-off) must not stall tick processing, so the reads happen
on a thread of their own, through the same rate limiter as every other call; the trading
thread only asks for a read and later drains what came back, without waiting.

The thread never touches the adapter's state: it hands back the raw rows (or the error),
and the adapter turns them into events on the trading thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from tfl.fyers.errors import FyersError
from tfl.fyers.rest import FyersRest

log = logging.getLogger("tfl.fyers.broker")

JOIN_SECONDS = 2.0  # how long close() waits for a read in flight (the thread is a daemon)


@dataclass(frozen=True)
class Books:
    """One read: the order book first, then the trade book (so every fill an order row
    counts is in the trade rows), or the error that stopped it."""

    orders: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    error: FyersError | None = None


class BookPoller:
    """Reads both books when asked; ``threaded=False`` leaves the reads to :meth:`cycle`
    (tests run one cycle at a time, deterministically)."""

    def __init__(self, rest: FyersRest, *, threaded: bool = True) -> None:
        self._rest = rest
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._results: queue.Queue[Books] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.cycles = 0  # reads attempted (observability)
        if threaded:
            self._thread = threading.Thread(target=self._run, name="fyers-book-poller", daemon=True)
            self._thread.start()

    def request(self) -> None:
        """Ask for one read of both books (several requests before it starts are one read)."""
        if not self._stop.is_set():
            self._wanted.set()

    @property
    def requested(self) -> bool:
        return self._wanted.is_set()

    def cycle(self) -> None:
        """One read of both books; its result (or its error) goes to :meth:`drain`."""
        self._wanted.clear()
        self.cycles += 1
        try:
            orders = self._rest.orderbook()
            trades = self._rest.tradebook()
        except FyersError as exc:
            self._results.put(Books([], [], exc))
            return
        except Exception as exc:  # a bug or an odd answer must not kill the thread silently
            log.error("reading FYERS' books failed", extra={"fields": {"error": type(exc).__name__}})
            return
        self._results.put(Books(orders, trades))

    def drain(self) -> list[Books]:
        """The reads completed since the last drain, oldest first; never waits."""
        out: list[Books] = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Stop the thread (a read in flight is not waited for beyond a moment)."""
        self._stop.set()
        self._wanted.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_SECONDS)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stop.is_set():
                return
            self.cycle()
