"""Load a whole data directory: the universe, intraday bars, daily bars, the calendar.

A file that cannot be used is reported in one line and skipped; the run goes on with
the other symbols when that is safe, and :attr:`Market.problems` says what was skipped.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfl.data.bars import I64, BarSeries, sorted_unique
from tfl.data.loader import (
    DAILY_DIR,
    INTRADAY_DIR,
    DataError,
    clean_daily,
    clean_intraday,
    read_raw,
    read_universe,
    symbol_files,
)
from tfl.progress import progress_bar
from tfl.settings import Settings, parse_hhmm

log = logging.getLogger(__name__)

UNIVERSE_FILES = ("universe.csv", "nifty200.csv")
# File readers: one per core, at most four (more threads than cores only add switching).
_READERS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class Market:
    data_dir: Path
    universe: list[str]
    intraday: dict[str, BarSeries] = field(default_factory=dict)
    daily: dict[str, BarSeries] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    calendar_days: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def resolve_universe(data_dir: Path, settings: Settings) -> list[str]:
    """The configured universe: the universe file if present, else every symbol with
    both an intraday and a daily file that is not an index."""
    configured = settings.backtest.universe_file
    if configured:
        ufile = Path(configured)
        ufile = ufile if ufile.is_absolute() else data_dir / ufile
        if not ufile.is_file():
            raise DataError(ufile, "universe file does not exist")
        return read_universe(ufile)
    for name in UNIVERSE_FILES:
        if (data_dir / name).is_file():
            return read_universe(data_dir / name)
    excluded = set(settings.backtest.index_symbols) | {settings.bias.benchmark_symbol, settings.bias.vix_symbol}
    both = set(symbol_files(data_dir, INTRADAY_DIR)) & set(symbol_files(data_dir, DAILY_DIR))
    return sorted(both - excluded)


def load_market(
    data_dir: Path,
    settings: Settings,
    symbols: Iterable[str] | None = None,
    *,
    load_intraday: bool = True,
    load_universe_daily: bool = True,
    show_progress: bool = False,
) -> Market:
    """Load what a run needs. ``symbols`` None means the whole universe. ``show_progress``
    draws a bar on stderr that advances per file read."""
    if not data_dir.is_dir():
        raise DataError(data_dir, "data directory does not exist")
    universe = resolve_universe(data_dir, settings)
    wanted = list(dict.fromkeys(symbols)) if symbols is not None else list(universe)
    m = Market(data_dir, universe)
    intraday_files = symbol_files(data_dir, INTRADAY_DIR)
    daily_files = symbol_files(data_dir, DAILY_DIR)
    if not intraday_files and not daily_files:
        raise DataError(data_dir, f"no bar files under {INTRADAY_DIR}/ or {DAILY_DIR}/")

    open_min = parse_hhmm(settings.strategy.session_open)
    last_bar_min = parse_hhmm(settings.strategy.last_bar)

    def problem(msg: str) -> None:
        m.problems.append(msg)
        log.error(msg, extra={"fields": {"component": "data"}})

    daily_needed = list(wanted)
    if load_universe_daily:
        daily_needed += [*universe, settings.bias.benchmark_symbol, settings.bias.vix_symbol]
    daily_jobs: dict[str, Callable[[], BarSeries]] = {}
    for sym in dict.fromkeys(daily_needed):
        dpath = daily_files.get(sym)
        if dpath is None:
            if sym in wanted:
                problem(f"{sym}: no daily file, so no daily RSI: it cannot trade")
            elif sym in (settings.bias.benchmark_symbol, settings.bias.vix_symbol):
                problem(f"{sym}: no daily file: the computed bias will be NO_TRADES")
            continue
        daily_jobs[sym] = functools.partial(_load_daily, dpath, sym)
    intraday_jobs: dict[str, Callable[[], BarSeries]] = {}
    if load_intraday:
        for sym in wanted:
            ipath = intraday_files.get(sym)
            if ipath is None:
                problem(f"{sym}: no 15-minute file (skipping {sym})")
                continue
            intraday_jobs[sym] = functools.partial(_load_intraday, ipath, sym, open_min, last_bar_min)

    with progress_bar(len(daily_jobs) + len(intraday_jobs), "load", show_progress, unit="file") as bar:
        lock = threading.Lock()  # the readers' threads report, one at a time

        def read_one(n: int) -> None:
            with lock:
                bar.update(n)

        daily_out = _run_jobs(daily_jobs, read_one)
        intraday_out = _run_jobs(intraday_jobs, read_one)
    for sym, out in daily_out.items():
        if isinstance(out, DataError):
            problem(f"{out} (skipping {sym} daily)")
        else:
            m.daily[sym] = out
    for sym, out in intraday_out.items():
        if isinstance(out, DataError):
            problem(f"{out} (skipping {sym}; continuing with the other symbols)")
        elif len(out) == 0:
            problem(f"{intraday_files[sym]}: no bars inside the session (skipping {sym})")
        else:
            m.intraday[sym] = out

    days = [d.day for d in m.daily.values()]
    m.calendar_days = sorted_unique(np.concatenate(days)) if days else np.zeros(0, dtype=np.int64)
    return m


def _run_jobs(
    jobs: dict[str, Callable[[], BarSeries]], done: Callable[[int], object] | None = None
) -> dict[str, BarSeries | DataError]:
    """Read files on a few threads (Arrow and NumPy release the GIL); results keep job order.
    ``done(1)`` is called as each file is read (from the reading thread)."""

    def guarded(job: Callable[[], BarSeries]) -> BarSeries | DataError:
        try:
            return job()
        except DataError as exc:
            return exc
        finally:
            if done is not None:
                done(1)

    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        results = list(pool.map(guarded, jobs.values()))
    return dict(zip(jobs, results, strict=True))


def _load_daily(path: Path, symbol: str) -> BarSeries:
    return clean_daily(read_raw(path), symbol)


def _load_intraday(path: Path, symbol: str, open_min: int, last_bar_min: int) -> BarSeries:
    return clean_intraday(read_raw(path), symbol, open_min, last_bar_min)
