"""The statistics block traders know, computed from the trades and the equity curve.

Daily returns use the equity at the last bar of each session (the book is flat then),
with the initial capital as the first reference; Sharpe and Sortino are annualised
with sqrt(252) and a zero risk-free rate.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from tfl.backtest.simulator import SimResult
from tfl.costs import COMPONENTS
from tfl.domain import ExitReason, RejectReason, Side
from tfl.strategy.book import Trade
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, day_to_date

TRADING_DAYS = 252


def _r(x: float | None, nd: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, nd)


def daily_equity(res: SimResult) -> tuple[np.ndarray, np.ndarray]:
    """(IST day numbers, end-of-session equity) from the bar-close curve."""
    if res.equity_ts.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    days = (res.equity_ts + IST_OFFSET_S) // SECONDS_PER_DAY
    last = np.ones(days.shape[0], dtype=bool)
    last[:-1] = days[1:] != days[:-1]
    return days[last], res.equity[last]


def drawdown(equity: np.ndarray, capital: float) -> np.ndarray:
    """Drawdown in percent below the running peak (the initial capital counts as a peak)."""
    if equity.shape[0] == 0:
        return np.zeros(0)
    peak = np.maximum.accumulate(np.maximum(equity, capital))
    return (equity / peak - 1.0) * 100.0


def summarise(res: SimResult, capital: float, start_day: int, end_day: int) -> dict[str, Any]:
    trades = res.trades
    pnls = np.array([t.pnl for t in trades])
    rs = np.array([t.r_multiple for t in trades])
    final = float(res.equity[-1]) if res.equity.shape[0] else capital
    net = final - capital
    years = max((end_day - start_day + 1) / 365.25, 1e-9)
    cagr = (final / capital) ** (1.0 / years) - 1.0 if final > 0 else -1.0
    dd = drawdown(res.equity, capital)
    d_days, d_eq = daily_equity(res)
    rets = (
        np.diff(np.concatenate([[capital], d_eq])) / np.concatenate([[capital], d_eq[:-1]])
        if d_eq.shape[0]
        else np.zeros(0)
    )
    sharpe = sortino = None
    if rets.shape[0] > 1 and rets.std(ddof=1) > 0:
        sharpe = float(rets.mean() / rets.std(ddof=1) * math.sqrt(TRADING_DAYS))
    downside = np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)) if rets.shape[0] else 0.0
    if rets.shape[0] > 1 and downside > 0:
        sortino = float(rets.mean() / downside * math.sqrt(TRADING_DAYS))
    wins = pnls[pnls > 0]
    losses = pnls[pnls <= 0]
    gross_win = float(wins.sum()) if wins.shape[0] else 0.0
    gross_loss = float(-losses.sum()) if losses.shape[0] else 0.0
    sqn = None
    if rs.shape[0] > 1 and rs.std(ddof=1) > 0:
        sqn = float(math.sqrt(rs.shape[0]) * rs.mean() / rs.std(ddof=1))
    charges = {k: 0.0 for k in COMPONENTS}
    for t in trades:
        for ch in (t.entry_charges, t.exit_charges):
            for k, v in ch.as_dict().items():
                charges[k] += v
    reasons = Counter(t.exit_reason.value for t in trades)
    rej = Counter(r.reason.value for r in res.rejections)
    dd_days = _max_dd_duration_days(d_days, d_eq, capital, start_day)
    return {
        "initial_capital": _r(capital, 2),
        "final_equity": _r(final, 2),
        "net_pnl": _r(net, 2),
        "total_return_pct": _r(net / capital * 100.0, 4),
        "cagr_pct": _r(cagr * 100.0, 4),
        "max_drawdown_pct": _r(float(-dd.min()) if dd.shape[0] else 0.0, 4),
        "max_drawdown_duration_days": dd_days,
        "sharpe": _r(sharpe, 4),
        "sortino": _r(sortino, 4),
        "trades": len(trades),
        "long_trades": sum(1 for t in trades if t.side is Side.LONG),
        "short_trades": sum(1 for t in trades if t.side is Side.SHORT),
        "win_rate_pct": _r(wins.shape[0] / len(trades) * 100.0, 4) if trades else None,
        "profit_factor": _r(gross_win / gross_loss, 4) if gross_loss > 0 else None,
        "expectancy": _r(float(pnls.mean()), 2) if trades else None,
        "avg_r": _r(float(rs.mean()), 4) if trades else None,
        "sqn": _r(sqn, 4),
        "best_trade": _r(float(pnls.max()), 2) if trades else None,
        "worst_trade": _r(float(pnls.min()), 2) if trades else None,
        "gross_pnl": _r(sum(t.gross_pnl for t in trades), 2),
        "total_charges": _r(sum(charges.values()), 2),
        "charges": {k: _r(v, 2) for k, v in charges.items()},
        "exposure_pct": _r(float(res.exposed.mean() * 100.0) if res.exposed.shape[0] else 0.0, 4),
        "exit_reasons": {r.value: reasons.get(r.value, 0) for r in ExitReason},
        "rejections": {r.value: rej.get(r.value, 0) for r in RejectReason},
        "sessions": int(d_days.shape[0]),
        "start": day_to_date(start_day).isoformat(),
        "end": day_to_date(end_day).isoformat(),
    }


def _max_dd_duration_days(days: np.ndarray, eq: np.ndarray, capital: float, start_day: int) -> int:
    """Longest stretch, in calendar days, spent below a previous equity high (the initial
    capital is the first high, on the first day of the run)."""
    longest = 0
    peak = capital
    peak_day = start_day
    for d, e in zip(days.tolist(), eq.tolist(), strict=True):
        if e >= peak:
            peak = e
            peak_day = d
        else:
            longest = max(longest, d - peak_day)
    return int(longest)


def per_symbol(trades: list[Trade]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for t in trades:
        row = rows.setdefault(t.symbol, {"symbol": t.symbol, "trades": 0, "wins": 0, "net_pnl": 0.0, "sum_r": 0.0})
        row["trades"] += 1
        row["wins"] += 1 if t.pnl > 0 else 0
        row["net_pnl"] += t.pnl
        row["sum_r"] += t.r_multiple
    out = []
    for sym in sorted(rows):
        row = rows[sym]
        out.append(
            {
                "symbol": sym,
                "trades": row["trades"],
                "win_rate_pct": round(row["wins"] / row["trades"] * 100.0, 2),
                "net_pnl": round(row["net_pnl"], 2),
                "avg_r": round(row["sum_r"] / row["trades"], 4),
            }
        )
    return out
