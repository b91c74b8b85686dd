"""The trading engine: the strategy core driven by bar closes and broker events.

All decisions happen at 15-minute boundaries, in the order the backtester uses:
(1) expire the previous bar's unfilled entry orders; (2) feed the closed bars to the
per-symbol state, ratchet stops and place targets; (3) square off at 15:15, or flatten
when the daily loss limit or the kill switch says so; (4) size the next bar's setups
(:func:`~tfl.strategy.allocation.allocate`) and rest their stop-entry orders.
Between boundaries only the broker acts (stops, targets, entries fill on ticks) and the
engine reacts to fills: a filled entry gets its protective stop at once.

Every change goes through :meth:`Engine.emit`: journal first (idempotent key), then the
reducer. Orders are journalled as intents before the broker call; an order whose outcome
is unknown is looked up by its tag and never re-sent blind.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tfl.calendar.nse import Session
from tfl.costs import CostModel
from tfl.domain import Bias, ExitReason, Side
from tfl.live.bars import Bar
from tfl.live.broker import Broker, BrokerError, BrokerEvent, BrokerOrder, BrokerTimeoutError, Fill, OrderUpdate
from tfl.live.faults import CrashPoints
from tfl.live.journal import Event, Journal
from tfl.live.orders import Leg, OrderRecord, OrderRequest, OrderState, OrderType, client_id
from tfl.live.state import TraderState, apply, slot_of
from tfl.settings import Settings, parse_hhmm
from tfl.strategy.allocation import allocate, loss_limit_hit
from tfl.strategy.rules import Setup, ratchet
from tfl.strategy.symbol_state import SymbolState
from tfl.timeutil import epoch_of_ist, iso_ist

log = logging.getLogger("tfl.engine")
BAR_SECONDS = 900

_BROKER_STATE = {
    "PENDING": OrderState.ACCEPTED,
    "PARTIAL": OrderState.PARTIALLY_FILLED,
    "FILLED": OrderState.FILLED,
    "CANCELLED": OrderState.CANCELLED,
    "REJECTED": OrderState.REJECTED,
}


@dataclass
class Gate:
    """Why new entries may not be taken right now (exits are never gated)."""

    reconciled: bool = False
    feed_fresh: bool = False  # set by the first tick
    token_ok: bool = True
    reasons: list[str] = field(default_factory=list)

    def open(self) -> bool:
        return self.reconciled and self.feed_fresh and self.token_ok


class Engine:
    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        broker: Broker,
        session: Session,
        states: dict[str, SymbolState],
        *,
        bias: Bias,
        alert: Callable[[str, str], None] | None = None,
        on_order_latency: Callable[[float, str], None] | None = None,
    ) -> None:
        self.s = settings
        self.journal = journal
        self.broker = broker
        self.session = session
        self.states = states
        self.bias = bias
        self.cost = CostModel(settings.costs)
        self.state = TraderState.fresh(settings)
        self.gate = Gate()
        self._alert = alert or (lambda level, msg: None)
        self._on_latency = on_order_latency  # wall-clock only: never journaled, never decides anything
        self.date = session.date
        self.sid = session.date.isoformat()
        self.open_ts = epoch_of_ist(session.date, session.open_minute)
        close_min = min(session.close_minute, 15 * 60 + 30)
        self.close_ts = epoch_of_ist(session.date, close_min)
        self.last_bar_ts = self.close_ts - BAR_SECONDS
        squareoff = session.squareoff_minute(parse_hhmm(settings.strategy.squareoff_time))
        self.squareoff_ts = epoch_of_ist(session.date, squareoff)
        self._setups: dict[int, list[Setup]] = {}  # entry slot -> setups from the bar before it
        self.recovered = False
        self.squared_off = False
        self._loaded: set[str] = set()  # orders known from the journal at start: look them up before sending
        self._reconcile_failed = False
        self.crash: CrashPoints | None = None

    # ------------------------------------------------------------------ journal

    def load(self) -> None:
        """Rebuild the state from every event in the journal (all sessions: cash carries over)."""
        n = 0
        for ev in self.journal.events():
            apply(self.state, ev)
            n += 1
        self.recovered = n > 0
        self._loaded = set(self.state.orders)
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

    def emit(self, kind: str, key: str, data: dict[str, Any], ts: int) -> bool:
        ev = Event(f"{self.sid}:{key}", self.sid, ts, kind, data)
        new = self.journal.append(ev)
        if self.crash is not None:
            self.crash.hit(f"journal:{kind}")
        if new:
            apply(self.state, ev)
        return new

    # ------------------------------------------------------------------ session

    def open_session(self, ts: int, bias_reason: str) -> None:
        if self.sid in self.state.closed_sessions or self.state.session == self.sid:
            return
        marks = {sym: st.last_close for sym, st in sorted(self.states.items()) if st.last_close == st.last_close}
        data: dict[str, Any] = {
            "bias": self.bias.value,
            "bias_reason": bias_reason,
            "capital": self.s.backtest.capital,
            "marks": marks,
            "settings": self.s.to_dict(),
        }
        if not self.state.book.positions and not any(r.open for r in self.state.orders.values()):
            # A flat book's cash is the day's starting equity, exactly (a Decimal as text): one
            # session's events then suffice for its report. Anything carried over (a day that
            # ended unflat) leaves it out, and the report reads the whole journal.
            data["cash"] = str(self.state.book.cash)
        self.emit("SESSION_OPEN", "open", data, ts)
        self.journal.flush()
        log.info(
            "session open",
            extra={
                "fields": {
                    "session": self.sid,
                    "bias": self.bias.value,
                    "reason": bias_reason,
                    "equity": round(self.state.equity(), 2),
                }
            },
        )

    @property
    def done(self) -> bool:
        return self.sid in self.state.closed_sessions

    # ------------------------------------------------------------------ the 15-minute boundary

    def on_slot(self, boundary: int, bars: list[Bar]) -> None:
        if boundary <= self.state.last_slot or self.done:
            return
        if not self.gate.reconciled:
            self.reconcile(boundary)
        self.resolve_unknown(boundary)
        self.ensure_protection(boundary)
        self._expire_entries(boundary)
        setups: list[Setup] = []
        prev = boundary - BAR_SECONDS
        pending = {
            a["symbol"]: (cid, a)
            for cid, a in self.state.allocations.items()
            if a["reject"] and int(a["entry_ts"]) == prev
        }
        for bar in bars:
            st = self.states.get(bar.symbol)
            if st is None:
                continue
            setup = st.on_bar(bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume)
            if setup is not None and bar.start + BAR_SECONDS == boundary:
                setups.append(
                    Setup(
                        setup.symbol,
                        setup.side,
                        setup.setup_ts,
                        boundary,
                        setup.pattern_high,
                        setup.pattern_low,
                        setup.rsi,
                    )
                )
            if bar.start == prev:
                self._reject_if_triggered(bar, pending)
            self._manage_position(bar, st.atr, boundary)
        if boundary >= self.squareoff_ts:
            self.square_off(boundary, ExitReason.EOD)
        else:
            if not self.state.halted and loss_limit_hit(self.state.equity(), self.state.day_start_equity, self.s.risk):
                self.halt(boundary, "daily loss limit")
            if self.state.halted:
                self.square_off(boundary, ExitReason.KILL_SWITCH)
            else:
                self._enter(boundary, setups)
        self.emit("SLOT", f"slot:{boundary}", {"slot": boundary, "equity": round(self.state.equity(), 4)}, boundary)
        self.journal.flush()

    def _reject_if_triggered(self, bar: Bar, pending: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """A setup that got no order (no slot, budget, cash...) but did trigger is a rejection."""
        found = pending.get(bar.symbol)
        if found is None:
            return
        cid, a = found
        side = Side(int(a["side"]))
        if bar.high >= a["trigger"] if side is Side.LONG else bar.low <= a["trigger"]:
            self.emit(
                "REJECT",
                f"reject:{cid}",
                {"ts": bar.start, "symbol": bar.symbol, "side": int(side), "reason": a["reject"], "rsi": a["rsi"]},
                bar.start,
            )

    def _manage_position(self, bar: Bar, atr: float, boundary: int) -> None:
        self.state.marks[bar.symbol] = bar.close
        pos = self.state.book.positions.get(bar.symbol)
        if pos is None:
            return
        if bar.symbol in self.state.exit_pending:
            self.emit("MARKS", f"mark:{bar.symbol}:{bar.start}", {"marks": {bar.symbol: bar.close}}, boundary)
            return
        old_stop = pos.stop
        probe = _copy_levels(pos)
        ratchet(probe, bar.high, bar.low, atr, self.s.strategy)
        self.emit(
            "LEVELS",
            f"levels:{bar.symbol}:{bar.start}",
            {"symbol": bar.symbol, "stop": probe.stop, "best": probe.best, "mark": bar.close},
            boundary,
        )
        legs = self.state.position_legs.get(bar.symbol, {})
        stop_cid = legs.get(Leg.STOP.value)
        if stop_cid and pos.stop != old_stop:
            self._modify(stop_cid, boundary, trigger=pos.stop)
        if pos.entry_ts == bar.start and Leg.TARGET.value not in legs:
            cid = client_id(self.date, bar.symbol, pos.setup_ts, Leg.TARGET)
            self.submit(
                OrderRequest(
                    cid,
                    bar.symbol,
                    -int(pos.side),
                    OrderType.LIMIT,
                    pos.qty,
                    limit=pos.target,
                    oco=self._oco(pos.setup_ts, bar.symbol),
                ),
                Leg.TARGET,
                boundary,
                setup_ts=pos.setup_ts,
            )

    def _enter(self, boundary: int, setups: list[Setup]) -> None:
        if not self.gate.open() or self.state.reduce_only:
            if setups:
                log.warning(
                    "entries blocked",
                    extra={
                        "fields": {
                            "slot": iso_ist(boundary),
                            "setups": len(setups),
                            "reconciled": self.gate.reconciled,
                            "feed_fresh": self.gate.feed_fresh,
                            "token_ok": self.gate.token_ok,
                            "reduce_only": self.state.reduce_only,
                        }
                    },
                )
            return
        if boundary >= self.last_bar_ts:  # the session's last bar is its square-off bar: no entries on it
            return
        allowed = [s for s in setups if self.bias.allows(s.side)]
        if not allowed:
            return
        book = self.state.book
        allocs = allocate(
            allowed,
            equity=self.state.equity(),
            initial_capital=self.s.backtest.capital,
            cash=float(book.cash),
            open_risk=book.open_risk,
            open_positions=len(book.positions),
            held=set(book.positions),
            cost=self.cost,
            risk=self.s.risk,
        )
        for a in allocs:
            s = a.setup
            cid = client_id(self.date, s.symbol, s.setup_ts, Leg.ENTRY)
            self.emit(
                "ALLOC",
                f"alloc:{cid}",
                {
                    "cid": cid,
                    "symbol": s.symbol,
                    "side": int(s.side),
                    "trigger": s.trigger,
                    "stop": s.initial_stop,
                    "qty": a.qty,
                    "planned": a.planned,
                    "planned_risk": a.planned_risk,
                    "rsi": s.rsi,
                    "setup_ts": s.setup_ts,
                    "entry_ts": s.entry_ts,
                    "reject": a.reject.value if a.reject else "",
                },
                boundary,
            )
            if a.reject is None:
                self.submit(
                    OrderRequest(cid, s.symbol, int(s.side), OrderType.STOP, a.qty, trigger=s.trigger),
                    Leg.ENTRY,
                    boundary,
                    setup_ts=s.setup_ts,
                )

    def _expire_entries(self, boundary: int) -> None:
        for cid, rec in list(self.state.orders.items()):
            if rec.leg is Leg.ENTRY and rec.open and int(self.state.allocations[cid]["entry_ts"]) < boundary:
                self._cancel(cid, boundary)

    # ------------------------------------------------------------------ flatten

    def square_off(self, boundary: int, reason: ExitReason) -> None:
        """Cancel every working order and close every position at market."""
        if reason is ExitReason.EOD:
            self.squared_off = True
        for cid, rec in list(self.state.orders.items()):
            if rec.open and rec.leg is not Leg.EXIT:
                self._cancel(cid, boundary)
        exit_ts = min(boundary, self.last_bar_ts) if reason is ExitReason.EOD else boundary
        for sym, pos in sorted(self.state.book.positions.items()):
            if sym in self.state.exit_pending:
                continue
            cid = client_id(self.date, sym, pos.setup_ts, Leg.EXIT)
            self.submit(
                OrderRequest(cid, sym, -int(pos.side), OrderType.MARKET, pos.qty),
                Leg.EXIT,
                boundary,
                reason=reason.value,
                exit_ts=exit_ts,
                setup_ts=pos.setup_ts,
            )

    def halt(self, ts: int, reason: str) -> None:
        if self.state.halted:
            return
        self.emit("HALT", f"halt:{reason}", {"reason": reason}, ts)
        self.journal.flush()
        log.critical("trading halted: flattening, no new entries today", extra={"fields": {"reason": reason}})
        self._alert("CRITICAL", f"TFL halted ({reason}): positions are being flattened")

    # ------------------------------------------------------------------ orders

    def _oco(self, setup_ts: int, symbol: str) -> str:
        return client_id(self.date, symbol, setup_ts, Leg.STOP)[:-1] + "G"

    def submit(self, req: OrderRequest, leg: Leg, ts: int, **extra: Any) -> None:
        """Journal the intent, then send it; an existing or unknown order is looked up first."""
        data = {
            "cid": req.client_id,
            "leg": leg.value,
            "symbol": req.symbol,
            "side": req.side,
            "type": req.type.value,
            "qty": req.qty,
            "trigger": req.trigger,
            "limit": req.limit,
            "oco": req.oco,
            **extra,
        }
        self.emit("INTENT", f"intent:{req.client_id}", data, ts)
        rec = self.state.orders[req.client_id]
        if rec.state not in (OrderState.INTENT, OrderState.UNKNOWN):
            return  # already sent before a restart: its fate is known
        if (req.client_id in self._loaded or rec.state is OrderState.UNKNOWN) and self._lookup(rec, ts):
            return
        self._send(rec, ts)

    def _send(self, rec: OrderRecord, ts: int) -> None:
        req = rec.request
        self.journal.flush()  # write-ahead: the intent is durable before the broker hears of it
        started = time.perf_counter()
        try:
            try:
                order = self.broker.place(req, ts)
            finally:
                if self._on_latency is not None:
                    self._on_latency((time.perf_counter() - started) * 1000.0, rec.leg.value)
            if self.crash is not None:
                self.crash.hit("broker")
        except BrokerError as exc:
            self._set_state(rec, OrderState.REJECTED, ts, reason=str(exc))
            level = "ERROR" if rec.leg in (Leg.STOP, Leg.EXIT) else "WARNING"
            log.log(
                logging.getLevelName(level),
                "order rejected",
                extra={"fields": {"cid": req.client_id, "symbol": req.symbol, "reason": str(exc)}},
            )
            if rec.leg in (Leg.STOP, Leg.EXIT):
                self._alert("ERROR", f"{rec.leg.name} order for {req.symbol} rejected: {exc}")
            return
        except BrokerTimeoutError as exc:
            self._set_state(rec, OrderState.UNKNOWN, ts, reason=str(exc))
            log.error(
                "order outcome unknown: will look it up by tag, never re-send blind",
                extra={"fields": {"cid": req.client_id, "symbol": req.symbol}},
            )
            return
        self._adopt(rec, order, ts)

    def _lookup(self, rec: OrderRecord, ts: int) -> bool:
        try:
            order = self.broker.order_by_tag(rec.request.client_id)
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("order lookup failed", extra={"fields": {"cid": rec.request.client_id, "error": str(exc)}})
            if rec.state is OrderState.INTENT:
                self._set_state(rec, OrderState.UNKNOWN, ts, reason="lookup failed")
            return True  # still unknown: try again later, do not send
        if order is None:
            if rec.state is OrderState.UNKNOWN:
                self._set_state(rec, OrderState.CANCELLED, ts, reason="never reached the broker")
                return True
            return False
        self._adopt(rec, order, ts)
        return True

    def _adopt(self, rec: OrderRecord, order: BrokerOrder, ts: int) -> None:
        """Take the broker's word for an order: its state and any fills we have not booked."""
        new = _BROKER_STATE.get(order.status, OrderState.ACCEPTED)
        if rec.state in (OrderState.INTENT, OrderState.UNKNOWN, OrderState.SUBMITTED):
            self._set_state(
                rec,
                OrderState.ACCEPTED if new is not OrderState.REJECTED else new,
                ts,
                broker_id=order.broker_id,
                reason=order.reason,
            )
        if order.filled > rec.filled:
            try:
                fills = self.broker.fills()
            except (BrokerError, BrokerTimeoutError) as exc:
                log.error("could not read the broker's fills", extra={"fields": {"error": str(exc)}})
                fills = []
            for f in fills:
                if f.tag == order.tag:
                    self.on_fill(f)
        if new in (OrderState.CANCELLED, OrderState.FILLED) and rec.state is not new and rec.open:
            self._set_state(rec, new, ts)

    def _set_state(self, rec: OrderRecord, new: OrderState, ts: int, **extra: Any) -> None:
        if rec.state is new:
            return
        self.emit(
            "ORDER",
            f"order:{rec.request.client_id}:{new.value}",
            {"cid": rec.request.client_id, "state": new.value, **{k: v for k, v in extra.items() if v}},
            ts,
        )

    def _resolve_intent(self, rec: OrderRecord, ts: int) -> None:
        """An intent the journal has but no answer for: the process died around the broker call.

        If the broker has it (by tag), adopt it; if not, it was never sent: send it now,
        unless it was an entry whose bar is already over.
        """
        if self._lookup(rec, ts):
            return
        if rec.leg is Leg.ENTRY:
            alloc = self.state.allocations.get(rec.request.client_id)
            if alloc is None or int(alloc["entry_ts"]) + BAR_SECONDS <= ts:
                self._set_state(rec, OrderState.CANCELLED, ts, reason="not sent before its bar ended")
                return
        log.warning(
            "sending an order that was journalled but never reached the broker",
            extra={"fields": {"cid": rec.request.client_id, "leg": rec.leg.name}},
        )
        self._send(rec, ts)

    def _cancel(self, cid: str, ts: int) -> None:
        rec = self.state.orders[cid]
        if not rec.open:
            return
        if rec.state in (OrderState.INTENT, OrderState.UNKNOWN):
            if not self._lookup(rec, ts):  # never sent: nothing to cancel
                self._set_state(rec, OrderState.CANCELLED, ts, reason="not sent")
                return
            if not rec.open:
                return
        self.journal.flush()
        try:
            order = self.broker.cancel(cid, ts)
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("cancel failed", extra={"fields": {"cid": cid, "error": str(exc)}})
            return
        self._adopt(rec, order, ts)

    def _modify(self, cid: str, ts: int, *, trigger: float) -> None:
        rec = self.state.orders[cid]
        if not rec.open:
            return
        n = rec.modifications + 1
        self.emit("MODIFY", f"modify:{cid}:{ts}", {"cid": cid, "n": n, "trigger": trigger}, ts)
        self.journal.flush()
        try:
            self.broker.modify(cid, ts, trigger=trigger)
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("stop modification failed", extra={"fields": {"cid": cid, "error": str(exc)}})

    def resolve_unknown(self, ts: int) -> None:
        for rec in list(self.state.orders.values()):
            if rec.state is OrderState.UNKNOWN:
                self._lookup(rec, ts)

    # ------------------------------------------------------------------ broker events

    def on_broker_events(self, events: Iterable[BrokerEvent]) -> None:
        for ev in events:
            if isinstance(ev, Fill):
                self.on_fill(ev)
            elif isinstance(ev, OrderUpdate):
                self.on_update(ev)
        self.journal.flush()

    def on_update(self, u: OrderUpdate) -> None:
        rec = self.state.orders.get(u.tag)
        if rec is None:
            log.error("update for an order that is not ours", extra={"fields": {"tag": u.tag, "status": u.status}})
            return
        new = _BROKER_STATE.get(u.status)
        if new is None or not rec.open or new is rec.state or new is OrderState.PARTIALLY_FILLED:
            return
        if new is OrderState.FILLED and rec.filled < rec.request.qty:
            return  # the fills will say so
        ts = self.state.last_slot or self.open_ts
        if rec.state in (OrderState.INTENT, OrderState.UNKNOWN):
            self._set_state(rec, OrderState.ACCEPTED, ts, broker_id=u.broker_id)
        self._set_state(rec, new, ts, reason=u.reason)

    def on_fill(self, f: Fill) -> None:
        if f.fill_id in self.state.fills_seen:
            return
        rec = self.state.orders.get(f.tag)
        if rec is None:
            log.error("fill for an order that is not ours: reduce-only", extra={"fields": {"tag": f.tag}})
            self.set_reduce_only(f.ts, f"unknown fill {f.tag}")
            return
        if rec.state in (OrderState.INTENT, OrderState.UNKNOWN):
            self._set_state(rec, OrderState.ACCEPTED, f.ts, broker_id=f.broker_id)
        slot = slot_of(f.ts, self.open_ts)
        before = self.state.book.positions.get(rec.request.symbol)
        had_position = before is not None
        self.emit(
            "FILL",
            f"fill:{f.fill_id}",
            {"fill_id": f.fill_id, "cid": f.tag, "qty": f.qty, "price": f.price, "ts": f.ts, "slot": slot},
            f.ts,
        )
        done = rec.filled >= rec.request.qty
        self._set_state(rec, OrderState.FILLED if done else OrderState.PARTIALLY_FILLED, f.ts)
        sym = rec.request.symbol
        pos = self.state.book.positions.get(sym)
        if f.fill_id in self.state.orphan_fills:
            log.critical(
                "an exit order filled for a position that was already closed",
                extra={"fields": {"symbol": sym, "cid": f.tag, "qty": f.qty}},
            )
            self.set_reduce_only(f.ts, f"stray fill {f.tag}")
            self._alert("CRITICAL", f"TFL: a stale exit order for {sym} filled ({f.qty}); check the broker position")
            return
        if rec.leg is Leg.ENTRY and pos is not None:
            self._protect(sym, f.ts, new_position=not had_position)
        elif pos is None and rec.leg is not Leg.ENTRY:
            if before is not None:  # brokers without OCO: the position's other legs must go now
                self._cancel_legs(sym, before.setup_ts, f.ts)
            t = self.state.book.trades[-1]
            log.info(
                "trade closed",
                extra={
                    "fields": {
                        "symbol": sym,
                        "side": t.side.label,
                        "qty": t.qty,
                        "entry": round(t.entry_price, 4),
                        "exit": round(t.exit_price, 4),
                        "reason": t.exit_reason.value,
                        "pnl": round(t.pnl, 2),
                    }
                },
            )

    def _protect(self, sym: str, ts: int, *, new_position: bool) -> None:
        """A filled entry gets a protective stop at once, resting at the broker."""
        pos = self.state.book.positions[sym]
        legs = self.state.position_legs.get(sym, {})
        old = legs.get(Leg.STOP.value)
        if old is not None and not new_position:
            rec = self.state.orders[old]
            if rec.open and rec.request.qty == pos.qty:
                return
            if rec.open:
                self._cancel(old, ts)
        attempt = 0 if old is None else int(old[-1], 36) + 1
        cid = client_id(self.date, sym, pos.setup_ts, Leg.STOP, attempt)
        self.submit(
            OrderRequest(
                cid, sym, -int(pos.side), OrderType.STOP, pos.qty, trigger=pos.stop, oco=self._oco(pos.setup_ts, sym)
            ),
            Leg.STOP,
            ts,
            setup_ts=pos.setup_ts,
        )

    def _cancel_legs(self, sym: str, setup_ts: int, ts: int) -> None:
        for cid, rec in list(self.state.orders.items()):
            if (
                rec.open
                and rec.request.symbol == sym
                and rec.leg in (Leg.STOP, Leg.TARGET)
                and self.state.leg_owner.get(cid) == setup_ts
            ):
                self._cancel(cid, ts)

    def ensure_protection(self, ts: int) -> None:
        """Every open position has a working stop (after a restart or a rejected stop)."""
        for sym in sorted(self.state.book.positions):
            if sym in self.state.exit_pending:
                continue
            legs = self.state.position_legs.get(sym, {})
            cid = legs.get(Leg.STOP.value)
            if cid is None or not self.state.orders[cid].open:
                log.warning("position without a working stop: placing one", extra={"fields": {"symbol": sym}})
                self._protect(sym, ts, new_position=cid is None)

    def set_reduce_only(self, ts: int, reason: str) -> None:
        if not self.state.reduce_only:
            self.emit("REDUCE_ONLY", f"reduce_only:{reason}", {"reason": reason}, ts)
            self.journal.flush()
            log.error("reduce-only: no new entries until an operator clears it", extra={"fields": {"reason": reason}})
            self._alert("ERROR", f"TFL is reduce-only: {reason}")

    # ------------------------------------------------------------------ reconciliation

    def reconcile(self, ts: int) -> list[str]:
        """Compare the journal with the broker; adopt what is ours, flag what is not.

        If the broker cannot be asked (down, rate-limited), entries stay blocked and the
        next boundary tries again; exits and protective stops are still attempted.
        """
        try:
            return self._reconcile(ts)
        except (BrokerError, BrokerTimeoutError) as exc:
            self.journal.flush()
            if not self._reconcile_failed:
                log.error("cannot reconcile with the broker yet: no new entries", extra={"fields": {"error": str(exc)}})
                self._alert("ERROR", f"TFL cannot reconcile with the broker: {exc}")
            self._reconcile_failed = True
            return []

    def _reconcile(self, ts: int) -> list[str]:
        diffs: list[str] = []
        ours = set(self.state.orders)
        for order in self.broker.orders():
            if order.tag not in ours:
                diffs.append(f"external order {order.tag or order.broker_id} ({order.symbol}, {order.status})")
        for rec in list(self.state.orders.values()):
            if rec.state is OrderState.INTENT:
                self._resolve_intent(rec, ts)
            elif rec.open or rec.state is OrderState.UNKNOWN:
                self._lookup(rec, ts)
        for f in self.broker.fills():
            if f.fill_id not in self.state.fills_seen and f.tag in ours:
                diffs.append(f"fill {f.fill_id} ({f.tag}) was not in the journal: booked now")
                self.on_fill(f)
        broker_pos = self.broker.positions()
        mine = {s: int(p.side) * p.qty for s, p in self.state.book.positions.items()}
        for sym in sorted(set(broker_pos) | set(mine)):
            if broker_pos.get(sym, 0) != mine.get(sym, 0):
                diffs.append(f"position {sym}: broker {broker_pos.get(sym, 0)}, journal {mine.get(sym, 0)}")
        for i, d in enumerate(diffs):
            self.emit("RECONCILE", f"reconcile:{ts}:{i}", {"difference": d}, ts)
            log.warning("reconciliation difference", extra={"fields": {"difference": d}})
        unexplained = [d for d in diffs if not d.startswith("fill ")]
        if unexplained:
            self.set_reduce_only(ts, "; ".join(unexplained)[:200])
        self.ensure_protection(ts)
        self.gate.reconciled = True
        self.journal.flush()
        log.info("reconciled with the broker", extra={"fields": {"differences": len(diffs)}})
        return diffs

    # ------------------------------------------------------------------ the end of the session

    def close_session(self, ts: int) -> bool:
        """After the broker's close: the book must be flat. Returns True when it is."""
        flat = not self.state.book.positions
        if not flat:
            log.critical(
                "the book is NOT flat after the square-off",
                extra={"fields": {"positions": sorted(self.state.book.positions)}},
            )
            self._alert("CRITICAL", f"TFL book not flat at the close: {sorted(self.state.book.positions)}")
        day_trades = [t for t in self.state.book.trades if _day(t.entry_ts) == self.date]
        self.emit(
            "SESSION_CLOSE",
            "close",
            {"flat": flat, "equity": round(self.state.equity(), 4), "trades": len(day_trades)},
            ts,
        )
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


def _day(ts: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=5, minutes=30))).date()


def _copy_levels(pos: Any) -> Any:
    from dataclasses import replace

    return replace(pos)
