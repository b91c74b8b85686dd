"""The broker boundary: what the engine may ask of any broker (paper now, FYERS later)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tfl.live.orders import OrderRequest


class BrokerError(RuntimeError):
    """The broker refused a request with a definite answer (a rejection)."""


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
    status: str  # PENDING, PARTIAL, FILLED, CANCELLED, REJECTED
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

    def modify(self, tag: str, ts: int, *, trigger: float | None = None, limit: float | None = None) -> BrokerOrder: ...

    def cancel(self, tag: str, ts: int) -> BrokerOrder: ...

    def order_by_tag(self, tag: str) -> BrokerOrder | None: ...

    def orders(self) -> list[BrokerOrder]: ...

    def fills(self) -> list[Fill]: ...

    def positions(self) -> dict[str, int]: ...

    def poll(self) -> list[BrokerEvent]:
        """Fills and status changes since the last poll (the order socket, for FYERS)."""
        ...
