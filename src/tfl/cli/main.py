"""The `tfl` command: one entry point with a subcommand for every job.

Errors a user can cause (bad settings, bad data, bad dates) end with one clear line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tfl import logs
from tfl.calendar.nse import CalendarError
from tfl.cli.paths import journal_to_write, output_dir, output_file
from tfl.data.layout import DATA_LAYOUT
from tfl.data.loader import DataError
from tfl.errors import Unavailable
from tfl.fyers.errors import FyersError
from tfl.live.journal import JournalError
from tfl.secrets import SecretError
from tfl.settings import Settings, SettingsError, load_settings
from tfl.timeutil import parse_date

log = logging.getLogger("tfl.cli")

EXIT_USAGE = 2
EXIT_TRANSIENT = 5  # tfl trade: a service did not answer; a restart may cure it


class UsageError(Exception):
    """A problem with the command line or its inputs; reported in one line."""


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, unless it is None or False (unset: the settings
    decide, and the help text says which), and keeps a block with indented lines (the data
    layout) as written while wrapping plain paragraphs."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in text.split("\n\n"):
            if "\n " in block:
                blocks.append("\n".join(indent + line for line in block.splitlines()))
            else:
                blocks.append(super()._fill_text(block, width, indent))
        return "\n\n".join(blocks)

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action) or ""


DATE_HELP = "YYYY-MM-DD"


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _date(text: str) -> Any:
    try:
        return parse_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _symbols(text: str) -> list[str] | None:
    if text.strip().lower() == "all":
        return None
    syms = [s.strip() for s in text.split(",") if s.strip()]
    if not syms:
        raise argparse.ArgumentTypeError("--symbols needs 'all' or a comma-separated list")
    return syms


def _settings(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"--set '{item}': expected section.key=value")
        overrides[key.strip()] = value.strip()
    overrides.update(extra or {})
    return load_settings(getattr(args, "config", None), overrides=overrides)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML settings file (defaults < file < env < flags)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override one setting, e.g. --set risk.max_positions=10 (repeatable)",
    )


# --------------------------------------------------------------------------- data


def cmd_data_check(args: argparse.Namespace) -> int:
    from tfl.data.check import check_dir

    reports = check_dir(args.dir)
    cols = (
        "kind",
        "symbol",
        "rows",
        "dup",
        "dup_diff",
        "bad_ohlc",
        "non_pos",
        "outside",
        "gap_slots",
        "miss_days",
        "market_gaps",
        "first",
        "last",
    )
    rows = []
    for r in sorted(reports, key=lambda r: (r.kind, r.symbol)):
        if args.only_defects and r.defects == 0:
            continue
        if r.error:
            rows.append((r.kind, r.symbol, *("-",) * (len(cols) - 4), "ERROR", r.error))
            continue
        rows.append(
            (
                r.kind,
                r.symbol,
                str(r.rows),
                str(r.duplicates),
                str(r.differing_duplicates),
                str(r.bad_ohlc),
                str(r.non_positive),
                str(r.outside_session),
                str(r.own_slots),
                str(r.missing_days),
                str(r.market_slots),
                r.first,
                r.last,
            )
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    _out("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        _out("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    ok = [r for r in reports if not r.error]
    with_defects = sum(1 for r in reports if r.defects)
    _out(
        f"\n{len(reports)} files, {sum(1 for r in reports if r.error)} unreadable, {with_defects} with defects; "
        f"duplicates {sum(r.duplicates for r in ok)}, bad OHLC {sum(r.bad_ohlc for r in ok)}, "
        f"non-positive {sum(r.non_positive for r in ok)}, outside session {sum(r.outside_session for r in ok)}, "
        f"missing 15-min slots {sum(r.missing_slots for r in ok)} ({sum(r.market_slots for r in ok)} that most "
        f"files lack too: halts, short sessions), missing days {sum(r.missing_days for r in ok)}"
    )
    _out(
        "defects: dup_diff, bad_ohlc, non_pos, gap_slots, miss_days. Exact duplicates (dup - dup_diff) and bars "
        "outside the session are dropped without loss; market_gaps are slots most files lack too"
    )
    return 1 if any(r.error for r in reports) else 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from tfl.data.synth import SynthSpec, synthesize

    if args.symbols < 1 or args.days < 30:
        raise UsageError("--symbols must be >= 1 and --days >= 30")
    output_dir(args.out)
    spec = SynthSpec(
        symbols=args.symbols,
        days=args.days,
        seed=args.seed,
        start=args.start,
        momentum=args.momentum,
        random_walk=args.random_walk,
    )
    info = synthesize(args.out, spec)
    _out(
        f"wrote a synthetic market to {args.out}: {info['symbols']} stocks + index + VIX, "
        f"{info['sessions']} sessions, {info['bars']} 15-minute stock bars (seed {args.seed})"
    )
    return 0


# --------------------------------------------------------------------------- bias


def cmd_bias(args: argparse.Namespace) -> int:
    from tfl.data.bias_inputs import bias_records
    from tfl.data.market import load_market

    s = _settings(args)
    market = load_market(args.data, s, [], load_intraday=False)
    rec = bias_records(market, [args.date], s)[0]
    _out(json.dumps(rec.by_period(s.bias), indent=2, sort_keys=True))
    return 0


# --------------------------------------------------------------------------- backtest


def cmd_backtest(args: argparse.Namespace) -> int:
    from tfl.backtest.run import BacktestRequest, run_backtest, write_outputs

    extra: dict[str, Any] = {}
    if args.bias is not None:
        extra["backtest.bias"] = args.bias
    if args.costs is not None:
        extra["costs.model"] = args.costs
    if args.capital is not None:
        extra["backtest.capital"] = args.capital
    s = _settings(args, extra)
    output_dir(args.out)
    req = BacktestRequest(args.data, args.start, args.end, s, args.symbols)
    run = run_backtest(req)
    _refuse_empty(run)
    if run.market.problems:
        _err(f"tfl: {len(run.market.problems)} data problem(s) above; the run went on without those files")
    paths = write_outputs(run, args.out)
    sm = run.summary
    _out(
        f"backtest {sm['start']} .. {sm['end']}: {sm['symbols']} symbols, {sm['sessions']} sessions, "
        f"bias days {sm['bias_days']}"
    )
    _out(
        f"trades {sm['trades']}  net P&L {sm['net_pnl']:,.2f}  final equity {sm['final_equity']:,.2f}  "
        f"CAGR {sm['cagr_pct']}%  max DD {sm['max_drawdown_pct']}%  Sharpe {sm['sharpe']}  "
        f"win rate {sm['win_rate_pct']}%  PF {sm['profit_factor']}  avg R {sm['avg_r']}"
    )
    _out("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _refuse_empty(run: Any) -> None:
    """No session between --start and --end: a refusal, not a report of nothing ("Sharpe None")."""
    if run.summary["sessions"] == 0:
        from tfl.backtest.audit import default_period

        req = run.request
        first, last = default_period(run.market)
        raise UsageError(
            f"no trading session with data from {req.start} to {req.end} "
            f"(the data has {first} .. {last}; weekends and holidays have none)"
        )


# --------------------------------------------------------------------------- audit


def cmd_audit_lookahead(args: argparse.Namespace) -> int:
    import dataclasses

    from tfl.backtest.audit import audit_lookahead, comparison_rows, default_period
    from tfl.backtest.run import BacktestRequest, run_backtest
    from tfl.data.market import load_market
    from tfl.timeutil import iso_ist

    s = _settings(args, {"backtest.bias": args.bias})
    shown = sys.stderr.isatty()
    market = load_market(args.data, s, args.symbols, show_progress=shown)
    first, last = default_period(market)
    start, end = args.start or first, args.end or last
    req = BacktestRequest(args.data, start, end, s, args.symbols)
    report, base = audit_lookahead(req, market, samples=args.samples, seed=args.seed, show_progress=shown)
    _refuse_empty(base)
    _out(
        f"look-ahead audit {start} .. {end}: {len(report.cuts)} cut times, "
        f"{report.decisions_compared} decisions compared, {report.violations} violations"
    )
    for c in report.cuts:
        status = "ok" if not c.violations else f"{len(c.violations)} VIOLATIONS"
        counts = ", ".join(f"{k} {v}" for k, v in c.compared.items())
        _out(f"  cut {iso_ist(c.cut_ts)}: {counts}: {status}")
        for v in c.violations[:10]:
            _out(f"    {v}")
    rc = 0 if report.violations == 0 else 1
    if args.compare_leak:
        leak_req = dataclasses.replace(req, leak=True)
        leak_run = run_backtest(leak_req, show_progress=shown, market=market)
        leak_report, _ = audit_lookahead(
            leak_req, market, samples=args.samples, seed=args.seed, baseline=leak_run, show_progress=shown
        )
        _out("\nthe same rules with the classic leak (15-minute bars see the same day's daily RSI):")
        _out(
            f"  audit of the leaky run: {leak_report.violations} violations found "
            f"in {len(leak_report.cuts)} cut times (the audit catches it)"
        )
        _out(f"\n  {'metric':<20}{'honest':>18}{'leaky':>18}")
        for k, a, b in comparison_rows(base.summary, leak_run.summary):
            _out(f"  {k:<20}{a:>18}{b:>18}")
    return rc


# --------------------------------------------------------------------------- live


def cmd_trade(args: argparse.Namespace) -> int:
    from tfl.cli.live_cmds import cmd_trade as run

    extra: dict[str, Any] = {}
    if args.costs is not None:
        extra["costs.model"] = args.costs
    if args.capital is not None:
        extra["backtest.capital"] = args.capital
    if args.date is None and (args.world == "replay" or args.feed == "replay"):
        raise UsageError("--date is required when replaying history")
    journal_to_write(args.journal)
    if args.state_dir is not None:
        output_dir(args.state_dir, "--state-dir")
    for flag, path in (("--log-file", args.log_file), ("--broker-store", args.broker_store)):
        if path is not None:
            output_file(path, flag)
    if args.speed is None:
        args.speed = "max" if args.world == "replay" else "1"
    if args.speed != "max":
        try:
            if float(args.speed) <= 0:
                raise ValueError
        except ValueError:
            raise UsageError(f"--speed '{args.speed}': expected 'max' or a positive number") from None
    settings = _settings(args, extra)
    _warn_no_bias(args, settings)
    return run(args, settings)


def _warn_no_bias(args: argparse.Namespace, settings: Settings) -> None:
    """A replayed session without --bias reads the dated bias file; when there is none, every
    session is NO_TRADES and the run (six hours in real time) trades nothing. That is the honest
    outcome, but it must be said at the start, on stderr, with the fix, not only as a WARNING
    in the log. (Paper and live on FYERS wait for the pre-market job's record instead.)"""
    from tfl.cli.live_cmds import side_files
    from tfl.cli.wiring import side_base

    replayed = (args.feed or ("replay" if args.world == "replay" else "fyers")) == "replay"
    if args.bias is not None or not replayed or settings.aws.bias_parameter:
        return
    bias_file = Path(settings.live.bias_file) if settings.live.bias_file else None
    if bias_file is None:
        bias_file = side_files(side_base(args.journal, args.state_dir))["bias"]
    if bias_file.exists():
        return
    _err(
        f"tfl: ERROR: no --bias and no bias file at {bias_file}: every session is NO_TRADES and "
        f"nothing will trade. Fix: --bias auto (computed from the data), or write the record first: "
        f"tfl bias --data {args.data} --date {args.date} > {bias_file}"
    )


# --------------------------------------------------------------------------- FYERS


def _fyers(
    name: str, check: Callable[[argparse.Namespace], object] | None = None
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from tfl.cli import fyers_cmds

        if check is not None:
            check(args)
        return int(getattr(fyers_cmds, name)(args, _settings(args)))

    return run


def _symbol_list(text: str) -> list[str]:
    syms = [s.strip() for s in text.split(",") if s.strip()]
    if not syms:
        raise argparse.ArgumentTypeError("--symbols needs a comma-separated list")
    return syms


# --------------------------------------------------------------------------- wiring


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfl", description="TrafficLight-Manny: intraday NSE trading system", formatter_class=_Help
    )
    p.add_argument("--version", action="version", version=f"tfl {_version()}")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR (default WARNING; trade: INFO)")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines on stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser(
        "data",
        help="check, synthesise, fetch market data",
        description="Market data in the layout every command reads.",
        epilog=DATA_LAYOUT,
        formatter_class=_Help,
    )
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    c = dsub.add_parser(
        "check",
        help="per-file defect table of a data directory",
        description="Count each file's defects: duplicate times, OHLC that does not bracket open/close, "
        "non-positive prices, bars outside the session, missing 15-minute slots and missing days. "
        "A defect is what the loader cannot repair without a guess: exact duplicate rows and bars outside "
        "the session are dropped without loss, and slots most files lack too (halts, short sessions) are "
        "the market's; those are counted but are not defects.",
        epilog=DATA_LAYOUT,
        formatter_class=_Help,
    )
    c.add_argument("dir", type=Path, help="the data folder")
    c.add_argument("--only-defects", action="store_true", help="list only files with defects (and unreadable files)")
    c.set_defaults(func=cmd_data_check)
    sy = dsub.add_parser(
        "synth", help="write a deterministic synthetic NSE market", epilog=DATA_LAYOUT, formatter_class=_Help
    )
    sy.add_argument("--out", type=Path, required=True, help="the data folder to write (made if missing)")
    sy.add_argument("--symbols", type=int, default=40, help="number of stocks")
    sy.add_argument("--days", type=int, default=500, help="number of sessions (at least 30)")
    sy.add_argument("--seed", type=int, default=7, help="random seed: same seed, same bytes")
    sy.add_argument("--start", type=_date, default=_date("2023-01-02"), help=f"first session ({DATE_HELP})")
    sy.add_argument("--momentum", type=float, default=0.0, help="research: AR(1) of 15-minute noise (plants an edge)")
    sy.add_argument("--random-walk", action="store_true", help="research: no regimes or bursts, nothing to find")
    sy.set_defaults(func=cmd_data_synth)
    fe = dsub.add_parser("fetch", help="download FYERS history into the Parquet layout (chunked, resumable)")
    fe.add_argument("--symbols", type=_symbol_list, required=True, help="A,B,C (our names, e.g. RELIANCE)")
    fe.add_argument("--from", dest="from_date", type=_date, required=True, help="first day, YYYY-MM-DD")
    fe.add_argument("--to", dest="to_date", type=_date, required=True, help="last day, YYYY-MM-DD")
    fe.add_argument("--resolution", choices=("15", "D"), required=True, help="15-minute or daily candles")
    fe.add_argument(
        "--out", type=Path, required=True, help="data directory (the backtester's layout); resumes what is there"
    )
    _add_config(fe)
    fe.set_defaults(func=_fyers("cmd_data_fetch", lambda a: output_dir(a.out)))
    sm = dsub.add_parser("symbols", help="download and parse the FYERS symbol master for the universe")
    sm.add_argument("--out", type=Path, required=True, help="e.g. DATA/symbols.csv (read by the live adapters)")
    sm.add_argument("--universe", type=Path, help="a universe CSV (column Symbol); default: every EQ symbol")
    sm.add_argument("--url", help="default: the fyers.symbol_master_url setting")
    _add_config(sm)
    sm.set_defaults(func=_fyers("cmd_data_symbols", lambda a: output_file(a.out, make_folder=True)))
    from tfl.cli import aws_cmds

    aws_cmds.add_data_parsers(dsub, _add_config)

    b = sub.add_parser(
        "bias",
        help="print a session's bias record (JSON, with its inputs)",
        description="The traffic light for one session, decided from the previous session's daily bars. "
        "The benchmark's SMAs are named by their periods (index_smaN). The output is a valid bias file "
        "for tfl trade (tfl bias ... > bias.json).",
        epilog=DATA_LAYOUT,
        formatter_class=_Help,
    )
    b.add_argument("--data", type=Path, required=True, help="the data folder")
    b.add_argument("--date", type=_date, required=True, help=f"the session ({DATE_HELP})")
    _add_config(b)
    b.set_defaults(func=cmd_bias)

    d = Settings()
    bt = sub.add_parser(
        "backtest",
        help="portfolio backtest over a data directory",
        description="Backtest the strategy on every symbol of the universe (or --symbols) from --start to "
        "--end, both included, with indicators warmed up on all history before --start. Writes trades.csv, "
        "rejected.csv, equity.csv, bias.csv, summary.json and report.html into --out. Dates are "
        f"{DATE_HELP} (IST trading days). Settings: defaults < --config file < TFL_* environment < flags.",
        epilog=DATA_LAYOUT,
        formatter_class=_Help,
    )
    bt.add_argument("--data", type=Path, required=True, help="the data folder (layout below)")
    bt.add_argument("--symbols", type=_symbols, default=None, help="'all' (default) or A,B,C")
    bt.add_argument("--start", type=_date, required=True, help=f"first session, {DATE_HELP}")
    bt.add_argument("--end", type=_date, required=True, help=f"last session, {DATE_HELP}")
    bt.add_argument(
        "--bias",
        choices=("auto", "LONGS", "SHORTS", "BOTH", "NO_TRADES"),
        help=f"auto computes each session's bias; the others force it (default: backtest.bias, {d.backtest.bias})",
    )
    bt.add_argument(
        "--costs",
        choices=("nse_intraday", "flat"),
        help=f"the cost model (default: costs.model, {d.costs.model})",
    )
    bt.add_argument(
        "--capital",
        type=float,
        help=f"starting equity in rupees (default: backtest.capital, {d.backtest.capital:,.0f})",
    )
    bt.add_argument("--out", type=Path, required=True, help="output folder (made if missing; not a file)")
    _add_config(bt)
    bt.set_defaults(func=cmd_backtest)

    auth = sub.add_parser("auth", help="the daily FYERS login and its token")
    asub_ = auth.add_subparsers(dest="auth_command", required=True, metavar="SUBCOMMAND")
    lg = asub_.add_parser("login", help="print the login URL, then exchange the redirect for today's token")
    lg.add_argument("--redirect", help="the redirect URL (or just the auth code) of a login started earlier")
    _add_config(lg)
    lg.set_defaults(func=_fyers("cmd_auth_login"))
    sc = asub_.add_parser("secret", help="store the FYERS app secret in the secrets store (0600)")
    sc.add_argument("--stdin", action="store_true", help="read it from stdin instead of prompting")
    _add_config(sc)
    sc.set_defaults(func=_fyers("cmd_auth_secret"))
    st = asub_.add_parser("status", help="is today's token accepted by FYERS?")
    _add_config(st)
    st.set_defaults(func=_fyers("cmd_auth_status"))

    au = sub.add_parser("audit", help="honesty checks")
    asub = au.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    la = asub.add_parser(
        "lookahead",
        help="decisions before t must not change when data after t changes",
        epilog=DATA_LAYOUT,
        formatter_class=_Help,
    )
    la.add_argument("--data", type=Path, required=True, help="the data folder")
    la.add_argument("--symbols", type=_symbols, default=None, help="'all' (default) or A,B,C")
    la.add_argument("--start", type=_date, help=f"first session, {DATE_HELP} (default: the data's first)")
    la.add_argument("--end", type=_date, help=f"last session, {DATE_HELP} (default: the data's last)")
    la.add_argument(
        "--bias", choices=("auto", "LONGS", "SHORTS", "BOTH", "NO_TRADES"), default="auto", help="as in backtest"
    )
    la.add_argument("--samples", type=int, default=8, help="number of cut times")
    la.add_argument("--seed", type=int, default=1, help="seed of the cut times and the scrambled prices")
    la.add_argument(
        "--compare-leak",
        action="store_true",
        help="also run the classic same-day-RSI leak and show both results side by side",
    )
    _add_config(la)
    la.set_defaults(func=cmd_audit_lookahead)

    from tfl.cli.live_cmds import add_parsers

    add_parsers(sub, _date, _symbols, _add_config)
    sub.choices["trade"].set_defaults(func=cmd_trade)
    aws_cmds.add_parsers(sub, _add_config)
    from tfl.cli import calendar_cmds

    calendar_cmds.add_parsers(sub)
    from tfl.cli import research_cmds

    research_cmds.add_parsers(sub, _date, _symbols, _add_config, _settings)
    from tfl.cli import ops_cmds

    ops_cmds.add_parsers(sub, _add_config, _settings)
    from tfl.cli import model_cmds

    model_cmds.add_parsers(sub, _date, _symbols)
    from tfl.cli import status_cmds

    status_cmds.add_parsers(sub, _add_config, _settings)
    return p


def _version() -> str:
    """The installed package's version (its metadata, from pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tfl")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level or "WARNING", args.log_format)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        rc = func(args)
        sys.stdout.flush()  # a reader that went away is seen here, not at the interpreter's exit
        return rc
    except BrokenPipeError:
        if func is cmd_trade:  # the trader's stdout is its log: a lost log is a crash, restarted
            raise
        return _reader_gone()
    except (
        SettingsError,
        DataError,
        UsageError,
        ValueError,
        JournalError,
        CalendarError,
        FyersError,
        SecretError,
        Unavailable,
    ) as exc:
        return _failed(args, str(exc), _is_transient(exc))
    except KeyboardInterrupt:
        _err("tfl: interrupted")
        return 130
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        if func is cmd_trade:
            raise
        return _failed(args, f"{exc.filename}: {exc.strerror}", False)
    except Exception as exc:  # AWS and packaging failures: one line, no traceback
        message = _aws_message(exc)
        if message is None:
            if func is cmd_trade:  # a bug: into the trader's JSON log too, then the traceback
                logging.getLogger("tfl.cli").critical("trader crashed", exc_info=exc)
            raise
        return _failed(args, message, _is_transient(exc))


def _reader_gone() -> int:
    """stdout's reader closed the pipe (``tfl backtest ... | head -1``). The reader has what it
    wanted and every file the command writes was written before its summary was printed, so
    the command ends quietly with status 0; the rest of stdout goes to /dev/null, so the
    interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture)
        pass
    return 0


def _is_transient(exc: Exception) -> bool:
    """A failure that a restart may cure: a broker, AWS or journal service that did not answer."""
    if isinstance(exc, FyersError | SecretError | Unavailable):
        return True
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, ClientError | BotoCoreError)


def _failed(args: argparse.Namespace, message: str, transient: bool) -> int:
    """One line on stderr; the trader also logs it (FATAL, so the error alarm sees it).

    The trader's exit code tells systemd what to do: 2 (bad configuration or data) is
    final, 5 (a service that did not answer) is restarted.
    """
    _err(f"tfl: error: {message}")
    if args.func is cmd_trade:
        logging.getLogger("tfl.cli").critical(
            "trader stopped", extra={"fields": {"error": message, "restartable": transient}}
        )
        return EXIT_TRANSIENT if transient else EXIT_USAGE
    return EXIT_USAGE


def _aws_message(exc: Exception) -> str | None:
    """A one-line message for an AWS or deployment failure, or None for anything else."""
    from tfl.aws.deploy import DeployError
    from tfl.aws.package import PackageError

    if isinstance(exc, DeployError | PackageError):
        return str(exc)
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "AWS call")
        return f"AWS {op} failed: {err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
    if isinstance(exc, BotoCoreError):
        return f"AWS: {exc}"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
