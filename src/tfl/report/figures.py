"""Plotly figures of the backtest report, as plain JSON-ready dicts.

The report's figures are written as the dicts plotly's ``Figure.to_plotly_json`` would give,
without building graph objects: their validators cost more than the rest of the report
(tests/test_report.py passes every figure through ``go.Figure`` so a misspelt property
still fails in Python rather than silently in the browser). The page draws them with the
plotly.js bundled in the same wheel. Every figure takes its width from its container
(responsive), so the same page reads at 1280 px, 700 px and on a phone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tfl.regime import BiasRecord
from tfl.report.breakdown import Benchmark, GroupStats

if TYPE_CHECKING:
    import plotly.graph_objects as go

Fig = dict[str, Any]
Trace = dict[str, Any]

POS = "#16a34a"
NEG = "#dc2626"
LINE = "#2563eb"
MUTED = "#64748b"
BIAS_COLOURS = {"LONGS": POS, "SHORTS": NEG, "BOTH": LINE, "NO_TRADES": "#cbd5e1"}
PLOTLY_CONFIG: dict[str, Any] = {
    "responsive": True,
    "displaylogo": False,
    "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"],
}
_AXIS_KEY = re.compile(r"[xy]axis\d*")


def _template() -> dict[str, Any]:
    """No default template (plotly's would add ~7 kB to every figure): this is what plotly
    writes for an empty ``go.layout.Template()``."""
    return {"data": {"scatter": [{"type": "scatter"}]}}


def base_layout(height: int, **extra: Any) -> dict[str, Any]:
    """The common look: small margins that grow to fit labels (automargin), a horizontal
    legend above the plot, grid lines that do not compete with the data."""
    # Labels that do not fit turn upright rather than to 30 degrees, where they would touch.
    axis = {
        "automargin": True,
        "autotickangles": [0, 90],
        "gridcolor": "#e2e8f0",
        "zerolinecolor": "#94a3b8",
        "linecolor": "#cbd5e1",
    }
    layout: dict[str, Any] = {
        "template": _template(),
        "height": height,
        "autosize": True,
        "margin": {"l": 8, "r": 12, "t": 8, "b": 8},
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#1f2937"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "showlegend": False,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0, "xanchor": "left"},
        "xaxis": dict(axis),
        "yaxis": dict(axis),
        "hoverlabel": {"align": "left"},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(layout.get(k), dict):
            layout[k] = {**layout[k], **v}
        else:
            layout[k] = v
    return layout


def make_figure(data: Sequence[go.BaseTraceType], layout: dict[str, Any], empty: str | None = None) -> Fig:
    """A figure from plotly graph objects, validated by plotly (for pages where a few figures
    are built, so the validators' cost does not matter)."""
    import plotly.graph_objects as go

    fig = go.Figure(data=list(data), layout=layout)
    if empty:  # nothing to plot: say so instead of drawing meaningless axes
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.add_annotation(_empty_note(empty))
    out: Fig = fig.to_plotly_json()
    return out


def _empty_note(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "font": {"size": 14, "color": MUTED},
    }


def plain_figure(data: list[Trace], layout: dict[str, Any], empty: str | None = None) -> Fig:
    """A figure from plain trace dicts (each with its ``type``), as ``make_figure`` would give
    it; nothing is validated here (tests/test_report.py checks every figure with plotly)."""
    if empty:  # nothing to plot: say so instead of drawing meaningless axes
        for key, axis in layout.items():
            if _AXIS_KEY.fullmatch(key):
                axis["visible"] = False
        layout["annotations"] = [_empty_note(empty)]
    return {"data": data, "layout": layout}


def equity_figure(dates: list[str], equity: list[float], dd: list[float], bench: Benchmark | None) -> Fig:
    """End-of-session equity (and the benchmark) above, drawdown below, one shared date axis."""
    traces: list[Trace] = [
        dict(
            type="scatter",
            x=dates,
            y=equity,
            name="Equity",
            mode="lines",
            line={"color": LINE, "width": 1.6},
            hovertemplate="₹%{y:,.0f}<extra>equity</extra>",
        )
    ]
    if bench is not None:
        traces.append(
            dict(
                type="scatter",
                x=dates,
                y=bench.values,
                name=f"{bench.symbol} (rebased)",
                mode="lines",
                connectgaps=True,
                line={"color": MUTED, "width": 1.2, "dash": "dot"},
                hovertemplate=f"₹%{{y:,.0f}}<extra>{bench.symbol}</extra>",
            )
        )
    traces.append(
        dict(
            type="scatter",
            x=dates,
            y=dd,
            name="Drawdown",
            mode="lines",
            yaxis="y2",
            fill="tozeroy",
            line={"color": NEG, "width": 1},
            fillcolor="rgba(220,38,38,0.15)",
            hovertemplate="%{y:.1f}%<extra>drawdown</extra>",
        )
    )
    layout = base_layout(
        440,
        showlegend=True,
        hovermode="x unified",
        xaxis={"type": "date", "anchor": "y2"},
        yaxis={"domain": [0.34, 1.0], "tickprefix": "₹", "tickformat": ",.0f"},
        yaxis2={
            "domain": [0.0, 0.26],
            "title": {"text": "drawdown"},
            "automargin": True,
            "gridcolor": "#e2e8f0",
            "rangemode": "tozero",
            "ticksuffix": "%",
        },
    )
    return plain_figure(traces, layout, None if dates else "no sessions")


def bias_figure(records: Sequence[BiasRecord]) -> Fig:
    """One bar per session of the run, coloured by that day's bias; hover for its inputs."""
    traces: list[Trace] = []
    for bias, colour in BIAS_COLOURS.items():
        rows = [r for r in records if r.bias == bias]
        if not rows:
            continue
        traces.append(
            dict(
                type="bar",
                x=[r.session for r in rows],
                y=[1] * len(rows),
                name=bias,
                marker={"color": colour, "line": {"width": 0}},
                customdata=[
                    [
                        "–" if r.breadth_above is None else f"{r.breadth_above:.1f}",
                        "–" if r.breadth_below is None else f"{r.breadth_below:.1f}",
                        "–" if r.index_close is None else f"{r.index_close:,.2f}",
                        "–" if r.vix is None else f"{r.vix:.2f}",
                        r.reason,
                    ]
                    for r in rows
                ],
                hovertemplate=(
                    "%{x}<br><b>" + bias + "</b><br>breadth above %{customdata[0]}% / below %{customdata[1]}%"
                    "<br>index %{customdata[2]} · VIX %{customdata[3]}<br>%{customdata[4]}<extra></extra>"
                ),
            )
        )
    layout = base_layout(
        130,
        showlegend=True,
        bargap=0,
        barmode="overlay",
        xaxis={"type": "date"},
        yaxis={"visible": False, "range": [0, 1], "fixedrange": True},
    )
    return plain_figure(traces, layout, None if records else "no sessions")


def bar_figure(
    labels: list[str],
    values: list[float],
    *,
    height: int,
    title_y: str,
    signed: bool,
    hover: list[str] | None = None,
    empty: str = "no trades",
    horizontal: bool = False,
    y_format: str = ",.0f",
) -> Fig:
    """A bar per label; green and red by sign when the values are money."""
    colours = [POS if v > 0 else NEG if v < 0 else MUTED for v in values] if signed else [MUTED] * len(values)
    text = hover if hover is not None else [f"{v:,.0f}" for v in values]
    if horizontal:
        trace = dict(
            type="bar",
            y=labels,
            x=values,
            orientation="h",
            marker={"color": colours},
            customdata=text,
            hovertemplate="%{y}: %{customdata}<extra></extra>",
        )
        layout = base_layout(
            height,
            xaxis={"title": {"text": title_y}, "tickformat": y_format},
            yaxis={"type": "category", "autorange": "reversed"},
        )
    else:
        trace = dict(
            type="bar",
            x=labels,
            y=values,
            marker={"color": colours},
            customdata=text,
            hovertemplate="%{x}: %{customdata}<extra></extra>",
        )
        layout = base_layout(
            height,
            xaxis={"type": "category"},
            yaxis={"title": {"text": title_y}, "tickformat": y_format},
        )
    return plain_figure([trace], layout, None if labels else empty)


def group_pnl_figure(groups: Sequence[GroupStats], *, height: int = 260) -> Fig:
    """Net P&L per group (entry time, weekday), with trades and win rate on hover."""
    hover = [
        f"₹{g.net_pnl:,.0f} over {g.trades} trades" + ("" if g.win_rate_pct is None else f", {g.win_rate_pct:.1f}% won")
        for g in groups
    ]
    if not any(g.trades for g in groups):
        return bar_figure([], [], height=height, title_y="net P&L ₹", signed=True)
    labels = [g.label for g in groups]
    values = [round(g.net_pnl, 2) for g in groups]
    return bar_figure(labels, values, height=height, title_y="net P&L ₹", signed=True, hover=hover)


def trade_figure_template(height: int = 420, empty: str | None = None) -> Fig:
    """The price chart of one trade, without data: the page fills in the chosen trade's
    session bars and levels. The trace order is the page's contract:
    0 candles, 1 entry, 2 exit, 3 initial stop, 4 target."""
    traces: list[Trace] = [
        dict(
            type="candlestick",
            x=[],
            open=[],
            high=[],
            low=[],
            close=[],
            name="15-min bars",
            increasing={"line": {"color": POS}},
            decreasing={"line": {"color": NEG}},
        ),
        dict(
            type="scatter",
            x=[],
            y=[],
            name="entry",
            mode="markers",
            marker={"symbol": "triangle-right", "size": 13, "color": LINE, "line": {"color": "#0f172a", "width": 1}},
            hovertemplate="entry %{x}<br>₹%{y:,.2f}<extra></extra>",
        ),
        dict(
            type="scatter",
            x=[],
            y=[],
            name="exit",
            mode="markers",
            marker={"symbol": "x", "size": 12, "color": "#0f172a"},
            hovertemplate="exit %{x}<br>₹%{y:,.2f}<extra></extra>",
        ),
        dict(
            type="scatter",
            x=[],
            y=[],
            name="initial stop",
            mode="lines",
            line={"color": NEG, "dash": "dash", "width": 1.2},
            hovertemplate="initial stop ₹%{y:,.2f}<extra></extra>",
        ),
        dict(
            type="scatter",
            x=[],
            y=[],
            name="target",
            mode="lines",
            line={"color": POS, "dash": "dash", "width": 1.2},
            hovertemplate="target ₹%{y:,.2f}<extra></extra>",
        ),
    ]
    layout = base_layout(
        height,
        showlegend=True,
        hovermode="closest",
        xaxis={"type": "date", "rangeslider": {"visible": False}},
        yaxis={"tickprefix": "₹", "tickformat": ",.2f"},
    )
    return plain_figure(traces, layout, empty)
