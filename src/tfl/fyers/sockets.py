"""The two FYERS sockets (official SDK), with the SDK's gaps closed.

- Both sockets forget their subscriptions when they reconnect and call ``on_connect``
  again, so we subscribe inside ``on_connect`` every time.
- The SDK always writes log files; we point ``log_path`` at a directory of ours, never
  the working directory.
- The socket URLs and the data socket's symbol look-up URLs are hard-coded in the SDK;
  settings override them (name-mangled attributes, and a per-socket copy of the SDK's
  look-up), so operators and tests can point the real SDK elsewhere.
- The SDK's threads are not daemons unless it runs in "background" mode: we use that
  mode, so no SDK thread can keep the process from exiting.
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

# SDK 3.2.0 makes its websocket thread a daemon only when ``write_to_file`` is set (its
# "background" mode), and the ping and send threads it starts from that thread inherit it.
# Non-daemon SDK threads keep the process alive after ``sys.exit``: the trader must always
# exit with its code, so the SDK runs in background mode. Its only other effect: what it
# would print to stdout (our JSON log stream), such as reconnect attempts and each order
# update, goes to its own log file in ``log_dir`` instead.
SDK_DAEMON_THREADS = True


def sdk_data_socket(
    *,
    access_token: str,
    log_dir: Path,
    url: str | None,
    on_message: Callable[[Any], None],
    on_connect: Callable[[], None],
    on_close: Callable[[Any], None],
    on_error: Callable[[Any], None],
    token_url: str | None = None,
    index_url: str | None = None,
) -> Any:
    """The SDK's data socket, pointed at ``url`` (the binary HSM socket) and at ``token_url`` /
    ``index_url`` (the HTTP look-ups it makes before subscribing)."""
    from fyers_apiv3.FyersWebsocket.data_ws import FyersDataSocket

    log_dir.mkdir(parents=True, exist_ok=True)
    sock = FyersDataSocket(
        access_token=access_token,
        log_path=str(log_dir),
        write_to_file=SDK_DAEMON_THREADS,
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
    if token_url or index_url:
        _point_symbol_lookups(sock, token_url, index_url)
    return sock


def _point_symbol_lookups(sock: Any, token_url: str | None, index_url: str | None) -> None:
    """Send this socket's symbol look-ups to ``token_url`` and ``index_url``.

    SDK 3.2.0 hard-codes both: ``SymbolConversion.__init__`` sets ``symbols_token_api`` and
    ``load_index_hsm_mapping_from_api`` reads ``defines.INDEX_HSM_MAPPING_API``, and the
    socket's private ``__symbol_conversion`` builds a ``SymbolConversion`` from its module's
    globals. Without editing the SDK or its module state, this socket gets its own copy of
    that method whose globals name a subclass with our URLs; the SDK's code is what runs.
    """
    import types

    import requests
    from fyers_apiv3.FyersWebsocket import data_ws

    class Lookup(data_ws.SymbolConversion):  # type: ignore[misc]
        _index_hsm_mapping_cache = None  # this class's own cache, not the SDK's

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if token_url:
                self.symbols_token_api = token_url

        @classmethod
        def load_index_hsm_mapping_from_api(cls) -> Any:
            if not index_url:
                return super().load_index_hsm_mapping_from_api()
            if cls._index_hsm_mapping_cache is None:
                resp = requests.get(index_url, timeout=10)
                resp.raise_for_status()
                cls._index_hsm_mapping_cache = resp.json()
            return cls._index_hsm_mapping_cache

    method = data_ws.FyersDataSocket._FyersDataSocket__symbol_conversion
    scope = dict(method.__globals__, SymbolConversion=Lookup)
    copy = types.FunctionType(method.__code__, scope, method.__name__, method.__defaults__, method.__closure__)
    sock._FyersDataSocket__symbol_conversion = types.MethodType(copy, sock)


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
        write_to_file=SDK_DAEMON_THREADS,
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
