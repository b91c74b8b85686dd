"""The broker boundary: what the trader may ask of any broker (the paper broker, FYERS)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tfl.core.orders import OrderRequest
from tfl.live.faults import CrashPoints


class BrokerError(RuntimeError):
    """The broker refused a request with a definite answer (a rejection)."""


class StopCrossedError(BrokerError):
    """The broker refused a stop (or a stop move) whose trigger the price has already crossed:
    sending it again cannot help; the position is exited at market instead."""


# The reason of a rejection an adapter recognised as a crossed stop trigger starts with this.
STOP_CROSSED = "STOP_CROSSED: "


class BrokerTimeoutError(RuntimeError):
    """No definite answer: the request may or may not have reached the broker."""


@dataclass(frozen=True)
class BrokerOrder:
    broker_id: str
    tag: str
    symbol: str
    side: int
    type: str
    qty: int
    trigger: float | None
    limit: float | None
    status: str  # PENDING, PARTIAL, FILLED, CANCELLED, EXPIRED, REJECTED
    filled: int
    avg_price: float
    reason: str = ""


@dataclass(frozen=True)
class Fill:
    fill_id: str
    broker_id: str
    tag: str
    symbol: str
    side: int
    qty: int
    price: float
    ts: int


@dataclass(frozen=True)
class OrderUpdate:
    tag: str
    broker_id: str
    status: str
    filled: int
    reason: str = ""


BrokerEvent = Fill | OrderUpdate


class Broker(Protocol):
    def place(self, req: OrderRequest, ts: int) -> BrokerOrder:
        """Place an order tagged with ``req.client_id``; raises BrokerError or BrokerTimeoutError."""
        ...

    def modify(
        self, tag: str, ts: int, *, trigger: float | None = None, limit: float | None = None, qty: int | None = None
    ) -> BrokerOrder: ...

    def cancel(self, tag: str, ts: int) -> BrokerOrder: ...

    def order_by_tag(self, tag: str) -> BrokerOrder | None: ...

    def orders(self) -> list[BrokerOrder]: ...

    def fills(self) -> list[Fill]: ...

    def positions(self) -> dict[str, int]: ...

    def poll(self) -> list[BrokerEvent]:
        """Fills and status changes since the last poll (the order socket, for FYERS)."""
        ...

    def on_token_rejected(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` whenever the broker refuses the access token (FYERS); a broker
        without tokens never calls it."""
        ...


class MarketSim(Protocol):
    """A broker that matches orders on the trader's own ticks (the paper broker)."""

    crash: CrashPoints | None  # the crash-anywhere tests' hook: after each committed fill

    def on_tick(self, symbol: str, ts: int, price: float, seq: int) -> None: ...

    def checkpoint(self, seq: int) -> None: ...

    def close_session(self, ts: int, seq: int) -> None: ...
