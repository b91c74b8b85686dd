"""Live against the model: one session's journal compared with the backtest of that same day.

After the close, once the day's bars are stored, the day is backtested with the journal's
own settings and the bias the live session opened with, from the cash it opened with. The
trades are matched by (symbol, side, setup bar): a model trade with no live twin is
*missing*, a live trade with no model twin is *extra*, and the journal says why (a signal
rejected, an order the broker refused, an entry that never triggered, a halt). For matched
trades each fill is set against the modelled fill: the slippage actually paid against the
assumption (``costs.slippage_pct``), and what it cost beyond the model in rupees.

The result is plain typed data (:class:`DayComparison`); :func:`comparison_lines` renders it
for the post-market report, the CLI and the status page. Importing this module does not
import NumPy: only :func:`compare_day` loads the backtester.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from tfl.core.events import (
    Allocated,
    Event,
    Filled,
    Halted,
    OrderPlaced,
    OrderReported,
    ReduceOnly,
    SessionOpened,
    SignalRejected,
)
from tfl.core.orders import Report, first_attempt
from tfl.core.state import CoreState, apply
from tfl.domain import ExitReason, RejectReason, Side
from tfl.live.journal import Record
from tfl.live.report import settings_from_events
from tfl.settings import Settings
from tfl.strategy.book import Trade
from tfl.timeutil import BAR_SECONDS, iso_ist

if TYPE_CHECKING:
    from tfl.data.market import Market

Stored = tuple[Record, Event]
BPS = 10_000.0
# Exits that go out as stop or market orders, which the model slips; a target is a limit.
_SLIPPING_EXITS = frozenset({ExitReason.STOP, ExitReason.TRAIL, ExitReason.EOD, ExitReason.KILL_SWITCH})


class ModelCheckError(ValueError):
    """The comparison cannot be made (no bars for the day, no such session); one line says why."""


@dataclass(frozen=True)
class FillCheck:
    """One live fill against the model's fill of the same order.

    ``assumed_bps`` is the slippage the model applied to this fill (``costs.slippage_pct``
    for stops and market orders, 0 for a target's limit). ``reference`` is the price the
    model slipped from (a stop's trigger, a gap's open); the real slippage is measured from
    it, so it is comparable with the assumption."""

    leg: str  # "entry" or "exit"
    direction: int  # +1 a buy, -1 a sell
    qty: int  # the live quantity
    live_price: float
    model_price: float
    assumed_bps: float

    @property
    def reference(self) -> float:
        return self.model_price / (1.0 + self.direction * self.assumed_bps / BPS)

    @property
    def real_bps(self) -> float:
        """Slippage actually paid, from the model's reference price (positive: against the trader)."""
        return self.direction * (self.live_price - self.reference) / self.reference * BPS

    @property
    def excess_bps(self) -> float:
        """How much worse than the model's fill (the assumption already included)."""
        return self.direction * (self.live_price - self.model_price) / self.model_price * BPS

    @property
    def excess_rupees(self) -> float:
        return self.direction * (self.live_price - self.model_price) * self.qty


@dataclass(frozen=True)
class MatchedTrade:
    """A trade both worlds took. ``exit`` is None when the exits differ (reason, or bar but for
    a square-off): the two prices are then not the same order's fill, so no slippage sample."""

    live: Trade
    model: Trade
    entry: FillCheck | None  # None when the live entry came in a later bar
    exit: FillCheck | None

    @property
    def entry_slots(self) -> int:
        return (self.live.entry_ts - self.model.entry_ts) // BAR_SECONDS

    @property
    def exit_slots(self) -> int:
        """Bars the live exit came after (+) or before (-) the model's."""
        return (self.live.exit_ts - self.model.exit_ts) // BAR_SECONDS

    @property
    def pnl_difference(self) -> float:
        return self.live.pnl - self.model.pnl


@dataclass(frozen=True)
class Unmatched:
    """A trade only one world took, and why (from the journal, or from the model's rejections)."""

    trade: Trade
    why: str


@dataclass(frozen=True)
class DayComparison:
    session: str
    bias: str  # the bias the live session opened with; the model traded it too
    assumed_slippage_bps: float
    live_trades: int
    model_trades: int
    matched: tuple[MatchedTrade, ...]
    missing: tuple[Unmatched, ...]  # the model took them, the trader did not
    extra: tuple[Unmatched, ...]  # the trader took them, the model did not
    live_pnl: float
    model_pnl: float
    live_charges: float  # the journal's, computed by the cost model on the live fills
    model_charges: float
    notes: tuple[str, ...] = field(default=())

    @property
    def fills(self) -> tuple[FillCheck, ...]:
        """Every slippage sample: matched entries and exits of the same order."""
        out: list[FillCheck] = []
        for m in self.matched:
            out += [f for f in (m.entry, m.exit) if f is not None]
        return tuple(out)

    @property
    def slipping_fills(self) -> tuple[FillCheck, ...]:
        """The samples the slippage assumption applies to (stops and market orders)."""
        return tuple(f for f in self.fills if f.assumed_bps > 0)

    @property
    def exits_differing(self) -> int:
        return sum(1 for m in self.matched if m.exit is None)


def _mean(xs: Sequence[float]) -> float | None:
    return math.fsum(xs) / len(xs) if xs else None


def mean_real_bps(c: DayComparison) -> float | None:
    return _mean([f.real_bps for f in c.slipping_fills])


def mean_excess_bps(c: DayComparison) -> float | None:
    return _mean([f.excess_bps for f in c.fills])


def worst_excess_bps(c: DayComparison) -> float | None:
    return max((f.excess_bps for f in c.fills), default=None)


def sd_excess_bps(c: DayComparison) -> float | None:
    xs = [f.excess_bps for f in c.fills]
    if len(xs) < 2:
        return None
    m = math.fsum(xs) / len(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


# --------------------------------------------------------------------------- the journal


@dataclass
class SessionIndex:
    """The session's events, indexed for the why of a missing trade."""

    allocs: dict[str, Allocated] = field(default_factory=dict)  # entry cid -> its allocation
    placed: dict[str, list[OrderPlaced]] = field(default_factory=dict)  # first-attempt cid -> attempts
    reports: dict[str, list[OrderReported]] = field(default_factory=dict)
    fills: dict[str, list[Filled]] = field(default_factory=dict)
    rejected: dict[tuple[str, Side, int], SignalRejected] = field(default_factory=dict)
    halts: list[str] = field(default_factory=list)
    followed: frozenset[str] = frozenset()  # the session's symbols (empty: unknown)
    reduce_only: list[str] = field(default_factory=list)


def index_journal(events: Sequence[Stored]) -> SessionIndex:
    """A session's events indexed for :func:`why_missing` and :func:`why_extra`."""
    j = SessionIndex()
    for rec, ev in events:
        match ev:
            case Allocated():
                j.allocs[ev.cid] = ev
            case OrderPlaced():
                j.placed.setdefault(first_attempt(ev.cid), []).append(ev)
            case OrderReported():
                j.reports.setdefault(ev.cid, []).append(ev)
            case Filled():
                j.fills.setdefault(ev.cid, []).append(ev)
            case SignalRejected():
                j.rejected[(ev.symbol, ev.side, ev.ts)] = ev
            case Halted():
                j.halts.append(f"{ev.reason.value} at {_hhmm(rec.ts)}")
            case ReduceOnly():
                j.reduce_only.append(f"{ev.reason} at {_hhmm(rec.ts)}")
            case _:
                pass
    return j


def _hhmm(ts: int) -> str:
    return iso_ist(ts)[11:16]


def _entry_cid(j: SessionIndex, t: Trade) -> str | None:
    for cid, a in j.allocs.items():
        if a.symbol == t.symbol and a.side is t.side and a.setup_ts == t.setup_ts:
            return cid
    return None


def _day_state(j: SessionIndex) -> str:
    parts = []
    if j.halts:
        parts.append(f"the day was halted ({'; '.join(j.halts)})")
    if j.reduce_only:
        parts.append(f"the trader went reduce-only ({'; '.join(j.reduce_only)})")
    return "; ".join(parts)


_REASON_NOTES = {
    RejectReason.ENTRIES_BLOCKED: "entries blocked: not reconciled, feed stale or token invalid (see the log)",
    RejectReason.REDUCE_ONLY: "the trader was reduce-only",
    RejectReason.KILL_SWITCH: "the kill switch was set",
    RejectReason.DAILY_LOSS_LIMIT: "the daily loss limit had tripped",
}


def _reason(r: RejectReason) -> str:
    note = _REASON_NOTES.get(r)
    return (
        f"{r.value} ({note})" if note else f"{r.value} (its equity, cash or open positions differed from the model's)"
    )


def why_missing(j: SessionIndex, t: Trade) -> str:
    """Why the trader did not take a trade the model took, from the session's journal."""
    context = _day_state(j)
    tail = f"; {context}" if context else ""
    entry_bar = t.setup_ts + BAR_SECONDS
    rej = j.rejected.get((t.symbol, t.side, entry_bar))
    cid = _entry_cid(j, t)
    if cid is None and j.followed and t.symbol not in j.followed:
        return f"the trader did not follow {t.symbol} that day (not among the session's symbols){tail}"
    if cid is None:
        if rej is not None:
            return f"the signal was rejected live: {_reason(rej.reason)}{tail}"
        return (
            "the trader saw no such setup: its bars (built from ticks) differ from the stored bars, "
            f"or the setup bar was missed{tail}"
        )
    a = j.allocs[cid]
    if a.reject is not None:
        what = "it triggered and was rejected" if rej is not None else "no reservation"
        return f"{what} live: {_reason(a.reject)}{tail}"
    attempts = j.placed.get(cid, [])
    if not attempts:
        return f"reserved live but no entry order was sent{tail}"
    for o in attempts:
        for r in j.reports.get(o.cid, []):
            if r.report is Report.REJECTED:
                return f"the broker rejected the entry order: {r.reason or 'no reason given'}{tail}"
    if any(j.fills.get(o.cid) for o in attempts):
        return f"entered live but the position was not closed that day{tail}"
    ends = [r.report.value for o in attempts for r in j.reports.get(o.cid, []) if r.report in _ENDED]
    level = attempts[0].trigger
    ended = f" ({ends[-1]})" if ends else ""
    return (
        f"the entry order did not fill live{ended}: the live price did not reach the trigger "
        f"{level if level is None else f'{level:.2f}'} in its bar{tail}"
    )


_ENDED = frozenset({Report.CANCELLED, Report.EXPIRED, Report.UNKNOWN})


def why_extra(model_rejections: Sequence[SignalRejected], j: SessionIndex, t: Trade) -> str:
    """Why the model did not take a trade the trader took."""
    entry_bar = t.setup_ts + BAR_SECONDS
    for r in model_rejections:
        if r.symbol == t.symbol and r.side is t.side and r.ts == entry_bar:
            return f"the model rejected the signal: {r.reason.value} (its equity, cash or open positions differed)"
    cid = _entry_cid(j, t)
    late = (
        f"; the live entry came {(t.entry_ts - entry_bar) // BAR_SECONDS} bar(s) late" if t.entry_ts > entry_bar else ""
    )
    if cid is not None and cid in j.allocs:
        return (
            "the model had no such trade: on the stored bars the setup did not trigger or was not valid "
            f"(the live bars, built from ticks, differ){late}"
        )
    return f"the trade has no reservation in the journal (an external or corrected position){late}"


# --------------------------------------------------------------------------- the day


@dataclass(frozen=True)
class _Opening:
    opened: SessionOpened
    cash: Decimal
    settings: Settings
    before_positions: tuple[str, ...]


def _opening(events: Sequence[Stored], sid: str) -> _Opening:
    settings = settings_from_events(events)
    opened = next((ev for rec, ev in events if rec.session == sid and isinstance(ev, SessionOpened)), None)
    if opened is None:
        raise ModelCheckError(f"the journal has no session {sid}: nothing to compare")
    if opened.cash is not None:
        return _Opening(opened, opened.cash, settings, ())
    state = CoreState.fresh(settings)
    for rec, ev in events:
        if rec.session >= sid:
            break
        apply(state, ev)
    return _Opening(opened, state.book.cash, settings, tuple(sorted(state.book.positions)))


def session_symbols(events: Sequence[Stored], day: dt.date) -> list[str]:
    """The symbols the session followed (its SESSION_OPEN marks each), or [] when it records none."""
    sid = day.isoformat()
    opened = next((ev for rec, ev in events if rec.session == sid and isinstance(ev, SessionOpened)), None)
    return [sym for sym, _ in opened.marks] if opened is not None else []


def _key(t: Trade) -> tuple[str, Side, int]:
    return (t.symbol, t.side, t.setup_ts)


def _exit_slip_bps(reason: ExitReason, slip_bps: float) -> float:
    return slip_bps if reason in _SLIPPING_EXITS else 0.0


def _same_exit(live: Trade, model: Trade) -> bool:
    """Whether two exits are the same order's fill: the same reason in the same bar. A square-off
    (EOD) counts whatever its bar: paper and live begin it ahead of the square-off bar on purpose
    (``live.squareoff_lead_seconds``), and what that fill costs against the model's is the point."""
    if live.exit_reason is not model.exit_reason:
        return False
    return live.exit_ts == model.exit_ts or model.exit_reason is ExitReason.EOD


def match_trades(
    live: Sequence[Trade], model: Sequence[Trade], slip_bps: float
) -> tuple[list[MatchedTrade], list[Trade], list[Trade]]:
    """(matched, model only, live only) by (symbol, side, setup bar)."""
    by_key = {_key(t): t for t in live}
    matched: list[MatchedTrade] = []
    missing: list[Trade] = []
    for m in model:
        lv = by_key.pop(_key(m), None)
        if lv is None:
            missing.append(m)
            continue
        d_in = int(m.side)
        entry = None
        if lv.entry_ts == m.entry_ts:
            entry = FillCheck("entry", d_in, lv.qty, lv.entry_price, m.entry_price, slip_bps)
        exit_ = None
        if _same_exit(lv, m):
            exit_ = FillCheck(
                "exit", -d_in, lv.qty, lv.exit_price, m.exit_price, _exit_slip_bps(m.exit_reason, slip_bps)
            )
        matched.append(MatchedTrade(lv, m, entry, exit_))
    extra = sorted(by_key.values(), key=lambda t: (t.entry_ts, t.symbol))
    return matched, missing, extra


def compare_day(
    events: Sequence[Stored],
    market: Market,
    day: dt.date,
    *,
    symbols: Sequence[str] | None = None,
) -> DayComparison:
    """Compare the session ``day`` of a journal with the backtest of that day.

    ``events``: the journal's events, at least those of the day (earlier sessions are read
    only when the day's SESSION_OPEN lacks its opening cash). ``market``: a
    :class:`tfl.data.market.Market` holding the day's stored bars and the history before it
    (the model warms up on it). ``symbols``: what the trader traded (default: the market's
    universe, as ``tfl trade``). The model uses the journal's settings, the bias the session
    opened with (not one recomputed from the stored bars) and its opening cash as capital.
    """
    from tfl.backtest.run import BacktestRequest, run_backtest
    from tfl.live.report import day_report, session_report
    from tfl.timeutil import date_to_day

    sid = day.isoformat()
    op = _opening(events, sid)
    followed = session_symbols(events, day)
    traded = [s for s in (symbols or followed or market.universe) if s in market.intraday]
    d = date_to_day(day)
    if not any(_has_day(market, s, d) for s in traded):
        raise ModelCheckError(
            f"no 15-minute bars for {sid} in {market.data_dir}: store the day's bars first (tfl data eod)"
        )
    notes: list[str] = []
    if op.before_positions:
        notes.append(f"the session began with open positions ({', '.join(op.before_positions)}); the model starts flat")
    s = op.settings.replace({"backtest.bias": op.opened.bias.value, "backtest.capital": float(op.cash)})
    if float(op.cash) != op.settings.backtest.capital:
        notes.append(
            f"the model starts from the session's opening cash {float(op.cash):,.2f} "
            f"(the journal's capital is {op.settings.backtest.capital:,.2f})"
        )
    run = run_backtest(BacktestRequest(market.data_dir, day, day, s, list(traded)), show_progress=False, market=market)
    report = session_report(events, day) or day_report(events, day)
    mine = [(r, ev) for r, ev in events if r.session == sid]
    j = index_journal(mine)
    j.followed = frozenset(followed)
    slip_bps = s.costs.slippage_pct / 100.0 * BPS
    model_trades = sorted(run.result.trades, key=lambda t: (t.entry_ts, t.symbol))
    matched, missing, extra = match_trades(report.trades, model_trades, slip_bps)
    day_note = _day_state(j)
    if day_note:
        notes.append(day_note)
    return DayComparison(
        session=sid,
        bias=op.opened.bias.value,
        assumed_slippage_bps=slip_bps,
        live_trades=len(report.trades),
        model_trades=len(model_trades),
        matched=tuple(matched),
        missing=tuple(Unmatched(t, why_missing(j, t)) for t in missing),
        extra=tuple(Unmatched(t, why_extra(run.result.rejections, j, t)) for t in extra),
        live_pnl=math.fsum(t.pnl for t in report.trades),
        model_pnl=math.fsum(t.pnl for t in model_trades),
        live_charges=math.fsum(t.charges for t in report.trades),
        model_charges=math.fsum(t.charges for t in model_trades),
        notes=tuple(notes),
    )


def _has_day(market: Market, symbol: str, day: int) -> bool:
    lo, hi = market.intraday[symbol].day_range(day, day)
    return bool(hi > lo)


# --------------------------------------------------------------------------- text


def _fmt(x: float | None, nd: int = 1, signed: bool = True) -> str:
    if x is None:
        return "n/a"
    x = round(x, nd) + 0.0  # no "-0.0"
    return f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"


def _trade_label(t: Trade) -> str:
    return f"{t.symbol} {t.side.label} setup {_hhmm(t.setup_ts)}"


def comparison_lines(c: DayComparison) -> list[str]:
    """The comparison as short lines (the report's e-mail, the CLI, the status page)."""
    fills = c.fills
    lines = [
        f"Live vs model {c.session} (bias {c.bias}, the same settings, the stored bars)",
        f"trades: live {c.live_trades}, model {c.model_trades}, matched {len(c.matched)}, "
        f"missing {len(c.missing)}, extra {len(c.extra)}",
    ]
    if fills:
        excess = math.fsum(f.excess_rupees for f in fills)
        lines.append(
            f"slippage: {len(c.slipping_fills)} stop/market fills, mean {_fmt(mean_real_bps(c))} bps paid "
            f"against {c.assumed_slippage_bps:.1f} assumed; beyond the model mean {_fmt(mean_excess_bps(c))} bps, "
            f"worst {_fmt(worst_excess_bps(c))} bps, Rs {excess:+,.2f} over {len(fills)} fills"
        )
    else:
        lines.append("slippage: no matched fill to measure")
    lines.append(
        f"P&L: live {c.live_pnl:+,.2f}, model {c.model_pnl:+,.2f}; "
        f"charges: live {c.live_charges:,.2f}, model {c.model_charges:,.2f}"
    )
    for m in c.matched:
        parts = []
        if m.entry is not None:
            parts.append(
                f"entry {m.live.entry_price:.2f} vs {m.model.entry_price:.2f} ({_fmt(m.entry.excess_bps)} bps)"
            )
        else:
            parts.append(f"entry {m.entry_slots:+d} bar(s) late")
        if m.exit is not None:
            parts.append(f"exit {m.live.exit_price:.2f} vs {m.model.exit_price:.2f} ({_fmt(m.exit.excess_bps)} bps)")
        else:
            parts.append(
                f"exit {m.live.exit_reason.value} {_hhmm(m.live.exit_ts)} vs {m.model.exit_reason.value} "
                f"{_hhmm(m.model.exit_ts)} ({m.exit_slots:+d} bars)"
            )
        if m.live.qty != m.model.qty:
            parts.append(f"qty {m.live.qty} vs {m.model.qty}")
        lines.append(f"  = {_trade_label(m.live)}: {'; '.join(parts)}; P&L {m.pnl_difference:+,.2f} vs model")
    for u in c.missing:
        lines.append(f"  - missing {_trade_label(u.trade)} (model P&L {u.trade.pnl:+,.2f}): {u.why}")
    for u in c.extra:
        lines.append(f"  + extra {_trade_label(u.trade)} (live P&L {u.trade.pnl:+,.2f}): {u.why}")
    lines += [f"note: {n}" for n in c.notes]
    return lines
