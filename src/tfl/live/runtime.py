"""The session runner: start-up, the trading loop, the square-off, shutdown.

Start-up: load the journal (rebuilding the state), warm the per-symbol state from history
up to the point the journal reached, open the session, reconcile with the broker, and
only then take ticks. The loop feeds ticks to the bar builder and the broker, runs the
engine at each 15-minute boundary, reacts to fills, and watches the feed (no tick for
``feed_stale_seconds`` means no new entries), the kill switch and the heartbeat. At the
close, the broker's last fills are booked and the book must be flat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tfl.calendar.nse import NseCalendar, Session
from tfl.core.decide import ClosedBar, SessionPlan
from tfl.core.orders import Leg
from tfl.core.state import path_side
from tfl.data.bars import BarSeries
from tfl.data.bias_inputs import bias_records
from tfl.data.market import Market
from tfl.domain import Bias, BiasRead, HaltReason, Side
from tfl.live.alerts import Cause
from tfl.live.alerts import log_alert as log_alert  # noqa: PLC0414 - re-exported: its callers import it from here
from tfl.live.bars import Bar, BarBuilder
from tfl.live.broker import Broker, BrokerError, BrokerTimeoutError, MarketSim
from tfl.live.execution import Execution
from tfl.live.faults import CrashPoints
from tfl.live.feed import Clock, Feed, PlannedTick, ReplayFeed, SessionEnd, Tick, session_ticks
from tfl.live.journal import Journal
from tfl.live.operator import OperatorLink, poll_commands, write_beat
from tfl.live.reconcile import reconcile
from tfl.live.trader import Trader
from tfl.live.warmup import warm_states
from tfl.regime import parse_bias_record
from tfl.settings import Settings, parse_hhmm
from tfl.strategy.rules import Setup, session_bias
from tfl.strategy.symbol_state import SymbolState
from tfl.timeutil import BAR_SECONDS, REGULAR_CLOSE, date_to_day, epoch_of_ist, iso_ist

log = logging.getLogger("tfl.runtime")


class Metrics(Protocol):
    """Operational metrics (CloudWatch on AWS); never part of a decision."""

    def heartbeat(self, **properties: object) -> None: ...

    def pnl(self, session: str, net_pnl: float, open_positions: int) -> None: ...

    def order_latency(self, ms: float, leg: str) -> None: ...


@dataclass
class Controls:
    """Things outside the market that steer a running session."""

    kill_file: Path | None = None
    clock: Callable[[], float] = time.monotonic
    halt_requested: bool = False
    crash: CrashPoints = field(default_factory=CrashPoints)
    alert: Callable[[str, str], None] = log_alert
    latencies_ns: list[int] | None = None  # benchmarks: time from a tick's arrival to the end of its handling
    token_check: Callable[[], bool] | None = None  # live: is the broker token good again?
    token_recheck_seconds: float = 30.0
    on_token_recovered: Callable[[], None] | None = None  # live: reconnect the sockets with the new token
    exit_wait_seconds: float = 120.0  # live: how long to wait at the close for the square-off fills
    metrics: Metrics | None = None  # heartbeat, P&L and order latency (EMF on AWS)
    # Live: the exchange's time now (UTC epoch seconds). A trader restarted after an outage
    # reconciles at that time, so an entry whose bar passed while it was down is not sent.
    market_now: Callable[[], float] | None = None
    # Paper/live: start the square-off this long before the broker's own (``live.squareoff_lead_seconds``);
    # 0 (replay): at the square-off bar, exactly as the backtest.
    squareoff_lead_seconds: int = 0
    operator: OperatorLink | None = None  # the operator store: commands in, the status heartbeat out
    # Live: when the broker token expires (epoch seconds, from its JWT), or None if unknown.
    token_expiry: Callable[[], float | None] | None = None

    def install_signal(self) -> None:
        def on_signal(signum: int, frame: object) -> None:
            self.halt_requested = True

        with contextlib.suppress(ValueError):  # only the main thread may install handlers
            signal.signal(signal.SIGUSR1, on_signal)

    def kill_switch(self) -> bool:
        if self.halt_requested:
            return True
        return self.kill_file is not None and self.kill_file.exists()

    def clear_kill_switch(self) -> None:
        """An operator's lift: the kill file and the signal's flag go, or they would halt again."""
        self.halt_requested = False
        if self.kill_file is not None:
            self.kill_file.unlink(missing_ok=True)


@dataclass
class SessionResult:
    session: dt.date
    flat: bool
    trades: int
    ticks: int
    dropped: dict[str, int]
    skipped: bool = False


def resolve_bias(
    mode: str | None, market: Market, session: dt.date, settings: Settings, bias_file: Path | None
) -> tuple[Bias, str]:
    """The bias to trade: forced, computed from data ('auto'), or read from the dated file."""
    if mode and mode != "auto":
        return Bias(mode), f"set by --bias {mode}"
    if mode == "auto":
        rec = bias_records(market, [session], settings)[0]
        return Bias(rec.bias), f"computed: {rec.reason}"
    got = read_bias_file(bias_file, session)
    return got.bias, got.reason


def read_bias_file(bias_file: Path | None, session: dt.date) -> BiasRead:
    """The dated record in ``bias_file``; anything missing, malformed or stale is NO_TRADES."""
    if bias_file is None or not bias_file.exists():
        reason = f"no bias file at {bias_file}: NO_TRADES"
        log.warning("bias missing", extra={"fields": {"reason": reason}})
        return BiasRead(Bias.NO_TRADES, reason, False)
    try:
        text = bias_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("bias unreadable", extra={"fields": {"file": str(bias_file), "error": str(exc)}})
        return BiasRead(Bias.NO_TRADES, f"bias file unreadable: {exc}", False)
    bias, why = parse_bias_record(text, session)
    if why:
        log.warning("bias rejected: NO_TRADES", extra={"fields": {"file": str(bias_file), "reason": why}})
        return BiasRead(Bias.NO_TRADES, why, False)
    return BiasRead(bias, f"read from {bias_file}", True)


def wait_for_bias(
    read: Callable[[], BiasRead],
    deadline: float,
    *,
    now: Callable[[], float],
    sleep: Callable[[float], None],
    poll_seconds: float,
) -> tuple[Bias, str]:
    """Poll ``read`` until it gives a valid record for the day or ``deadline`` (epoch) passes.

    The trader starts at 08:30 and the pre-market job publishes at 08:45: reading once
    would find yesterday's record and make the whole day NO_TRADES.
    """
    waited = False
    while True:
        got = read()
        if got.accepted:
            if waited:
                log.info("bias record arrived", extra={"fields": {"bias": got.bias.value, "reason": got.reason}})
            return got.bias, got.reason
        if now() >= deadline:
            log.warning(
                "no bias record for today by the deadline: NO_TRADES",
                extra={"fields": {"reason": got.reason, "deadline": iso_ist(int(deadline))}},
            )
            return Bias.NO_TRADES, f"{got.reason} (none for today by {iso_ist(int(deadline))})"
        if not waited:
            log.info(
                "waiting for today's bias record",
                extra={"fields": {"reason": got.reason, "deadline": iso_ist(int(deadline))}},
            )
            waited = True
        sleep(poll_seconds)


def _history(
    market: Market, symbols: list[str], before_ts: int, session: dt.date
) -> tuple[dict[str, BarSeries], dict[str, BarSeries]]:
    day = date_to_day(session)
    intraday = {}
    daily = {}
    for sym in symbols:
        s = market.intraday[sym]
        intraday[sym] = s.take(slice(0, int(s.ts.searchsorted(before_ts, "left"))))
        d = market.daily.get(sym)
        if d is not None:
            daily[sym] = d.take(slice(0, int(d.day.searchsorted(day, "left"))))
    return intraday, daily


def session_plan(session: Session, settings: Settings) -> SessionPlan:
    """The core's view of a calendar session: its first and last bar and its square-off."""
    d = session.date
    close_min = min(session.close_minute, REGULAR_CLOSE)
    squareoff = session.squareoff_minute(parse_hhmm(settings.strategy.squareoff_time))
    return SessionPlan(
        d, epoch_of_ist(d, session.open_minute), epoch_of_ist(d, close_min) - BAR_SECONDS, epoch_of_ist(d, squareoff)
    )


def squareoff_start(plan: SessionPlan, settings: Settings, lead_seconds: int) -> int | None:
    """When the paper/live square-off begins: ``lead_seconds`` before the broker's own
    square-off or the square-off bar, whichever is earlier; None (replay) without a lead."""
    if lead_seconds <= 0:
        return None
    broker = epoch_of_ist(plan.date, parse_hhmm(settings.live.broker_squareoff_time))
    return min(broker, plan.squareoff_ts) - lead_seconds


FeedFactory = Callable[[list[PlannedTick | SessionEnd], int, Callable[[str], Side]], Feed]


def run_session(
    session: Session,
    market: Market,
    symbols: list[str],
    journal: Journal,
    broker: Broker,
    settings: Settings,
    bias: Bias,
    bias_reason: str,
    controls: Controls,
    *,
    feed_factory: FeedFactory | None = None,
    speed: float | None = None,
    market_sim: MarketSim | None = None,
) -> SessionResult:
    """Trade one session. The broker either matches orders on our ticks (``market_sim``, the
    paper broker, which is then also ``broker``) or at the exchange (FYERS), in which case
    only its reports reach us."""
    plan = session_plan(session, settings)
    open_ts = plan.open_ts
    latency = controls.metrics.order_latency if controls.metrics is not None else None
    execution = Execution(broker, open_ts, crash=controls.crash, on_latency=latency)
    trader = Trader(settings, journal, execution, plan, alert=controls.alert, crash=controls.crash)
    trader.real_broker = market_sim is None
    if market_sim is not None:
        market_sim.crash = controls.crash

    now_ts = open_ts  # exchange time of the last event (the loop moves it)

    def exchange_now() -> int:
        """Exchange time now: the clock in paper/live, the last event's time in a replay."""
        return int(controls.market_now()) if controls.market_now is not None else now_ts

    def token_lost(why: str) -> None:
        if trader.gate.token_ok:
            trader.gate.token_ok = False
            log.error(
                "broker token rejected: no new entries; exits keep being managed",
                extra={"fields": {"detail": why[:120]}},
            )
            _token_alert(trader, exchange_now())

    broker.on_token_rejected(token_lost)
    trader.load()
    if trader.done:
        log.info("session already closed in the journal", extra={"fields": {"session": trader.sid}})
        return SessionResult(session.date, True, 0, 0, {}, skipped=True)
    resume = trader.state.last_slot if trader.state.session == trader.sid else 0
    start_ts = resume or open_ts
    intraday, daily = _history(market, symbols, start_ts, session.date)
    states = warm_states(intraday, daily, settings)
    if trader.state.session != trader.sid:
        marks = {sym: st.last_close for sym, st in sorted(states.items()) if st.last_close == st.last_close}
        try:  # positions of an earlier session the broker has closed: corrected before the day starts
            trader.settle_earlier(open_ts, marks)
        except (BrokerError, BrokerTimeoutError) as exc:
            log.error("cannot ask the broker about an earlier session yet", extra={"fields": {"error": str(exc)}})
        bias, bias_reason = session_bias(bias, bias_reason, settings.strategy)  # BOTH if the filter is off
        trader.open_session(open_ts, bias, bias_reason, marks)
    else:
        log.warning(
            "resuming a session after a restart", extra={"fields": {"session": trader.sid, "from": iso_ist(start_ts)}}
        )
    market_ts = int(controls.market_now()) if controls.market_now is not None else start_ts
    reconcile(trader, max(start_ts, market_ts))

    day = date_to_day(session.date)
    todays = {sym: market.intraday[sym] for sym in symbols}
    events = session_ticks(todays, day, plan.close_ts)

    def side_of(symbol: str) -> Side:
        return path_side(trader.state, symbol)

    if feed_factory is not None:
        feed = feed_factory(events, start_ts, side_of)
    else:
        feed = ReplayFeed(events, speed=speed, start_ts=start_ts, side_of=side_of)
    done_today = {sym: float(s.volume[(s.ts >= open_ts) & (s.ts < start_ts)].sum()) for sym, s in intraday.items()}
    builder = BarBuilder(open_ts, max_jump_pct=settings.live.max_tick_jump_pct, day_volume=done_today)
    boundaries = [b for b in range(open_ts + BAR_SECONDS, plan.close_ts + 1, BAR_SECONDS) if b > resume]
    trader.last_tick = builder.last_ts
    squareoff_at = squareoff_start(plan, settings, controls.squareoff_lead_seconds)

    def on_boundary(b: int) -> None:
        closed, setups = _close_bars(builder.close_until(b), states, b)
        trader.on_slot(b, closed, setups)
        trader.facts(execution.facts(execution.poll()), b)

    bi = 0
    last_seq = 0
    ticks = 0
    now_ts = start_ts
    if not trader.gate.token_ok:  # refused while reconciling, before the loop
        _token_alert(trader, exchange_now())
    stale_since: float | None = None
    last_tick_wall = controls.clock()
    next_heartbeat = controls.clock() + settings.live.heartbeat_seconds
    next_kill_check = 0.0
    op = controls.operator
    next_command_check = 0.0
    next_beat = 0.0
    stale_after = settings.live.feed_stale_seconds
    retry_every = settings.live.retry_seconds
    next_retry = start_ts + retry_every
    next_token_check = 0.0
    ended = False
    # The tick loop: bound methods and objects in locals (a few microseconds a tick).
    clock, lat, gate, poll = controls.clock, controls.latencies_ns, trader.gate, execution.poll
    build, sim_tick = builder.on_tick, (market_sim.on_tick if market_sim is not None else None)
    wait = min(0.5, stale_after / 2)
    last_boundary = plan.close_ts
    while not ended:
        ev = feed.next(timeout=wait)
        t_arrival = time.perf_counter_ns() if lat is not None else 0
        now = clock()
        if now >= next_kill_check:
            next_kill_check = now + 0.2
            if controls.kill_switch() and trader.state.halted is None:
                trader.halt(boundaries[bi - 1] if bi else start_ts, HaltReason.KILL_SWITCH)
        if op is not None:
            if now >= next_command_check:
                next_command_check = now + settings.live.command_poll_seconds
                if poll_commands(trader, boundaries[bi - 1] if bi else start_ts, op):
                    next_beat = now  # the page sees the command's effect at once
            if now >= next_beat:
                next_beat = now + settings.live.status_beat_seconds
                write_beat(trader, op, now_ts if ticks else 0, _expiry(controls))
        if now >= next_heartbeat:
            next_heartbeat = now + settings.live.heartbeat_seconds
            _heartbeat(trader, ticks, controls)
            _token_expiry_alert(trader, controls, exchange_now(), settings)
        if ev is not None and ev.ts < open_ts:  # silence before the open is normal: staleness counts from it
            last_tick_wall = now
        if now - last_tick_wall > stale_after and not isinstance(ev, Tick):
            if gate.feed_fresh:
                gate.feed_fresh = False
                stale_since = now
                log.error(
                    "feed stale: no tick received; no new entries until it recovers",
                    extra={"fields": {"seconds": round(now - last_tick_wall, 1)}},
                )
            mts = exchange_now()  # in the session only; again each alert interval while it lasts
            if mts >= open_ts and trader.alert_due(Cause.FEED_STALE, "feed", mts):
                trader.raise_alert(
                    "ERROR",
                    Cause.FEED_STALE,
                    f"TFL market feed is stale: no tick for {now - last_tick_wall:.0f} s",
                    "",
                    mts,
                    subject="feed",
                )
        if ev is None:
            if feed.exhausted:
                break
            continue
        if not gate.token_ok and controls.token_check is not None and now >= next_token_check:
            next_token_check = now + controls.token_recheck_seconds
            _token_alert(trader, exchange_now())  # still refused: once per alert interval
            if controls.token_check():
                gate.token_ok = True
                log.info("broker token accepted again: entries resume")
                if controls.on_token_recovered is not None:
                    controls.on_token_recovered()
                feed.refresh()
        while bi < len(boundaries) and ev.ts >= boundaries[bi] and boundaries[bi] < last_boundary:
            if market_sim is not None:
                market_sim.checkpoint(last_seq)
            on_boundary(boundaries[bi])
            bi += 1
        if squareoff_at is not None and ev.ts >= squareoff_at and not trader.state.squareoff_started:
            trader.square_off(ev.ts)
        if ev.ts >= next_retry:  # exchange time, so a replay retries exactly as the market ran
            next_retry = ev.ts + retry_every
            trader.retry(ev.ts)
        if isinstance(ev, Clock):
            if market_sim is None:
                trader.facts(execution.facts(poll()), ev.ts)
            continue
        if isinstance(ev, SessionEnd):
            on_boundary(last_boundary)  # the last bar's close: a short session squares off here
            bi = len(boundaries)
            if market_sim is not None:
                market_sim.close_session(ev.ts, last_seq + 1)
                trader.facts(execution.facts(poll()), ev.ts)
            else:
                _await_flat(trader, controls, ev.ts)
            ended = True
            continue
        last_tick_wall = now
        now_ts = ev.ts
        if not gate.feed_fresh:
            gate.feed_fresh = True
            if stale_since is not None:
                log.info("feed recovered", extra={"fields": {"stale_seconds": round(now - stale_since, 1)}})
                stale_since = None
        if not build(ev):
            continue
        ticks += 1
        last_seq = ev.seq
        if sim_tick is not None:
            sim_tick(ev.symbol, ev.ts, ev.price, ev.seq)
        pending = poll()
        if pending:
            trader.facts(execution.facts(pending), now_ts)
        if lat is not None:
            lat.append(time.perf_counter_ns() - t_arrival)
    flat = trader.close_session(plan.close_ts)
    if op is not None:
        write_beat(trader, op, now_ts if ticks else 0, _expiry(controls))
    if controls.metrics is not None:
        controls.metrics.pnl(
            trader.sid, trader.state.equity() - trader.state.day_start_equity, len(trader.state.book.positions)
        )
    day_trades = sum(1 for t in trader.state.book.trades if t.entry_ts >= open_ts)
    return SessionResult(session.date, flat, day_trades, ticks, dict(builder.dropped))


def _close_bars(bars: list[Bar], states: dict[str, SymbolState], boundary: int) -> tuple[list[ClosedBar], list[Setup]]:
    """Feed the closed bars to each symbol's streaming state: the bars with their ATR, and the
    setups valid for the bar that starts at ``boundary``."""
    closed: list[ClosedBar] = []
    setups: list[Setup] = []
    for bar in bars:
        st = states.get(bar.symbol)
        if st is None:
            continue
        setup = st.on_bar(bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume)
        if setup is not None and bar.start + BAR_SECONDS == boundary:
            setups.append(dataclasses.replace(setup, entry_ts=boundary))
        closed.append(ClosedBar(bar.symbol, bar.start, bar.open, bar.high, bar.low, bar.close, st.atr))
    return closed, setups


def _heartbeat(trader: Trader, ticks: int, controls: Controls) -> None:
    state = trader.state
    log.info(
        "heartbeat",
        extra={
            "fields": {
                "session": trader.sid,
                "slot": iso_ist(state.last_slot) if state.last_slot else "",
                "positions": len(state.book.positions),
                "equity": round(state.equity(), 2),
                "ticks": ticks,
                "feed_fresh": trader.gate.feed_fresh,
            }
        },
    )
    if controls.metrics is not None:
        controls.metrics.heartbeat(session=trader.sid)
        controls.metrics.pnl(trader.sid, state.equity() - state.day_start_equity, len(state.book.positions))


def _token_alert(trader: Trader, ts: int) -> None:
    """The broker refused the token (once per alert interval while it lasts)."""
    if not trader.alert_due(Cause.TOKEN_INVALID, "token", ts):
        return
    message = "TFL: the FYERS token was rejected mid-session; log in again (tfl auth login)"
    # Orders already resting at the broker cannot be cancelled without a token: an entry
    # that fills now gets no protective stop until the next login.
    resting = sorted({r.request.symbol for r in trader.state.working.values() if r.leg is Leg.ENTRY})
    if resting:
        message += (
            f". Entry orders resting at the broker may fill without a protective stop until then: {', '.join(resting)}"
        )
    trader.raise_alert("CRITICAL" if resting else "ERROR", Cause.TOKEN_INVALID, message, "", ts, subject="token")


def _expiry(controls: Controls) -> float | None:
    """The broker token's expiry (epoch seconds), None when unknown (replay, paper on replay)."""
    return controls.token_expiry() if controls.token_expiry is not None else None


def _token_expiry_alert(trader: Trader, controls: Controls, ts: int, settings: Settings) -> None:
    """Live: the token's expiry, ``alerts.token_warn_minutes`` before it (once per token) and
    once it has passed (again each alert interval)."""
    expiry = _expiry(controls)
    if expiry is None:
        return
    left = expiry - ts
    at = iso_ist(int(expiry))
    if left <= 0:
        trader.raise_alert(
            "CRITICAL",
            Cause.TOKEN_EXPIRED,
            f"TFL: the FYERS token expired at {at}; no order can be sent or cancelled",
            "",
            ts,
            subject="token",
        )
    elif left <= settings.alerts.token_warn_minutes * 60:
        trader.raise_alert(
            "WARNING",
            Cause.TOKEN_EXPIRING,
            f"TFL: the FYERS token expires at {at}, in {left / 60:.0f} min",
            f"token:{int(expiry)}",
            ts,
        )


def _await_flat(trader: Trader, controls: Controls, ts: int) -> None:
    """Live: the square-off orders are at the exchange; wait (bounded) for their fills."""
    ex = trader.execution
    deadline = controls.clock() + controls.exit_wait_seconds
    while trader.state.book.positions and controls.clock() < deadline:
        trader.facts(ex.facts(ex.poll()), ts)
        if trader.state.book.positions:
            time.sleep(0.2)
    trader.resolve_unknown(ts)
    trader.facts(ex.facts(ex.poll()), ts)


def sessions_with_data(calendar: NseCalendar, market: Market, first: dt.date, last: dt.date) -> list[Session]:
    days: set[int] = set()
    for s in market.intraday.values():
        window = s.day[(s.day >= date_to_day(first)) & (s.day <= date_to_day(last))]
        days.update(int(d) for d in set(window.tolist()))
    out = []
    for sess in calendar.sessions_between(first, last):
        if date_to_day(sess.date) in days:
            out.append(sess)
        else:
            log.warning("calendar session without data: skipped", extra={"fields": {"session": sess.date.isoformat()}})
    return out
