"""One trial: a full backtest of one point of the search space, through the one core.

A :class:`Workbench` holds what every trial of a sweep shares: the market, loaded once
per worker, and the indicators and setups, computed once per distinct indicator and setup
setting. A trial is then only the part of the backtest its settings change. Its result is
small (the metrics and one number per session), so it crosses process boundaries cheaply.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from tfl.backtest.metrics import TRADING_DAYS, daily_equity
from tfl.backtest.run import BacktestRequest, BacktestRun, run_backtest, session_dates
from tfl.backtest.signals import SymbolFrame, SymbolIndicators, compute_indicators, frames_from, indicator_key
from tfl.backtest.simulator import SimPrep, prepare
from tfl.data.bars import F64, I64
from tfl.data.bias_inputs import bias_records
from tfl.data.market import Market, load_market
from tfl.domain import Bias, ExitReason, Side
from tfl.regime import BiasRecord
from tfl.research.identity import config_hash, settings_hash, trial_hash
from tfl.research.space import Point
from tfl.settings import Settings
from tfl.strategy.book import Trade
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, date_to_day, day_to_date

# Settings that change what is loaded, not what is decided: one sweep keeps them fixed.
LOAD_KEYS = ("strategy.session_open", "strategy.last_bar", "backtest.universe_file", "backtest.index_symbols")
# The strategy settings the setups depend on (besides every indicator setting); a test holds
# that changing any other strategy setting leaves the setups unchanged.
SETUP_KEYS = (
    "min_run",
    "max_run",
    "long_rsi_min",
    "short_rsi_max",
    "session_open",
    "last_bar",
    "squareoff_time",
    "use_rsi_filter",
    "use_trend_filter",
)
COST_MULTIPLES = (0.0, 0.5, 1.0, 1.5, 2.0)
FRAME_CACHE = 6  # distinct setup settings kept per worker (each ~ the universe's setups)
INDICATOR_CACHE = 3  # distinct indicator settings kept per worker (each ~ 3 arrays per bar)
LAYOUT_CACHE = 4  # run layouts (grid, bar index, candidate setups) kept per worker


@dataclass(frozen=True)
class TrialMetrics:
    """The summary a sweep compares trials by (NaN where undefined, e.g. no trades)."""

    sharpe: float
    sortino: float
    cagr_pct: float
    max_drawdown_pct: float
    calmar: float
    profit_factor: float
    sqn: float
    win_rate_pct: float
    avg_r: float
    expectancy: float
    net_pnl: float
    gross_pnl: float
    total_charges: float
    exposure_pct: float
    trades: int
    long_trades: int
    short_trades: int


OBJECTIVES = tuple(f.name for f in fields(TrialMetrics) if f.name not in ("trades", "long_trades", "short_trades"))
# Lower is better for these; everything else is maximised.
MINIMISED = ("max_drawdown_pct", "total_charges")


@dataclass(frozen=True)
class CostVariant:
    """The trial's trades re-priced at ``multiple`` times the cost model (same trades, same sizes)."""

    multiple: float
    net_pnl: float
    sharpe: float
    cagr_pct: float


@dataclass(frozen=True)
class TrialResult:
    trial_hash: str  # the configuration over this period (the cache key)
    config_hash: str  # the configuration (settings and symbols): what the ledger counts
    settings_hash: str
    point: Point
    start: dt.date
    end: dt.date
    metrics: TrialMetrics
    days: I64  # IST day number of each session
    returns: F64  # that session's return on the start-of-session equity
    day_raw_pnl: F64  # P&L before any cost (unslipped prices, no charges), by session
    day_cost: F64  # slippage + charges, by session
    cost_variants: tuple[CostVariant, ...]
    breakeven_multiple: float  # the cost multiple at which net P&L is zero (0: loses before costs)
    breakeven_cost_per_trade: float  # rupees a round trip may cost for the net to be zero
    turnover: float

    def objective(self, name: str) -> float:
        value = float(getattr(self.metrics, name))
        if math.isnan(value):
            return -math.inf
        return -value if name in MINIMISED else value


def _num(summary: dict[str, object], key: str) -> float:
    v = summary.get(key)
    return float(v) if isinstance(v, int | float) else math.nan


def metrics_of(summary: dict[str, object]) -> TrialMetrics:
    cagr, dd = _num(summary, "cagr_pct"), _num(summary, "max_drawdown_pct")
    return TrialMetrics(
        sharpe=_num(summary, "sharpe"),
        sortino=_num(summary, "sortino"),
        cagr_pct=cagr,
        max_drawdown_pct=dd,
        calmar=cagr / dd if dd > 0 else math.nan,
        profit_factor=_num(summary, "profit_factor"),
        sqn=_num(summary, "sqn"),
        win_rate_pct=_num(summary, "win_rate_pct"),
        avg_r=_num(summary, "avg_r"),
        expectancy=_num(summary, "expectancy"),
        net_pnl=_num(summary, "net_pnl"),
        gross_pnl=_num(summary, "gross_pnl"),
        total_charges=_num(summary, "total_charges"),
        exposure_pct=_num(summary, "exposure_pct"),
        trades=int(_num(summary, "trades")),
        long_trades=int(_num(summary, "long_trades")),
        short_trades=int(_num(summary, "short_trades")),
    )


def raw_and_cost(t: Trade, slip: float) -> tuple[float, float]:
    """A trade's P&L before costs (the prices before slippage) and what it cost.

    Entries (stop-market) and every exit but the target (a limit) are slipped against
    the trader by ``slip`` (:func:`tfl.core.fills.adverse`); undoing it gives the prices
    the market printed.
    """
    buy_entry = t.side is Side.LONG
    raw_entry = t.entry_price / (1.0 + slip) if buy_entry else t.entry_price / (1.0 - slip)
    if t.exit_reason is ExitReason.TARGET:
        raw_exit = t.exit_price
    else:
        raw_exit = t.exit_price / (1.0 - slip) if buy_entry else t.exit_price / (1.0 + slip)
    raw = t.side * t.qty * (raw_exit - raw_entry)
    return raw, raw - t.gross_pnl + t.charges


def session_series(run: BacktestRun) -> tuple[I64, F64, F64, F64]:
    """(days, returns, raw P&L, cost) per session of the run, aligned on the equity curve's
    sessions. The book is flat at every session's end, so a session's P&L is its trades'."""
    res = run.result
    capital = run.request.settings.backtest.capital
    days, eq = daily_equity(res)
    if days.shape[0] == 0:
        return days, eq, eq, eq
    prev = np.concatenate([[capital], eq[:-1]])
    returns = (eq - prev) / prev
    raw = np.zeros(days.shape[0])
    cost = np.zeros(days.shape[0])
    slip = run.request.settings.costs.slippage_pct / 100.0
    if res.trades:
        exit_days = (np.array([t.exit_ts for t in res.trades], dtype=np.int64) + IST_OFFSET_S) // SECONDS_PER_DAY
        pos = np.searchsorted(days, exit_days)
        pos = np.minimum(pos, days.shape[0] - 1)
        pairs = [raw_and_cost(t, slip) for t in res.trades]
        np.add.at(raw, pos, [p[0] for p in pairs])
        np.add.at(cost, pos, [p[1] for p in pairs])
    return days, returns, raw, cost


def variant(days: I64, raw: F64, cost: F64, multiple: float, capital: float) -> CostVariant:
    """The session path at ``multiple`` times the costs: same trades, same sizes."""
    pnl = raw - multiple * cost
    eq = capital + np.cumsum(pnl)
    prev = np.concatenate([[capital], eq[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.where(prev > 0, pnl / prev, -1.0)
    sd = float(rets.std(ddof=1)) if rets.shape[0] > 1 else 0.0
    sharpe = float(rets.mean() / sd * math.sqrt(TRADING_DAYS)) if sd > 0 else math.nan
    final = float(eq[-1]) if eq.shape[0] else capital
    years = max((int(days[-1]) - int(days[0]) + 1) / 365.25, 1e-9) if days.shape[0] else 1e-9
    cagr = ((final / capital) ** (1.0 / years) - 1.0) * 100.0 if final > 0 else -100.0
    return CostVariant(multiple, round(final - capital, 2), sharpe, cagr)


class Workbench:
    """Everything one worker shares between trials of a sweep over one dataset."""

    def __init__(
        self,
        data_dir: Path,
        symbols: tuple[str, ...] | None,
        base: Settings,
        *,
        market: Market | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.symbols = symbols
        self.base = base
        self.market = market if market is not None else load_market(data_dir, base, symbols)
        self._indicators: OrderedDict[tuple[object, ...], list[SymbolIndicators]] = OrderedDict()
        self._frames: OrderedDict[tuple[object, ...], list[SymbolFrame]] = OrderedDict()
        self._records: dict[tuple[object, ...], list[BiasRecord]] = {}
        self._layouts: OrderedDict[tuple[object, ...], SimPrep] = OrderedDict()
        self.indicator_builds = 0  # how many times indicators were computed (the cache's misses)
        self.frame_builds = 0  # how many times setups were computed
        self.layout_builds = 0  # how many times a run's layout was computed

    def sessions(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Trading sessions in [start, end]: days with a bar of a traded symbol (as a backtest counts them)."""
        lo, hi = date_to_day(start), date_to_day(end)
        parts = [np.unique(self.market.intraday[s].day) for s in self._traded()]
        days = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        return [day_to_date(int(d)) for d in days[(days >= lo) & (days <= hi)]]

    def _traded(self) -> list[str]:
        m = self.market
        return [s for s in (self.symbols or m.universe) if s in m.intraday]

    def indicators(self, s: Settings) -> list[SymbolIndicators]:
        """The indicators for ``s``: computed once per distinct indicator setting."""
        key = indicator_key(s)
        hit = self._indicators.get(key)
        if hit is not None:
            self._indicators.move_to_end(key)
            return hit
        m = self.market
        built = compute_indicators([(m.intraday[sym], m.daily.get(sym)) for sym in self._traded()], s)
        self.indicator_builds += 1
        self._indicators[key] = built
        if len(self._indicators) > INDICATOR_CACHE:
            self._indicators.popitem(last=False)
        return built

    def frames(self, s: Settings) -> list[SymbolFrame]:
        """The setups for ``s``, from the cache when another trial had the same setup settings."""
        key = setup_key(s)
        hit = self._frames.get(key)
        if hit is not None:
            self._frames.move_to_end(key)
            return hit
        frames = frames_from(self.indicators(s), s)
        self.frame_builds += 1
        self._frames[key] = frames
        if len(self._frames) > FRAME_CACHE:
            self._frames.popitem(last=False)
        return frames

    def records(self, s: Settings, req: BacktestRequest, frames: list[SymbolFrame]) -> list[BiasRecord]:
        """The computed bias records of the run's sessions (before any ``--bias`` override,
        which the backtest applies): once per bias setting and period."""
        key = (tuple(vars(s.bias).items()), req.start, req.end)
        hit = self._records.get(key)
        if hit is None:
            hit = bias_records(self.market, session_dates(frames, req), s)
            self._records[key] = hit
        return hit

    def backtest(self, s: Settings, start: dt.date, end: dt.date) -> BacktestRun:
        req = BacktestRequest(self.data_dir, start, end, s, list(self.symbols) if self.symbols else None)
        frames = self.frames(s)
        records = self.records(s, req, frames)
        key = setup_key(s)

        def layout(fr: list[SymbolFrame], bias_by_day: dict[int, Bias], lo: int, hi: int) -> SimPrep:
            """The run's layout, once per setups, bias days and period (trials come in setup order)."""
            k = (key, tuple(sorted(bias_by_day.items())), lo, hi)
            hit = self._layouts.get(k)
            if hit is None:
                hit = prepare(fr, bias_by_day, lo, hi)
                self.layout_builds += 1
                self._layouts[k] = hit
                if len(self._layouts) > LAYOUT_CACHE:
                    self._layouts.popitem(last=False)
            return hit

        return run_backtest(req, show_progress=False, market=self.market, frames=frames, records=records, layout=layout)

    def run(self, point: Point, s: Settings, start: dt.date, end: dt.date) -> TrialResult:
        run = self.backtest(s, start, end)
        return result_of(run, point, self.symbols)


def setup_key(s: Settings) -> tuple[object, ...]:
    strat = s.strategy
    return (
        tuple(getattr(s.indicators, f.name) for f in fields(s.indicators)),
        tuple(getattr(strat, k, None) for k in SETUP_KEYS),
        s.backtest.index_symbols,
    )


def result_of(run: BacktestRun, point: Point, symbols: tuple[str, ...] | None) -> TrialResult:
    s = run.request.settings
    capital = s.backtest.capital
    days, returns, raw, cost = session_series(run)
    variants = tuple(variant(days, raw, cost, k, capital) for k in COST_MULTIPLES)
    raw_total, cost_total = float(raw.sum()), float(cost.sum())
    n = len(run.result.trades)
    breakeven_multiple = raw_total / cost_total if cost_total > 0 and raw_total > 0 else 0.0
    turnover = float(sum(t.qty * (t.entry_price + t.exit_price) for t in run.result.trades))
    return TrialResult(
        trial_hash=trial_hash(s, symbols, run.request.start, run.request.end),
        config_hash=config_hash(s, symbols),
        settings_hash=settings_hash(s),
        point=point,
        start=run.request.start,
        end=run.request.end,
        metrics=metrics_of(run.summary),
        days=days,
        returns=returns,
        day_raw_pnl=raw,
        day_cost=cost,
        cost_variants=variants,
        breakeven_multiple=breakeven_multiple,
        breakeven_cost_per_trade=max(raw_total, 0.0) / n if n else 0.0,
        turnover=turnover,
    )
