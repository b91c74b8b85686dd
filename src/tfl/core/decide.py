"""The strategy's decisions, written once: what to do when a bar closes and when an order fills.

Pure functions of the state and their inputs that return events; nothing here changes
state, reads a clock or talks to a broker. Every world calls them the same way: apply
each returned event with :func:`tfl.core.state.apply` (the live trader journals it
first), then carry out its effect (a simulated exchange in the backtester, a broker
live). The order of the strategy page holds because the worlds feed the same facts:

- during a bar the exchange acts: resting stops and targets, entry stops and market exits
  fill (:mod:`tfl.core.fills`); a filled entry gets its protective stop at once
  (:func:`on_fill`), so a stop touched later in its entry bar is taken;
- when the bar closes (:func:`on_close`): entry orders of the bar expire; setups that
  triggered without a reservation are rejected with the reason they got; each position's
  stop is ratcheted and its target placed once its entry bar is over; then the square-off,
  or the daily loss limit, or the reservations for the next bar's setups.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from tfl.core.events import (
    Allocated,
    CancelRequested,
    Event,
    Filled,
    Halted,
    LevelsSet,
    Lifted,
    Marked,
    OrderPlaced,
    ReduceOnly,
    SignalRejected,
    SquareOffStarted,
    StopMoved,
)
from tfl.core.fills import touches
from tfl.core.orders import MAX_ATTEMPTS, Leg, OrderRecord, OrderStatus, OrderType, attempt_of, client_id, oco_group
from tfl.core.risk import Gate, entry_block
from tfl.core.state import CoreState, allocation_of
from tfl.costs import CostModel
from tfl.domain import ExitReason, HaltReason, RejectReason, Side
from tfl.settings import Settings
from tfl.strategy.allocation import allocate, loss_limit_hit
from tfl.strategy.rules import Position, Setup, planned_entry, ratchet
from tfl.strategy.sizing import cash_needed, size_entry, sizing_equity
from tfl.timeutil import BAR_SECONDS


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One session as the core sees it: a calendar session live, the data's grid in a backtest."""

    date: dt.date
    open_ts: int  # start of the first bar
    last_bar_ts: int  # start of the last bar
    squareoff_ts: int  # the bar at whose start every position is closed (at or before the close)

    @property
    def close_ts(self) -> int:
        return self.last_bar_ts + BAR_SECONDS


class ClosedBar(NamedTuple):
    """A 15-minute bar that has just closed, with the ATR that includes it."""

    symbol: str
    start: int
    open: float
    high: float
    low: float
    close: float
    atr: float


class Core:
    """The decisions of one session. Holds only what does not change within it."""

    __slots__ = ("cost", "plan", "settings")

    def __init__(self, settings: Settings, plan: SessionPlan) -> None:
        self.settings = settings
        self.plan = plan
        self.cost = CostModel(settings.costs)

    # ------------------------------------------------------------------ the close of a bar

    def on_close(
        self,
        state: CoreState,
        boundary: int,
        bars: Sequence[ClosedBar],
        setups: Sequence[Setup],
        gate: Gate | None = None,
    ) -> list[Event]:
        """Decisions when the bars before ``boundary`` have closed; ``setups`` are the valid
        setups whose entry bar starts at ``boundary``; ``gate``: the live trader's own
        preconditions for entries (none in a backtest)."""
        out: list[Event] = []
        cancel: dict[str, str] = {}
        entry = Leg.ENTRY
        for rec in state.working.values():
            if rec.leg is entry:
                a = allocation_of(state, rec.request.client_id)
                if a is None or a.entry_ts < boundary:
                    cancel[rec.request.client_id] = "its bar is over"
        positions = state.book.positions
        marks = {b.symbol: b.close for b in bars if b.symbol in positions}
        equity = _equity(state, marks)
        halted = state.halted
        flatten: ExitReason | None = None
        if boundary >= self.plan.squareoff_ts or state.squareoff_started:
            flatten = ExitReason.EOD
        elif halted is not None:
            flatten = ExitReason.KILL_SWITCH  # a halted day: anything not being exited is flattened again
        elif loss_limit_hit(equity, state.day_start_equity, self.settings.risk):
            halted = HaltReason.DAILY_LOSS_LIMIT
            flatten = ExitReason.KILL_SWITCH
        pending = state.unreserved.get(boundary - BAR_SECONDS)
        for bar in bars:
            if pending is not None:
                a = pending.get(bar.symbol)
                if a is not None and bar.start == a.entry_ts and touches(a.side, a.trigger, bar.high, bar.low):
                    assert a.reject is not None
                    out.append(SignalRejected(bar.start, a.symbol, a.side, a.reject, a.rsi, a.cid))
            pos = positions.get(bar.symbol)
            if pos is None:
                continue
            if flatten is not None or bar.symbol in state.exit_pending:
                out.append(Marked(((bar.symbol, bar.close),), bar.start))
            else:
                self._manage(state, pos, bar, out)
        if flatten is ExitReason.KILL_SWITCH and state.halted is None:
            out.append(Halted(HaltReason.DAILY_LOSS_LIMIT, state.lifts))
        exits: list[OrderPlaced] = []
        if flatten is not None:
            self._flatten(state, flatten, cancel, exits)
        out.extend(_in_order(state, cancel, exits))
        if flatten is not ExitReason.EOD and boundary < self.plan.last_bar_ts:  # no entries on the last bar
            block = entry_block(halted, state.reduce_only, gate)
            self._allocate(state, boundary, setups, equity, block, out)
        return out

    def _manage(self, state: CoreState, pos: Position, bar: ClosedBar, out: list[Event]) -> None:
        symbol, start, _, high, low, close, atr = bar  # one unpacking, not six attribute reads
        if state.leveled.get(symbol) == start:
            return  # decided before a restart (a fill since may have moved R: the decision stands)
        strategy = self.settings.strategy
        stop, best = ratchet(pos, high, low, atr, strategy)
        out.append(LevelsSet(symbol, stop, best, close, start))
        legs = state.legs.get(symbol, {})
        stop_cid = legs.get(Leg.STOP)
        if stop_cid is not None and stop != pos.stop:
            rec = state.orders[stop_cid]
            if rec.open:
                out.append(StopMoved(stop_cid, rec.modifications + 1, stop))
        if strategy.use_target and Leg.TARGET not in legs and start >= pos.entry_ts:
            target = self._target(state, pos)
            if target is not None:
                out.append(target)

    def _target(self, state: CoreState, pos: Position) -> OrderPlaced | None:
        cid = self._fresh_id(state, pos, Leg.TARGET)
        if cid is None:
            return None
        return OrderPlaced(
            cid,
            Leg.TARGET,
            pos.symbol,
            -int(pos.side),
            OrderType.LIMIT,
            pos.qty,
            None,
            pos.target,
            oco_group(self.plan.date, pos.symbol, pos.setup_ts),
            pos.setup_ts,
        )

    def _allocate(
        self,
        state: CoreState,
        boundary: int,
        setups: Sequence[Setup],
        equity: float,
        block: RejectReason | None,
        out: list[Event],
    ) -> None:
        bias = state.session_bias
        date = self.plan.date
        # A setup is decided once: after a restart mid-step its journalled allocation stands,
        # even if the inputs changed since (an operator's halt while the trader was down).
        todo: list[Setup] = []
        cids: dict[int, str] = {}  # id(setup) -> its entry order's client id
        allocations = state.allocations
        longs, shorts = bias.allows(Side.LONG), bias.allows(Side.SHORT)  # asked once, not per setup
        for s in setups:
            if longs if s.side is Side.LONG else shorts:
                cid = client_id(date, s.symbol, s.setup_ts, Leg.ENTRY)
                if cid not in allocations:
                    todo.append(s)
                    cids[id(s)] = cid
        if not todo:
            return
        if block is not None:
            for s in todo:
                planned = self.cost.adverse(s.trigger, s.side is Side.LONG)
                out.append(_allocated(cids[id(s)], s, 0, planned, 0.0, boundary, block))
            return
        book = state.book
        for a in allocate(
            todo,
            equity=equity,
            initial_capital=self.settings.backtest.capital,
            cash=float(book.cash),
            open_risk=book.open_risk,
            open_positions=len(book.positions),
            held=book.positions,
            cost=self.cost,
            risk=self.settings.risk,
        ):
            s = a.setup
            cid = cids[id(s)]
            out.append(_allocated(cid, s, a.qty, a.planned, a.planned_risk, boundary, a.reject))
            if a.reject is None:
                out.append(_entry_order(cid, s, a.qty))

    def enter_in_bar(
        self, state: CoreState, slot: int, triggered: Sequence[tuple[Setup, float]], held_at_start: Collection[str]
    ) -> list[Event]:
        """The research-only "bar" allocation: the setups that triggered in bar ``slot``
        (with their fill prices) compete by priority after that bar's exits, sized on the
        equity of the previous close. It needs the rest of the bar in advance, so only the
        backtester may call it; the live trader refuses the setting."""
        out: list[Event] = []
        if not triggered:
            return out
        block = entry_block(state.halted, "", None)
        risk = self.settings.risk
        size_eq = sizing_equity(state.last_equity, self.settings.backtest.capital, risk)
        book = state.book
        open_risk, n_open, cash = book.open_risk, len(book.positions), float(book.cash)
        for s, fill in sorted(triggered, key=lambda x: (-x[0].priority, x[0].symbol)):
            cid = client_id(self.plan.date, s.symbol, s.setup_ts, Leg.ENTRY)
            reason = RejectReason.POSITION_OPEN if s.symbol in held_at_start else block
            if reason is None:
                planned = planned_entry(s.side, s.trigger, self.cost)
                sz = size_entry(s.side, planned, s.initial_stop, size_eq, open_risk, n_open, cash, self.cost, risk)
                reason = sz.reject
            if reason is not None:
                out.append(SignalRejected(slot, s.symbol, s.side, reason, s.rsi, cid))
                continue
            open_risk += sz.planned_risk
            n_open += 1
            cash -= cash_needed(s.side, sz.qty, fill, self.cost, risk.margin_multiplier)
            out.append(_allocated(cid, s, sz.qty, planned, sz.planned_risk, slot, None))
            out.append(_entry_order(cid, s, sz.qty))
        return out

    # ------------------------------------------------------------------ flattening

    def halt(self, state: CoreState, reason: HaltReason) -> list[Event]:
        """Stop entries for the day and close every position at market (the kill switch)."""
        out: list[Event] = []
        if state.halted is None:
            out.append(Halted(reason, state.lifts))
        cancel: dict[str, str] = {}
        exits: list[OrderPlaced] = []
        self._flatten(state, ExitReason.KILL_SWITCH, cancel, exits)
        out.extend(_in_order(state, cancel, exits))
        return out

    # ------------------------------------------------------------------ the operator (live only)

    def stop_entries(self, state: CoreState, reason: str) -> list[Event]:
        """No new entries today; positions keep their stops and targets (reduce-only)."""
        return [] if state.reduce_only else [ReduceOnly(reason, state.lifts, operator=True)]

    def lift(self, state: CoreState, reason: str) -> list[Event]:
        """Entries again after the operator's own halt (the kill switch) or stop of new entries.
        Not lifted (empty answer): the daily loss limit's halt (a rule, not a choice), and a
        reduce-only TFL set itself (the journal and the broker disagree, an order that is not
        TFL's): it lasts until the next session's reconciliation, which sets it again if needed."""
        if state.halted is HaltReason.DAILY_LOSS_LIMIT:
            return []
        if state.reduce_only and not state.reduce_only_by_operator:
            return []
        if state.halted is None and not state.reduce_only:
            return []
        return [Lifted(reason, state.lifts + 1)]

    def exit_position(self, state: CoreState, symbol: str) -> list[Event]:
        """Close one position at market (reason OPERATOR): its other working orders are
        cancelled, as the kill switch does for every position. Empty if it is not held or
        is being exited already."""
        pos = state.book.positions.get(symbol)
        if pos is None or symbol in state.exit_pending:
            return []
        cancel: dict[str, str] = {}
        for rec in state.working.values():
            if rec.request.symbol == symbol and rec.leg is not Leg.EXIT and rec.leg is not Leg.FLATTEN:
                cancel.setdefault(rec.request.client_id, "operator exit")
        exit_order = self._exit(pos, ExitReason.OPERATOR, state)
        if exit_order is None:
            return []
        return list(_in_order(state, cancel, [exit_order]))

    def square_off(self, state: CoreState, at: int) -> list[Event]:
        """The live square-off, begun ahead of the square-off bar so that every exit is filled
        before the broker's own square-off: no entries from now on, every position closed at
        market (reason EOD), as at the square-off bar."""
        out: list[Event] = [] if state.squareoff_started else [SquareOffStarted(at)]
        cancel: dict[str, str] = {}
        exits: list[OrderPlaced] = []
        self._flatten(state, ExitReason.EOD, cancel, exits)
        out.extend(_in_order(state, cancel, exits))
        return out

    def _flatten(self, state: CoreState, reason: ExitReason, cancel: dict[str, str], out: list[OrderPlaced]) -> None:
        """Cancel every working order but exits and send a market exit for every position.
        A position whose earlier exit ended without closing it is left to the protection
        pass (``_flatten_again``), which never cancels a stop it could not replace."""
        why = "square-off" if reason is ExitReason.EOD else "flatten"
        positions = state.book.positions
        again = {
            (sym, pos.setup_ts)
            for sym, pos in positions.items()
            if sym not in state.exit_pending and self._was_exited(state, pos)
        }
        for rec in state.working.values():
            if (
                rec.leg is not Leg.EXIT
                and rec.leg is not Leg.FLATTEN
                and (rec.request.symbol, rec.setup_ts) not in again
            ):
                cancel.setdefault(rec.request.client_id, why)
        for sym, pos in sorted(positions.items()):
            if sym in state.exit_pending or (sym, pos.setup_ts) in again:
                continue
            exit_order = self._exit(pos, reason, state)
            if exit_order is not None:
                out.append(exit_order)

    def _exit(self, pos: Position, reason: ExitReason, state: CoreState, qty: int | None = None) -> OrderPlaced | None:
        """A market exit for the position (or ``qty`` of it); a new attempt when an earlier exit
        exists (None once every attempt has been used: the position keeps its stop)."""
        cid = self._fresh_id(state, pos, Leg.EXIT)
        if cid is None:
            return None
        return OrderPlaced(
            cid,
            Leg.EXIT,
            pos.symbol,
            -int(pos.side),
            OrderType.MARKET,
            pos.qty if qty is None else qty,
            None,
            None,
            None,
            pos.setup_ts,
            reason,
            self.plan.last_bar_ts,
        )

    # ------------------------------------------------------------------ fills

    def on_fill(self, state: CoreState, fill: Filled, now_slot: int) -> list[Event]:
        """What a fill (already applied) calls for: a new position's protective stop, a stop
        resized to the position, the other legs of a closed position cancelled, and an
        immediate exit for shares that arrived after the day's square-off or halt, or while
        the position was being exited. ``now_slot`` is the bar the world is in (a fill
        reported late is handled as of now, not as of when it traded)."""
        rec = state.orders.get(fill.cid)
        if rec is None or rec.leg is Leg.FLATTEN:
            return []
        sym = rec.request.symbol
        pos = state.book.positions.get(sym)
        out: list[Event] = []
        if pos is None or pos.setup_ts != rec.setup_ts:
            if rec.leg is not Leg.ENTRY:
                # The position is closed: its other legs must go (no broker-side one-cancels-other),
                # an exit too (it would open a position the other way).
                self._retire_legs(state, sym, rec.setup_ts, "position closed", out)
            return out
        if rec.leg is Leg.ENTRY:
            if rec.open and (self.stopped(state, now_slot) or sym in state.exit_pending):
                out.append(CancelRequested(rec.request.client_id, rec.cancel_requests + 1, "trading has stopped"))
        elif rec.leg is Leg.STOP:
            # A partly filled stop retires the target (it would sell shares that are gone).
            tgt = state.legs.get(sym, {}).get(Leg.TARGET)
            if tgt is not None and state.orders[tgt].open:
                out.append(CancelRequested(tgt, state.orders[tgt].cancel_requests + 1, "stop partly filled"))
        self._cover(state, pos, now_slot, out)
        return out

    def stopped(self, state: CoreState, now_slot: int) -> bool:
        """Whether trading has stopped for the day: halted, or the square-off has come."""
        return state.halted is not None or self._squaring_off(state, now_slot)

    def _squaring_off(self, state: CoreState, now_slot: int) -> bool:
        return now_slot >= self.plan.squareoff_ts or state.squareoff_started > 0

    def _stopped_why(self, state: CoreState, now_slot: int) -> ExitReason:
        """The exit reason of a position closed because trading has stopped."""
        return ExitReason.EOD if self._squaring_off(state, now_slot) else ExitReason.KILL_SWITCH

    def _cover(self, state: CoreState, pos: Position, now_slot: int, out: list[Event]) -> None:
        """The position as it stands now is covered: by working exits while it is being exited,
        or, once trading has stopped, when it has no stop; else by a stop of its size (a stop
        given back after a rejected exit keeps its shares until the next boundary flattens)."""
        stop = live_stop(state, pos.symbol)
        if pos.symbol in state.exit_pending or (self.stopped(state, now_slot) and stop is None):
            why = state.exit_pending.get(pos.symbol, (None, None))[0] or self._stopped_why(state, now_slot)
            self._exit_uncovered(state, pos, why, out)
            return
        self._protect(state, pos, out)

    def _exit_uncovered(self, state: CoreState, pos: Position, reason: ExitReason, out: list[Event]) -> None:
        """A market exit for the shares that no working exit and no live stop sells (never
        more: both could fill)."""
        uncovered = pos.qty - covered(state, pos)
        if uncovered > 0:
            exit_order = self._exit(pos, reason, state, uncovered)
            if exit_order is not None:
                out.append(exit_order)

    def protect(self, state: CoreState, symbol: str) -> list[Event]:
        """A stop for the shares of ``symbol``'s position that no working exit sells (after an
        exit was refused: never an exit at once, which the broker would refuse again)."""
        out: list[Event] = []
        pos = state.book.positions.get(symbol)
        if pos is not None:
            self._protect(state, pos, out, may_exit=False)
        return out

    def exit_uncovered(self, state: CoreState, symbol: str, reason: ExitReason) -> list[Event]:
        """A market exit for the shares of ``symbol``'s position that no working exit sells
        (a mis-sized exit was withdrawn; a fill grew the position while it was being exited)."""
        out: list[Event] = []
        pos = state.book.positions.get(symbol)
        if pos is not None:
            self._exit_uncovered(state, pos, reason, out)
        return out

    def enter_crossed(self, state: CoreState, cid: str, now_slot: int) -> list[Event]:
        """The broker refused an entry stop because the price was already beyond its trigger
        (a gap through it, or a move before the order arrived). The backtest fills such an
        entry at once (at the bar's open, or the trigger when the bar opened short of it), so
        it goes in at market now, with the same allocation, while its bar lasts and entries
        are still taken."""
        a = allocation_of(state, cid)
        rec = state.orders.get(cid)
        if a is None or rec is None or a.reject is not None or now_slot != a.entry_ts:
            return []
        if self.stopped(state, now_slot) or state.reduce_only or a.symbol in state.book.positions:
            return []
        attempt = _next_attempt(state, a.symbol, a.setup_ts, Leg.ENTRY)
        if attempt >= MAX_ATTEMPTS:
            return []
        again = client_id(self.plan.date, a.symbol, a.setup_ts, Leg.ENTRY, attempt)
        side = int(a.side)
        return [
            OrderPlaced(
                again, Leg.ENTRY, a.symbol, side, OrderType.MARKET, rec.request.qty, None, None, None, a.setup_ts
            )
        ]

    def exit_crossed(self, state: CoreState, symbol: str) -> list[Event]:
        """The broker refused a stop (or a stop move) because the price has already crossed
        its trigger: the position is closed at market now, as the backtest closes it on that
        bar (reason STOP or TRAIL). Its stop (still resting at the old level after a refused
        move) and its target are cancelled first; the world sends the exit only once that cancel is confirmed."""
        out: list[Event] = []
        pos = state.book.positions.get(symbol)
        if pos is None or symbol in state.exit_pending:
            return out
        self._retire_legs(state, symbol, pos.setup_ts, "the price crossed its stop", out)
        qty = pos.qty - exiting(state, pos)
        exit_order = self._exit(pos, pos.stop_reason, state, qty) if qty > 0 else None
        if exit_order is not None:
            out.append(exit_order)
        return out

    def _retire_legs(self, state: CoreState, symbol: str, setup_ts: int, why: str, out: list[Event]) -> None:
        for other in state.working.values():
            if (
                other.request.symbol == symbol
                and other.setup_ts == setup_ts
                and other.leg in (Leg.STOP, Leg.TARGET, Leg.EXIT)
                and other.status is not OrderStatus.PENDING_CANCEL
            ):
                out.append(CancelRequested(other.request.client_id, other.cancel_requests + 1, why))

    def _protect(self, state: CoreState, pos: Position, out: list[Event], *, may_exit: bool = True) -> None:
        """The position's protective stop rests at the broker for the shares no exit sells
        (normally all of them). The stop it has, unless it is over, is resized in place (one
        not sent yet too); one being cancelled is left alone, as it may still be live (two
        stops could both fill), and the trader asks about it. A stop that is over is replaced
        by a new attempt; once every attempt is used, the position is closed at market."""
        size = pos.qty - exiting(state, pos)
        if size <= 0:
            return
        stop = live_stop(state, pos.symbol)
        if stop is not None:
            trigger = stop.request.trigger
            if stop.status is not OrderStatus.PENDING_CANCEL and stop.remaining != size and trigger is not None:
                out.append(StopMoved(stop.request.client_id, stop.modifications + 1, trigger, stop.filled + size))
            return
        cid = self._fresh_id(state, pos, Leg.STOP)
        if cid is None:
            if may_exit and pos.symbol not in state.exit_pending:
                exit_order = self._exit(pos, ExitReason.MANUAL, state)
                if exit_order is not None:
                    out.append(exit_order)
            return
        out.append(
            OrderPlaced(
                cid,
                Leg.STOP,
                pos.symbol,
                -int(pos.side),
                OrderType.STOP,
                size,
                pos.stop,
                None,
                oco_group(self.plan.date, pos.symbol, pos.setup_ts),
                pos.setup_ts,
            )
        )

    def _was_exited(self, state: CoreState, pos: Position) -> bool:
        """Whether an exit was ever decided for the position (its first attempt exists)."""
        return client_id(self.plan.date, pos.symbol, pos.setup_ts, Leg.EXIT) in state.orders

    def _flatten_again(self, state: CoreState, pos: Position, now_slot: int, out: list[Event]) -> None:
        """After the square-off or a halt, a position whose exit was refused or ended kept a
        stop meanwhile: that stop (and any target) is cancelled and the shares are exited
        again. A stop already being cancelled may still sell: its shares wait for its answer.
        The world sends the exit only once the cancels before it are confirmed."""
        why = self._stopped_why(state, now_slot)
        stop = live_stop(state, pos.symbol)
        waiting = stop.remaining if stop is not None and stop.status is OrderStatus.PENDING_CANCEL else 0
        qty = pos.qty - exiting(state, pos) - waiting
        exit_order = self._exit(pos, why, state, qty) if qty > 0 else None
        last_stop = stop is not None and waiting == 0 and self._fresh_id(state, pos, Leg.STOP) is None
        if qty > 0 and (exit_order is None or last_stop):
            # Every exit attempt is used, or the stop is the last one (a refused exit could
            # not get another back): the stop stays rather than leave the shares bare.
            self._protect(state, pos, out, may_exit=False)
            return
        self._retire_legs(state, pos.symbol, pos.setup_ts, "square-off" if why is ExitReason.EOD else "flatten", out)
        if exit_order is not None:
            out.append(exit_order)

    def _fresh_id(self, state: CoreState, pos: Position, leg: Leg) -> str | None:
        """The client id of the position's next order of ``leg``: attempt 0, or the next unused
        attempt (a replacement; a position reopened by a late fill). None once all are used."""
        cid = client_id(self.plan.date, pos.symbol, pos.setup_ts, leg)
        if cid not in state.orders:
            return cid
        attempt = _next_attempt(state, pos.symbol, pos.setup_ts, leg)
        if attempt >= MAX_ATTEMPTS:
            return None
        return client_id(self.plan.date, pos.symbol, pos.setup_ts, leg, attempt)

    def ensure_protection(self, state: CoreState, now_slot: int, wait: Collection[str] = ()) -> list[Event]:
        """Every open position is covered as it stands now (after a restart, a rejection, a
        late fill, a crash between a fill and its reaction): a working stop of its size, or,
        while it is being exited, exits for every share no stop sells. Once trading has
        stopped, a position whose exit ended without closing it is flattened again. No exit
        is sent for a symbol in ``wait`` (the world backs off exits that were refused); it
        keeps its stop meanwhile. Legs of closed positions are cancelled, and a target larger
        than its position too."""
        out: list[Event] = []
        positions = state.book.positions
        for sym, pos in sorted(positions.items()):
            pending = state.exit_pending.get(sym)
            if pending is not None:
                self._exit_uncovered(state, pos, pending[0], out)
            elif self.stopped(state, now_slot) and self._was_exited(state, pos) and sym not in wait:
                self._flatten_again(state, pos, now_slot, out)
            else:
                self._protect(state, pos, out, may_exit=sym not in wait)
        for rec in list(state.working.values()):
            if rec.leg not in (Leg.STOP, Leg.TARGET, Leg.EXIT) or rec.status is OrderStatus.PENDING_CANCEL:
                continue
            held = positions.get(rec.request.symbol)
            if held is None or held.setup_ts != rec.setup_ts:
                out.append(CancelRequested(rec.request.client_id, rec.cancel_requests + 1, "position closed"))
            elif rec.leg is Leg.TARGET and rec.remaining > held.qty:
                out.append(CancelRequested(rec.request.client_id, rec.cancel_requests + 1, "position shrank"))
            elif rec.leg is Leg.EXIT and rec.status not in UNACKNOWLEDGED and exiting(state, held) > held.qty:
                # The broker closed part of the position itself: an exit for more than is held
                # would open one the other way. It is withdrawn; the rest is exited again. (One
                # not sent yet is checked as it is sent, and replaced at once: ``_still_open``.)
                out.append(CancelRequested(rec.request.client_id, rec.cancel_requests + 1, "position shrank"))
        return out

    def flatten_stray(self, state: CoreState) -> list[Event]:
        """Market orders for shares no position accounts for, unless one is already working.
        The world sends one only after the broker confirms it holds those shares."""
        out: list[Event] = []
        for sym, (n, _) in sorted(state.book.stray.items()):
            if any(r.leg is Leg.FLATTEN and r.request.symbol == sym for r in state.working.values()):
                continue
            attempt = _next_attempt(state, sym, self.plan.open_ts, Leg.FLATTEN)
            if attempt >= MAX_ATTEMPTS:
                continue
            cid = client_id(self.plan.date, sym, self.plan.open_ts, Leg.FLATTEN, attempt)
            out.append(
                OrderPlaced(
                    cid,
                    Leg.FLATTEN,
                    sym,
                    -1 if n > 0 else 1,
                    OrderType.MARKET,
                    abs(n),
                    None,
                    None,
                    None,
                    self.plan.open_ts,
                )
            )
        return out


def _in_order(state: CoreState, cancel: dict[str, str], exits: Sequence[OrderPlaced]) -> list[Event]:
    """A flatten's requests, position by position (its stop and target cancelled, then its
    exit: the world sends an exit only once no stop of its position can still sell), then the
    cancels of entries and of anything else. The first exits reach the broker after a few
    requests rather than after every cancel of the book."""
    legs: dict[str, list[str]] = {}
    others: list[str] = []
    exiting = {e.symbol for e in exits}
    for cid in cancel:
        rec = state.orders[cid]
        if rec.leg is not Leg.ENTRY and rec.request.symbol in exiting:
            legs.setdefault(rec.request.symbol, []).append(cid)
        else:
            others.append(cid)

    def ask(cid: str) -> CancelRequested:
        return CancelRequested(cid, state.orders[cid].cancel_requests + 1, cancel[cid])

    out: list[Event] = []
    for e in exits:
        out.extend(ask(cid) for cid in legs.pop(e.symbol, []))
        out.append(e)
    out.extend(ask(cid) for cid in others)
    return out


def _allocated(
    cid: str, s: Setup, qty: int, planned: float, planned_risk: float, entry_ts: int, reject: RejectReason | None
) -> Allocated:
    return Allocated(
        cid,
        s.symbol,
        s.side,
        s.trigger,
        s.initial_stop,
        qty,
        planned,
        planned_risk,
        s.rsi,
        s.setup_ts,
        entry_ts,
        reject,
    )


def _entry_order(cid: str, s: Setup, qty: int) -> OrderPlaced:
    """A stop entry resting for one bar at the setup's trigger."""
    return OrderPlaced(cid, Leg.ENTRY, s.symbol, int(s.side), OrderType.STOP, qty, s.trigger, None, None, s.setup_ts)


UNACKNOWLEDGED = frozenset({OrderStatus.INTENT, OrderStatus.UNKNOWN})  # the broker may not have it


def exiting(state: CoreState, pos: Position, *, acknowledged: bool = False) -> int:
    """Shares of the position that working exit orders are already selling (or buying back);
    with ``acknowledged``, only orders the broker has taken."""
    return sum(
        r.remaining
        for r in state.working.values()
        if r.leg is Leg.EXIT
        and r.request.symbol == pos.symbol
        and r.setup_ts == pos.setup_ts
        and not (acknowledged and r.status in UNACKNOWLEDGED)
    )


def _next_attempt(state: CoreState, symbol: str, setup_ts: int, leg: Leg) -> int:
    n = 0
    for rec in state.orders.values():
        if rec.leg is leg and rec.request.symbol == symbol and rec.setup_ts == setup_ts:
            n = max(n, attempt_of(rec.request.client_id) + 1)
    return n


def _equity(state: CoreState, new_marks: dict[str, float]) -> float:
    """Equity at the new marks (the state's own marks are only changed by events)."""
    return state.book.equity(state.marks, new_marks)


def live_stop(state: CoreState, symbol: str) -> OrderRecord | None:
    """The position's current stop unless it is over: about to be sent, working, of unknown
    fate, or being cancelled. Until the broker says it is over, it may still sell."""
    cid = state.legs.get(symbol, {}).get(Leg.STOP)
    if cid is None:
        return None
    rec = state.orders[cid]
    return rec if rec.open else None


def covered(state: CoreState, pos: Position, *, acknowledged: bool = False) -> int:
    """Shares of the position that working exits and its live stop would sell; with
    ``acknowledged``, only orders the broker has taken (not one decided but never sent, or
    one whose placement got no answer)."""
    stop = live_stop(state, pos.symbol)
    if stop is not None and acknowledged and stop.status in UNACKNOWLEDGED:
        stop = None
    return exiting(state, pos, acknowledged=acknowledged) + (stop.remaining if stop is not None else 0)
