"""The trader's state and the one reducer that changes it.

Every world changes state only by applying events: the backtester as it decides, the
live trader as it journals, a restarted trader (or the post-market report) by replaying
the journal. Positions and cash live in the backtester's own
:class:`~tfl.strategy.book.Book`, so a day traded live is accounted to the same paisa as
the same day in a backtest.

The reducer never raises on a broker fact. A fact that does not fit (a fill after a
cancel, an over-fill, a fill for an order that is not ours) is applied as far as it is
true and recorded as an :class:`Anomaly`; the trader alerts on it and acts safely.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

from tfl.core.events import (
    AlertRaised,
    Allocated,
    CancelRequested,
    ClosedByBroker,
    Event,
    Filled,
    Halted,
    LevelsSet,
    Lifted,
    Marked,
    OrderPlaced,
    OrderReported,
    ReconcileDifference,
    ReduceOnly,
    SessionClosed,
    SessionOpened,
    SignalRejected,
    SlotClosed,
    SquareOffStarted,
    StopConfirmed,
    StopMoved,
    StrayCorrected,
    Unrecognised,
)
from tfl.core.orders import (
    TERMINAL,
    Leg,
    Oddity,
    OrderRecord,
    OrderRequest,
    OrderStatus,
    Report,
    first_attempt,
    transition,
)
from tfl.costs import CostModel
from tfl.domain import Bias, ExitReason, HaltReason, Side
from tfl.settings import Settings
from tfl.strategy.book import Book
from tfl.strategy.rules import open_position
from tfl.timeutil import BAR_SECONDS

log = logging.getLogger(__name__)


class AnomalyKind(StrEnum):
    LATE_FILL = "LATE_FILL"  # a fill after the cancel/expiry was acknowledged: booked, protected
    OVERFILL = "OVERFILL"  # more filled than ordered: the excess is stray until the broker confirms it
    ORPHAN_FILL = "ORPHAN_FILL"  # a stop/target/exit filled for a position that is not open
    UNKNOWN_ORDER = "UNKNOWN_ORDER"  # a fill for an order that is not ours
    CONTRADICTION = "CONTRADICTION"  # e.g. a rejection after a fill


# Anomalies after which the trader cannot be sure what the broker holds: no new entries.
UNSURE = frozenset(
    {AnomalyKind.OVERFILL, AnomalyKind.ORPHAN_FILL, AnomalyKind.UNKNOWN_ORDER, AnomalyKind.CONTRADICTION}
)


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    ref: str  # the fill id or order id it is about (the alert's identity)
    symbol: str
    detail: str


@dataclass
class CoreState:
    settings: Settings
    book: Book
    session: str | None = None
    session_bias: Bias = Bias.NO_TRADES
    day_start_equity: float = 0.0
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    working: dict[str, OrderRecord] = field(default_factory=dict)  # the orders that are not terminal
    allocations: dict[str, Allocated] = field(default_factory=dict)  # entry client id -> its allocation
    unreserved: dict[int, dict[str, Allocated]] = field(default_factory=dict)  # entry bar -> setups without an order
    rejections: list[SignalRejected] = field(default_factory=list)
    fills_seen: set[str] = field(default_factory=set)
    marks: dict[str, float] = field(default_factory=dict)
    last_slot: int = 0
    last_equity: float = 0.0
    halted: HaltReason | None = None  # why entries stopped for the day; None while trading
    squareoff_started: int = 0  # live: when today's square-off began ahead of its bar (0: not yet)
    reduce_only: str = ""  # why the trader takes no entries until the next session's reconciliation
    lifts: int = 0  # live: how many times the operator lifted a halt or reduce-only today
    reduce_only_by_operator: bool = False  # the reduce-only is the operator's own stop of new entries
    closed_sessions: set[str] = field(default_factory=set)
    legs: dict[str, dict[Leg, str]] = field(default_factory=dict)  # symbol -> its open position's stop/target
    exit_pending: dict[str, tuple[ExitReason, int | None]] = field(default_factory=dict)
    foreign: dict[str, int] = field(default_factory=dict)  # signed shares filled by orders that are not ours
    leveled: dict[str, int] = field(default_factory=dict)  # symbol -> the last bar its levels were set for
    anomalies: list[Anomaly] = field(default_factory=list)
    session_anomalies: int = 0  # how many anomalies came before the current session
    stray_corrections: int = 0

    @staticmethod
    def fresh(settings: Settings) -> CoreState:
        book = Book(settings.backtest.capital, CostModel(settings.costs), settings.risk.margin_multiplier)
        return CoreState(settings, book, last_equity=settings.backtest.capital)

    def equity(self) -> float:
        return self.book.equity(self.marks)


def path_side(state: CoreState, symbol: str) -> Side:
    """Which extreme of a bar the fill model takes first for ``symbol``: the side of its
    position, else of its working entry order; longs' when it has neither."""
    pos = state.book.positions.get(symbol)
    if pos is not None:
        return pos.side
    for rec in state.working.values():
        if rec.leg is Leg.ENTRY and rec.request.symbol == symbol:
            return Side.LONG if rec.request.side > 0 else Side.SHORT
    return Side.LONG


def apply(state: CoreState, ev: Event) -> None:
    """Apply one event. The only code that changes a :class:`CoreState`."""
    match ev:
        case LevelsSet():
            pos = state.book.positions.get(ev.symbol)
            if pos is not None:
                pos.stop = ev.stop
                pos.best = ev.best
            state.marks[ev.symbol] = ev.mark
            state.leveled[ev.symbol] = ev.bar
        case Allocated():
            state.allocations[ev.cid] = ev
            if ev.reject is not None:
                state.unreserved.setdefault(ev.entry_ts, {})[ev.symbol] = ev
        case OrderPlaced():
            _place(state, ev)
        case SlotClosed():
            state.last_slot = ev.slot
            state.last_equity = ev.equity
            for bar in [b for b in state.unreserved if b < ev.slot - BAR_SECONDS]:
                del state.unreserved[bar]
        case CancelRequested():
            rec = _order(state, ev.cid)
            if rec is not None:
                rec.cancel_requests = max(rec.cancel_requests, ev.n)
                _report(state, rec, Report.CANCEL_REQUESTED, ev.cid)
        case OrderReported():
            rec = _order(state, ev.cid)
            if rec is None:
                return
            rec.reports += 1
            if ev.broker_id:
                rec.broker_id = ev.broker_id
            if ev.report in (Report.PARTIAL_FILL, Report.FULL_FILL):
                return  # a status saying "filled" carries no quantity: the fills say how much
            _report(state, rec, ev.report, f"{ev.cid}:{ev.report.value}")
        case Filled():
            _fill(state, ev)
        case StopMoved():
            rec = _order(state, ev.cid)
            if rec is not None:
                r = rec.request
                qty = r.qty if ev.qty is None else ev.qty
                rec.request = OrderRequest(r.client_id, r.symbol, r.side, r.type, qty, ev.trigger, r.limit, r.oco)
                rec.modifications = max(rec.modifications, ev.n)
        case StopConfirmed():
            rec = _order(state, ev.cid)
            if rec is not None:
                rec.confirmed = max(rec.confirmed, ev.n)
        case SignalRejected():
            state.rejections.append(ev)
        case Marked():
            state.marks.update(ev.marks)
        case SessionOpened():
            state.session = ev.session
            state.session_bias = ev.bias
            state.marks.update(ev.marks)
            state.day_start_equity = state.equity()
            state.last_equity = state.day_start_equity
            state.halted = None
            state.squareoff_started = 0
            state.reduce_only = ""  # a new day starts with a reconciliation, which sets it again if needed
            state.lifts = 0
            state.session_anomalies = len(state.anomalies)
            state.last_slot = 0
        case Halted():
            state.halted = ev.reason
        case ReduceOnly():
            state.reduce_only = ev.reason
            state.reduce_only_by_operator = ev.operator
        case Lifted():
            state.halted = None
            state.reduce_only = ""
            state.reduce_only_by_operator = False
            state.lifts = max(state.lifts, ev.n)
        case SessionClosed():
            state.closed_sessions.add(ev.session)
        case StrayCorrected():
            state.book.correct_stray(ev.symbol, ev.qty)
            state.stray_corrections += 1
        case ClosedByBroker():
            _closed_by_broker(state, ev)
        case SquareOffStarted():
            state.squareoff_started = state.squareoff_started or ev.at
        case ReconcileDifference() | AlertRaised() | Unrecognised():
            pass  # information only


def _order(state: CoreState, cid: str) -> OrderRecord | None:
    rec = state.orders.get(cid)
    if rec is None:
        log.error("journal: an event for an unknown order", extra={"fields": {"cid": cid}})
    return rec


def _place(state: CoreState, ev: OrderPlaced) -> None:
    if ev.cid not in state.orders:
        req = OrderRequest(ev.cid, ev.symbol, ev.side, ev.type, ev.qty, ev.trigger, ev.limit, ev.oco)
        rec = state.orders[ev.cid] = OrderRecord(req, ev.leg, ev.setup_ts)
        state.working[ev.cid] = rec
    if ev.leg is Leg.STOP or ev.leg is Leg.TARGET:
        state.legs.setdefault(ev.symbol, {})[ev.leg] = ev.cid
    elif ev.leg is Leg.EXIT:
        state.exit_pending[ev.symbol] = (ev.reason or ExitReason.MANUAL, ev.exit_ts)


def _report(state: CoreState, rec: OrderRecord, fact: Report, ref: str) -> None:
    new, odd = transition(rec.status, fact)
    if odd is Oddity.CONTRADICTION:
        _anomaly(
            state,
            AnomalyKind.CONTRADICTION,
            ref,
            rec.request.symbol,
            f"{fact.value} for an order that is {rec.status.value}",
        )
    _set_status(state, rec, new)


def _set_status(state: CoreState, rec: OrderRecord, new: OrderStatus) -> None:
    rec.status = new
    if new in TERMINAL:
        state.working.pop(rec.request.client_id, None)
        if rec.leg is Leg.EXIT:
            # An exit that ended (unfilled, or filled while the position had grown): if nothing
            # else is exiting it, the position is not being exited any more, so the next
            # decision (a square-off, a flatten, a protective stop) sees it again.
            sym = rec.request.symbol
            pos = state.book.positions.get(sym)
            others = any(
                r.leg is Leg.EXIT and r.request.symbol == sym and r.setup_ts == rec.setup_ts
                for r in state.working.values()
            )
            if pos is not None and pos.setup_ts == rec.setup_ts and not others:
                state.exit_pending.pop(sym, None)
    else:
        state.working[rec.request.client_id] = rec


def _anomaly(state: CoreState, kind: AnomalyKind, ref: str, symbol: str, detail: str) -> None:
    state.anomalies.append(Anomaly(kind, ref, symbol, detail))
    log.error(
        "broker fact did not fit",
        extra={"fields": {"kind": kind.value, "ref": ref, "symbol": symbol, "detail": detail}},
    )


def fill_known(state: CoreState, fill_id: str, cid: str) -> bool:
    """Whether this fill is booked already. A journal written before fill ids named their order
    holds bare trade numbers: a fill is known under that id on its own order (another order's
    fill with the same trade number is a different fill, which older code lost), and
    never for an order that is not ours (bare trade numbers repeat across days and symbols:
    such a fill is reported, never dropped as a repeat)."""
    if fill_id in state.fills_seen:
        return True
    rec = state.orders.get(cid)
    return rec is not None and rec.has_fill(fill_id)


def _fill(state: CoreState, ev: Filled) -> None:
    if fill_known(state, ev.fill_id, ev.cid):
        return
    state.fills_seen.add(ev.fill_id)
    rec = state.orders.get(ev.cid)
    if rec is None:
        if ev.symbol:
            state.foreign[ev.symbol] = state.foreign.get(ev.symbol, 0) + ev.side * ev.qty
        _anomaly(state, AnomalyKind.UNKNOWN_ORDER, ev.fill_id, ev.symbol, f"{ev.qty} filled for order {ev.cid or '?'}")
        return
    rec.fill_ids.add(ev.fill_id)
    booked = min(ev.qty, rec.remaining)
    excess = ev.qty - booked
    if booked:
        rec.filled += booked
        new, odd = transition(rec.status, Report.FULL_FILL if rec.filled >= rec.request.qty else Report.PARTIAL_FILL)
        if odd is Oddity.LATE_FILL:
            _anomaly(
                state,
                AnomalyKind.LATE_FILL,
                ev.fill_id,
                rec.request.symbol,
                f"{booked} filled after the order was {rec.status.value}",
            )
        elif odd is Oddity.CONTRADICTION:
            _anomaly(
                state,
                AnomalyKind.CONTRADICTION,
                ev.fill_id,
                rec.request.symbol,
                f"a fill for an order that is {rec.status.value}",
            )
    sym = rec.request.symbol
    if rec.leg is Leg.ENTRY and booked:
        _book_entry(state, rec, booked, ev.price, ev.fill_id)
    elif rec.leg is Leg.FLATTEN:
        state.book.stray_fill(sym, rec.request.side * booked, ev.price)
    elif booked:
        excess += _book_exit(state, rec, booked, ev)
    if booked:  # after booking: an exit that ends now sees what is left of its position
        _set_status(state, rec, new)
    if excess:
        _anomaly(
            state,
            AnomalyKind.OVERFILL,
            ev.fill_id,
            sym,
            f"{ev.qty} filled, {excess} more than order {rec.request.client_id} still had",
        )
        state.book.stray_fill(sym, rec.request.side * excess, ev.price)
    state.marks.setdefault(sym, ev.price)


def _book_entry(state: CoreState, rec: OrderRecord, qty: int, price: float, fill_id: str) -> None:
    sym = rec.request.symbol
    a = allocation_of(state, rec.request.client_id)
    book = state.book
    pos = book.positions.get(sym)
    if a is None or (pos is not None and pos.setup_ts != a.setup_ts):
        # An entry fill that matches no allocation, or another position's symbol: the shares are
        # real, but no strategy position owns them.
        _anomaly(
            state,
            AnomalyKind.ORPHAN_FILL,
            fill_id,
            sym,
            f"entry {rec.request.client_id} filled {qty} with no position to book it to",
        )
        book.stray_fill(sym, rec.request.side * qty, price)
        return
    share = a.planned_risk * qty / a.qty if a.qty else 0.0
    if pos is None:
        p = state.settings.strategy
        book.open(open_position(sym, a.side, a.setup_ts, a.entry_ts, a.stop, a.rsi, qty, price, share, p))
    else:
        book.add(sym, qty, price, share)


def _book_exit(state: CoreState, rec: OrderRecord, qty: int, ev: Filled) -> int:
    """Book an exit fill; returns the quantity that no open position could absorb."""
    sym = rec.request.symbol
    pos = state.book.positions.get(sym)
    if pos is None or pos.setup_ts != rec.setup_ts or rec.request.side == int(pos.side):
        _anomaly(
            state,
            AnomalyKind.ORPHAN_FILL,
            ev.fill_id,
            sym,
            f"{rec.leg.name} {rec.request.client_id} filled {qty} for a position that is not open",
        )
        state.book.stray_fill(sym, rec.request.side * qty, ev.price)
        return 0
    take = min(qty, pos.qty)
    exit_ts = ev.slot
    if rec.leg is Leg.TARGET:
        reason = ExitReason.TARGET
    elif rec.leg is Leg.STOP:
        reason = pos.stop_reason
    else:
        why, booked_at = state.exit_pending.get(sym, (ExitReason.MANUAL, None))
        reason = why
        if booked_at is not None:
            exit_ts = min(exit_ts, booked_at)
    trade = state.book.reduce(sym, take, ev.price, exit_ts, reason)
    if trade is not None:
        state.legs.pop(sym, None)
        state.exit_pending.pop(sym, None)
    return qty - take


def _closed_by_broker(state: CoreState, ev: ClosedByBroker) -> None:
    """Book shares the broker closed itself as an exit of the position (never twice)."""
    if ev.ref in state.fills_seen:
        return
    state.fills_seen.add(ev.ref)
    pos = state.book.positions.get(ev.symbol)
    if pos is None or pos.setup_ts != ev.setup_ts or ev.qty <= 0:
        log.error("journal: the broker closed a position that is not open", extra={"fields": {"ref": ev.ref}})
        return
    trade = state.book.reduce(ev.symbol, min(ev.qty, pos.qty), ev.price, ev.slot, ev.reason)
    state.marks[ev.symbol] = ev.price
    if trade is not None:
        state.legs.pop(ev.symbol, None)
        state.exit_pending.pop(ev.symbol, None)


def allocation_of(state: CoreState, cid: str) -> Allocated | None:
    """The allocation an entry order carries out: its own, or its first attempt's (an entry
    sent again at market after the broker refused its stop)."""
    return state.allocations.get(cid) or state.allocations.get(first_attempt(cid))


def order_status(state: CoreState, cid: str) -> OrderStatus | None:
    rec = state.orders.get(cid)
    return rec.status if rec is not None else None
