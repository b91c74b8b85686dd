"""`tfl trade`, `tfl journal`, `tfl report`, `tfl halt`: the live runtime's commands."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfl import logs
from tfl.cli.exit_guard import EXIT_STUCK_AFTER_ERROR, exit_if_stuck, non_daemon_threads
from tfl.cli.paths import existing_journal, output_file
from tfl.cli.wiring import (
    alert_channel,
    is_dynamo,
    metrics_sink,
    open_journal,
    open_journal_read,
    open_ops,
    secret_store,
    side_base,
    ssm_bias,
)
from tfl.data.loader import DataError
from tfl.domain import Bias
from tfl.errors import Unavailable
from tfl.live.journal import read_events
from tfl.settings import Settings, check_squareoff_lead, load_settings, switched_off

log = logging.getLogger("tfl.cli")

EXIT_NOT_FLAT = 3
EXIT_NO_TOKEN = 4


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def side_files(journal: Path) -> dict[str, Path]:
    """Files that live beside a journal unless configured otherwise."""
    return {
        "broker": journal.with_name(journal.name + ".broker"),
        "log": journal.with_name(journal.name + ".log"),
        "kill": journal.with_name(journal.name + ".halt"),
        "pid": journal.with_name(journal.name + ".pid"),
        "bias": journal.with_name("bias.json"),
        "sdk_logs": journal.with_name(journal.name + ".fyers-logs"),
    }


def cmd_trade(args: argparse.Namespace, settings: Settings) -> int:
    from tfl.calendar.nse import NseCalendar
    from tfl.data.market import load_market
    from tfl.live.paper import PaperBroker
    from tfl.live.report import check_settings, day_report
    from tfl.live.runtime import Controls, run_session, sessions_with_data

    if settings.risk.allocation != "reserve":
        raise ValueError("risk.allocation 'bar' needs the rest of the bar in advance: only the backtester can use it")
    if args.bias == "BOTH" and args.world != "replay":
        raise ValueError("--bias BOTH is research-only: it is allowed in the replay world, not in paper or live")
    off = switched_off(settings.strategy)
    if off and args.world != "replay":
        raise ValueError(f"{', '.join(off)} switched off: the ablation switches are research-only (backtest, replay)")
    if not settings.strategy.use_bias and args.bias not in (None, "auto", "BOTH"):
        raise ValueError(f"--bias {args.bias} contradicts strategy.use_bias=false (both sides every session)")
    feed = args.feed or ("replay" if args.world == "replay" else "fyers")
    if args.world == "live" and feed != "fyers":
        raise ValueError("the live world trades on the FYERS feed")
    if feed == "fyers":  # before any file is made: the square-off must fit before the broker's own
        check_squareoff_lead(settings)
    files = side_files(side_base(args.journal, args.state_dir))
    log_file = args.log_file or files["log"]
    logs.configure(args.log_level or "INFO", "json", stream=sys.stdout, files=[str(log_file)])
    journal = open_journal(args.journal, settings)
    check_settings(journal, settings)
    paper = PaperBroker(args.broker_store or files["broker"], slippage_pct=settings.costs.slippage_pct)
    calendar = NseCalendar(Path(settings.live.calendar_file) if settings.live.calendar_file else None)
    kill = Path(settings.live.kill_file) if settings.live.kill_file else files["kill"]
    controls = Controls(kill_file=kill)
    controls.alert = alert_channel(settings, controls.alert)
    controls.metrics = metrics_sink(settings)
    controls.install_signal()
    from tfl.live.operator import OperatorLink

    controls.operator = OperatorLink(
        open_ops(args.journal, settings), args.world, controls.clear_kill_switch, time.time, pid=os.getpid()
    )
    files["pid"].write_text(str(os.getpid()))
    bias_file = Path(settings.live.bias_file) if settings.live.bias_file else files["bias"]
    speed = None if args.speed == "max" else float(args.speed)
    exit_code = 0
    before = non_daemon_threads()  # any thread the FYERS run leaves behind must not hold the exit
    failed = True
    try:
        if feed == "fyers":
            exit_code = _trade_fyers(args, settings, journal, paper, calendar, controls, bias_file, files)
            failed = False
            return exit_code
        market = load_market(args.data, settings, args.symbols)
        symbols = [s for s in (args.symbols or market.universe) if s in market.intraday]
        if not symbols:
            raise ValueError("no symbol with usable 15-minute data")
        last = args.to or args.date
        sessions = sessions_with_data(calendar, market, args.date, last)
        if not sessions:
            log.error(
                "no trading session with data in the range", extra={"fields": {"from": str(args.date), "to": str(last)}}
            )
            return 2
        for sess in sessions:
            bias, why = _bias(args.bias, market, sess.date, settings, bias_file)
            result = run_session(
                sess, market, symbols, journal, paper, settings, bias, why, controls, speed=speed, market_sim=paper
            )
            if not result.flat:
                exit_code = EXIT_NOT_FLAT
            _log_day_report(day_report(list(read_events(journal)), sess.date))
        failed = False
    finally:
        files["pid"].unlink(missing_ok=True)
        controls.operator.store.close()
        journal.close()
        paper.close()
        if feed == "fyers":
            exit_if_stuck(before, EXIT_STUCK_AFTER_ERROR if failed else exit_code, settings.fyers.socket_close_seconds)
    return exit_code


def _log_day_report(rep: Any) -> None:
    log.info(
        "day report",
        extra={
            "fields": {
                "session": rep.session,
                "trades": len(rep.trades),
                "net_pnl": round(rep.net_pnl, 2),
                "equity": round(rep.equity, 2),
            }
        },
    )


class WaitBeat:
    """A sleep for the waits before the session (login, bias) that keeps the heartbeat going:
    a trader waiting for its operator is alive, and the missing-heartbeat alarm must not fire."""

    def __init__(
        self,
        controls: Any,
        every: float,
        state: Callable[[], str],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.controls = controls
        self.every = every
        self.state = state
        self._sleep = sleep
        self._clock = clock
        self._next = clock()

    def beat(self) -> None:
        self._next = self._clock() + self.every
        log.info("heartbeat", extra={"fields": {"state": self.state()}})
        if self.controls.metrics is not None:
            self.controls.metrics.heartbeat(state=self.state())

    def maybe_beat(self, *_: object) -> None:
        """A heartbeat if one is due (called between the steps of a long task)."""
        if self._clock() >= self._next:
            self.beat()

    def __call__(self, seconds: float) -> None:
        end = self._clock() + seconds
        while True:
            now = self._clock()
            if now >= self._next:
                self.beat()
            if now >= end:
                return
            self._sleep(max(0.0, min(end, self._next) - now))


def _trade_fyers(
    args: argparse.Namespace,
    settings: Settings,
    journal: Any,
    paper: Any,
    calendar: Any,
    controls: Any,
    bias_file: Path,
    files: dict[str, Path],
) -> int:
    """Paper (FYERS data, paper fills) or live (FYERS data and orders): today's session only.

    Before the open: the day's token (waiting for the operator's login), history up to the
    previous session on disk, and the day's bias record (waiting for the pre-market job);
    the heartbeat goes on through the waits. A trader restarted during its session (a crash,
    a reboot) keeps the bias the session opened with, and waits for a login until the close
    rather than leaving its positions unmanaged at the token deadline.
    """
    from tfl.cli import fyers_cmds as fy
    from tfl.data.market import load_market
    from tfl.fyers.auth import check_token
    from tfl.fyers.dayblock import DayBlock
    from tfl.fyers.preflight import order_access_gate
    from tfl.live.report import day_report
    from tfl.live.runtime import run_session
    from tfl.live.telegram import token_expiry, with_telegram
    from tfl.timeutil import IST, REGULAR_CLOSE, epoch_of_ist

    today = fy.today_ist()
    if args.date is not None and args.date != today:
        raise ValueError(f"the {args.world} world trades today's session ({today}), not {args.date}")
    controls.alert = with_telegram(settings, secret_store(settings), controls.alert)
    session, unknown = _calendar_session(calendar, today, controls)
    if session is None:
        log.info("not a trading day: nothing to do", extra={"fields": {"date": today.isoformat()}})
        return 0
    today_so_far = _session_so_far(journal, today)
    if today_so_far.closed:
        log.info("session already closed in the journal", extra={"fields": {"session": today.isoformat()}})
        return 0
    state = ["waiting for the FYERS login"]
    pause = WaitBeat(controls, settings.live.heartbeat_seconds, lambda: state[0])
    pause.beat()
    args.data.mkdir(parents=True, exist_ok=True)
    kit = fy.build_kit(settings, args.data)
    kit.rest.day_block = DayBlock(fy.market_now, controls.alert)  # FYERS' all-day block: alerted, then nothing sent
    close_at = dt.datetime.fromtimestamp(epoch_of_ist(today, session.close_minute), IST)
    if today_so_far.opened and not check_token(kit.rest, kit.store, today).ok:
        held = ", ".join(today_so_far.positions) or "none"
        controls.alert(
            "CRITICAL",
            f"TFL restarted mid-session without a valid FYERS token: open positions ({held}) are not managed "
            "until you log in (their stop-loss orders rest at FYERS). Log in now.",
        )
    until = close_at if today_so_far.opened else None
    if not fy.token_gate(kit, today, controls.alert, sleep=pause, until=until):
        return EXIT_NO_TOKEN
    if unknown:  # the calendar could not say: FYERS decides, or nothing trades
        state[0] = "asking FYERS whether today is a session"
        if not _broker_says_session(kit, today, controls, pause, today_so_far.positions):
            return 0
        calendar = _broker_backed(calendar, kit, settings)
    controls.token_check = lambda: check_token(kit.rest, kit.store, today).ok
    controls.token_expiry = lambda: token_expiry(kit.store)
    controls.market_now = fy.market_now
    controls.squareoff_lead_seconds = settings.live.squareoff_lead_seconds
    controls.exit_wait_seconds = settings.live.close_wait_seconds
    controls.token_recheck_seconds = settings.live.token_recheck_seconds
    # Live: FYERS takes order calls only from the app's static IP. Checked as early as possible,
    # so that a fix (and a restart) before the session opens still saves the day.
    no_orders = order_access_gate(kit.rest, controls.alert, pause=pause) if args.world == "live" else None
    state[0] = "checking history"
    symbols = _fresh_symbols(args, settings, kit, calendar, session, controls, pause, today_so_far.positions)
    market = load_market(args.data, settings, symbols)
    symbols = [s for s in symbols if s in market.intraday]
    if not symbols:
        raise ValueError("no symbol with usable 15-minute data")
    fy.refresh_today(kit, market, symbols, today, epoch_of_ist(today, session.open_minute))
    log_dir = files["sdk_logs"]
    close_ts = epoch_of_ist(today, min(session.close_minute, REGULAR_CLOSE))
    opened: list[Any] = []  # the sockets' adapters (the feed, the broker): closed however the session ends
    try:
        factory = _tracked(fy.fyers_feed_factory(kit, symbols, close_ts, log_dir, alert=controls.alert), opened)
        if args.world == "live":
            broker, sim = fy.fyers_broker(kit, log_dir), None
            opened.append(broker)  # its book poller and its order socket
            controls.on_token_recovered = broker.refresh_auth
        else:
            broker, sim = paper, paper
        if today_so_far.bias is not None and args.bias is None:
            bias, why = (
                Bias(today_so_far.bias),
                f"resumed: the bias the session opened with ({today_so_far.bias_reason})",
            )
        elif no_orders is not None:
            bias, why = Bias.NO_TRADES, f"{no_orders}: no entries today"
        else:
            state[0] = "waiting for the bias"
            bias, why = _bias_today(args.bias, market, session, settings, bias_file, pause)
        if args.world == "live":
            state[0] = "holding carried positions' orders until the open"
            opens = epoch_of_ist(today, session.open_minute)
            hold_orders_until_open(journal, opens, fy.market_now, pause, lambda: set(broker.positions()))
        result = run_session(
            session,
            market,
            symbols,
            journal,
            broker,
            settings,
            bias,
            why,
            controls,
            feed_factory=factory,
            market_sim=sim,
        )
    finally:
        _close_sockets(opened, settings.fyers.socket_close_seconds)
    _log_day_report(day_report(list(read_events(journal)), today))
    return 0 if result.flat else EXIT_NOT_FLAT


def hold_orders_until_open(
    journal: Any,
    open_ts: float,
    now: Callable[[], float],
    pause: Callable[[float], None],
    broker_holds: Callable[[], set[str]],
) -> None:
    """Live: start the session at the open when the journal carries positions (or stray shares)
    from an earlier session that the broker still holds. The start-up reconciliation covers them
    at once (a protective stop, an exit, a flatten), and FYERS takes no stop (trigger) or market
    orders before 09:15: the pre-open (09:00-09:08) takes limit orders only, and nothing is
    accepted in its matching and buffer minutes. Positions the broker no longer holds are only
    corrected in the journal, which needs no wait; a broker that cannot be asked is waited for.
    Waiting loses nothing: no stop could rest at the exchange before the open anyway."""
    from tfl.live.broker import BrokerError, BrokerTimeoutError
    from tfl.live.report import rebuild

    if now() >= open_ts:
        return
    state = rebuild(journal)
    carried = set(state.book.positions) | set(state.book.stray)
    if not carried:
        return
    try:
        held = carried & broker_holds()
    except (BrokerError, BrokerTimeoutError):
        held = carried
    if not held:
        return
    log.warning(
        "positions carried from an earlier session: the session starts at the open, "
        "when FYERS takes their stop and market orders",
        extra={"fields": {"symbols": sorted(held), "seconds": round(open_ts - now())}},
    )
    while (left := open_ts - now()) > 0:
        pause(left)


def _calendar_session(calendar: Any, today: dt.date, controls: Any) -> tuple[Any, bool]:
    """(today's session, False) from the calendar; (the regular session, True) when it cannot say,
    to be confirmed by FYERS once there is a token (:mod:`tfl.live.broker_session`)."""
    from tfl.calendar.nse import CalendarError
    from tfl.live.broker_session import regular_session

    try:
        return calendar.session(today), False
    except CalendarError as exc:
        log.warning(
            "the calendar cannot say whether today is a session: FYERS will", extra={"fields": {"error": str(exc)}}
        )
        controls.alert(
            "ERROR",
            f"TFL: {exc}. Today FYERS' market status decides whether to trade; add the holidays, commit, push, "
            "tfl deploy",
        )
        return regular_session(today), True


def _broker_says_session(kit: Any, today: dt.date, controls: Any, pause: Any, held: list[str]) -> bool:
    """Whether FYERS' market status shows a session today; a holiday is logged and alerted, no answer
    is a CRITICAL alert and a CalendarError (exit 2: nothing trades, systemd does not restart)."""
    from tfl.calendar.nse import CalendarError
    from tfl.cli import fyers_cmds as fy
    from tfl.live.broker_session import ask_broker

    verdict = ask_broker(kit.rest.market_status, today, now=fy.market_now, sleep=pause)
    fields = {"date": today.isoformat(), "status": verdict.status, "asked": verdict.asked}
    if verdict.session:
        log.warning("FYERS decided: today is a session (the calendar has no table)", extra={"fields": fields})
        return True
    if verdict.session is False:
        log.warning("FYERS decided: no session today (the calendar has no table)", extra={"fields": fields})
        controls.alert("WARNING", f"TFL: FYERS shows NSE {verdict.status} on {today}: no session, nothing traded")
        return False
    log.critical("no session answer from the calendar or FYERS: not trading", extra={"fields": fields})
    positions = f" Open positions ({', '.join(held)}) are NOT managed." if held else ""
    controls.alert(
        "CRITICAL",
        f"TFL is NOT trading on {today}: the calendar has no {today.year} table and FYERS' market status gave no "
        f"answer ({verdict.status}).{positions} Add NSE's holidays (tfl calendar add-year) and restart.",
    )
    raise CalendarError(f"{today}: neither the calendar nor FYERS' market status says whether it is a session")


def _broker_backed(calendar: Any, kit: Any, settings: Settings) -> Any:
    """The calendar with FYERS' daily candles of the benchmark for the last session before a day it cannot answer."""
    from tfl.live.broker_session import BrokerBackedCalendar, broker_previous_session

    ticker = kit.symbols.ticker(settings.bias.benchmark_symbol)
    return BrokerBackedCalendar(calendar, lambda day: broker_previous_session(kit.rest.history, ticker, day))


def _tracked(factory: Callable[..., Any], opened: list[Any]) -> Callable[..., Any]:
    """The feed factory, remembering each feed it builds (to close its socket at the end)."""

    def build(*args: Any) -> Any:
        feed = factory(*args)
        opened.append(feed)
        return feed

    return build


def _close_sockets(opened: list[Any], timeout: float) -> None:
    from tfl.cli.exit_guard import close_all

    stuck = close_all([x.close for x in opened if x is not None], timeout)
    if stuck:
        log.warning("a socket did not close in time", extra={"fields": {"closers": stuck, "timeout_s": timeout}})


@dataclass
class SessionSoFar:
    """What the journal says about today before the trader starts."""

    opened: bool = False
    closed: bool = False
    bias: str | None = None
    bias_reason: str = ""
    positions: list[str] = field(default_factory=list)


def _session_so_far(journal: Any, today: dt.date) -> SessionSoFar:
    """What the journal holds of today: opened or closed, the bias it opened with, the positions
    (from the day's report, which reads more than the day only when the day began unflat)."""
    from tfl.core.events import SessionClosed, SessionOpened
    from tfl.live.journal import read_events
    from tfl.live.report import journal_day_report

    out = SessionSoFar()
    todays = list(read_events(journal, today.isoformat()))
    for _, ev in todays:
        if isinstance(ev, SessionOpened):
            out.opened, out.bias, out.bias_reason = True, ev.bias.value, ev.bias_reason
        elif isinstance(ev, SessionClosed):
            out.closed = True
    report = journal_day_report(journal, today, todays) if out.opened else None
    out.positions = list(report.open_positions) if report is not None else []
    return out


def _fresh_symbols(
    args: argparse.Namespace,
    settings: Settings,
    kit: Any,
    calendar: Any,
    session: Any,
    controls: Any,
    pause: WaitBeat,
    held: list[str],
) -> list[str]:
    """The symbols to trade today: the universe (or --symbols) whose history reaches the
    previous session, after fetching what is missing from FYERS (until shortly before the
    open), plus any symbol the journal holds a position in (its exits must be managed)."""
    from tfl.cli import fyers_cmds as fy
    from tfl.data.market import resolve_universe
    from tfl.fyers.topup import ensure_history
    from tfl.timeutil import epoch_of_ist

    data: Path = args.data
    today = session.date
    downloaded = False
    if settings.aws.data_bucket:  # on AWS the bucket's universe (tfl deploy --universe) wins
        from tfl.aws.clients import client
        from tfl.aws.universe_file import download_universe

        downloaded = download_universe(
            client("s3", settings.aws.region), settings.aws.data_bucket, data / "universe.csv"
        )
    unreadable = bool(settings.aws.data_bucket) and not downloaded
    try:
        names = list(args.symbols or resolve_universe(data, settings))
    except DataError:
        if not unreadable:
            raise
        names = []
    if not names:
        if unreadable:  # the bucket could not be read: a restart may get it
            raise Unavailable(f"no universe in {data} and none from s3://{settings.aws.data_bucket}")
        raise ValueError(f"no universe: put universe.csv (column Symbol) into {data}, or pass --symbols")
    names += [s for s in held if s not in names]
    fy.refresh_symbol_master(settings, data, today, data / "universe.csv")  # today's tick sizes
    kit.symbols = fy.symbol_map(settings, data)
    previous = calendar.previous_session(today)
    stop_at = epoch_of_ist(today, session.open_minute) - 120  # leave two minutes to start before the open
    check = ensure_history(
        kit.rest,
        kit.symbols,
        names,
        data,
        previous,
        days=settings.live.history_days,
        now=int(fy.market_now()),
        deadline=lambda: fy.market_now() >= stop_at,
        progress=pause.maybe_beat,
    )
    stale = set(check.stale) - set(held)
    if stale and len(stale) == len(names) and check.unreachable and not check.skipped:
        raise Unavailable(f"FYERS history failed for every symbol before the open, e.g. {check.problems[0]}")
    if check.skipped:
        log.warning(
            "history not fetched for every symbol before the open",
            extra={"fields": {"skipped": len(check.skipped), "previous": previous.isoformat()}},
        )
    if stale:
        controls.alert(
            "ERROR",
            f"TFL: {len(stale)} of {len(names)} symbols lack history up to {previous} and do not "
            f"trade today: {', '.join(sorted(stale)[:10])}{' ...' if len(stale) > 10 else ''}",
        )
    return [n for n in names if n not in stale]


def _bias_today(mode: str | None, market: Any, session: Any, settings: Settings, bias_file: Path, pause: Any) -> Any:
    """Paper/live: an explicit --bias, or wait (until ``live.bias_deadline``) for today's record."""
    from tfl.cli import fyers_cmds as fy
    from tfl.live.runtime import read_bias_file, wait_for_bias
    from tfl.settings import parse_hhmm
    from tfl.timeutil import epoch_of_ist

    if mode is not None:
        return _bias(mode, market, session.date, settings, bias_file)

    def read() -> Any:
        got = ssm_bias(settings, session.date)
        return got if got is not None else read_bias_file(bias_file, session.date)

    minute = min(parse_hhmm(settings.live.bias_deadline), session.open_minute)
    return wait_for_bias(
        read,
        float(epoch_of_ist(session.date, minute)),
        now=fy.market_now,
        sleep=pause,
        poll_seconds=settings.live.bias_poll_seconds,
    )


def _bias(mode: str | None, market: Any, session: Any, settings: Settings, bias_file: Path) -> tuple[Any, str]:
    """--bias wins; otherwise the SSM parameter on AWS, or the dated bias file locally."""
    from tfl.live.runtime import resolve_bias

    if mode is None:
        from_ssm = ssm_bias(settings, session)
        if from_ssm is not None:
            return from_ssm.bias, from_ssm.reason
    return resolve_bias(mode, market, session, settings, bias_file)


def cmd_journal_show(args: argparse.Namespace) -> int:
    from tfl.core.events import OrderPlaced
    from tfl.live.report import day_report, rebuild

    journal = open_journal_read(existing_journal(args.file), load_settings())
    events = list(read_events(journal))
    state = rebuild(journal)
    sessions = [args.date.isoformat()] if args.date else journal.sessions()
    for sid in sessions:
        mine = [ev for rec, ev in events if rec.session == sid]
        if not mine:
            _out(f"{sid}: no events")
            continue

        rep = day_report(events, dt.date.fromisoformat(sid))
        _out(f"== session {sid}  bias {rep.bias}")
        orders = [ev for ev in mine if isinstance(ev, OrderPlaced)]
        _out(f"orders ({len(orders)}):")
        for o in orders:
            rec = state.orders.get(o.cid)
            status = rec.status.value if rec else "?"
            level = o.trigger if o.trigger is not None else (o.limit if o.limit is not None else "")
            side = "BUY" if o.side > 0 else "SELL"
            _out(
                f"  {o.cid:<28} {o.leg.value} {o.symbol:<12} {side:<4}"
                f" {o.type.value:<6} qty {o.qty:>6} {level!s:>12} {status}"
            )
        _out(f"trades ({len(rep.trades)}):")
        for t in rep.trades:
            _out(
                f"  {t.symbol:<12} {t.side.label:<5} qty {t.qty:>6} entry {t.entry_price:>10.2f} exit "
                f"{t.exit_price:>10.2f} {t.exit_reason.value:<11} pnl {t.pnl:>11,.2f}"
            )
        _out(f"open positions: {', '.join(rep.open_positions) or 'none'}")
        _out(f"net P&L {rep.net_pnl:,.2f}  equity {rep.equity:,.2f}")
    journal.close()
    return 0


def cmd_journal_export(args: argparse.Namespace) -> int:
    from tfl.live.report import order_rows, rebuild
    from tfl.trade_csv import TRADE_COLUMNS, trade_rows, write_csv

    out = output_file(args.out, "--out")
    orders = output_file(args.orders, "--orders") if args.orders else None
    journal = open_journal_read(existing_journal(args.file), load_settings())
    state = rebuild(journal)
    write_csv(out, TRADE_COLUMNS, trade_rows(state.book.trades))
    msg = f"wrote {len(state.book.trades)} trades to {out}"
    if orders is not None:
        rows = order_rows(state, read_events(journal))
        cols = (
            "client_id",
            "broker_id",
            "symbol",
            "leg",
            "side",
            "type",
            "qty",
            "trigger",
            "limit",
            "status",
            "filled",
            "created",
            "updated",
        )
        write_csv(orders, cols, rows)
        msg += f" and {len(rows)} orders to {orders}"
    journal.close()
    _out(msg)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tfl.live.report import day_report

    journal = open_journal_read(existing_journal(args.journal, "--journal"), load_settings())
    _out(day_report(list(read_events(journal)), args.date).text())
    journal.close()
    return 0


def cmd_halt(args: argparse.Namespace) -> int:
    """The kill switch: a kill file and a signal for a trader on this machine, and the same
    command through the operator store (which reaches a trader anywhere)."""
    from tfl.cli.ops_cmds import describe, send_and_wait
    from tfl.live.ops_store import CommandKind, new_command

    files = side_files(side_base(args.journal, args.state_dir))
    kill = Path(args.kill_file) if args.kill_file else files["kill"]
    settings = load_settings()
    journal_known = is_dynamo(args.journal) or Path(args.journal).is_file()
    if args.lift:
        if not journal_known:
            raise ValueError(f"journal {args.journal}: no such file (nothing to lift)")
        kill.unlink(missing_ok=True)
        store = open_ops(args.journal, settings)
        cmd = new_command(CommandKind.LIFT_HALT, "halt", int(time.time()), reason=args.reason)
        ack = send_and_wait(store, cmd, args.wait)
        store.close()
        _out(f"kill switch removed ({kill}); " + describe(cmd, ack, settings))
        return 0 if ack is None or ack.done else 1
    if not kill.parent.is_dir():
        raise ValueError(f"--kill-file {kill}: its folder does not exist")
    kill.write_text(args.reason + "\n", encoding="utf-8")
    msg = f"kill switch set: {kill} (the trader stops new entries and flattens; exits keep working)"
    if journal_known:
        store = open_ops(args.journal, settings)
        cmd = new_command(CommandKind.FLATTEN_HALT, "halt", int(time.time()), reason=args.reason)
        store.send(cmd)
        store.close()
        msg += f"; command {cmd.id} sent"
    pid_file = files["pid"]
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGUSR1)
            msg += f"; signalled pid {pid_file.read_text().strip()}"
        except (ValueError, ProcessLookupError, PermissionError) as exc:
            msg += f"; could not signal the trader ({exc}); it will see the file"
    _out(msg)
    return 0


def add_parsers(sub: Any, date_type: Any, symbols_type: Any, add_config: Any) -> None:
    tr = sub.add_parser("trade", help="run the live runtime (replay or paper world)")
    tr.add_argument("--world", choices=("replay", "paper", "live"), default="replay")
    tr.add_argument(
        "--feed",
        choices=("replay", "fyers"),
        help="market data: replay (history as ticks) or fyers (the FYERS data socket); "
        "default replay for the replay world, fyers otherwise",
    )
    tr.add_argument("--data", type=Path, required=True, help="data directory: history for warm-up (and replay ticks)")
    tr.add_argument("--date", type=date_type, help="first session (YYYY-MM-DD); paper/live: today")
    tr.add_argument("--to", type=date_type, help="last session (default: --date)")
    tr.add_argument(
        "--journal",
        required=True,
        help="the SQLite journal file (made if new; its folder must exist), or dynamodb://TABLE (DynamoDB)",
    )
    tr.add_argument(
        "--state-dir",
        type=Path,
        help="with a DynamoDB journal: where the log, kill switch, pid and paper broker files live "
        "(default ~/.tfl/state)",
    )
    tr.add_argument("--broker-store", type=Path, help="the paper broker's own store (default: JOURNAL.broker)")
    tr.add_argument("--symbols", type=symbols_type, default=None)
    tr.add_argument(
        "--bias",
        choices=("auto", "LONGS", "SHORTS", "BOTH", "NO_TRADES"),
        help="default: read the dated record in the bias file (bias.json beside the journal; none means "
        "NO_TRADES: nothing trades); auto: compute it from the data",
    )
    tr.add_argument("--costs", choices=("nse_intraday", "flat"))
    tr.add_argument("--capital", type=float)
    tr.add_argument("--speed", default=None, help="'max' or N times real time (replay default max, paper 1)")
    tr.add_argument("--log-file", type=Path, help="JSON log file (default: JOURNAL.log)")
    add_config(tr)

    jr = sub.add_parser("journal", help="inspect or export a trading journal")
    jsub = jr.add_subparsers(dest="journal_command", required=True, metavar="SUBCOMMAND")
    sh = jsub.add_parser("show", help="orders, trades and positions per session")
    sh.add_argument("file", help="an existing SQLite journal file, or dynamodb://TABLE")
    sh.add_argument("--date", type=date_type, help="one session, YYYY-MM-DD (default: every session)")
    sh.set_defaults(func=cmd_journal_show)
    ex = jsub.add_parser("export", help="trades in the backtester's trades.csv format, and the orders")
    ex.add_argument("file", help="an existing SQLite journal file, or dynamodb://TABLE")
    ex.add_argument("--out", type=Path, required=True, help="the trades CSV to write (its folder must exist)")
    ex.add_argument("--orders", type=Path, help="also write every order to this CSV (its folder must exist)")
    ex.set_defaults(func=cmd_journal_export)

    rp = sub.add_parser("report", help="the day's P&L report from a journal (what the post-market job sends)")
    rp.add_argument("--journal", required=True, help="an existing SQLite journal file, or dynamodb://TABLE")
    rp.add_argument("--date", type=date_type, required=True, help="the session, YYYY-MM-DD")
    rp.set_defaults(func=cmd_report)

    ha = sub.add_parser("halt", help="kill switch: stop new entries and flatten the running trader")
    ha.add_argument("--journal", required=True, help="SQLite journal file or dynamodb://TABLE")
    ha.add_argument("--state-dir", type=Path, help="with a DynamoDB journal: the trader's --state-dir")
    ha.add_argument("--kill-file", help="default: JOURNAL.halt")
    ha.add_argument("--reason", default="manual halt")
    ha.add_argument(
        "--lift",
        action="store_true",
        help="lift an operator's halt: remove the kill file and tell the trader (the daily loss limit's halt stays)",
    )
    ha.add_argument("--wait", type=float, default=10.0, help="--lift: seconds to wait for the acknowledgement")
    ha.set_defaults(func=cmd_halt)
