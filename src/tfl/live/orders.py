"""Orders: deterministic client ids and an explicit state machine.

A client id is derived from (session, symbol, setup bar, leg, attempt) and fits a broker
order tag (alphanumeric, at most 30 characters), so a restarted process finds its own
orders at the broker instead of sending them twice. An order whose outcome is UNKNOWN
(a timeout, an ambiguous answer) is never re-sent blind: it is looked up by its tag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum

MAX_TAG = 30


class OrderState(StrEnum):
    INTENT = "INTENT"  # journalled, not yet sent
    SUBMITTED = "SUBMITTED"  # sent, no answer yet
    ACCEPTED = "ACCEPTED"  # resting at the broker
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"  # sent, outcome not known: resolve by tag, never re-send blind


TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED})
_ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    OrderState.INTENT: frozenset(
        {
            OrderState.SUBMITTED,
            OrderState.ACCEPTED,
            OrderState.REJECTED,
            OrderState.UNKNOWN,
            OrderState.CANCELLED,
            OrderState.FILLED,
            OrderState.PARTIALLY_FILLED,
        }
    ),
    OrderState.SUBMITTED: frozenset(
        {
            OrderState.ACCEPTED,
            OrderState.REJECTED,
            OrderState.UNKNOWN,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELLED,
        }
    ),
    OrderState.UNKNOWN: frozenset(
        {OrderState.ACCEPTED, OrderState.REJECTED, OrderState.PARTIALLY_FILLED, OrderState.FILLED, OrderState.CANCELLED}
    ),
    OrderState.ACCEPTED: frozenset(
        {OrderState.PARTIALLY_FILLED, OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED}
    ),
    OrderState.PARTIALLY_FILLED: frozenset({OrderState.PARTIALLY_FILLED, OrderState.FILLED, OrderState.CANCELLED}),
}


class OrderTransitionError(ValueError):
    pass


def check_transition(old: OrderState, new: OrderState) -> None:
    if old == new and old is not OrderState.PARTIALLY_FILLED:
        return
    if new not in _ALLOWED.get(old, frozenset()):
        raise OrderTransitionError(f"order cannot go from {old} to {new}")


class Leg(StrEnum):
    ENTRY = "E"
    STOP = "S"
    TARGET = "T"
    EXIT = "X"  # square-off, kill switch, manual flatten


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"  # stop-market (SL-M)


_ALNUM = re.compile(r"[^A-Z0-9]")
_ATTEMPTS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def client_id(session: dt.date, symbol: str, setup_ts: int, leg: Leg, attempt: int = 0) -> str:
    """e.g. ``2403061000ERELIANCE3F2A0``: date, setup bar HHMM (IST), leg, symbol, hash, attempt.

    The 4-hex hash of the full symbol keeps ids unique when the alphanumeric part is
    shortened or collides (``M&M`` vs ``MM``).
    """
    ist = dt.datetime.fromtimestamp(setup_ts, dt.timezone(dt.timedelta(hours=5, minutes=30)))
    sym = _ALNUM.sub("", symbol.upper())[:12]
    h = hashlib.sha1(symbol.encode()).hexdigest()[:4].upper()
    if not 0 <= attempt < len(_ATTEMPTS):
        raise ValueError(f"attempt {attempt} out of range")
    cid = f"{session:%y%m%d}{ist:%H%M}{leg.value}{sym}{h}{_ATTEMPTS[attempt]}"
    assert len(cid) <= MAX_TAG and cid.isalnum()
    return cid


@dataclass(frozen=True)
class OrderRequest:
    client_id: str
    symbol: str
    side: int  # +1 buy, -1 sell
    type: OrderType
    qty: int
    trigger: float | None = None  # stop orders
    limit: float | None = None  # limit orders
    oco: str | None = None  # one-cancels-other group (stop + target of one position)


@dataclass
class OrderRecord:
    """The trader's view of one order, rebuilt from the journal."""

    request: OrderRequest
    leg: Leg
    state: OrderState = OrderState.INTENT
    broker_id: str | None = None
    filled: int = 0
    fill_ids: set[str] = field(default_factory=set)
    modifications: int = 0

    @property
    def open(self) -> bool:
        return self.state not in TERMINAL
