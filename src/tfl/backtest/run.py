"""`tfl backtest`: load, prepare, simulate, and write every output file."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from tfl.backtest.assumptions import eod_exit_note
from tfl.backtest.metrics import drawdown, per_symbol, summarise
from tfl.backtest.signals import SymbolFrame, compute_indicators, frames_from
from tfl.backtest.simulator import SimPrep, SimResult, simulate
from tfl.data.bars import BarSeries, iso_ist_many, sorted_unique
from tfl.data.bias_inputs import bias_records
from tfl.data.loader import DataError
from tfl.data.market import Market, load_market
from tfl.domain import Bias
from tfl.progress import progress_bar, wanted
from tfl.regime import BiasRecord
from tfl.settings import Settings
from tfl.strategy.rules import session_bias
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, date_to_day, day_to_date, iso_ist
from tfl.trade_csv import TRADE_COLUMNS, trade_rows, write_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacktestRequest:
    data_dir: Path
    start: dt.date
    end: dt.date
    settings: Settings
    symbols: list[str] | None = None  # None: the whole universe
    leak: bool = False  # research only: reproduce the same-day daily RSI look-ahead


@dataclass
class BacktestRun:
    request: BacktestRequest
    market: Market
    result: SimResult
    bias: list[BiasRecord]
    summary: dict[str, Any]


class PrecomputedMismatchError(ValueError):
    """Precomputed inputs handed to :func:`run_backtest` do not fit the run."""


def traded_symbols(req: BacktestRequest, market: Market) -> list[str]:
    """The symbols a run trades: those requested (or the universe) with 15-minute bars."""
    traded = [sym for sym in (req.symbols or market.universe) if sym in market.intraday]
    if not traded:
        raise DataError(req.data_dir, "none of the requested symbols has usable 15-minute data")
    return traded


def session_dates(frames: list[SymbolFrame], req: BacktestRequest) -> list[dt.date]:
    """The run's sessions: the days with a bar of a traded symbol from start to end."""
    return [day_to_date(d) for d in _session_days(frames, date_to_day(req.start), date_to_day(req.end))]


def run_backtest(
    req: BacktestRequest,
    *,
    show_progress: bool | None = None,
    market: Market | None = None,
    frames: list[SymbolFrame] | None = None,
    records: list[BiasRecord] | None = None,
    layout: Callable[[list[SymbolFrame], dict[int, Bias], int, int], SimPrep] | None = None,
) -> BacktestRun:
    """Run one backtest; indicators always warm up on all history before ``start``.

    A caller running many backtests on the same data may pass what does not change between
    them: ``frames`` (from :func:`~tfl.backtest.signals.frames_from` for these settings and
    the symbols of :func:`traded_symbols`) and ``records`` (the computed bias records of
    :func:`session_dates`, before any ``backtest.bias`` override, which is applied here).
    ``layout`` returns :func:`~tfl.backtest.simulator.prepare`'s answer (a cache of it).
    The result is then the same as without them."""
    if req.end < req.start:
        raise ValueError(f"--end {req.end} is before --start {req.start}")
    s = req.settings
    enabled = wanted(show_progress)
    if market is None:
        market = load_market(req.data_dir, s, req.symbols, show_progress=enabled)
    traded = traded_symbols(req, market)
    if frames is None:
        frames = _prepare(market, traded, s, req.leak, enabled)
    elif [f.symbol for f in frames] != traded:
        raise PrecomputedMismatchError(f"precomputed frames are for other symbols than the run's {len(traded)}")

    start_day, end_day = date_to_day(req.start), date_to_day(req.end)
    sessions = session_dates(frames, req)
    if records is None:
        records = bias_records(market, sessions, s)
    elif [r.session for r in records] != [d.isoformat() for d in sessions]:
        raise PrecomputedMismatchError(f"precomputed bias records are not for the run's {len(sessions)} sessions")
    mode = s.backtest.bias
    if mode != "auto":
        records = [
            replace(r, bias=mode, reason=f"set by --bias {mode} (computed: {r.bias}; {r.reason})") for r in records
        ]
    sides = [session_bias(Bias(r.bias), r.reason, s.strategy) for r in records]  # BOTH if the filter is off
    records = [replace(r, bias=b.value, reason=why) for r, (b, why) in zip(records, sides, strict=True)]
    bias_by_day = {date_to_day(dt.date.fromisoformat(r.session)): Bias(r.bias) for r in records}

    grid_len = len(sessions) * 25
    with progress_bar(grid_len, "simulate", enabled, unit="bar") as sbar:
        last = [0]

        def progress(g: int) -> None:
            sbar.update(max(0, min(g, grid_len) - last[0]))
            last[0] = min(g, grid_len)

        prep = layout(frames, bias_by_day, start_day, end_day) if layout is not None else None
        result = simulate(frames, bias_by_day, start_day, end_day, s, progress=progress, prep=prep)
    summary = summarise(result, s.backtest.capital, start_day, end_day)
    summary["symbols"] = len(traded)
    summary["bars"] = int(sum(len(f.bars) for f in frames))
    summary["bias_days"] = {b.value: sum(1 for r in records if r.bias == b.value) for b in Bias}
    summary["data_problems"] = list(market.problems)
    summary["eod_exit"] = eod_exit_note(s)
    summary["settings"] = s.to_dict()
    return BacktestRun(req, market, result, records, summary)


def _prepare(market: Market, traded: list[str], s: Settings, leak: bool, enabled: bool) -> list[SymbolFrame]:
    with progress_bar(len(traded), "indicators", enabled) as bar:
        pairs = [(market.intraday[sym], market.daily.get(sym)) for sym in traded]
        return prepare_each(pairs, s, leak, bar.update)


def prepare_each(
    pairs: list[tuple[BarSeries, BarSeries | None]], s: Settings, leak: bool, tick: Callable[[int], object]
) -> list[SymbolFrame]:
    """What :func:`~tfl.backtest.signals.prepare_symbols` does, with ``tick(1)`` after each
    symbol's setups. The recursive indicators stay one panel over all symbols (split into
    chunks they cost up to twice the time), so the bar waits for it, then advances per symbol."""
    indicators = compute_indicators(pairs, s)
    frames: list[SymbolFrame] = []
    for ind in indicators:
        frames += frames_from([ind], s, leak=leak)
        tick(1)
    return frames


def _session_days(frames: list[SymbolFrame], start_day: int, end_day: int) -> list[int]:
    """IST days with at least one bar of a traded symbol inside [start, end]."""
    parts = []
    for f in frames:
        lo, hi = f.bars.day_range(start_day, end_day)
        d = (f.bars.ts[lo:hi] + IST_OFFSET_S) // SECONDS_PER_DAY
        if d.shape[0]:
            keep = np.ones(d.shape[0], dtype=bool)
            keep[1:] = d[1:] != d[:-1]
            parts.append(d[keep])
    return sorted_unique(np.concatenate(parts)).tolist() if parts else []


# --------------------------------------------------------------------------- outputs


def _f(x: float, nd: int) -> str:
    return f"{x:.{nd}f}"


def write_outputs(run: BacktestRun, out_dir: Path) -> list[Path]:
    """Write trades, rejections, equity, bias, summary and the HTML report; same input,
    same bytes (no wall-clock times, sorted keys, fixed number formats)."""
    from tfl.report.html import render_report  # the report is optional for library users

    out_dir.mkdir(parents=True, exist_ok=True)
    res = run.result
    paths = []
    p = out_dir / "trades.csv"
    write_csv(p, TRADE_COLUMNS, trade_rows(run.result.trades))
    paths.append(p)

    p = out_dir / "rejected.csv"
    rej = sorted(res.rejections, key=lambda r: (r.ts, r.symbol))
    write_csv(
        p,
        ("time", "symbol", "side", "reason", "rsi"),
        [
            {
                "time": iso_ist(r.ts),
                "symbol": r.symbol,
                "side": r.side.label,
                "reason": r.reason.value,
                "rsi": _f(r.rsi, 4),
            }
            for r in rej
        ],
    )
    paths.append(p)

    p = out_dir / "equity.csv"
    dd = drawdown(res.equity, run.request.settings.backtest.capital)
    eq_cols = zip(
        iso_ist_many(res.equity_ts),
        res.equity.tolist(),
        res.cash.tolist(),
        res.open_positions.tolist(),
        dd.tolist(),
        strict=True,
    )
    # One formatted line per row (the long file): times and numbers never need CSV quoting,
    # so these are the bytes write_csv would write.
    with p.open("w", newline="", encoding="utf-8") as fh:
        fh.write("time,equity,cash,open_positions,drawdown_pct\n")
        fh.write("".join([f"{t},{e:.4f},{c:.4f},{n},{d:.4f}\n" for t, e, c, n, d in eq_cols]))
    paths.append(p)

    p = out_dir / "bias.csv"
    names = [f.name for f in fields(BiasRecord)]  # every field is a scalar: asdict's deep copy is not needed
    cols = names if run.bias else ["session", "bias"]
    write_csv(
        p,
        cols,
        [
            {
                k: "" if v is None else (_f(v, 4) if isinstance(v, float) else str(v))
                for k, v in zip(names, (getattr(r, k) for k in names), strict=True)
            }
            for r in run.bias
        ],
    )
    paths.append(p)

    p = out_dir / "summary.json"
    p.write_text(json.dumps(run.summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    paths.append(p)

    p = out_dir / "report.html"
    p.write_text(render_report(run, per_symbol(res.trades)), encoding="utf-8")
    paths.append(p)
    return paths
