"""The two FYERS sockets (official SDK), with the SDK's gaps closed.

- Both sockets forget their subscriptions when they reconnect and call ``on_connect``
  again, so we subscribe inside ``on_connect`` every time.
- The SDK always writes log files; we point ``log_path`` at a directory of ours, never
  the working directory.
- The socket URLs are hard-coded in the SDK; a setting can override them (name-mangled
  attributes), so operators and tests can point them elsewhere.
- Tests replace the factories with fakes that expose the same methods and callbacks.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("tfl.fyers.sockets")


class SocketLike(Protocol):
    def connect(self) -> None: ...

    def close_connection(self) -> None: ...


DataSocketFactory = Callable[..., Any]
OrderSocketFactory = Callable[..., Any]


def sdk_data_socket(
    *,
    access_token: str,
    log_dir: Path,
    url: str | None,
    on_message: Callable[[Any], None],
    on_connect: Callable[[], None],
    on_close: Callable[[Any], None],
    on_error: Callable[[Any], None],
) -> Any:
    from fyers_apiv3.FyersWebsocket.data_ws import FyersDataSocket

    log_dir.mkdir(parents=True, exist_ok=True)
    sock = FyersDataSocket(
        access_token=access_token,
        log_path=str(log_dir),
        write_to_file=False,
        litemode=False,
        reconnect=True,
        on_message=on_message,
        on_connect=on_connect,
        on_close=on_close,
        on_error=on_error,
        reconnect_retry=50,
    )
    if url:
        sock._FyersDataSocket__url = url
    return sock


def sdk_order_socket(
    *,
    access_token: str,
    log_dir: Path,
    url: str | None,
    on_orders: Callable[[Any], None],
    on_trades: Callable[[Any], None],
    on_positions: Callable[[Any], None],
    on_connect: Callable[[], None],
    on_close: Callable[[Any], None],
    on_error: Callable[[Any], None],
) -> Any:
    from fyers_apiv3.FyersWebsocket.order_ws import FyersOrderSocket

    log_dir.mkdir(parents=True, exist_ok=True)
    sock = FyersOrderSocket(
        access_token=access_token,
        log_path=str(log_dir),
        write_to_file=False,
        on_orders=on_orders,
        on_trades=on_trades,
        on_positions=on_positions,
        on_general=lambda m: None,
        on_error=on_error,
        on_connect=on_connect,
        on_close=on_close,
        reconnect=True,
        reconnect_retry=50,
    )
    if url:
        sock._FyersOrderSocket__url = url
    return sock


class OrderStream:
    """Order and trade updates from the order socket, as raw mapped dicts in arrival order."""

    def __init__(
        self,
        factory: OrderSocketFactory,
        access_token: Callable[[], str],
        log_dir: Path,
        url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._token = access_token
        self._log_dir = log_dir
        self._url = url
        self._clock = clock
        self._q: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._sock: Any = None
        self.last_message = clock()
        self.connected = False
        self.errors: list[str] = []
        self.unreadable = 0  # messages without a body we can read (the SDK hands None on its own errors)

    def start(self) -> None:
        self._sock = self._factory(
            access_token=self._token(),
            log_dir=self._log_dir,
            url=self._url,
            on_orders=lambda m: self._put("orders", m),
            on_trades=lambda m: self._put("trades", m),
            on_positions=lambda m: self._put("positions", m),
            on_connect=self._on_connect,
            on_close=self._on_close,
            on_error=self._on_error,
        )
        threading.Thread(target=self._sock.connect, name="fyers-order-socket", daemon=True).start()

    def _on_connect(self) -> None:
        self.connected = True
        try:  # the SDK forgets subscriptions on reconnect: always (re)subscribe here
            self._sock.subscribe(data_type="OnOrders,OnTrades,OnPositions")
        except Exception as exc:
            self._on_error({"message": str(exc)})

    def _on_close(self, msg: Any) -> None:
        self.connected = False
        log.warning("order socket closed", extra={"fields": {"detail": str(msg)[:100]}})

    def _on_error(self, msg: Any) -> None:
        self.errors.append(str(msg)[:200])
        log.error("order socket error", extra={"fields": {"detail": str(msg)[:200]}})

    def _put(self, kind: str, msg: Any) -> None:
        """Runs on the SDK's thread: queue the body, never raise into the SDK."""
        self.last_message = self._clock()
        body = msg.get(kind) if isinstance(msg, dict) else None
        if isinstance(body, dict):
            self._q.put((kind, body))
            return
        self.unreadable += 1
        if self.unreadable == 1:
            log.warning(
                "order socket message without a readable body: skipped",
                extra={"fields": {"kind": kind, "type": type(msg).__name__}},
            )

    def restart(self) -> None:
        """Reconnect with the current token (after a new login)."""
        self.close()
        self.start()

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out

    def silent_for(self) -> float:
        return self._clock() - self.last_message

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self._sock.close_connection()


def subscribe_all(sock: Any, tickers: Sequence[str]) -> None:
    sock.subscribe(symbols=list(tickers), data_type="SymbolUpdate")
