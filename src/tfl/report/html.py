"""The backtest report: one self-contained, offline, interactive HTML page.

Charts are plotly figures (zoom, pan, hover) drawn by the plotly.js shipped in the plotly
wheel and inlined once; tables are plain HTML rendered here. No network, no wall-clock time,
no random ids: the same run always renders the same bytes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from tfl.backtest.metrics import daily_equity, drawdown
from tfl.data.bars import F64
from tfl.report import figures
from tfl.report.breakdown import (
    PackedSession,
    TradeFacts,
    benchmark_curve,
    by_entry_time,
    by_weekday,
    finite_or_none,
    pack_sessions,
    per_year,
    rejections_by_reason,
    session_blob,
    side_stats,
    trade_facts,
)
from tfl.report.page import Col, asset, chart, fmt, json_blob, scripts, table
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, day_to_date

if TYPE_CHECKING:
    from tfl.backtest.run import BacktestRun
    from tfl.strategy.book import Trade

R_BIN = 0.5
R_LO, R_HI = -3.0, 10.0
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Trade rows in the page's JSON; the page's script reads them by these positions.
TRADE_FIELDS = (
    "symbol", "side", "entry", "entry_price", "qty", "exit", "exit_price", "reason", "pnl", "r",
    "initial_stop", "target", "session",
)  # fmt: skip
TABLE_FIELDS = 10  # the trades table shows the first ten


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


class _Dates:
    """ISO dates of IST day numbers, each formatted once per page (thousands of trades fall
    on a few hundred days)."""

    def __init__(self) -> None:
        self._iso: dict[int, str] = {}

    def iso(self, day: int) -> str:
        text = self._iso.get(day)
        if text is None:
            text = self._iso[day] = day_to_date(day).isoformat()
        return text

    def minute_texts(self, epochs: list[int]) -> list[str]:
        """``YYYY-MM-DD HH:MM`` in IST of each epoch second."""
        hhmm = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
        out = []
        for e in epochs:
            day, second = divmod(e + IST_OFFSET_S, SECONDS_PER_DAY)
            out.append(f"{self.iso(day)} {hhmm[second // 60]}")
        return out

    def session_key(self, symbol: str, day: int) -> str:
        return f"{symbol} {self.iso(day)}"


def trade_rows(run: BacktestRun, trades: list[Trade], facts: TradeFacts | None = None) -> list[list[Any]]:
    """The trades as the page's JSON rows (see ``TRADE_FIELDS``); the target is the entry
    plus ``target_r`` times the risk per share, as the rules place it. Numbers are rounded
    as arrays (a few thousand trades, each with six rounded prices)."""
    target_r = run.request.settings.strategy.target_r
    f = facts or trade_facts(trades)
    n = len(trades)

    def column(values: Iterable[float]) -> F64:
        return np.fromiter(values, dtype=np.float64, count=n)

    entry = column(t.entry_price for t in trades)
    side = column(int(t.side) for t in trades)
    target = entry + side * target_r * column(t.r for t in trades)
    dates = _Dates()
    return [
        list(row)
        for row in zip(
            [t.symbol for t in trades],
            [t.side.label for t in trades],
            dates.minute_texts([t.entry_ts for t in trades]),
            np.round(entry, 4).tolist(),
            [t.qty for t in trades],
            dates.minute_texts([t.exit_ts for t in trades]),
            np.round(column(t.exit_price for t in trades), 4).tolist(),
            [t.exit_reason.value for t in trades],
            np.round(column(f.pnl), 2).tolist(),
            np.round(column(f.r), 4).tolist(),
            np.round(column(t.initial_stop for t in trades), 4).tolist(),
            np.round(target, 4).tolist(),
            [dates.session_key(t.symbol, day) for t, day in zip(trades, f.day, strict=True)],
            strict=True,
        )
    ]


def trade_sessions(run: BacktestRun, trades: list[Trade], facts: TradeFacts | None = None) -> dict[str, PackedSession]:
    """Each traded symbol-session's 15-minute bars from the run's own market data, packed
    (one copy per symbol and day however many trades it had), by the trades' session key."""
    f = facts or trade_facts(trades)
    days_of: dict[str, set[int]] = {}
    for t, day in zip(trades, f.day, strict=True):
        days_of.setdefault(t.symbol, set()).add(day)
    dates = _Dates()
    out: dict[str, PackedSession] = {}
    for symbol in sorted(days_of):
        bars = run.market.intraday.get(symbol)
        if bars is None:
            continue
        for day, packed in pack_sessions(bars, days_of[symbol]).items():
            out[dates.session_key(symbol, day)] = packed
    return out


def _r_histogram(rs: list[float]) -> tuple[list[str], list[float]]:
    """Counts of net R in bins of 0.5 from -3 to 10; the end bins hold everything beyond."""
    n_bins = int((R_HI - R_LO) / R_BIN)
    bins = np.clip(np.floor((np.asarray(rs, dtype=np.float64) - R_LO) / R_BIN), 0, n_bins - 1).astype(np.int64)
    counts = np.bincount(bins, minlength=n_bins).tolist()
    labels = [f"{R_LO + k * R_BIN:.1f}" for k in range(n_bins)]
    labels[0], labels[-1] = f"≤{R_LO + R_BIN:.1f}", f"≥{R_HI - R_BIN:.1f}"
    return labels, [float(c) for c in counts]


def report_figures(run: BacktestRun, trades: list[Trade], facts: TradeFacts | None = None) -> dict[str, figures.Fig]:
    """Every chart of the page, by the id of its container."""
    f = facts or trade_facts(trades)
    res = run.result
    s = run.request.settings
    capital = s.backtest.capital
    days, eq = daily_equity(res)
    dd = drawdown(eq, capital)
    dates = [day_to_date(d).isoformat() for d in days.tolist()]
    bench_sym = s.bias.benchmark_symbol
    bench = benchmark_curve(run.market.daily.get(bench_sym), bench_sym, days, capital)
    r_labels, r_counts = _r_histogram(f.r)
    reasons = [(k, v) for k, v in run.summary["exit_reasons"].items() if v]
    rejected = rejections_by_reason(res.rejections)
    return {
        "equity": figures.equity_figure(
            dates, [round(float(e), 2) for e in eq.tolist()], [round(float(x), 4) for x in dd.tolist()], bench
        ),
        "bias": figures.bias_figure(run.bias),
        "by-time": figures.group_pnl_figure(by_entry_time(trades, f)),
        "by-weekday": figures.group_pnl_figure(by_weekday(trades, f)),
        "rdist": figures.bar_figure(
            r_labels if trades else [], r_counts if trades else [], height=260, title_y="trades", signed=False
        ),
        "reasons": figures.bar_figure(
            [k for k, _ in reasons], [float(v) for _, v in reasons], height=260, title_y="trades", signed=False
        ),
        "rejected": figures.bar_figure(
            [k for k, _ in rejected],
            [float(v) for _, v in rejected],
            height=max(160, 60 + 34 * len(rejected)),
            title_y="signals",
            signed=False,
            horizontal=True,
            empty="no signal was rejected",
        ),
        "trade": figures.trade_figure_template(empty=None if trades else "no trades"),
    }


def _pct(x: float | None) -> str:
    text = fmt(x, "num")
    return text if x is None else text + "%"


def _cards(sm: dict[str, Any]) -> str:
    items: list[tuple[str, str, str]] = [
        ("Net P&L", fmt(sm.get("net_pnl"), "money"), "sign"),
        ("Final equity", fmt(sm.get("final_equity"), "money"), ""),
        ("CAGR", _pct(sm.get("cagr_pct")), ""),
        ("Max drawdown", _pct(sm.get("max_drawdown_pct")), ""),
        ("Sharpe", fmt(sm.get("sharpe"), "num"), ""),
        ("Sortino", fmt(sm.get("sortino"), "num"), ""),
        ("Trades", fmt(sm.get("trades"), "int"), ""),
        ("Win rate", _pct(sm.get("win_rate_pct")), ""),
        ("Profit factor", fmt(sm.get("profit_factor"), "num"), ""),
        ("Avg R", fmt(sm.get("avg_r"), "r"), ""),
        ("Expectancy", fmt(sm.get("expectancy"), "money"), ""),
        ("SQN", fmt(sm.get("sqn"), "num"), ""),
        ("Exposure", _pct(sm.get("exposure_pct")), ""),
        ("Charges", fmt(sm.get("total_charges"), "money"), ""),
    ]
    net = sm.get("net_pnl") or 0.0
    out = []
    for k, v, how in items:
        cls = "card" + ((" pos" if net > 0 else " neg" if net < 0 else "") if how == "sign" else "")
        out.append(
            f'<div class="{cls}"><div class="k">{html.escape(k)}</div><div class="v">{html.escape(v)}</div></div>'
        )
    return f'<div id="cards">{"".join(out)}</div>'


def _monthly_table(monthly: dict[str, dict[int, float]], yearly: dict[str, float]) -> str:
    head = "".join(f'<th class="num" scope="col">{h}</th>' for h in (*MONTHS, "Year"))
    rows = []
    for y in sorted(monthly):
        cells = [f'<th class="txt" scope="row">{y}</th>']
        for m in range(1, 14):
            v = monthly[y].get(m) if m <= 12 else yearly.get(y)
            if v is None:
                cells.append('<td class="num"></td>')
                continue
            a = min(1.0, abs(v) / 10.0)
            rgb = "22,163,74" if v >= 0 else "220,38,38"
            when = MONTHS[m - 1] if m <= 12 else "total"
            cells.append(
                f'<td class="num" style="background:rgba({rgb},{0.15 + 0.75 * a:.3f})" '
                f'title="{y} {when}: {v:.2f}%">{v:.1f}</td>'
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<div class="scroll"><table id="monthly" class="heat"><thead><tr><th class="txt" scope="col">Year</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _verdict(sm: dict[str, Any]) -> str:
    if not sm.get("trades"):
        return "no trades over this period"
    net = sm.get("net_pnl") or 0.0
    made = "made" if net > 0 else "lost" if net < 0 else "neither made nor lost"
    return f"the strategy {made} money over this period (net of charges)"


def render_report(run: BacktestRun, symbols: list[dict[str, Any]]) -> str:
    """The page for one backtest run; ``symbols`` are the per-symbol rows of the run."""
    res = run.result
    sm = run.summary
    s = run.request.settings
    capital = s.backtest.capital
    trades = sorted(res.trades, key=lambda t: (t.entry_ts, t.symbol))
    facts = trade_facts(trades)
    days, eq = daily_equity(res)
    monthly, yearly = monthly_returns(days, eq, capital)
    sessions = session_blob(trade_sessions(run, trades, facts))
    data = {
        "config": figures.PLOTLY_CONFIG,
        "figures": report_figures(run, trades, facts),
        "trade_fields": list(TRADE_FIELDS),
        "trades": trade_rows(run, trades, facts),
        "sessions": sessions.index,
        "session_data": sessions.data,
        "session_width": sessions.width,
    }
    sides = side_stats(trades, facts)
    side_table = table(
        [
            Col("Side"),
            Col("Trades", "int"),
            Col("Win %", "pct"),
            Col("Net P&L", "money", True),
            Col("Avg R", "r", True),
        ],
        [[g.label, g.trades, g.win_rate_pct, g.net_pnl, g.avg_r] for g in sides],
        table_id="sides",
        sortable=False,
    )
    years = per_year(trades, res.equity_ts, res.equity, capital, facts)
    year_table = table(
        [
            Col("Year"),
            Col("Net P&L", "money", True),
            Col("Return %", "pct", True),
            Col("Trades", "int"),
            Col("Win %", "pct"),
            Col("Max DD %", "pct"),
        ],
        [[str(y.year), y.net_pnl, y.return_pct, y.trades, y.win_rate_pct, y.max_drawdown_pct] for y in years],
        table_id="years",
        sortable=False,
    )
    symbol_table = table(
        [
            Col("Symbol"),
            Col("Trades", "int"),
            Col("Win %", "pct"),
            Col("Net P&L", "money", True),
            Col("Avg R", "r", True),
        ],
        [
            [r["symbol"], r["trades"], r["win_rate_pct"], r["net_pnl"], finite_or_none(r["avg_r"], 4)]
            for r in sorted(symbols, key=lambda r: (-r["net_pnl"], r["symbol"]))
        ],
        table_id="symbols",
    )
    settings = html.escape(json.dumps(s.to_dict(), indent=2, sort_keys=True))
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in sm.get("data_problems", []))
    title = f"TFL backtest {sm['start']} to {sm['end']}"
    bench = s.bias.benchmark_symbol
    trade_cols = "".join(
        f'<th class="{"txt" if j in (0, 1, 2, 5, 7) else "num"}" scope="col">{h}</th>'
        for j, h in enumerate(("Symbol", "Side", "Entry", "Entry ₹", "Qty", "Exit", "Exit ₹", "Reason", "P&L", "R"))
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{asset("report.css")}</style></head>
<body><header><h1>{html.escape(title)}</h1>
<p>{sm["symbols"]} symbols · {sm["sessions"]} sessions · costs {html.escape(str(s.costs.model))}
 · capital ₹{sm["initial_capital"]:,.0f} · {html.escape(_verdict(sm))}</p></header>
<main>
<section><h2>Summary</h2>{_cards(sm)}</section>
{f'<section class="warn"><h2>Data problems (files skipped)</h2><ul>{problems}</ul></section>' if problems else ""}
<section><h2>Equity and drawdown (end of session)</h2>{
        chart(
            "equity",
            f"{bench} daily closes rebased to the capital at its last close before the first session; "
            "drag to zoom, double-click to reset.",
        )
    }</section>
<section><h2>Daily bias</h2>{chart("bias", "one bar per session of the run; hover for the inputs of the day")}</section>
<div class="two"><section><h2>Long vs short</h2>{side_table}</section>
<section><h2>Per year</h2>{year_table}<p class="note">Return from the previous year's last equity; max DD is the deepest
 fall below a peak reached within the year (bar closes).</p></section></div>
<section><h2>Monthly returns (%)</h2>{_monthly_table(monthly, yearly)}</section>
<div class="two"><section><h2>Net P&amp;L by entry time (IST)</h2>{chart("by-time")}</section>
<section><h2>Net P&amp;L by weekday</h2>{chart("by-weekday")}</section></div>
<div class="two"><section><h2>R-multiple distribution (net)</h2>{chart("rdist")}</section>
<section><h2>Exit reasons</h2>{chart("reasons")}</section></div>
<section><h2>Rejected signals by reason</h2>{chart("rejected")}</section>
<section><h2>One trade</h2><label for="trade-pick">Trade </label><select id="trade-pick"></select>
<p id="trade-caption" class="note"></p>{chart("trade")}
<p class="note">15-minute bars of the trade's session from the run's data; the target is the entry plus
 {s.strategy.target_r:g} R. Pick a trade here or click a row of the trades table.</p></section>
<section><h2>Per symbol</h2>{symbol_table}</section>
<section><h2>Trades</h2><input id="tfilter" placeholder="filter (symbol, side, reason, date)"> <span id="tcount"></span>
<div class="scroll"><table id="trades"><thead><tr>{trade_cols}</tr></thead><tbody></tbody></table></div></section>
<section><h2>How the exits are priced</h2><p>{html.escape(str(sm.get("eod_exit", "")))}</p></section>
<section><details><summary><h2>Settings</h2></summary><pre>{settings}</pre></details></section>
</main>
{json_blob("tfl-data", data)}
{scripts(asset("report.js"))}
</body></html>
"""
