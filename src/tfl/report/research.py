"""The research report: one offline HTML page from the files a sweep or walk-forward writes.

It reads only the output directory (``verdict.json``, ``trials.csv``, ``returns.parquet``,
and for a walk-forward ``folds.csv`` and ``oos_equity.csv``), so a page can be rebuilt from
the files alone. The verdict sentence and its numbers come first; then what a skeptic asks:
is the best trial better than the many trials it was chosen from would give by luck, does it
survive costs, does it hold out of sample.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tfl.report import figures
from tfl.report.figures import LINE, MUTED, NEG, POS, Fig, base_layout
from tfl.report.page import Col, Kind, asset, chart, fmt, json_blob, scripts, table
from tfl.research import stats

SETTING_COLUMN = re.compile(r"^[a-z_]+\.[a-z_][a-z0-9_]*$")  # section.key, as in the settings file
COST_COLUMN = re.compile(r"^net_pnl_([0-9]+(?:\.[0-9]+)?)x$")
TRIALS_SHOWN = 500  # rows of the trials table; the rest are in trials.csv
STAT_LABELS: tuple[tuple[str, str, Kind], ...] = (
    ("trials_total", "Trials on this dataset", "int"),
    ("deflated_sharpe", "Deflated Sharpe (probability)", "num"),
    ("pbo", "Probability of backtest overfitting", "num"),
    ("null_p_value", "p-value against the null models", "num"),
    ("breakeven_cost_per_trade", "Break-even cost per trade (₹)", "money"),
    ("min_track_record_sessions", "Minimum track record (sessions)", "int"),
)


class ResearchReportError(ValueError):
    """The output directory cannot make a research page; the message names the file."""


@dataclass(frozen=True)
class ResearchOutputs:
    verdict: dict[str, Any]
    trials: pd.DataFrame
    returns: pd.DataFrame | None
    folds: pd.DataFrame | None
    oos_equity: pd.DataFrame | None


def load_outputs(out_dir: Path) -> ResearchOutputs:
    """Read the research files; the verdict and the trials are required."""
    vpath, tpath = out_dir / "verdict.json", out_dir / "trials.csv"
    for p in (vpath, tpath):
        if not p.is_file():
            raise ResearchReportError(f"{p}: missing (run `tfl research sweep` or `walkforward` with --out {out_dir})")
    try:
        verdict = json.loads(vpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResearchReportError(f"{vpath}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(verdict, dict) or "verdict" not in verdict:
        raise ResearchReportError(f"{vpath}: no 'verdict' key")
    try:
        trials = pd.read_csv(tpath)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ResearchReportError(f"{tpath}: cannot be read as CSV ({exc})") from None
    if "hash" not in trials.columns:
        raise ResearchReportError(f"{tpath}: no 'hash' column")

    def optional_csv(name: str) -> pd.DataFrame | None:
        p = out_dir / name
        return pd.read_csv(p) if p.is_file() else None

    rpath = out_dir / "returns.parquet"
    returns = pd.read_parquet(rpath) if rpath.is_file() else None
    return ResearchOutputs(verdict, trials, returns, optional_csv("folds.csv"), optional_csv("oos_equity.csv"))


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float | None:
    """Expected maximum Sharpe ratio of ``n_trials`` unskilled trials (true Sharpe zero) whose
    Sharpe ratios vary with ``sharpe_variance`` across trials: Bailey and Lopez de Prado (2014),
    the False Strategy theorem, sqrt(V) * ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e)))."""
    if n_trials < 2 or not sharpe_variance > 0:
        return None  # nothing to mark on the chart
    return stats.expected_max_sharpe(n_trials, sharpe_variance)


def swept_keys(trials: pd.DataFrame) -> list[str]:
    """The settings a sweep varied: the dotted columns ("strategy.long_rsi_min") with more than one value."""
    return [c for c in trials.columns if SETTING_COLUMN.match(c) and trials[c].nunique(dropna=False) > 1]


def cost_columns(trials: pd.DataFrame) -> list[tuple[float, str]]:
    found = [(float(m.group(1)), c) for c in trials.columns if (m := COST_COLUMN.match(c))]
    return sorted(found)


def _objective(out: ResearchOutputs) -> str:
    obj = str(out.verdict.get("objective", "sharpe"))
    if obj in out.trials.columns:
        return obj
    if "sharpe" in out.trials.columns:
        return "sharpe"
    raise ResearchReportError(f"trials.csv: no column for the objective '{obj}' (nor 'sharpe')")


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _clean(values: Any) -> list[float | None]:
    return [_num(v) for v in values]


def _label(v: Any) -> str:
    f = _num(v)
    return f"{f:g}" if f is not None else str(v)


def equity_figure(out: ResearchOutputs, objective: str) -> Fig | None:
    """Compounded daily returns of the best trial and of the median trial (by the objective)."""
    r = out.returns
    best = str(out.verdict.get("best", {}).get("hash", ""))
    if r is None or best not in r.columns:
        return None
    ranked = out.trials[out.trials["hash"].astype(str).isin(r.columns)].sort_values([objective, "hash"])
    median = str(ranked["hash"].iloc[(len(ranked) - 1) // 2]) if len(ranked) else best
    if "session" in r.columns:
        x = [str(v)[:10] for v in r["session"]]
    elif not isinstance(r.index, pd.RangeIndex):
        x = [str(v)[:10] for v in r.index]
    else:
        x = [str(i) for i in range(len(r))]
    traces = []
    for h, name, colour in ((best, f"best trial {best[:10]}", LINE), (median, f"median trial {median[:10]}", MUTED)):
        growth = (np.cumprod(1.0 + r[h].fillna(0.0).to_numpy(dtype=float)) - 1.0) * 100.0
        traces.append(
            go.Scatter(
                x=x, y=[round(float(v), 4) for v in growth], name=name, mode="lines",
                line={"color": colour, "width": 1.5}, hovertemplate="%{y:.2f}%<extra>" + name + "</extra>",
            )
        )  # fmt: skip
    layout = base_layout(360, showlegend=True, hovermode="x unified", yaxis={"ticksuffix": "%"})
    return figures.make_figure(traces, layout)


def heatmap_figure(trials: pd.DataFrame, keys: list[str], objective: str) -> Fig | None:
    """The objective over the two swept settings with the most values, averaged over the others
    (a plateau shows as a patch of colour, a lucky spike as one cell)."""
    if len(keys) < 2:
        return None
    a, b = sorted(keys, key=lambda k: (-trials[k].nunique(), keys.index(k)))[:2]
    grid = trials.groupby([b, a], sort=True)[objective].mean().unstack(a)
    z = [[_num(v) for v in row] for row in grid.to_numpy()]
    trace = go.Heatmap(
        x=[_label(v) for v in grid.columns], y=[_label(v) for v in grid.index], z=z, colorscale="RdYlGn",
        zmid=0.0, colorbar={"title": {"text": objective}, "thickness": 12},
        hovertemplate=f"{a}=%{{x}}<br>{b}=%{{y}}<br>{objective} %{{z:.3f}}<extra></extra>",
    )  # fmt: skip
    layout = base_layout(
        380, xaxis={"type": "category", "title": {"text": a}}, yaxis={"type": "category", "title": {"text": b}}
    )
    return figures.make_figure([trace], layout)


def scatter_figure(trials: pd.DataFrame, keys: list[str], objective: str) -> Fig | None:
    """The objective of every trial against each swept setting, one panel per setting."""
    if not keys:
        return None
    traces = []
    layout = base_layout(220 * len(keys) + 40)
    gap = 0.08 if len(keys) > 1 else 0.0
    h = (1.0 - gap * (len(keys) - 1)) / len(keys)
    for i, k in enumerate(keys):
        ax = "" if i == 0 else str(i + 1)
        top = 1.0 - i * (h + gap)
        traces.append(
            go.Scatter(
                x=[_label(v) for v in trials[k]], y=_clean(trials[objective]), mode="markers", name=k,
                xaxis=f"x{ax}", yaxis=f"y{ax}", marker={"color": LINE, "size": 7, "opacity": 0.6},
                customdata=trials["hash"].astype(str).str[:10].tolist(),
                hovertemplate=f"{k}=%{{x}}<br>{objective} %{{y:.3f}}<br>%{{customdata}}<extra></extra>",
            )
        )  # fmt: skip
        axis = {"automargin": True, "gridcolor": "#e2e8f0", "type": "category"}
        layout[f"xaxis{ax}"] = {**axis, "anchor": f"y{ax}", "title": {"text": k}}
        layout[f"yaxis{ax}"] = {
            "automargin": True, "gridcolor": "#e2e8f0", "anchor": f"x{ax}", "domain": [max(0.0, top - h), top],
            "title": {"text": objective},
        }  # fmt: skip
    return figures.make_figure(traces, layout)


def sharpe_figure(trials: pd.DataFrame, e_max: float | None, best: float | None) -> Fig:
    """How the trials' Sharpe ratios spread, against what the best of that many unskilled trials
    would reach by luck alone."""
    s = trials["sharpe"].to_numpy(dtype=float) if "sharpe" in trials.columns else np.zeros(0)
    s = s[np.isfinite(s)]
    layout = base_layout(300, xaxis={"title": {"text": "Sharpe ratio"}}, yaxis={"title": {"text": "trials"}})
    if s.shape[0] == 0:
        return figures.make_figure([], layout, "no Sharpe ratios in trials.csv")
    counts, edges = np.histogram(s, bins=min(40, max(5, int(math.sqrt(s.shape[0])) * 2)))
    centres = [(float(a) + float(b)) / 2 for a, b in itertools.pairwise(edges)]
    bar = go.Bar(
        x=[round(c, 6) for c in centres], y=counts.tolist(), width=float(edges[1] - edges[0]),
        marker={"color": MUTED}, hovertemplate="Sharpe ≈ %{x:.2f}: %{y} trials<extra></extra>",
    )  # fmt: skip
    fig = go.Figure([bar], layout)
    for x, text, colour in ((e_max, "expected max of unskilled trials", NEG), (best, "best trial", POS)):
        if x is not None:
            fig.add_vline(x=x, line={"color": colour, "dash": "dash", "width": 2})
            fig.add_annotation(
                x=x, y=1, yref="paper", text=f"{text} {x:.2f}", showarrow=False, xanchor="left",
                yanchor="top", font={"color": colour, "size": 11}, textangle=-90,
            )  # fmt: skip
    out: Fig = fig.to_plotly_json()
    return out


def pbo_figure(logits: list[float]) -> Fig:
    """CSCV logits of the in-sample best's out-of-sample rank; the share at or below zero is the PBO."""
    v = np.array([x for x in logits if _num(x) is not None], dtype=float)
    counts, edges = np.histogram(v, bins=min(30, max(5, int(math.sqrt(max(v.shape[0], 1))) * 2)))
    centres = [(float(a) + float(b)) / 2 for a, b in itertools.pairwise(edges)]
    colours = [NEG if c <= 0 else POS for c in centres]
    bar = go.Bar(
        x=[round(c, 6) for c in centres], y=counts.tolist(), width=float(edges[1] - edges[0]),
        marker={"color": colours}, hovertemplate="logit ≈ %{x:.2f}: %{y}<extra></extra>",
    )  # fmt: skip
    layout = base_layout(
        280, xaxis={"title": {"text": "logit of the out-of-sample rank"}}, yaxis={"title": {"text": "splits"}}
    )
    fig = go.Figure([bar], layout)
    fig.add_vline(x=0, line={"color": "#0f172a", "width": 1})
    out: Fig = fig.to_plotly_json()
    return out


def cost_figure(out: ResearchOutputs) -> Fig | None:
    """Net P&L at 0x to 2x the cost model: the best trial and the median of all trials."""
    cols = cost_columns(out.trials)
    if not cols:
        return None
    best = str(out.verdict.get("best", {}).get("hash", ""))
    row = out.trials[out.trials["hash"].astype(str) == best]
    xs = [m for m, _ in cols]
    traces = [
        go.Scatter(
            x=xs, y=[_num(out.trials[c].median()) for _, c in cols], name="median trial", mode="lines+markers",
            line={"color": MUTED, "dash": "dot"}, hovertemplate="%{x}x costs: ₹%{y:,.0f}<extra>median</extra>",
        )
    ]  # fmt: skip
    if len(row):
        traces.append(
            go.Scatter(
                x=xs, y=[_num(row[c].iloc[0]) for _, c in cols], name="best trial", mode="lines+markers",
                line={"color": LINE}, hovertemplate="%{x}x costs: ₹%{y:,.0f}<extra>best</extra>",
            )
        )  # fmt: skip
    layout = base_layout(
        300, showlegend=True, xaxis={"title": {"text": "cost multiple"}, "ticksuffix": "x", "tickvals": xs},
        yaxis={"title": {"text": "net P&L"}, "tickprefix": "₹", "tickformat": ",.0f"},
    )  # fmt: skip
    fig = go.Figure(traces, layout)
    fig.add_hline(y=0, line={"color": "#0f172a", "width": 1})
    res: Fig = fig.to_plotly_json()
    return res


def oos_figure(oos: pd.DataFrame) -> Fig:
    """The stitched out-of-sample equity of a walk-forward."""
    ycol = "equity" if "equity" in oos.columns else oos.columns[-1]
    x = [str(v)[:10] for v in oos[oos.columns[0]]]
    trace = go.Scatter(
        x=x, y=_clean(oos[ycol]), mode="lines", name="out-of-sample", line={"color": LINE, "width": 1.5},
        hovertemplate="%{y:,.2f}<extra>out of sample</extra>",
    )  # fmt: skip
    return figures.make_figure([trace], base_layout(320, yaxis={"title": {"text": str(ycol)}}))


def _kind(s: pd.Series) -> Kind:
    if pd.api.types.is_integer_dtype(s):
        return "int"
    if pd.api.types.is_float_dtype(s):
        return "num"
    return "text"


def frame_table(df: pd.DataFrame, table_id: str) -> str:
    cols = [Col(str(c), _kind(df[c]), signed=str(c).startswith(("net_pnl", "sharpe"))) for c in df.columns]
    rows = [
        [(_num(v) if c.kind != "text" else v) for c, v in zip(cols, rec, strict=True)]
        for rec in df.itertuples(index=False)
    ]
    return table(cols, rows, table_id=table_id)


def _stat_cards(v: dict[str, Any], objective: str) -> str:
    cards = []
    for key, label, kind in STAT_LABELS:
        if key in v:
            cards.append((label, fmt(_num(v[key]), kind)))
    best = v.get("best", {}).get("metrics", {})
    if objective in best:
        cards.append((f"Best trial's {objective}", fmt(_num(best[objective]), "num")))
    return (
        '<div id="cards">'
        + "".join(
            f'<div class="card"><div class="k">{html.escape(k)}</div><div class="v">{html.escape(x)}</div></div>'
            for k, x in cards
        )
        + "</div>"
    )


def render_research_report(out_dir: Path) -> str:
    """The research page for the files in ``out_dir``; same files, same bytes."""
    out = load_outputs(out_dir)
    v, trials = out.verdict, out.trials
    objective = _objective(out)
    keys = swept_keys(trials)
    n_total = int(_num(v.get("trials_total")) or len(trials))
    sharpes = trials["sharpe"].to_numpy(dtype=float) if "sharpe" in trials.columns else np.zeros(0)
    sharpes = sharpes[np.isfinite(sharpes)]
    e_max = _num(v.get("expected_max_sharpe"))
    if e_max is None and sharpes.shape[0] > 1:
        e_max = expected_max_sharpe(float(np.var(sharpes, ddof=1)), n_total)
    best = v.get("best", {})
    best_sharpe = _num(best.get("metrics", {}).get("sharpe"))

    figs: dict[str, Fig] = {}
    sections: list[str] = []
    eq = equity_figure(out, objective)
    if eq is not None:
        figs["equity"] = eq
        sections.append(
            f"<section><h2>Best trial vs the median trial (compounded daily returns)</h2>{chart('equity')}</section>"
        )
    hm = heatmap_figure(trials, keys, objective)
    if hm is not None:
        figs["heatmap"] = hm
        sections.append(
            f"<section><h2>{html.escape(objective)} over two swept settings (mean over the others)</h2>"
            f"{chart('heatmap')}</section>"
        )
    sc = scatter_figure(trials, keys, objective)
    if sc is not None:
        figs["scatter"] = sc
        sections.append(
            f"<section><h2>{html.escape(objective)} of every trial by setting</h2>{chart('scatter')}</section>"
        )
    figs["sharpes"] = sharpe_figure(trials, e_max, best_sharpe)
    e_note = (
        f"The expected maximum Sharpe of {n_total:,} unskilled trials with this spread is {e_max:.2f} "
        "(Bailey and Lopez de Prado 2014); a best trial below it is what luck alone gives."
        if e_max is not None
        else ""
    )
    sections.append(f"<section><h2>Sharpe ratios of the trials</h2>{chart('sharpes', e_note)}</section>")
    logits = v.get("pbo_logits")
    if isinstance(logits, list) and logits:
        figs["pbo"] = pbo_figure(logits)
        sections.append(
            "<section><h2>Probability of backtest overfitting (CSCV)</h2>"
            + chart("pbo", f"PBO = {fmt(_num(v.get('pbo')), 'num')}: the share of splits whose in-sample best ranks "
                    "below the out-of-sample median (logit at or below zero).")
            + "</section>"
        )  # fmt: skip
    cf = cost_figure(out)
    if cf is not None:
        figs["costs"] = cf
        be = _num(v.get("breakeven_cost_per_trade"))
        sections.append(
            "<section><h2>Cost sensitivity</h2>"
            + chart("costs", "" if be is None else f"Break-even cost per trade: ₹{be:,.2f}.")
            + "</section>"
        )
    if out.oos_equity is not None and len(out.oos_equity):
        figs["oos"] = oos_figure(out.oos_equity)
        sections.append(f"<section><h2>Walk-forward: stitched out-of-sample equity</h2>{chart('oos')}</section>")
    if out.folds is not None:
        sections.append(f"<section><h2>Walk-forward folds</h2>{frame_table(out.folds, 'folds')}</section>")

    settings_rows = [[k, _label(val)] for k, val in sorted(best.get("settings", {}).items())]
    metric_rows = [[k, _num(val)] for k, val in sorted(best.get("metrics", {}).items())]
    best_html = table([Col("Setting"), Col("Value")], settings_rows, table_id="best-settings", sortable=False) + table(
        [Col("Metric"), Col("Value", "num")], metric_rows, table_id="best-metrics", sortable=False
    )
    shown = trials.sort_values([objective, "hash"], ascending=[False, True]).head(TRIALS_SHOWN)
    more = f" (the best {TRIALS_SHOWN} of {len(trials):,}; all are in trials.csv)" if len(trials) > TRIALS_SHOWN else ""
    verdict_word = str(v["verdict"])
    text = str(v.get("verdict_text", verdict_word))
    title = f"TFL research: {verdict_word}"
    data = {"config": figures.PLOTLY_CONFIG, "figures": figs}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{asset("report.css")}</style></head>
<body><header><h1>{html.escape(title)}</h1><p id="verdict">{html.escape(text)}</p></header>
<main>
<section><h2>The numbers behind the verdict</h2>{_stat_cards(v, objective)}</section>
<section><h2>Best trial {html.escape(str(best.get("hash", ""))[:12])}</h2><div class="two">{best_html}</div></section>
{"".join(sections)}
<section><h2>Trials{html.escape(more)}</h2>{frame_table(shown, "trials")}</section>
</main>
{json_blob("tfl-data", data)}
{scripts(asset("research.js"))}
</body></html>
"""
