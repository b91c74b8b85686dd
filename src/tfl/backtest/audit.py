"""`tfl audit lookahead`: prove that decisions up to time t ignore all data after t.

For each sampled cut time t (a bar start), every price and volume at or after t is
scrambled (intraday bars from t on, daily rows from t's session on, for every symbol,
the benchmark and the VIX) and whole sessions after t's day are deleted. The backtest is
run again; every decision taken before t (entries, exits, rejections, bias records,
bar-close equity) must be identical. Bar times of t's own session are kept: when a
session ends is calendar knowledge, published in advance, not market data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfl.backtest.run import BacktestRequest, BacktestRun, run_backtest
from tfl.data.bars import BarSeries
from tfl.data.market import Market
from tfl.progress import progress_bar
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, day_to_date, iso_ist


@dataclass
class CutResult:
    cut_ts: int
    compared: dict[str, int]
    violations: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    cuts: list[CutResult]

    @property
    def violations(self) -> int:
        return sum(len(c.violations) for c in self.cuts)

    @property
    def decisions_compared(self) -> int:
        return sum(sum(c.compared.values()) for c in self.cuts)


def _scramble(s: BarSeries, cut_ts: int, cut_day: int, rng: np.random.Generator, daily: bool) -> BarSeries:
    day = s.day
    if daily:
        keep = day <= cut_day
        alter = day >= cut_day
    else:
        keep = day <= cut_day
        alter = s.ts >= cut_ts
    s = s.take(keep)
    alter = alter[keep]
    k = int(alter.sum())
    if k == 0:
        return s
    # A different, plausible market after the cut: a fresh random walk from the last price.
    base = float(s.close[~alter][-1]) if (~alter).any() else float(s.close[0])
    walk = base * np.exp(np.cumsum(rng.normal(0.0, 0.02, k)))
    o = walk * np.exp(rng.normal(0.0, 0.01, k))
    c = walk
    h = np.maximum(o, c) * (1.0 + rng.uniform(0.0, 0.02, k))
    lo = np.minimum(o, c) * (1.0 - rng.uniform(0.0, 0.02, k))
    cols = {}
    for name, new in (("open", o), ("high", h), ("low", lo), ("close", c)):
        arr = getattr(s, name).copy()
        arr[alter] = new
        cols[name] = arr
    vol = s.volume.copy()
    vol[alter] = rng.uniform(0.2, 5.0, k) * (float(vol.mean()) if vol.shape[0] else 1.0)
    return BarSeries(s.symbol, s.ts, cols["open"], cols["high"], cols["low"], cols["close"], vol)


def altered_market(m: Market, cut_ts: int, seed: int) -> Market:
    rng = np.random.default_rng(seed)
    cut_day = (cut_ts + IST_OFFSET_S) // SECONDS_PER_DAY
    out = dataclasses.replace(m)
    out.intraday = {k: _scramble(v, cut_ts, cut_day, rng, False) for k, v in sorted(m.intraday.items())}
    out.daily = {k: _scramble(v, cut_ts, cut_day, rng, True) for k, v in sorted(m.daily.items())}
    days = [d.day for d in out.daily.values()]
    out.calendar_days = np.unique(np.concatenate(days)) if days else m.calendar_days
    return out


def _decisions(run: BacktestRun, cut_ts: int, cut_day: int) -> dict[str, set[tuple[Any, ...]]]:
    res = run.result
    entries = {
        (t.symbol, t.side.label, t.setup_ts, t.entry_ts, t.entry_price, t.qty, t.initial_stop)
        for t in res.trades
        if t.entry_ts < cut_ts
    }
    exits = {
        (t.symbol, t.entry_ts, t.exit_ts, t.exit_price, t.exit_reason.value) for t in res.trades if t.exit_ts < cut_ts
    }
    rejections = {(r.ts, r.symbol, r.side.label, r.reason.value) for r in res.rejections if r.ts < cut_ts}
    cut_date = day_to_date(cut_day).isoformat()
    bias = {
        tuple(sorted((k, str(v)) for k, v in dataclasses.asdict(b).items())) for b in run.bias if b.session <= cut_date
    }
    mask = res.equity_ts < cut_ts
    equity = {(int(t), float(e)) for t, e in zip(res.equity_ts[mask], res.equity[mask], strict=True)}
    return {"entries": entries, "exits": exits, "rejections": rejections, "bias": bias, "equity": equity}


def audit_lookahead(
    req: BacktestRequest,
    market: Market,
    *,
    samples: int = 8,
    seed: int = 1,
    baseline: BacktestRun | None = None,
    show_progress: bool = False,
) -> tuple[AuditReport, BacktestRun]:
    """Compare the baseline run with runs on data scrambled after sampled cut times.
    ``show_progress`` draws a bar on stderr that advances per backtest run."""
    with progress_bar(samples + (baseline is None), "audit", show_progress, unit="run") as bar:
        base = baseline or run_backtest(req, show_progress=False, market=market)
        bar.update(baseline is None)
        return _audit(req, market, samples, seed, base, bar.update), base


def _audit(
    req: BacktestRequest, market: Market, samples: int, seed: int, base: BacktestRun, ran: Callable[[int], object]
) -> AuditReport:
    grid = base.result.equity_ts
    rng = np.random.default_rng(seed)
    cuts: list[CutResult] = []
    if grid.shape[0] < 2:
        return AuditReport(cuts)
    # Prefer cut times inside sessions with activity, so the comparison has something in it.
    active = np.flatnonzero(base.result.exposed)
    pool = active if active.shape[0] >= samples else np.arange(1, grid.shape[0])
    picks = np.sort(rng.choice(pool, size=min(samples, pool.shape[0]), replace=False))
    for i, g in enumerate(picks.tolist()):
        cut_ts = int(grid[g])
        cut_day = (cut_ts + IST_OFFSET_S) // SECONDS_PER_DAY
        alt = altered_market(market, cut_ts, seed * 1000 + i)
        alt_req = dataclasses.replace(req, end=min(req.end, day_to_date(cut_day)))
        alt_run = run_backtest(alt_req, show_progress=False, market=alt)
        a = _decisions(base, cut_ts, cut_day)
        b = _decisions(alt_run, cut_ts, cut_day)
        cr = CutResult(cut_ts, {k: len(v) for k, v in a.items()})
        for kind in a:
            only_a = sorted(a[kind] - b[kind], key=str)
            only_b = sorted(b[kind] - a[kind], key=str)
            for item in only_a[:5]:
                cr.violations.append(
                    f"{kind}: before {iso_ist(cut_ts)} the original run had {item}, the altered run did not"
                )
            for item in only_b[:5]:
                cr.violations.append(
                    f"{kind}: before {iso_ist(cut_ts)} the altered run had {item}, the original did not"
                )
        cuts.append(cr)
        ran(1)
    return AuditReport(cuts)


def comparison_rows(honest: dict[str, Any], leaky: dict[str, Any]) -> list[tuple[str, str, str]]:
    keys = (
        "trades",
        "net_pnl",
        "final_equity",
        "cagr_pct",
        "max_drawdown_pct",
        "sharpe",
        "win_rate_pct",
        "profit_factor",
        "avg_r",
    )
    return [(k, str(honest.get(k)), str(leaky.get(k))) for k in keys]


def default_period(market: Market) -> tuple[dt.date, dt.date]:
    first = min(int(s.day[0]) for s in market.intraday.values())
    last = max(int(s.day[-1]) for s in market.intraday.values())
    return day_to_date(first), day_to_date(last)
