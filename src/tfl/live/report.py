"""Read a journal back: the state, the trades, the orders, and the day's P&L report.

Pure Python (no NumPy, no pandas) so the post-market AWS job can use it on the DynamoDB
journal. The settings a journal was written with are recorded in its first session, so
any reader rebuilds it exactly as the trader saw it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tfl.core.events import Event, SessionOpened
from tfl.core.state import CoreState, apply
from tfl.live.journal import Journal, Record, read_events
from tfl.settings import Settings, SettingsError
from tfl.strategy.book import Trade
from tfl.timeutil import IST

Stored = tuple[Record, Event]


def settings_from_events(events: Iterable[Stored]) -> Settings:
    for _, ev in events:
        if isinstance(ev, SessionOpened) and ev.settings is not None:
            return ev.settings
    return Settings()


def rebuild(journal: Journal) -> CoreState:
    events = list(read_events(journal))
    state = CoreState.fresh(settings_from_events(events))
    for _, ev in events:
        apply(state, ev)
    return state


ACCOUNTING_KEYS = ("costs", "risk", "strategy", "indicators")


def settings_mismatch(journal: Journal, settings: Settings) -> list[str]:
    """Keys whose values differ from the settings the journal was started with."""
    recorded = None
    for _, ev in read_events(journal):
        if isinstance(ev, SessionOpened) and ev.settings is not None:
            recorded = ev.settings.to_dict()
            break
    if recorded is None:
        return []
    now = settings.to_dict()
    out = []
    for sec in ACCOUNTING_KEYS:
        for k, v in now.get(sec, {}).items():
            if recorded.get(sec, {}).get(k) != v:
                out.append(f"{sec}.{k}")
    if recorded.get("backtest", {}).get("capital") != now["backtest"]["capital"]:
        out.append("backtest.capital")
    return out


def check_settings(journal: Journal, settings: Settings) -> None:
    diff = settings_mismatch(journal, settings)
    if diff:
        raise SettingsError(
            f"the journal was started with different settings ({', '.join(diff)}); "
            "one journal is one account: use a new journal file to change them"
        )


def _ist(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, IST)


@dataclass(frozen=True)
class DayReport:
    session: str
    bias: str
    trades: list[Trade]
    open_positions: list[str]
    equity: float
    start_equity: float

    @property
    def net_pnl(self) -> float:
        return sum(t.pnl for t in self.trades)

    @property
    def charges(self) -> float:
        return sum(t.charges for t in self.trades)

    @property
    def win_rate(self) -> float | None:
        return 100.0 * sum(1 for t in self.trades if t.pnl > 0) / len(self.trades) if self.trades else None

    def text(self) -> str:
        lines = [f"TFL daily report {self.session}", f"bias: {self.bias}"]
        if not self.trades:
            lines.append("trades: none")
        else:
            lines.append(f"trades: {len(self.trades)}  win rate: {self.win_rate:.1f}%")
            for t in self.trades:
                lines.append(
                    f"  {t.symbol:<12} {t.side.label:<5} qty {t.qty:>6}  {_ist(t.entry_ts):%H:%M} "
                    f"{t.entry_price:>10.2f} -> {_ist(t.exit_ts):%H:%M} {t.exit_price:>10.2f}  "
                    f"{t.exit_reason.value:<11} P&L {t.pnl:>11,.2f}"
                )
        gross = sum(t.gross_pnl for t in self.trades)
        lines += [
            f"gross P&L: {gross:,.2f}",
            f"charges: {self.charges:,.2f}",
            f"net P&L: {self.net_pnl:,.2f}",
            f"equity: {self.start_equity:,.2f} -> {self.equity:,.2f}",
        ]
        if self.open_positions:
            lines.append(f"OPEN POSITIONS LEFT: {', '.join(self.open_positions)}  (there must be none)")
        else:
            lines.append("open positions left: none")
        return "\n".join(lines)


def day_report(events: Sequence[Stored], session: dt.date) -> DayReport:
    """The report for ``session`` from all journal events up to and including it."""
    return _report(events, session, CoreState.fresh(settings_from_events(events)))


def session_report(events: Sequence[Stored], session: dt.date) -> DayReport | None:
    """The report for ``session`` from that session's events alone, or None when its
    SESSION_OPEN does not record the opening cash (a day that began unflat, an old journal).

    The post-market job uses it so that its work does not grow with the journal's history.
    """
    sid = session.isoformat()
    mine = [(r, ev) for r, ev in events if r.session == sid]
    opening = next((ev for _, ev in mine if isinstance(ev, SessionOpened)), None)
    if opening is None or opening.cash is None:
        return None
    state = CoreState.fresh(settings_from_events(mine))
    state.book.cash = opening.cash
    return _report(mine, session, state)


def journal_day_report(journal: Journal, session: dt.date, todays: list[Stored] | None = None) -> DayReport | None:
    """The report for ``session`` read from a journal, or None when it has no events that day.

    One read of the day's session when its SESSION_OPEN records the opening cash; otherwise
    (a day that began unflat, an older journal) every session up to the day, in order.
    ``todays``: the day's events, when the caller has read them already.
    """
    sid = session.isoformat()
    mine = list(read_events(journal, sid)) if todays is None else todays
    if not mine:
        return None
    report = session_report(mine, session)
    if report is not None:
        return report
    events = [pair for s in journal.sessions() if s <= sid for pair in read_events(journal, s)]
    return day_report(events, session)


def _report(events: Sequence[Stored], session: dt.date, state: CoreState) -> DayReport:
    sid = session.isoformat()
    start_equity: float | None = None
    bias = "no session in the journal"
    for rec, ev in events:
        if rec.session > sid:
            break
        if rec.session == sid and isinstance(ev, SessionOpened):
            start_equity = float(state.book.cash)
            bias = f"{ev.bias.value} ({ev.bias_reason})"
        apply(state, ev)
    day = sorted(
        (t for t in state.book.trades if _ist(t.entry_ts).date() == session), key=lambda t: (t.entry_ts, t.symbol)
    )
    eq = state.equity()
    return DayReport(sid, bias, day, sorted(state.book.positions), eq, start_equity if start_equity is not None else eq)


def order_rows(state: CoreState, events: Iterable[Stored]) -> list[dict[str, Any]]:
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for rec, ev in events:
        cid = getattr(ev, "cid", None)
        if cid:
            first.setdefault(cid, rec.ts)
            last[cid] = rec.ts
    rows = []
    for cid, o in state.orders.items():
        r = o.request
        rows.append(
            {
                "client_id": cid,
                "broker_id": o.broker_id or "",
                "symbol": r.symbol,
                "leg": o.leg.name,
                "side": "BUY" if r.side > 0 else "SELL",
                "type": r.type.value,
                "qty": str(r.qty),
                "trigger": "" if r.trigger is None else f"{r.trigger:.6f}",
                "limit": "" if r.limit is None else f"{r.limit:.6f}",
                "status": o.status.value,
                "filled": str(o.filled),
                "created": _ist(first[cid]).isoformat() if cid in first else "",
                "updated": _ist(last[cid]).isoformat() if cid in last else "",
            }
        )
    return rows
