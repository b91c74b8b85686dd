"""What the status page shows, read from the journal, the operator store and the log.

Everything here is a fact the trader wrote down: the journal's events rebuilt into the
core state (positions, orders, P&L), the runtime's latest heartbeat (state, feed, token
expiry), the operator's commands and their acknowledgements, and the log's recent
warnings. Nothing is read from the secret store, so no secret or token can reach the page.

The heartbeat decides whether the trader is running: none, or one older than
:data:`STALE_BEATS` heartbeat intervals, means the process is not running and the page
says so instead of showing its last state as current.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tfl.core.events import AlertRaised, OrderReported, SessionClosed, SessionOpened, SignalRejected
from tfl.core.orders import Leg, OrderStatus, Report
from tfl.core.state import CoreState, apply
from tfl.domain import Side
from tfl.live.journal import Journal, read_events
from tfl.live.ops_store import Beat, CommandView, OpsStore
from tfl.live.report import Stored, journal_day_report, settings_from_events
from tfl.settings import Settings
from tfl.strategy.book import Trade
from tfl.timeutil import iso_ist

STALE_BEATS = 3  # heartbeats missed before the trader counts as not running
LOG_TAIL_BYTES = 256 * 1024  # how much of the log file's end is read for recent warnings
MAX_LOG_LINES = 20
MAX_COMMANDS = 20
LOG_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL", "FATAL"})
RESTING = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})  # acknowledged at the broker, live


@dataclass(frozen=True, slots=True)
class RuntimeFacts:
    running: bool  # a heartbeat younger than STALE_BEATS intervals
    state: str  # ACTIVE, REDUCE-ONLY, HALTED (the beat's when running, else the journal's)
    state_reason: str
    world: str  # replay, paper, live; "" unknown
    beat_at: int  # UTC epoch seconds of the last heartbeat; 0 none
    beat_age_s: int | None
    last_tick_ts: int
    feed_lag_s: int | None  # the beat's time minus its last tick's exchange time
    feed_fresh: bool
    token_ok: bool
    token_expires_at: int
    pid: int


@dataclass(frozen=True, slots=True)
class BiasFacts:
    session: str
    bias: str
    reason: str  # the journal's SessionOpened reason
    record_source: str  # where the inputs came from ("" none at hand)
    inputs: tuple[tuple[str, str], ...]  # the bias record's fields, as text


@dataclass(frozen=True, slots=True)
class PnlFacts:
    start_equity: float
    equity: float
    pnl: float
    realised: float
    unrealised: float
    loss_limit_pct: float
    loss_limit: float  # the rupee amount the day may lose
    limit_used_pct: float  # the loss as a share of the limit (0 when in profit)


@dataclass(frozen=True, slots=True)
class PositionFacts:
    symbol: str
    side: str
    qty: int
    entry: float
    stop: float
    target: float
    r: float  # risk per share from the fill
    mark: float
    pnl: float  # marked, before exit charges
    r_multiple: float
    stop_resting: bool  # its STOP leg is acknowledged and live at the broker
    stop_status: str


@dataclass(frozen=True, slots=True)
class OrderFacts:
    cid: str
    symbol: str
    leg: str
    side: str
    type: str
    qty: int
    level: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class SignalFacts:
    at: str
    symbol: str
    side: str
    reason: str


@dataclass(frozen=True, slots=True)
class CommandFacts:
    id: str
    kind: str
    symbol: str
    source: str
    reason: str
    issued_at: int
    state: str  # pending, done, refused
    outcome: str
    acked_at: int


@dataclass(frozen=True, slots=True)
class LogLine:
    at: str
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class StatusFacts:
    generated_at: int
    journal: str  # the journal's name (a file name or dynamodb://TABLE)
    session: str
    runtime: RuntimeFacts
    bias: BiasFacts
    pnl: PnlFacts
    charges: float  # today's charges so far: closed trades and open positions' entries
    positions: tuple[PositionFacts, ...]
    open_orders: tuple[OrderFacts, ...]
    rejected_orders: tuple[OrderFacts, ...]
    rejected_signals: tuple[SignalFacts, ...]
    commands: tuple[CommandFacts, ...]
    log_source: str
    log_lines: tuple[LogLine, ...]
    closed: bool  # the session's SESSION_CLOSE is in the journal
    day_report: str  # the post-market report once closed, else ""
    model_check: tuple[str, ...] = ()  # live against the model: the running table's verdict and totals
    model_source: str = ""  # where that came from

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the facts come from, besides the journal and the store."""

    journal_name: str
    log_file: Path | None = None  # the JSON log; None: the journal's alerts stand in (DynamoDB)
    bias_record: Callable[[], tuple[str, str] | None] | None = None  # (source, JSON text) of the bias record
    model_table: Callable[[], tuple[str, str] | None] | None = None  # (source, CSV text) of live vs model


def _latest_session(journal: Journal) -> str:
    sessions = journal.sessions()
    return sessions[-1] if sessions else ""


def _session_state(journal: Journal, sid: str) -> tuple[CoreState, list[Stored]]:
    """The core state after ``sid`` and that session's events: one session's events when its
    opening records the cash (as the post-market job does), else every session up to it."""
    mine = list(read_events(journal, sid)) if sid else []
    opening = next((ev for _, ev in mine if isinstance(ev, SessionOpened)), None)
    if opening is not None and opening.cash is not None:
        state = CoreState.fresh(settings_from_events(mine))
        state.book.cash = opening.cash
        for _, ev in mine:
            apply(state, ev)
        return state, mine
    events = [pair for s in journal.sessions() if s <= sid for pair in read_events(journal, s)] if sid else []
    state = CoreState.fresh(settings_from_events(events))
    for _, ev in events:
        apply(state, ev)
    return state, mine


def _journal_state(state: CoreState) -> tuple[str, str]:
    if state.halted is not None:
        return "HALTED", state.halted.value
    if state.reduce_only:
        return "REDUCE-ONLY", state.reduce_only
    return "ACTIVE", ""


def runtime_facts(beat: Beat | None, state: CoreState, now: int, heartbeat_s: float) -> RuntimeFacts:
    """``heartbeat_s``: how often the runtime writes its beat (``live.status_beat_seconds``);
    a beat older than a few of those means the trader is not running (or not in its loop)."""
    js, jr = _journal_state(state)
    if beat is None:
        return RuntimeFacts(False, js, jr, "", 0, None, 0, None, False, False, 0, 0)
    age = now - beat.at
    running = age <= STALE_BEATS * heartbeat_s
    lag = beat.at - beat.last_tick_ts if beat.last_tick_ts else None
    return RuntimeFacts(
        running,
        beat.state if running else js,
        beat.state_reason if running else jr,
        beat.world,
        beat.at,
        age,
        beat.last_tick_ts,
        lag,
        beat.feed_fresh and running,
        beat.token_ok and running,
        beat.token_expires_at,
        beat.pid,
    )


def _flatten(data: dict[str, object], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k in sorted(data):
        v = data[k]
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, name + ".")
        else:
            out.append((name, json.dumps(v) if isinstance(v, list | bool) or v is None else str(v)))
    return out


def bias_facts(sid: str, mine: Sequence[Stored], record: tuple[str, str] | None) -> BiasFacts:
    """The journal's bias and reason; the published record's inputs when it is for ``sid``."""
    opening = next((ev for _, ev in mine if isinstance(ev, SessionOpened)), None)
    bias = opening.bias.value if opening else "no session yet"
    reason = opening.bias_reason if opening else ""
    inputs: tuple[tuple[str, str], ...] = ()
    source = ""
    if record is not None:
        where, text = record
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and (not sid or data.get("session") == sid):
            source = where
            inputs = tuple(_flatten({k: v for k, v in data.items() if k not in ("session",)}))
            if opening is None:
                bias = str(data.get("bias", bias))
    return BiasFacts(sid, bias, reason, source, inputs)


def pnl_facts(state: CoreState, sid: str, marks: dict[str, float]) -> PnlFacts:
    equity = state.book.equity(state.marks, marks)
    start = state.day_start_equity or state.book.initial_capital
    pnl = equity - start
    unreal = sum(
        p.side * p.qty * (marks.get(s, state.marks.get(s, p.entry_price)) - p.entry_price)
        for s, p in state.book.positions.items()
    )
    pct = state.settings.risk.daily_loss_limit_pct
    limit = start * pct / 100.0
    used = max(0.0, -pnl) / limit * 100.0 if limit > 0 else 0.0
    realised = sum(t.pnl for t in _session_trades(state, sid))
    return PnlFacts(
        round(start, 2),
        round(equity, 2),
        round(pnl, 2),
        round(realised, 2),
        round(unreal, 2),
        pct,
        round(limit, 2),
        round(used, 1),
    )


def _session_trades(state: CoreState, sid: str) -> list[Trade]:
    return [t for t in state.book.trades if iso_ist(t.entry_ts)[:10] == sid]


def _level(trigger: float | None, limit: float | None) -> str:
    if trigger is not None:
        return f"{trigger:.2f}"
    return "" if limit is None else f"{limit:.2f}"


def position_facts(state: CoreState, marks: dict[str, float]) -> tuple[PositionFacts, ...]:
    out = []
    for sym in sorted(state.book.positions):
        p = state.book.positions[sym]
        mark = marks.get(sym, state.marks.get(sym, p.entry_price))
        pnl = p.side * p.qty * (mark - p.entry_price)
        stop_cid = state.legs.get(sym, {}).get(Leg.STOP)
        rec = state.orders.get(stop_cid) if stop_cid else None
        if rec is None:
            resting, status = False, "no stop order"
        else:
            resting = rec.status in RESTING
            status = rec.status.value
            if rec.modifications > rec.confirmed:
                status += f" (move {rec.modifications} not yet confirmed)"
        r_mult = (mark - p.entry_price) * p.side / p.r if p.r else 0.0
        out.append(
            PositionFacts(
                sym,
                Side(p.side).label,
                p.qty,
                p.entry_price,
                p.stop,
                p.target,
                round(p.r, 4),
                mark,
                round(pnl, 2),
                round(r_mult, 2),
                resting,
                status,
            )
        )
    return tuple(out)


def order_facts(state: CoreState, mine: Sequence[Stored]) -> tuple[tuple[OrderFacts, ...], tuple[OrderFacts, ...]]:
    """The session's open orders, and its orders the broker rejected (with the broker's reason)."""
    cids: list[str] = []
    reasons: dict[str, str] = {}
    for _, ev in mine:
        cid = getattr(ev, "cid", "")
        if cid and cid not in cids:
            cids.append(cid)
        if isinstance(ev, OrderReported) and ev.report is Report.REJECTED:
            reasons[ev.cid] = ev.reason
    open_, rejected = [], []
    for cid in cids:
        rec = state.orders.get(cid)
        if rec is None:
            continue
        r = rec.request
        row = OrderFacts(
            cid,
            r.symbol,
            rec.leg.name,
            "BUY" if r.side > 0 else "SELL",
            r.type.value,
            r.qty,
            _level(r.trigger, r.limit),
            rec.status.value,
            reasons.get(cid, ""),
        )
        if rec.status is OrderStatus.REJECTED:
            rejected.append(row)
        elif cid in state.working:
            open_.append(row)
    return tuple(open_), tuple(rejected)


def signal_facts(mine: Sequence[Stored]) -> tuple[SignalFacts, ...]:
    return tuple(
        SignalFacts(iso_ist(ev.ts), ev.symbol, Side(ev.side).label, ev.reason.value)
        for _, ev in mine
        if isinstance(ev, SignalRejected)
    )


def command_facts(views: Sequence[CommandView]) -> tuple[CommandFacts, ...]:
    out = []
    for v in views:
        c, a = v.command, v.ack
        state = "pending" if a is None else ("done" if a.done else "refused")
        out.append(
            CommandFacts(
                c.id,
                c.kind.value,
                c.symbol,
                c.source,
                c.reason,
                c.issued_at,
                state,
                a.outcome if a else "",
                a.at if a else 0,
            )
        )
    return tuple(out)


def log_lines(log_file: Path) -> tuple[LogLine, ...]:
    """The last WARNING/ERROR lines of the trader's JSON log (its end only; lines that are not JSON are skipped)."""
    if not log_file.is_file():
        return ()
    with log_file.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - LOG_TAIL_BYTES))
        tail = fh.read().decode("utf-8", errors="replace").splitlines()
    out = []
    for line in tail:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict) or str(obj.get("level", "")) not in LOG_LEVELS:
            continue
        extra = {k: v for k, v in obj.items() if k not in ("time", "level", "event", "logger")}
        text = str(obj.get("event", ""))
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        out.append(LogLine(str(obj.get("time", "")), str(obj["level"]), text[:500]))
    return tuple(out[-MAX_LOG_LINES:])


def alert_lines(mine: Sequence[Stored]) -> tuple[LogLine, ...]:
    out = [
        LogLine(iso_ist(rec.ts), ev.level, f"{ev.cause}: {ev.message}"[:500])
        for rec, ev in mine
        if isinstance(ev, AlertRaised)
    ]
    return tuple(out[-MAX_LOG_LINES:])


def _charges(state: CoreState, sid: str) -> float:
    closed = sum(t.charges for t in _session_trades(state, sid))
    opened = sum(p.entry_charges for p in state.book.positions.values())
    return round(closed + opened, 2)


def gather(
    journal: Journal, ops: OpsStore, sources: Sources, now: int, settings: Settings | None = None
) -> StatusFacts:
    """The page's facts at ``now`` (UTC epoch seconds). ``settings`` only when the journal
    has none recorded (the journal's own settings win: they are what the trader used)."""
    beat = ops.beat()
    sid = beat.session if beat is not None and beat.session else _latest_session(journal)
    state, mine = _session_state(journal, sid)
    if not any(isinstance(ev, SessionOpened) and ev.settings is not None for _, ev in mine) and settings is not None:
        state.settings = settings
    runtime = runtime_facts(beat, state, now, state.settings.live.status_beat_seconds)
    marks = dict(beat.marks) if beat is not None and runtime.running and beat.session == sid else {}
    record = sources.bias_record() if sources.bias_record is not None else None
    open_, rejected = order_facts(state, mine)
    if sources.log_file is not None:
        log_source, lines = f"log file {sources.log_file.name}", log_lines(sources.log_file)
    else:
        log_source, lines = "the journal's alerts (no log file here)", alert_lines(mine)
    closed = any(isinstance(ev, SessionClosed) for _, ev in mine)
    report = ""
    if closed:
        rep = journal_day_report(journal, dt.date.fromisoformat(sid), todays=mine)
        report = rep.text() if rep is not None else ""
    model_source, model_lines = model_facts(sources)
    return StatusFacts(
        now,
        sources.journal_name,
        sid,
        runtime,
        bias_facts(sid, mine, record),
        pnl_facts(state, sid, marks),
        _charges(state, sid),
        position_facts(state, marks),
        open_,
        rejected,
        signal_facts(mine),
        command_facts(ops.commands(MAX_COMMANDS)),
        log_source,
        lines,
        closed,
        report,
        model_lines,
        model_source,
    )


def model_facts(sources: Sources) -> tuple[str, tuple[str, ...]]:
    """The running live-vs-model table's verdict and totals (``tfl compare`` writes it after
    the day's bars are stored); a table that cannot be read says so instead."""
    from tfl.live.model_table import ModelTableError, parse_table, table_lines

    got = sources.model_table() if sources.model_table is not None else None
    if got is None:
        return "", ()
    source, text = got
    try:
        return source, tuple(table_lines(parse_table(text, source)))
    except ModelTableError as exc:
        return source, (f"unreadable: {exc}",)


def facts_text(f: StatusFacts) -> str:
    """The facts as a few lines of text (``tfl status`` without ``--serve``)."""
    rt = f.runtime
    lines = [f"TFL status {f.session or '(no session)'}  journal {f.journal}"]
    if rt.running:
        lines.append(
            f"state {rt.state}{f' ({rt.state_reason})' if rt.state_reason else ''}  world {rt.world}  "
            f"pid {rt.pid}  heartbeat {rt.beat_age_s}s ago"
        )
        lag = "-" if rt.feed_lag_s is None else f"{rt.feed_lag_s}s"
        exp = iso_ist(rt.token_expires_at) if rt.token_expires_at else "unknown"
        lines.append(
            f"feed {'fresh' if rt.feed_fresh else 'STALE'} (lag {lag})  token "
            f"{'valid' if rt.token_ok else 'NOT VALID'} until {exp}"
        )
    else:
        seen = f"last heartbeat {iso_ist(rt.beat_at)}" if rt.beat_at else "no heartbeat"
        lines.append(
            f"trader NOT RUNNING ({seen}); journal state {rt.state}{f' ({rt.state_reason})' if rt.state_reason else ''}"
        )
    lines.append(f"bias {f.bias.bias}: {f.bias.reason}")
    p = f.pnl
    lines.append(
        f"P&L {p.pnl:,.2f} (realised {p.realised:,.2f}, open {p.unrealised:,.2f}) against a loss limit of "
        f"{p.loss_limit:,.2f} ({p.loss_limit_pct}%): {p.limit_used_pct}% used; charges {f.charges:,.2f}"
    )
    lines.append(f"positions: {len(f.positions) or 'none'}")
    for q in f.positions:
        lines.append(
            f"  {q.symbol:<12} {q.side:<5} qty {q.qty:>6} entry {q.entry:.2f} stop {q.stop:.2f} "
            f"target {q.target:.2f} mark {q.mark:.2f} P&L {q.pnl:,.2f} ({q.r_multiple:+.2f}R) stop at broker: "
            f"{'yes' if q.stop_resting else 'NO'} ({q.stop_status})"
        )
    lines.append(
        f"open orders: {len(f.open_orders)}  rejected orders: {len(f.rejected_orders)}  "
        f"rejected signals: {len(f.rejected_signals)}"
    )
    for o in f.rejected_orders:
        lines.append(f"  rejected {o.cid} {o.symbol} {o.leg} {o.side} qty {o.qty}: {o.reason or 'no reason given'}")
    for c in f.commands:
        lines.append(
            f"command {c.kind}{' ' + c.symbol if c.symbol else ''} from {c.source}: {c.state}"
            f"{f' ({c.outcome})' if c.outcome else ''}"
        )
    for line in f.log_lines[-5:]:
        lines.append(f"{line.level} {line.at} {line.message}")
    if f.day_report:
        lines.append(f.day_report)
    return "\n".join(lines)
