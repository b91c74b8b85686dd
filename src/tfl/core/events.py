"""The journal's events, one frozen dataclass per kind.

Every change to a trader's state is one of these, applied by the reducer
(:func:`tfl.core.state.apply`). Decisions (an allocation, an order, a new stop) and facts
(a fill, a broker's answer) are both events: a decision is journalled before its outside
effect, a fact as soon as it is known. Each event names its journal key, which makes an
append idempotent: re-deriving the same decision after a restart writes nothing new.
The codec (:mod:`tfl.core.codec`) turns them into journal records and back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from tfl.core.orders import Leg, OrderType, Report
from tfl.domain import Bias, ExitReason, HaltReason, RejectReason, Side
from tfl.settings import Settings


@dataclass(frozen=True, slots=True)
class SessionOpened:
    KIND: ClassVar[str] = "SESSION_OPEN"
    session: str
    bias: Bias
    bias_reason: str
    capital: float
    marks: tuple[tuple[str, float], ...]
    settings: Settings | None
    cash: Decimal | None = None  # the opening cash when the book is flat (one session suffices to report it)

    def key(self) -> str:
        return "open"


@dataclass(frozen=True, slots=True)
class Allocated:
    """A setup sized at the close before its entry bar: a reservation, or the reason it got none."""

    KIND: ClassVar[str] = "ALLOC"
    cid: str
    symbol: str
    side: Side
    trigger: float
    stop: float
    qty: int
    planned: float
    planned_risk: float
    rsi: float
    setup_ts: int
    entry_ts: int
    reject: RejectReason | None

    def key(self) -> str:
        return f"alloc:{self.cid}"


@dataclass(frozen=True, slots=True)
class SignalRejected:
    """A setup that triggered without a reservation (or after the trader stopped entries)."""

    KIND: ClassVar[str] = "REJECT"
    ts: int
    symbol: str
    side: Side
    reason: RejectReason
    rsi: float
    cid: str = ""

    def key(self) -> str:
        return f"reject:{self.cid}"


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """An order the trader decided to send (journalled before the broker hears of it)."""

    KIND: ClassVar[str] = "INTENT"
    cid: str
    leg: Leg
    symbol: str
    side: int  # +1 buy, -1 sell
    type: OrderType
    qty: int
    trigger: float | None
    limit: float | None
    oco: str | None
    setup_ts: int
    reason: ExitReason | None = None  # exits: why
    exit_ts: int | None = None  # exits: the bar the trade is booked to

    def key(self) -> str:
        return f"intent:{self.cid}"


@dataclass(frozen=True, slots=True)
class CancelRequested:
    KIND: ClassVar[str] = "CANCEL"
    cid: str
    n: int  # the how-many-th request for this order
    reason: str

    def key(self) -> str:
        return f"cancel:{self.cid}:{self.n}"


@dataclass(frozen=True, slots=True)
class StopMoved:
    """A resting stop's new trigger (the ratchet), or its new quantity (a position that grew
    or shrank by a partial fill)."""

    KIND: ClassVar[str] = "MODIFY"
    cid: str
    n: int
    trigger: float
    qty: int | None = None

    def key(self) -> str:
        return f"modify:{self.cid}:{self.n}"


@dataclass(frozen=True, slots=True)
class StopConfirmed:
    """The broker confirmed a stop modification: the stop rests at the n-th moved level."""

    KIND: ClassVar[str] = "MODIFIED"
    cid: str
    n: int

    def key(self) -> str:
        return f"modified:{self.cid}:{self.n}"


@dataclass(frozen=True, slots=True)
class OrderReported:
    """A fact about an order's status (fills are :class:`Filled`)."""

    KIND: ClassVar[str] = "ORDER"
    cid: str
    report: Report
    broker_id: str = ""
    reason: str = ""
    n: int = 0  # the how-many-th report about this order (the trader numbers them as it journals)

    def key(self) -> str:
        return f"order:{self.cid}:{self.report.value}" + (f":{self.n}" if self.n else "")


@dataclass(frozen=True, slots=True)
class Filled:
    """A fill reported by the broker. ``symbol`` and ``side`` matter only when ``cid`` is
    not one of our orders (an external or unknown order)."""

    KIND: ClassVar[str] = "FILL"
    fill_id: str
    cid: str
    qty: int
    price: float
    ts: int
    slot: int  # the 15-minute slot the fill happened in
    symbol: str = ""
    side: int = 0

    def key(self) -> str:
        return f"fill:{self.fill_id}"


@dataclass(frozen=True, slots=True)
class LevelsSet:
    """A position's stop and best price after its bar closed, and its mark."""

    KIND: ClassVar[str] = "LEVELS"
    symbol: str
    stop: float
    best: float
    mark: float
    bar: int = 0

    def key(self) -> str:
        return f"levels:{self.symbol}:{self.bar}"


@dataclass(frozen=True, slots=True)
class Marked:
    """A mark to market without a stop change (a position that is being exited)."""

    KIND: ClassVar[str] = "MARKS"
    marks: tuple[tuple[str, float], ...]
    bar: int = 0

    def key(self) -> str:
        return f"mark:{','.join(s for s, _ in self.marks)}:{self.bar}"


@dataclass(frozen=True, slots=True)
class SlotClosed:
    KIND: ClassVar[str] = "SLOT"
    slot: int
    equity: float

    def key(self) -> str:
        return f"slot:{self.slot}"


@dataclass(frozen=True, slots=True)
class Halted:
    KIND: ClassVar[str] = "HALT"
    reason: HaltReason
    n: int = 0  # how many lifts came before it today (a day can be halted again after a lift)

    def key(self) -> str:
        return f"halt:{self.reason.value}" + (f":{self.n}" if self.n else "")


@dataclass(frozen=True, slots=True)
class ReduceOnly:
    KIND: ClassVar[str] = "REDUCE_ONLY"
    reason: str
    n: int = 0  # how many lifts came before it today
    operator: bool = False  # set by the operator (stop new entries), who may lift it; TFL's own may not be

    def key(self) -> str:
        return f"reduce_only:{self.reason}" + (f":{self.n}" if self.n else "")


@dataclass(frozen=True, slots=True)
class Lifted:
    """Live: the operator lifted today's kill-switch halt or their own stop of new entries
    (never the daily loss limit's halt, nor a reduce-only TFL set itself): entries are
    allowed again; nothing is re-entered."""

    KIND: ClassVar[str] = "LIFT"
    reason: str
    n: int  # the how-many-th lift today

    def key(self) -> str:
        return f"lift:{self.n}"


@dataclass(frozen=True, slots=True)
class SessionClosed:
    KIND: ClassVar[str] = "SESSION_CLOSE"
    session: str
    flat: bool
    equity: float
    trades: int

    def key(self) -> str:
        return "close"


@dataclass(frozen=True, slots=True)
class ReconcileDifference:
    KIND: ClassVar[str] = "RECONCILE"
    difference: str
    at: int = 0

    def key(self) -> str:
        digest = hashlib.sha1(self.difference.encode()).hexdigest()[:12]
        return f"reconcile:{self.at}:{digest}"


@dataclass(frozen=True, slots=True)
class StrayCorrected:
    """The broker does not hold stray shares the journal believed in (a phantom over-fill, a
    report counted twice): the journal is brought to the broker's quantity at the stray's
    own average price, so no P&L is invented."""

    KIND: ClassVar[str] = "CORRECT"
    symbol: str
    qty: int  # the broker's stray quantity (signed) after the correction
    reason: str
    n: int = 0  # the how-many-th correction in this journal

    def key(self) -> str:
        return f"correct:{self.symbol}:{self.n}"


@dataclass(frozen=True, slots=True)
class ClosedByBroker:
    """Shares of one of our positions that the broker closed itself: its own intraday
    square-off (risk system) filled them today, or the position is from an earlier session
    that the broker squared off while TFL was away. Booked as an exit; nothing is sent. An
    ``estimated`` price is the last price TFL knew (the contract note has the real one)."""

    KIND: ClassVar[str] = "BROKER_CLOSE"
    symbol: str
    setup_ts: int
    qty: int
    price: float
    slot: int  # the bar the exit is booked at
    ref: str  # the broker's fill id, or ``carried:<session>:<symbol>`` for an estimate
    reason: ExitReason
    estimated: bool = False

    def key(self) -> str:
        return f"broker_close:{self.ref}"


@dataclass(frozen=True, slots=True)
class SquareOffStarted:
    """The live square-off began before the square-off bar (so that every exit is filled
    before the broker's own square-off): no entries from here, positions close at market."""

    KIND: ClassVar[str] = "SQUARE_OFF"
    at: int

    def key(self) -> str:
        return "square_off"


@dataclass(frozen=True, slots=True)
class AlertRaised:
    """An alert the trader sent (journalled first, so a restart never sends it twice)."""

    KIND: ClassVar[str] = "ALERT"
    level: str  # WARNING, ERROR, CRITICAL
    cause: str
    message: str
    ref: str = ""  # what it is about (an order, a fill, a symbol)

    def key(self) -> str:
        return f"alert:{self.cause}:{self.ref}"


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """A record of a kind this code does not know (a newer writer): kept, never applied."""

    KIND: ClassVar[str] = "NOTE"
    kind: str
    text: str

    def key(self) -> str:
        return f"note:{self.kind}"


Event = (
    SessionOpened
    | Allocated
    | SignalRejected
    | OrderPlaced
    | CancelRequested
    | StopMoved
    | StopConfirmed
    | OrderReported
    | Filled
    | LevelsSet
    | Marked
    | SlotClosed
    | Halted
    | ReduceOnly
    | Lifted
    | SessionClosed
    | ReconcileDifference
    | StrayCorrected
    | ClosedByBroker
    | SquareOffStarted
    | AlertRaised
    | Unrecognised
)
