"""The live world's trader: the core's decisions, journalled, then carried out at a broker.

Every step follows one pattern. The core decides from the state (:mod:`tfl.core.decide`);
each decision is appended to the journal and applied with the reducer (only if the
journal did not have it already: a step re-run after a restart writes nothing twice);
the journal is flushed; then execution (:mod:`tfl.live.execution`) carries the decisions
out, and every answer from the broker is journalled and applied the same way, as a fact.
A fill calls for the core again (a protective stop, a cancelled leg). A fact that does not
fit what was expected (a fill after a cancel, an over-fill, a fill of an order that is not
ours) is never an exception: the reducer records it, and the trader alerts once, goes
reduce-only when it cannot tell what is true, and makes sure the position is protected or
flattened.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from tfl.core.decide import ClosedBar, Core, SessionPlan, covered
from tfl.core.events import (
    AlertRaised,
    CancelRequested,
    ClosedByBroker,
    Event,
    Filled,
    Halted,
    OrderPlaced,
    OrderReported,
    ReduceOnly,
    SessionClosed,
    SessionOpened,
    SlotClosed,
    StopConfirmed,
    StopMoved,
    StrayCorrected,
)
from tfl.core.orders import Leg, Oddity, OrderRecord, OrderStatus, Report, attempt_of, transition
from tfl.core.risk import Gate
from tfl.core.state import UNSURE, AnomalyKind, CoreState, apply, fill_known
from tfl.domain import Bias, ExitReason, HaltReason
from tfl.live.alerts import LOSS_LEVELS_PCT, AlertThrottle, Cause, subject_of, throttled_ref, with_action
from tfl.live.broker import STOP_CROSSED, BrokerError, BrokerTimeoutError
from tfl.live.execution import Execution, Modified
from tfl.live.faults import CrashPoints
from tfl.live.journal import Journal, JournalConflictError, read_events, to_record
from tfl.settings import EXIT_RESEND_RETRIES, Settings, parse_hhmm
from tfl.strategy.rules import Setup
from tfl.timeutil import epoch_of_ist, iso_ist, ist_date, slot_of

log = logging.getLogger("tfl.trader")

Alert = Callable[[str, str], None]


# An order whose placement got no answer and that the broker's order book does not list is
# written off (and replaced) only after this long: a book may lag a placement by seconds.
UNLISTED_GRACE_SECONDS = 60
# A square-off or halt exit that the broker refused is tried again after 10 s, 20 s, 40 s ...
# (``live.retry_seconds`` doubled at each attempt), never more than this apart.
FLATTEN_BACKOFF_MAX_SECONDS = 300  # (also an exit sent because no stop attempt is left)
# An exit left standing by the broker's price protection is sent again at most this many
# times; then it stays working (its place in the queue) and the alert is CRITICAL.
EXIT_RESENDS = 3


def _no_alert(level: str, message: str) -> None:
    return None


class Trader:
    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        execution: Execution,
        plan: SessionPlan,
        *,
        alert: Alert = _no_alert,
        crash: CrashPoints | None = None,
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.execution = execution
        self.plan = plan
        self.core = Core(settings, plan)
        self.state = CoreState.fresh(settings)
        self.gate = Gate(reconciled=False, feed_fresh=False)
        self.sid = plan.date.isoformat()
        self.alert = alert
        self.crash = crash
        self.recovered = False
        self.loaded: set[str] = set()  # orders known from the journal at start: look them up before sending
        self._seen_anomalies = 0
        self.reconcile_failed = False
        self._reacting = False  # protecting: an order that ends meanwhile waits for the next step
        self._cancel_asked: dict[str, int] = {}  # when each cancel was last sent (one ask per step)
        self._placed_at: dict[str, int] = {}  # when each order was decided (market time)
        self._sent_at: dict[str, int] = {}  # when this process sent it to the broker (market time)
        self._crossed_at: dict[str, int] = {}  # symbol -> the step its stop was last refused as crossed
        self._flatten_due: dict[str, int] = {}  # when a refused square-off exit may be tried again
        self._applied = 0  # events applied by this process: what ``retry`` found settled is keyed on it
        self._settled = (-1, -1)  # (events applied, slot) when all was last found settled
        # From this time a fill by an order that is not ours closing one of our positions is the
        # broker's own square-off (reason EOD); before it, someone else closed it (MANUAL).
        # A real broker (FYERS), not a simulated market: a market exit can stand unfilled (its
        # price protection, a circuit limit) and is sent again; and from its own square-off
        # time on it closes intraday positions itself and would take any new order as a
        # delivery trade, so none is sent. A simulated market fills at the symbol's next tick.
        self.real_broker = False
        self.last_tick: Callable[[str], int | None] = lambda symbol: None  # exchange time of its last trade
        self.broker_squareoff_ts = epoch_of_ist(plan.date, parse_hhmm(settings.live.broker_squareoff_time))
        # One alert per cause and subject per interval of market time (seeded from the journal at load).
        self.throttle = AlertThrottle(settings.alerts.repeat_minutes * 60.0)
        self._loss_alerted = 0  # the highest loss level (% of the daily limit) alerted this session

    # ------------------------------------------------------------------ the journal

    def load(self) -> None:
        """Rebuild the state from every event in the journal (all sessions: cash carries over)."""
        n = 0
        for rec, ev in read_events(self.journal):
            apply(self.state, ev)
            if isinstance(ev, OrderPlaced):
                self._placed_at.setdefault(ev.cid, rec.ts)
            elif isinstance(ev, AlertRaised) and rec.session == self.sid:
                self._alert_sent(ev, rec.ts)
            n += 1
        self.recovered = n > 0
        self.loaded = set(self.state.orders)
        # Today's anomalies are handled again after the reconciliation (an alert journalled
        # before a crash is not sent twice); earlier days' are history.
        today = self.state.session == self.sid
        self._seen_anomalies = self.state.session_anomalies if today else len(self.state.anomalies)
        log.info(
            "journal loaded",
            extra={
                "fields": {
                    "events": n,
                    "cash": str(self.state.book.cash),
                    "positions": sorted(self.state.book.positions),
                }
            },
        )

    def record(self, ev: Event, ts: int) -> bool:
        """Journal one event and apply it; False (and nothing applied) if it was already there."""
        new = self.journal.append(to_record(self.sid, ts, ev))
        if self.crash is not None:
            self.crash.hit(f"journal:{ev.KIND}")
        if new:
            apply(self.state, ev)
            self._applied += 1
            if isinstance(ev, OrderPlaced):
                self._placed_at.setdefault(ev.cid, ts)
        return new

    def unlisted_long_enough(self, cid: str, ts: int) -> bool:
        """Whether an order the broker does not list was decided long enough ago to be written
        off as never placed: an order book may lag a placement by seconds."""
        return ts - self._placed_at.get(cid, ts - UNLISTED_GRACE_SECONDS) >= UNLISTED_GRACE_SECONDS

    def look_up(self, rec: OrderRecord, ts: int) -> list[Event] | None:
        """Ask the broker about an order by its tag and adopt its word. An order of unknown
        fate that it does not list is written off once it has been unlisted long enough.
        Returns the lookup's answer: facts, [] if the broker could not be asked, None if it
        does not list the order."""
        found = self.execution.lookup(rec)
        cid = rec.request.client_id
        if found:
            self.facts(found, ts)
        elif found is None and rec.status is OrderStatus.UNKNOWN and self.unlisted_long_enough(cid, ts):
            self.facts([OrderReported(cid, Report.CANCELLED, reason="never reached the broker")], ts)
        elif found is None and rec.broker_id and rec.leg is Leg.STOP and rec.working:
            self._stop_not_listed(rec, ts)
        return found

    def _stop_not_listed(self, rec: OrderRecord, ts: int) -> None:
        """The broker took a stop (it has its id) but its order book does not list it: the
        journal counts the shares as protected and may be wrong. Alerted, not acted on (a
        second stop beside one the broker still has would sell the shares twice)."""
        sym = rec.request.symbol
        pos = self.state.book.positions.get(sym)
        if pos is None or pos.setup_ts != rec.setup_ts:
            return
        self.raise_alert(
            "CRITICAL",
            Cause.STOP_NOT_AT_BROKER,
            f"TFL: the protective stop for {pos.qty} {sym} (order {rec.broker_id}, trigger {rec.request.trigger}) "
            "is not in the broker's order book, although the broker accepted it",
            "",
            ts,
            subject=sym,
        )

    def decide(self, events: Sequence[Event], ts: int) -> None:
        """Journal a batch of decisions, make it durable, then carry each out."""
        fresh = [self.record(ev, ts) for ev in events]
        self.journal.flush()  # write-ahead: decisions are durable before the broker hears of them
        for ev, new in zip(events, fresh, strict=True):
            self._carry_out(ev, new, ts)
        self._after_facts(ts)

    def _carry_out(self, ev: Event, new: bool, ts: int) -> None:
        match ev:
            case OrderPlaced():
                self.submit(ev.cid, ts)
            case CancelRequested():
                self._cancel(ev.cid, ts)
            case StopMoved():
                self.move_stop(ev.cid, ts)
            case Halted() if new:
                log.critical(
                    "trading halted: flattening, no new entries today", extra={"fields": {"reason": ev.reason.value}}
                )
                self.alert("CRITICAL", f"TFL halted ({ev.reason.value}): positions are being flattened")

    def facts(self, events: Iterable[Event], ts: int) -> None:
        """Journal and apply what the broker says, then react to the fills among it.

        The reactions come after the whole batch is applied: forty partial fills of one
        entry, reported together, resize its stop once rather than forty times."""
        fills: list[Filled] = []
        lost_exits: list[str] = []
        crossed: list[str] = []
        gapped: list[str] = []  # entries refused because the price was already beyond their trigger
        stop_gone = False
        for fact in self._broker_closes(events):
            if isinstance(fact, ClosedByBroker):
                if self.record(fact, ts):
                    self._alert_broker_close(fact, ts)
                    stop_gone = True  # its stop and target must go (the retired legs are cancelled)
                continue
            ev = self._numbered(fact)
            if ev is None:
                continue
            rec = self.state.orders.get(ev.cid) if isinstance(ev, OrderReported) else None
            was = rec.status if rec is not None else None
            if not self.record(ev, ts):
                continue
            if isinstance(ev, Filled):
                self._log_fill(ev)
                fills.append(ev)
            elif isinstance(ev, OrderReported) and rec is not None and was is not None and rec.status is not was:
                lost = self._order_ended(rec, was, ev, ts)
                if lost is Leg.EXIT:
                    lost_exits.append(rec.request.symbol)
                stop_gone |= lost is Leg.STOP
                if self._crossed(rec, ev):
                    crossed.append(rec.request.symbol)
                elif rec.leg is Leg.ENTRY and rec.status is OrderStatus.REJECTED and ev.reason.startswith(STOP_CROSSED):
                    gapped.append(rec.request.client_id)
        self.journal.flush()
        now = slot_of(ts, self.plan.open_ts)
        for f in fills:
            # A fill reported late is handled as of now: one that traded at 15:14 and is heard
            # of after the square-off is exited, not given a stop.
            self.decide(self.core.on_fill(self.state, f, max(now, slot_of(f.ts, self.plan.open_ts))), ts)
        for sym in lost_exits:
            # The shares are not being exited after all: they get a stop back now (never
            # another exit in the same step, which the broker would refuse again); the next
            # retry exits them again once trading has stopped, the next boundary otherwise.
            # Not when the price crossed their stop in this step: that stop would be refused
            # too; the next retry tries again (once a step, never a burst).
            if self._crossed_at.get(sym) != ts:
                self.decide(self.core.protect(self.state, sym), ts)
        for cid in gapped:
            self.decide(self.core.enter_crossed(self.state, cid, slot_of(ts, self.plan.open_ts)), ts)
        for sym in crossed:
            # Sending the stop again cannot help: the position is closed at market now, as the
            # backtest closes it on the bar where the price crossed its stop. Once a step.
            if self._crossed_at.get(sym) == ts:
                continue
            self._crossed_at[sym] = ts
            self.decide(self.core.exit_crossed(self.state, sym), ts)
        if stop_gone and not self._reacting:
            # One reaction per step: a replacement the broker also ends waits for the next
            # retry (never a burst of orders it would refuse again), and the gap is alerted.
            self.protect(ts)
        self._after_facts(ts)

    def _crossed(self, rec: OrderRecord, ev: OrderReported) -> bool:
        """Whether the broker refused the current stop of an open position because the price
        had already crossed its trigger."""
        sym = rec.request.symbol
        pos = self.state.book.positions.get(sym)
        return (
            rec.leg is Leg.STOP
            and rec.status is OrderStatus.REJECTED
            and ev.reason.startswith(STOP_CROSSED)
            and pos is not None
            and pos.setup_ts == rec.setup_ts
            and self.state.legs.get(sym, {}).get(Leg.STOP) == rec.request.client_id
        )

    def _broker_closes(self, events: Iterable[Event]) -> Iterator[Event]:
        """The facts, with fills by orders that are not ours that close one of our positions
        turned into :class:`ClosedByBroker` (the broker's own square-off, or a hand-placed
        order): the position is really smaller, and must never be exited again."""
        for ev in events:
            if isinstance(ev, Filled) and ev.cid not in self.state.orders and ev.fill_id not in self.state.fills_seen:
                pos = self.state.book.positions.get(ev.symbol)
                if pos is not None and ev.side == -int(pos.side) and ev.qty > 0:
                    take = min(ev.qty, pos.qty)
                    reason = ExitReason.EOD if ev.ts >= self.broker_squareoff_ts else ExitReason.MANUAL
                    yield ClosedByBroker(ev.symbol, pos.setup_ts, take, ev.price, ev.slot, ev.fill_id, reason)
                    if ev.qty > take:  # more than the position: the rest is someone else's
                        yield dataclasses.replace(ev, fill_id=f"{ev.fill_id}+", qty=ev.qty - take)
                    continue
            yield ev

    def _alert_broker_close(self, ev: ClosedByBroker, ts: int) -> None:
        if ev.reason is ExitReason.EOD:
            self.raise_alert(
                "ERROR",
                "BROKER_SQUARED_OFF",
                f"TFL: the broker's own square-off closed {ev.qty} {ev.symbol} at {ev.price}; booked as EOD. "
                "TFL's square-off should have finished before it: look for refused or unfilled exits in the log",
                ev.ref,
                ts,
            )
            return
        self.raise_alert(
            "CRITICAL",
            "CLOSED_OUTSIDE",
            f"TFL: an order that is not TFL's closed {ev.qty} {ev.symbol} at {ev.price}; booked as a MANUAL "
            "exit. No new entries today: check who traded on the account",
            ev.ref,
            ts,
        )
        self.set_reduce_only(ts, f"{ev.symbol} closed by an order that is not TFL's")

    def _order_ended(self, rec: OrderRecord, was: OrderStatus, ev: OrderReported, ts: int) -> Leg | None:
        """Alert an order of an open position that ended without filling, unasked (rejected,
        or cancelled or expired by the broker); returns the leg whose shares lost their cover:
        an exit, or the position's current stop (even one we cancelled: its replacement may
        be waiting for that answer)."""
        if rec.open or rec.status is OrderStatus.FILLED:
            return None
        sym = rec.request.symbol
        pos = self.state.book.positions.get(sym)
        held = pos is not None and pos.setup_ts == rec.setup_ts
        unasked = was in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
        if rec.status is OrderStatus.REJECTED:
            self._warn_rejected(rec, ev, ts)
        elif unasked and held and rec.leg in (Leg.STOP, Leg.EXIT):
            self.raise_alert(
                "ERROR",
                "ENDED_BY_BROKER",
                f"TFL: the broker ended the {rec.leg.name} order for {sym} ({rec.status.value}: {ev.reason}); "
                "TFL covers its shares again",
                rec.request.client_id,
                ts,
            )
        if not held:
            return None
        if rec.leg is Leg.EXIT and (unasked or rec.status is OrderStatus.REJECTED):
            return Leg.EXIT
        current = self.state.legs.get(sym, {}).get(Leg.STOP) == rec.request.client_id
        if rec.leg is Leg.STOP and current and rec.status is not OrderStatus.REJECTED:
            return Leg.STOP  # a rejected stop is not sent again at once: the broker would refuse it again
        return None

    def _numbered(self, ev: Event) -> Event | None:
        """The fact as it is journalled, or None when it tells nothing new: a fill reported
        again, or a status the order already has (the broker repeats itself)."""
        if isinstance(ev, Filled):
            if fill_known(self.state, ev.fill_id, ev.cid):
                log.info("a fill reported again: ignored", extra={"fields": {"fill_id": ev.fill_id, "cid": ev.cid}})
                return None
            return ev
        if isinstance(ev, OrderReported):
            rec = self.state.orders.get(ev.cid)
            if rec is None:
                log.warning("a report about an order that is not ours", extra={"fields": {"cid": ev.cid}})
                return None
            new, odd = transition(rec.status, ev.report)
            unchanged = new is rec.status and odd is not Oddity.CONTRADICTION
            if ev.report in (Report.PARTIAL_FILL, Report.FULL_FILL) or (
                unchanged and (not ev.broker_id or rec.broker_id)
            ):
                return None
            return dataclasses.replace(ev, n=rec.reports + 1)
        return ev

    # ------------------------------------------------------------------ carrying out orders

    def submit(self, cid: str, ts: int) -> None:
        rec = self.state.orders[cid]
        if rec.status not in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
            return  # sent before a restart: its fate is known
        if cid in self.loaded or rec.status is OrderStatus.UNKNOWN:
            found = self.look_up(rec, ts)
            if found is None and rec.status is OrderStatus.INTENT:
                pass  # journalled before a crash, never reached the broker: send it now
            else:
                return  # adopted, written off, not listed yet, or the broker could not be asked
        if rec.leg is Leg.ENTRY and (self.state.halted is not None or self.state.reduce_only):
            # Decided in a step that, as it was carried out, stopped entries (an odd fill).
            self.facts([OrderReported(cid, Report.CANCELLED, reason="entries stopped before it was sent")], ts)
            return
        if self.real_broker and ts >= self.broker_squareoff_ts:
            self._too_late(rec, ts)
            return
        if rec.leg is Leg.FLATTEN and not self._broker_holds(rec, ts):
            return
        if rec.leg in (Leg.STOP, Leg.TARGET, Leg.EXIT) and not self._still_open(rec):
            # An earlier answer in the same step closed or changed the position (a stop that had
            # filled unseen): sending this now would open a position the broker does not hold.
            sym = rec.request.symbol
            why = self.state.exit_pending.get(sym, (ExitReason.MANUAL, None))[0]
            self.facts([OrderReported(cid, Report.CANCELLED, reason="its position changed before it was sent")], ts)
            if rec.leg is Leg.EXIT:  # the shares that are still held are exited all the same
                self.decide(self.core.exit_uncovered(self.state, sym, why), ts)
            return
        self.journal.flush()
        self._sent_at[cid] = ts
        self.facts(self.execution.place(rec, ts), ts)

    def _too_late(self, rec: OrderRecord, ts: int) -> None:
        """An order decided after the broker's own square-off began: never sent (the broker
        closes intraday positions itself and would take a new order as a delivery trade)."""
        sym = rec.request.symbol
        self.facts([OrderReported(rec.request.client_id, Report.CANCELLED, reason="after the broker's square-off")], ts)
        pos = self.state.book.positions.get(sym)
        if pos is not None:
            self.raise_alert(
                "CRITICAL",
                "AFTER_BROKER_SQUARE_OFF",
                f"TFL: {pos.qty} {sym} shares are still open after the broker's square-off time; TFL sends no "
                "order now (FYERS would take it as a delivery trade) and books the broker's own square-off. "
                "Check the position at the broker",
                sym,
                ts,
            )

    def _cancel(self, cid: str, ts: int) -> None:
        rec = self.state.orders.get(cid)
        if rec is None or not rec.open or self._cancel_asked.get(cid) == ts:
            return  # over, or already asked in this step
        self._cancel_asked[cid] = ts
        if rec.broker_id is None:  # never acknowledged (an intent, a timed-out place): ask first
            found = self.execution.lookup(rec)
            if found is None:
                never_sent = rec.reports == 0 and cid not in self.loaded  # this process never sent it
                if not never_sent and not self.unlisted_long_enough(cid, ts):
                    return  # it may be at the broker, not listed yet: it stays live; asked again
                self.facts([OrderReported(cid, Report.CANCELLED, reason="not sent")], ts)
                return
            self.facts(found, ts)
            if not rec.open:
                return
        self.journal.flush()
        self.facts(self.execution.cancel(rec, ts), ts)

    def move_stop(self, cid: str, ts: int) -> None:
        """Send the journal's latest level of a resting stop; record the broker's confirmation,
        so that a restart knows which moves never reached it."""
        rec = self.state.orders.get(cid)
        if rec is None or not rec.working or rec.request.trigger is None or rec.confirmed >= rec.modifications:
            return
        self.journal.flush()
        outcome = self.execution.modify(rec, ts, rec.request.trigger, rec.request.qty)
        if outcome is Modified.CONFIRMED:
            self.record(StopConfirmed(cid, rec.modifications), ts)
        elif outcome is Modified.CROSSED:
            # The ratchet asked for a level the price has already passed: the old stop is
            # cancelled and the position closed at market (the backtest exits on this bar too).
            self.raise_alert(
                "WARNING",
                "STOP_CROSSED",
                f"TFL: the price of {rec.request.symbol} crossed its new stop {rec.request.trigger} before the "
                "broker took it; the position is closed at market",
                cid,
                ts,
            )
            self.decide(self.core.exit_crossed(self.state, rec.request.symbol), ts)
        elif outcome is Modified.REFUSED:
            self._stop_refused(rec, ts)

    def _stop_refused(self, rec: OrderRecord, ts: int) -> None:
        """The broker would not move or resize a stop. It may have filled or gone meanwhile:
        its own word is adopted, and a stop that is over is replaced. A stop still working
        stays as the broker has it (cancelling a good stop to replace it could leave nothing,
        if the new one is refused too): the journal takes the broker's size back (what the
        shares are covered by), a refused level stays wanted and unconfirmed, and the next
        retry asks again; an alert says so, once per slot."""
        cid = rec.request.client_id
        found = self.execution.lookup(rec)
        if found is None:  # the broker has no such order: it is not protecting anything
            self.facts([OrderReported(cid, Report.CANCELLED, reason="the broker has no such order")], ts)
            return
        if found:
            self.facts(found, ts)
        order = self.execution.broker_order(rec) if rec.working else None
        if order is None or order.status not in ("PENDING", "PARTIAL") or order.filled > rec.filled:
            return  # over (replaced by the reaction to it), or not settled yet: the next step asks again
        wanted = rec.request.trigger
        if order.qty != rec.request.qty and wanted is not None:
            self.record(StopMoved(cid, rec.modifications + 1, wanted, order.qty), ts)
            if order.trigger is not None and abs(order.trigger - wanted) < 1e-9:
                # A refused resize: the journal now holds exactly the broker's order, and the
                # next retry asks for the size again (one request per retry, not two).
                self.record(StopConfirmed(cid, rec.modifications), ts)
        pos = self.state.book.positions.get(rec.request.symbol)
        self.raise_alert(
            "ERROR",
            "STOP_REFUSED",
            f"TFL: the broker refused to change the stop for {rec.request.symbol}; it stays at {order.trigger} "
            f"for {order.qty - order.filled} of {pos.qty if pos is not None else 0} shares. TFL asks again "
            f"every {self.settings.live.retry_seconds} s",
            "",
            ts,
            subject=cid,  # once per interval, however often it is asked
        )

    def _still_open(self, rec: OrderRecord) -> bool:
        """Whether a position-bound order still makes sense: its position is open and an exit
        sells no more than what other exits are not already selling."""
        pos = self.state.book.positions.get(rec.request.symbol)
        if pos is None or pos.setup_ts != rec.setup_ts:
            return False
        if rec.leg is Leg.TARGET:
            return rec.request.qty <= pos.qty
        if rec.leg is not Leg.EXIT:
            return True
        # A stop whose cancel is unanswered may still sell: an exit beside it could sell the
        # same shares twice (and leave the account short).
        return rec.request.qty <= pos.qty - (covered(self.state, pos) - rec.remaining)

    def _broker_holds(self, rec: OrderRecord, ts: int) -> bool:
        """A flatten order only for shares the broker really holds (never open a position)."""
        sym = rec.request.symbol
        held = self.execution.holds(sym)
        if held is None or not self._book_unseen_fills(ts):
            return False  # cannot ask: keep the intent and try at the next step
        if rec.status is not OrderStatus.INTENT:
            return False  # the fills just booked settled it (an order for stray shares that went)
        mine = sum(int(p.side) * p.qty for s, p in self.state.book.positions.items() if s == sym)
        extra = held - mine - self.state.foreign.get(sym, 0)
        want = -rec.request.side * rec.request.qty
        if (extra > 0) == (want > 0) and abs(extra) >= abs(want):
            return True
        keep = extra if (extra > 0) == (want > 0) else 0
        self.facts([OrderReported(rec.request.client_id, Report.CANCELLED, reason="the broker does not hold it")], ts)
        n = self.state.stray_corrections + 1
        self.record(StrayCorrected(sym, keep, f"broker holds {held}, journal positions {mine}", n), ts)
        self.raise_alert(
            "ERROR",
            "STRAY_CORRECTED",
            f"TFL: the journal believed in {want:+d} {sym} shares that the broker does not hold "
            f"(broker {held:+d}); the journal was corrected, nothing was sent",
            f"{rec.request.client_id}",
            ts,
        )
        return False

    def _book_unseen_fills(self, ts: int) -> bool:
        """Book the broker's fills of our orders that have not been reported yet (read after
        its positions, so that the positions never show a fill the journal lacks). False if
        the broker could not be asked."""
        try:
            fills = self.execution.broker_fills()
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("could not read the broker's fills", extra={"fields": {"error": str(exc)}})
            return False
        unseen = [f for f in fills if f.tag in self.state.orders and not fill_known(self.state, f.fill_id, f.tag)]
        if unseen:
            self.facts([self.execution.fill_fact(f) for f in unseen], ts)
        return True

    def _warn_rejected(self, rec: OrderRecord, ev: OrderReported, ts: int) -> None:
        """Log a rejection and alert it (once per interval, even when both the answer and the
        order socket say so): a protective order per symbol and leg; entries as one subject
        (a margin shortfall rejects them all), except one whose trigger the price had already
        passed, which is handled as the backtest handles it."""
        protective = rec.leg in (Leg.STOP, Leg.EXIT, Leg.FLATTEN)
        log.log(
            logging.ERROR if protective else logging.WARNING,
            "order rejected",
            extra={"fields": {"cid": rec.request.client_id, "symbol": rec.request.symbol, "reason": ev.reason}},
        )
        if protective:
            message = f"{rec.leg.name} order for {rec.request.symbol} rejected: {ev.reason}"
            # Once per symbol and leg per interval: attempts refused again and again are one cause.
            subject = f"{rec.request.symbol}:{rec.leg.name}"
            # A stop the price had already crossed is handled at once (an exit at market, as the
            # backtest's stop on that bar): a warning, not an error needing the operator.
            level = "WARNING" if ev.reason.startswith(STOP_CROSSED) else "ERROR"
            self.raise_alert(level, Cause.REJECTED, message, "", ts, subject=subject)
        elif rec.leg is Leg.ENTRY and not ev.reason.startswith(STOP_CROSSED):
            message = f"TFL: the broker rejected the entry order for {rec.request.symbol}: {ev.reason}"
            self.raise_alert("WARNING", Cause.ENTRY_REJECTED, message, "", ts, subject="entries")

    def _log_fill(self, f: Filled) -> None:
        rec = self.state.orders.get(f.cid)
        if rec is None or rec.leg is Leg.ENTRY:
            return
        if rec.request.symbol not in self.state.book.positions and self.state.book.trades:
            t = self.state.book.trades[-1]
            if t.symbol == rec.request.symbol:
                log.info(
                    "trade closed",
                    extra={
                        "fields": {
                            "symbol": t.symbol,
                            "side": t.side.label,
                            "qty": t.qty,
                            "entry": round(t.entry_price, 4),
                            "exit": round(t.exit_price, 4),
                            "reason": t.exit_reason.value,
                            "pnl": round(t.pnl, 2),
                        }
                    },
                )

    # ------------------------------------------------------------------ anomalies

    def after_restart(self, ts: int) -> None:
        """Alerts, reduce-only, protection and flattening for today's odd facts, once the broker
        has been reconciled (a crash may have come between a fact and its handling)."""
        self._after_facts(ts)

    def _after_facts(self, ts: int) -> None:
        """Alert on facts that did not fit, once each; act safely on them."""
        new = self.state.anomalies[self._seen_anomalies :]
        if not new:
            return
        self._seen_anomalies = len(self.state.anomalies)
        unsure = []
        for a in new:
            level = "CRITICAL" if a.kind in UNSURE else "ERROR"
            message = _ANOMALY_TEXT[a.kind].format(symbol=a.symbol or "?", detail=a.detail)
            self.raise_alert(level, a.kind.value, message, a.ref, ts)
            if a.kind in UNSURE:
                unsure.append(f"{a.kind.value.lower()} {a.symbol}")
        if unsure:
            self.set_reduce_only(ts, "; ".join(unsure)[:200])
        # A late or extra fill opened or grew a position: it is protected now; stray shares go.
        self.protect(ts)
        self.decide(self.core.flatten_stray(self.state), ts)

    def raise_alert(
        self, level: str, cause: str, message: str, ref: str, ts: int, *, subject: str | None = None
    ) -> bool:
        """Journal an alert and send it, unless the journal shows it was sent already (an alert
        about the same thing worded differently, after a restart, counts as sent). With a
        ``subject`` it is a condition that may last: sent once per ``alerts.repeat_minutes``
        of market time for its cause and subject (``ref`` is then made unique per sending).
        The message gets what to do appended. Returns whether it was sent."""
        if subject is not None:
            if not self.throttle.admit(cause, subject, ts):
                return False
            ref = throttled_ref(subject, ts)
        text = with_action(cause, message)
        try:
            new = self.record(AlertRaised(level, cause, text, ref), ts)
        except JournalConflictError:
            new = False
        if new:
            self.journal.flush()
            log.log(
                logging.getLevelName(level) if level in ("WARNING", "CRITICAL") else logging.ERROR,
                message,
                extra={"fields": {"cause": cause, "ref": ref}},
            )
            self.alert(level, text)
        return new

    def alert_due(self, cause: str, subject: str, ts: int) -> bool:
        """Whether a condition alert (``raise_alert`` with ``subject``) would be sent now: its
        message need not be built when it would not."""
        return self.throttle.due(cause, subject, ts)

    def _alert_sent(self, ev: AlertRaised, ts: int) -> None:
        """An alert journalled earlier today: the throttle and the loss levels remember it."""
        self.throttle.sent(ev.cause, subject_of(ev.ref), ts)
        if ev.cause == Cause.LOSS_LIMIT and ev.ref.isdigit():
            self._loss_alerted = max(self._loss_alerted, int(ev.ref))

    def journal_differs(self, differences: Sequence[str], unexplained: bool, ts: int) -> None:
        """Reconciliation found the journal and the broker apart (each difference is journalled)."""
        if not differences:
            return
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        self.raise_alert(
            "ERROR" if unexplained else "WARNING",
            Cause.JOURNAL_DIFFERS,
            f"TFL: the journal and the broker disagree: {shown}",
            "",
            ts,
            subject="reconcile",
        )

    def check_loss(self, ts: int) -> None:
        """Alert the day's loss at 50%, 80% and 100% of the daily loss limit (each once per
        session; a bar that jumps past two levels gives the higher one), with the core's
        test at 100% (equity at the bar close at or below the start minus the limit)."""
        start = self.state.day_start_equity
        pct = self.settings.risk.daily_loss_limit_pct
        equity = self.state.equity()
        if start <= 0 or self.state.session != self.sid:
            return
        reached = [
            lv
            for lv in LOSS_LEVELS_PCT
            if lv > self._loss_alerted and equity <= start * (1.0 - pct / 100.0 * (lv / 100))
        ]
        if not reached:
            return
        lv = max(reached)
        self._loss_alerted = lv
        limit = start * pct / 100.0
        then = {
            50: "TFL keeps trading",
            80: "at 100% TFL closes every position and takes no more entries today",
            100: "TFL is closing every position and takes no more entries today",
        }.get(lv, "")
        self.raise_alert(
            "CRITICAL" if lv >= 100 else "ERROR" if lv >= 80 else "WARNING",
            Cause.LOSS_LIMIT,
            f"TFL: the day's loss reached {lv}% of the daily loss limit ({start - equity:,.0f} of {limit:,.0f}, "
            f"{pct:g}% of the day's starting equity); {then}",
            str(lv),
            ts,
        )

    def set_reduce_only(self, ts: int, reason: str) -> None:
        # n: the lifts before it today, so that the same cause after an operator's lift is a new event
        if not self.state.reduce_only and self.record(ReduceOnly(reason, self.state.lifts), ts):
            self.journal.flush()
            log.error(
                "reduce-only: no new entries until the next session's reconciliation",
                extra={"fields": {"reason": reason}},
            )
            self.alert("ERROR", with_action(Cause.REDUCE_ONLY, f"TFL is reduce-only: {reason}"))

    # ------------------------------------------------------------------ the session

    @property
    def done(self) -> bool:
        return self.sid in self.state.closed_sessions

    def open_session(self, ts: int, bias: Bias, bias_reason: str, marks: dict[str, float]) -> None:
        if self.done or self.state.session == self.sid:
            return
        book = self.state.book
        flat = not book.positions and not book.stray and not self.state.working
        ev = SessionOpened(
            self.sid,
            bias,
            bias_reason,
            self.settings.backtest.capital,
            tuple(sorted(marks.items())),
            self.settings,
            # A flat book's cash is the day's starting equity, exactly: one session's events then
            # suffice for its report. Anything carried over leaves it out (the report reads more).
            book.cash if flat else None,
        )
        self.record(ev, ts)
        self.journal.flush()
        log.info(
            "session open",
            extra={
                "fields": {
                    "session": self.sid,
                    "bias": bias.value,
                    "reason": bias_reason,
                    "equity": round(self.state.equity(), 2),
                }
            },
        )

    def on_slot(self, boundary: int, bars: Sequence[ClosedBar], setups: Sequence[Setup]) -> None:
        """The bars before ``boundary`` closed: the core decides, the trader carries it out."""
        if boundary <= self.state.last_slot or self.done:
            return
        if not self.gate.reconciled:
            from tfl.live.reconcile import reconcile

            reconcile(self, boundary)
        self.resolve_unknown(boundary)
        self.protect(boundary)
        self.decide(self.core.flatten_stray(self.state), boundary)
        block = self.gate if not self.gate.open() else None
        if block is not None and setups:
            log.warning(
                "entries blocked",
                extra={
                    "fields": {
                        "setups": len(setups),
                        "reconciled": self.gate.reconciled,
                        "feed_fresh": self.gate.feed_fresh,
                        "token_ok": self.gate.token_ok,
                    }
                },
            )
        self.decide(self.core.on_close(self.state, boundary, bars, setups, self.gate), boundary)
        # Only now is the slot done: a restart before this line carries out its decisions again
        # (a cancel journalled but not yet at the broker must reach it before the next bar trades).
        self.record(SlotClosed(boundary, round(self.state.equity(), 4)), boundary)
        self.journal.flush()
        self.check_cover(boundary)
        self.check_loss(boundary)

    def protect(self, ts: int) -> None:
        """Every open position is covered (after a restart, a rejection, a late fill): the core
        covers what is uncovered (a stop whose cancel is unanswered counts as cover; its cancel
        is asked again by ``resolve_unknown``). This is the step's one reaction: an order it
        sends that the broker ends at once is not reacted to again until the next step."""
        if self._reacting:
            return
        self._reacting = True
        try:
            wait = {sym for sym, due in self._flatten_due.items() if ts < due}
            evs = self.core.ensure_protection(self.state, slot_of(ts, self.plan.open_ts), wait)
            if evs:
                held = sorted({e.symbol for e in evs if isinstance(e, OrderPlaced)})
                log.warning("position not fully covered: placing orders", extra={"fields": {"symbols": held}})
            self.decide(evs, ts)
            for ev in evs:
                if not isinstance(ev, OrderPlaced) or ev.leg is not Leg.EXIT:
                    continue
                # An exit the protection sends again: the next one waits longer each time.
                pause = self.settings.live.retry_seconds * 2 ** attempt_of(ev.cid)
                self._flatten_due[ev.symbol] = ts + min(pause, FLATTEN_BACKOFF_MAX_SECONDS)
                if ev.reason is ExitReason.MANUAL:
                    self.raise_alert(
                        "ERROR",
                        "NO_STOP_LEFT",
                        f"TFL: every stop for {ev.symbol} was refused or ended; its {ev.qty} shares are "
                        "being closed at market",
                        "",
                        ts,
                        subject=ev.symbol,
                    )
        finally:
            self._reacting = False

    def check_cover(self, ts: int) -> None:
        """Alert (once per symbol and slot) shares that no stop or exit the broker has taken
        protects. Called once a step is over, never in the middle of one: an exit decided
        beside a stop's cancel is not sent yet while that cancel is being answered."""
        for sym, pos in sorted(self.state.book.positions.items()):
            bare = pos.qty - covered(self.state, pos, acknowledged=True)
            if bare > 0:
                self.raise_alert(
                    "CRITICAL",
                    "UNCOVERED",
                    f"TFL: {bare} {sym} shares have no stop or exit that the broker has taken; "
                    f"TFL asks again every {self.settings.live.retry_seconds} s",
                    "",
                    ts,
                    subject=sym,
                )

    def unsettled(self, ts: int) -> bool:
        """Whether anything waits for the broker's word: an order of unknown fate or never
        sent, an unanswered cancel, an unconfirmed stop move, shares the broker has not
        taken a stop or exit for, a position not being exited once trading has stopped."""
        if self.core.stopped(self.state, slot_of(ts, self.plan.open_ts)) and any(
            sym not in self.state.exit_pending for sym in self.state.book.positions
        ):
            return True
        for rec in self.state.working.values():
            if rec.status in (OrderStatus.UNKNOWN, OrderStatus.PENDING_CANCEL):
                return True
            if rec.status is OrderStatus.INTENT and rec.leg is not Leg.ENTRY:
                return True
            if rec.leg is Leg.STOP and rec.modifications > rec.confirmed:
                return True
        if self._unfilled_exits(ts):
            return True
        return any(
            pos.qty > covered(self.state, pos, acknowledged=True) or covered(self.state, pos) > pos.qty
            for pos in self.state.book.positions.values()
        )

    def retry(self, ts: int) -> None:
        """Between boundaries (every ``live.retry_seconds`` of exchange time): what is
        unsettled is asked about again, so that a position is not left bare until the next
        boundary. Nothing happens when all is settled (replay = backtest is untouched)."""
        if self.done:
            return
        if not self.gate.reconciled:
            if not self.reconcile_failed:
                return  # not started yet: the first boundary reconciles
            from tfl.live.reconcile import reconcile

            reconcile(self, ts)  # the broker could not be asked before: ask again now
            if not self.gate.reconciled:
                return
        key = (self._applied, slot_of(ts, self.plan.open_ts))
        if key == self._settled and not self._exits_standing():
            return  # nothing has happened since all was found settled in this slot
        if not self.unsettled(ts):
            self._settled = key
            return
        self.resolve_unknown(ts)
        if self.real_broker and ts >= self.broker_squareoff_ts:
            return  # the broker squares off now: nothing new is sent (see ``_too_late``)
        self._send_again(ts)
        self.protect(ts)
        self.check_cover(ts)

    def _exits_standing(self) -> bool:
        """Whether an exit that may need sending again is working (its time can come with no
        new event)."""
        return self.real_broker and any(r.leg in (Leg.EXIT, Leg.FLATTEN) for r in self.state.working.values())

    def _unfilled_exits(self, ts: int) -> list[OrderRecord]:
        """Market exits the broker has taken but not filled for ``EXIT_RESEND_RETRIES``
        retries while their symbol kept trading: FYERS turns a market order into a
        price-protected limit, which a fast market or a circuit limit can leave standing.
        (While the symbol does not trade, sending the order again would not help.)"""
        if not self.real_broker:
            return []
        every = self.settings.live.retry_seconds
        out = []
        for r in self.state.working.values():
            if r.leg not in (Leg.EXIT, Leg.FLATTEN) or r.status not in (
                OrderStatus.SUBMITTED,
                OrderStatus.ACCEPTED,
                OrderStatus.PARTIALLY_FILLED,
            ):
                continue
            placed = self._sent_at.get(r.request.client_id, self._placed_at.get(r.request.client_id, ts))
            traded = self.last_tick(r.request.symbol)
            if ts - placed >= EXIT_RESEND_RETRIES * every and traded is not None and traded - placed >= every:
                out.append(r)
        return out

    def _send_again(self, ts: int) -> None:
        """An unfilled exit is cancelled; once the broker confirms, the position's exit is sent
        again (a new attempt, at a fresh protected price) by the protection pass. Alerted each
        time, CRITICAL from the third attempt."""
        for rec in self._unfilled_exits(ts):
            cid = rec.request.client_id
            age = ts - self._sent_at.get(cid, self._placed_at.get(cid, ts))
            sym, left = rec.request.symbol, rec.remaining
            late = ts + self.settings.live.retry_seconds >= self.broker_squareoff_ts
            if attempt_of(cid) >= EXIT_RESENDS or late:
                # Sent again enough (or too near the broker's square-off for a new one to go
                # out): it stays, standing in the queue, rather than leave nothing working.
                self.raise_alert(
                    "CRITICAL",
                    "EXIT_STANDING",
                    f"TFL: the market exit for {sym} ({left} shares) is still not filled after {age} s; it stays "
                    "working. Check the stock (a circuit limit?) and the broker",
                    cid,
                    ts,
                )
                continue
            self.raise_alert(
                "ERROR",
                "EXIT_UNFILLED",
                f"TFL: the market exit for {sym} ({left} shares) is not filled after {age} s (the broker's "
                "price protection, or a circuit limit); TFL cancels it and sends it again",
                cid,
                ts,
            )
            self.decide([CancelRequested(cid, rec.cancel_requests + 1, "not filled: sent again")], ts)

    def halt(self, ts: int, reason: HaltReason) -> None:
        """The kill switch: no new entries today, every position closed at market."""
        self.decide(self.core.halt(self.state, reason), ts)

    def square_off(self, ts: int) -> None:
        """Paper and live: the square-off, begun ``live.squareoff_lead_seconds`` before the
        broker's own (or before the square-off bar), so every exit is filled before it."""
        if self.done or self.state.squareoff_started:
            return
        log.warning(
            "square-off: closing every position before the broker's own square-off",
            extra={"fields": {"positions": sorted(self.state.book.positions), "at": iso_ist(ts)}},
        )
        self.decide(self.core.square_off(self.state, ts), ts)
        self.check_cover(ts)

    def settle_earlier(self, ts: int, marks: Mapping[str, float]) -> None:
        """Positions and orders the journal holds from an earlier session (the process died,
        the token was lost): the broker's intraday positions do not outlive their day (FYERS
        squares them off), and DAY orders expire at the close. Each is corrected in the
        journal with an explicit event and an alert; nothing is ever sent for them. A
        position the broker still holds is real: it is alerted and kept (protected and
        squared off like any other).
        Raises the broker's error when its positions cannot be read (asked again later)."""
        today = self.plan.date
        old_positions = {s: p for s, p in self.state.book.positions.items() if ist_date(p.setup_ts) < today}
        old_orders = [r for r in self.state.working.values() if ist_date(r.setup_ts) < today]
        if not old_positions and not old_orders:
            return
        held = self.execution.broker_positions() if old_positions else {}
        for rec in old_orders:
            why = "a DAY order of an earlier session: expired at its close"
            self.record(OrderReported(rec.request.client_id, Report.EXPIRED, reason=why, n=rec.reports + 1), ts)
        for sym, pos in sorted(old_positions.items()):
            day = ist_date(pos.setup_ts)
            still = max(0, held.get(sym, 0) * int(pos.side))  # shares of this side the broker holds
            price = marks.get(sym) or self.state.marks.get(sym) or pos.entry_price
            at = epoch_of_ist(day, parse_hhmm(self.settings.live.broker_squareoff_time))
            ref = f"carried:{day.isoformat()}:{sym}:{pos.setup_ts}"
            if 0 < still < pos.qty:  # the broker closed part of it: that part is booked, the rest kept
                gone = pos.qty - still
                self.record(ClosedByBroker(sym, pos.setup_ts, gone, price, at, ref, ExitReason.EOD, True), ts)
            if still > 0:
                self.raise_alert(
                    "CRITICAL",
                    "CARRIED_HELD",
                    f"TFL: the broker still holds {held[sym]:+d} {sym} and the journal had {pos.qty} from {day}; "
                    "TFL protects and squares them off today as its own. If you converted them to delivery, "
                    "cancel TFL's orders for them by hand",
                    f"{sym}:{day}",
                    ts,
                )
                continue
            self.record(ClosedByBroker(sym, pos.setup_ts, pos.qty, price, at, ref, ExitReason.EOD, True), ts)
            self.raise_alert(
                "CRITICAL",
                "CARRIED_CLOSED",
                f"TFL: {pos.qty} {sym} from {day} were still open in the journal; the broker squared them off "
                f"after TFL stopped. Booked as EOD at {price}, the last price TFL knew: check the contract note",
                ref,
                ts,
            )
        self.journal.flush()

    def resolve_unknown(self, ts: int) -> None:
        """Ask about what is unsettled: orders of unknown fate (one the broker does not list
        is written off only after ``UNLISTED_GRACE_SECONDS``, as its order book may lag a
        placement), unanswered cancels, unconfirmed stop moves, orders never sent."""
        for rec in list(self.state.working.values()):
            cid = rec.request.client_id
            if rec.status is OrderStatus.UNKNOWN:
                self.look_up(rec, ts)
            elif rec.status is OrderStatus.PENDING_CANCEL:
                self._cancel(cid, ts)  # a cancel that did not get through: ask again
            elif rec.leg is Leg.STOP and rec.modifications > rec.confirmed:
                self.move_stop(cid, ts)  # a stop move the broker has not confirmed
            elif rec.status is OrderStatus.INTENT and rec.leg is not Leg.ENTRY:
                self.submit(cid, ts)  # decided but never sent (a broker that could not be asked)

    def close_session(self, ts: int) -> bool:
        """After the broker's close: the book must be flat. Returns True when it is."""
        book = self.state.book
        flat = not book.positions and not book.stray
        if not flat:
            held = sorted(set(book.positions) | set(book.stray))
            log.critical("the book is NOT flat after the square-off", extra={"fields": {"positions": held}})
            self.raise_alert(
                "CRITICAL", Cause.NOT_FLAT, f"TFL book not flat at the close: {', '.join(held)}", "close", ts
            )
        day_trades = [t for t in book.trades if ist_date(t.entry_ts) == self.plan.date]
        self.record(SessionClosed(self.sid, flat, round(self.state.equity(), 4), len(day_trades)), ts)
        self.journal.flush()
        log.info(
            "session closed",
            extra={
                "fields": {
                    "session": self.sid,
                    "flat": flat,
                    "trades": len(day_trades),
                    "equity": round(self.state.equity(), 2),
                }
            },
        )
        return flat


_ANOMALY_TEXT = {
    AnomalyKind.LATE_FILL: "TFL: a late fill in {symbol} after its order was closed ({detail}); booked and protected",
    AnomalyKind.OVERFILL: "TFL: over-fill in {symbol} ({detail}); the excess is flattened if the broker holds it. "
    "Check the broker's position",
    AnomalyKind.ORPHAN_FILL: "TFL: a fill in {symbol} for a position that is not open ({detail}); "
    "the shares are flattened if the broker holds them. Check the broker's position",
    AnomalyKind.UNKNOWN_ORDER: "TFL: a fill in {symbol} for an order that is not TFL's ({detail}); "
    "no new entries. Check the broker's positions",
    AnomalyKind.CONTRADICTION: "TFL: the broker contradicts the journal in {symbol} ({detail}); "
    "no new entries. Check the broker's order book",
}
