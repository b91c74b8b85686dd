"""The backtest report: one self-contained, offline, interactive HTML page.

All data is embedded as JSON and drawn by a small hand-written script (SVG), so the
file opens anywhere without a network. The same run always renders the same bytes.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from tfl.backtest.metrics import daily_equity, drawdown
from tfl.timeutil import day_to_date, iso_ist

if TYPE_CHECKING:
    from tfl.backtest.run import BacktestRun


def _asset(name: str) -> str:
    return resources.files("tfl.report").joinpath(name).read_text(encoding="utf-8")


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def monthly_returns(
    days: np.ndarray, equity: np.ndarray, capital: float
) -> tuple[dict[str, dict[int, float]], dict[str, float]]:
    """Percent return of each calendar month and year, from end-of-session equity."""
    monthly: dict[str, dict[int, float]] = {}
    yearly: dict[str, float] = {}
    prev_m = prev_y = capital
    cur_m: tuple[int, int] | None = None
    last_eq = capital
    for d, e in zip(days.tolist(), equity.tolist(), strict=True):
        date = day_to_date(d)
        key = (date.year, date.month)
        if cur_m is not None and key != cur_m:
            monthly.setdefault(str(cur_m[0]), {})[cur_m[1]] = round((last_eq / prev_m - 1) * 100, 4)
            prev_m = last_eq
            if key[0] != cur_m[0]:
                yearly[str(cur_m[0])] = round((last_eq / prev_y - 1) * 100, 4)
                prev_y = last_eq
        cur_m = key
        last_eq = e
    if cur_m is not None:
        monthly.setdefault(str(cur_m[0]), {})[cur_m[1]] = round((last_eq / prev_m - 1) * 100, 4)
        yearly[str(cur_m[0])] = round((last_eq / prev_y - 1) * 100, 4)
    return monthly, yearly


def report_data(run: BacktestRun, symbols: list[dict[str, Any]]) -> dict[str, Any]:
    res = run.result
    capital = run.request.settings.backtest.capital
    days, eq = daily_equity(res)
    dd = drawdown(eq, capital)
    monthly, yearly = monthly_returns(days, eq, capital)
    trades = sorted(res.trades, key=lambda t: (t.entry_ts, t.symbol))
    return {
        "summary": {k: v for k, v in run.summary.items() if k != "settings"},
        "daily": [
            [day_to_date(d).isoformat(), round(float(e), 2), round(float(x), 4)]
            for d, e, x in zip(days.tolist(), eq.tolist(), dd.tolist(), strict=True)
        ],
        "monthly": monthly,
        "yearly": yearly,
        "r": [round(t.r_multiple, 4) for t in trades],
        "exit_reasons": run.summary["exit_reasons"],
        "symbols": symbols,
        "bias": [
            [
                b.session,
                b.bias,
                _round(b.breadth_above, 2),
                _round(b.breadth_below, 2),
                _round(b.index_close, 2),
                _round(b.vix, 2),
                b.reason,
            ]
            for b in run.bias
        ],
        "trades": [
            [
                t.symbol,
                t.side.label,
                iso_ist(t.entry_ts)[:16].replace("T", " "),
                round(t.entry_price, 4),
                t.qty,
                iso_ist(t.exit_ts)[:16].replace("T", " "),
                round(t.exit_price, 4),
                t.exit_reason.value,
                round(t.pnl, 2),
                round(t.r_multiple, 4),
            ]
            for t in trades
        ],
    }


def render_report(run: BacktestRun, symbols: list[dict[str, Any]]) -> str:
    data = report_data(run, symbols)
    sm = run.summary
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
    settings = html.escape(json.dumps(run.request.settings.to_dict(), indent=2, sort_keys=True))
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in sm.get("data_problems", []))
    verdict = "made" if (sm.get("net_pnl") or 0) > 0 else "lost"
    title = f"TFL backtest {sm['start']} to {sm['end']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_asset("report.css")}</style></head>
<body><header><h1>{html.escape(title)}</h1>
<p>{sm["symbols"]} symbols · {sm["sessions"]} sessions · costs {html.escape(str(run.request.settings.costs.model))}
 · capital ₹{sm["initial_capital"]:,.0f} · the strategy {verdict} money over this period (net of charges)</p></header>
<main>
<section><h2>Summary</h2><div id="cards"></div></section>
{f'<section class="warn"><h2>Data problems (files skipped)</h2><ul>{problems}</ul></section>' if problems else ""}
<section><h2>Equity (end of session)</h2><div id="equity"></div><h2>Drawdown</h2><div id="drawdown"></div></section>
<section><h2>Daily bias</h2><div class="legend"><span><i class="l" style="background:#16a34a"></i>LONGS</span>
<span><i style="background:#dc2626"></i>SHORTS</span><span><i style="background:#cbd5e1"></i>NO_TRADES</span>
<span><i style="background:#2563eb"></i>BOTH</span></div><div id="bias"></div></section>
<section><h2>Monthly returns (%)</h2><div id="monthly" class="scroll"></div></section>
<div class="two"><section><h2>R-multiple distribution (net)</h2><div id="rdist"></div></section>
<section><h2>Exit reasons</h2><div id="reasons"></div></section></div>
<section><h2>Per symbol</h2><div id="symbols" class="scroll"></div></section>
<section><h2>Trades</h2><input id="tfilter" placeholder="filter (symbol, side, reason, date)"> <span id="tcount"></span>
<div id="trades" class="scroll"></div></section>
<section><h2>How the exits are priced</h2><p>{html.escape(str(sm.get("eod_exit", "")))}</p></section>
<section><h2>Settings</h2><pre>{settings}</pre></section>
</main><div id="tip"></div>
<script type="application/json" id="tfl-data">{blob}</script>
<script>{_asset("report.js")}</script>
</body></html>
"""
