"""The backtest report in a real browser: headless Chromium (Debian's, driven by Playwright)
opens the page as a file at 1280 px, 700 px and a 390 px phone, for a run with trades and a
run without any. Every chart must be drawn by plotly, with no script error and no network
request; the bias strip must hold every session; headers must sit over their columns; the
trade picker must redraw the price chart with that session's bars from the data files.

Chromium missing is a failure, not a skip: `make test` installs it (`make browser`).
Screenshots land in pytest's tmp dir (the path is printed on failure).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import itertools
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tfl.backtest.run import BacktestRequest, run_backtest, write_outputs
from tfl.report.browser import VIEWPORTS, open_page
from tfl.report.html import TRADE_FIELDS
from tfl.report.research import render_research_report
from tfl.settings import Settings

SYMBOLS = ["RELIANCE", "TCS", "SBIN", "TATASTEEL", "ADANIENT", "BEL"]
F = {k: i for i, k in enumerate(TRADE_FIELDS)}


@pytest.fixture(scope="module")
def report_dirs(nse_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    req = BacktestRequest(nse_dir, dt.date(2023, 1, 1), dt.date(2023, 12, 31), Settings(), SYMBOLS)
    run = run_backtest(req, show_progress=False)
    assert run.summary["trades"] > 10
    quiet = dataclasses.replace(req, settings=Settings().replace({"backtest.bias": "NO_TRADES"}))
    none = run_backtest(quiet, show_progress=False, market=run.market)
    assert none.summary["trades"] == 0
    out = {"trades": tmp_path_factory.mktemp("report-trades"), "none": tmp_path_factory.mktemp("report-none")}
    write_outputs(run, out["trades"])
    write_outputs(none, out["none"])
    return out


CHARTS_JS = """() => Array.from(document.querySelectorAll('.chart')).map(d => {
  const svg = d.querySelector('.main-svg');
  const r = svg ? svg.getBoundingClientRect() : null;
  return {id: d.id, svgs: d.querySelectorAll('.main-svg').length, w: r ? r.width : 0, h: r ? r.height : 0,
          nodes: d.querySelectorAll('.main-svg *').length, right: d.getBoundingClientRect().right};
})"""

# Bounding boxes of each chart's x tick labels, and of the chart itself.
TICKS_JS = """() => Array.from(document.querySelectorAll('.chart')).map(d => ({
  id: d.id, box: d.getBoundingClientRect().toJSON(),
  ticks: Array.from(d.querySelectorAll('.xaxislayer-above text')).map(t => t.getBoundingClientRect().toJSON())
    .filter(b => b.width > 0)}))"""

BIAS_JS = """() => {
  const area = document.querySelector('#bias .nsewdrag').getBoundingClientRect();
  const pts = Array.from(document.querySelectorAll('#bias .point')).map(p => p.getBoundingClientRect());
  return {n: pts.length, inside: pts.filter(b => b.left >= area.left - 1 && b.right <= area.right + 1
          && b.width > 0).length, dates: document.getElementById('bias').data.flatMap(t => t.x)};
}"""

# For each column of a table: the extent of the header's text and of the first rows' texts.
ALIGN_JS = """(id) => {
  const t = document.getElementById(id);
  const ext = (cell) => { const r = document.createRange(); r.selectNodeContents(cell);
                          const b = r.getBoundingClientRect(); return [b.left, b.right]; };
  const heads = Array.from(t.tHead.rows[0].cells).map(c => ({cls: c.className, text: ext(c)}));
  const rows = Array.from(t.tBodies[0].rows).slice(0, 5).map(r => Array.from(r.cells).map(ext));
  return {heads, rows};
}"""

YTICKS_JS = """() => { const L = document.getElementById('equity')._fullLayout;
  return ['yaxis', 'yaxis2'].map(a => ({dtick: L[a].dtick, vals: L[a]._vals.map(v => v.x)})); }"""

TRADE_JS = """() => { const g = document.getElementById('trade');
  return {shown: g.dataset.trade, x: g.data[0].x, open: g.data[0].open, high: g.data[0].high, low: g.data[0].low,
          close: g.data[0].close, entry: [g.data[1].x[0], g.data[1].y[0]], exit: [g.data[2].x[0], g.data[2].y[0]],
          stop: g.data[3].y, candles: g.querySelectorAll('.trace.boxes path').length,
          caption: document.getElementById('trade-caption').textContent}; }"""


def _nice(dtick: float) -> bool:
    """A linear axis step of 1, 2 or 5 (or 2.5) times a power of ten."""
    mant = dtick / 10 ** math.floor(math.log10(dtick))
    return any(math.isclose(mant, m, rel_tol=1e-9) for m in (1.0, 2.0, 2.5, 5.0))


def _session_bars(nse_dir: Path, symbol: str, date: str) -> pd.DataFrame:
    """The session's 15-minute bars read straight from the Parquet file, 09:15 to 15:15."""
    raw = pd.read_parquet(nse_dir / "15min" / f"{symbol}.parquet")
    day = raw[raw["datetime"].dt.date == dt.date.fromisoformat(date)]
    hhmm = day["datetime"].dt.strftime("%H:%M")
    day = day[(hhmm >= "09:15") & (hhmm <= "15:15")].drop_duplicates("datetime").sort_values("datetime")
    return day.assign(x=day["datetime"].dt.strftime("%Y-%m-%d %H:%M"))


def _check_trade_chart(page: Any, nse_dir: Path, trade: list[Any]) -> None:
    got = page.evaluate(TRADE_JS)
    want = _session_bars(nse_dir, trade[F["symbol"]], trade[F["entry"]][:10])
    assert got["x"] == want["x"].tolist()
    for col in ("open", "high", "low", "close"):
        assert got[col] == pytest.approx(want[col].tolist(), abs=1e-9), col
    assert got["candles"] == len(want) > 0  # drawn, not only handed to plotly
    assert got["entry"] == [trade[F["entry"]], trade[F["entry_price"]]]
    assert got["exit"] == [trade[F["exit"]], trade[F["exit_price"]]]
    assert got["stop"] == [trade[F["initial_stop"]]] * 2
    assert trade[F["symbol"]] in got["caption"]


@pytest.mark.parametrize("kind", ["trades", "none"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_report_in_chromium(
    kind: str, viewport: str, report_dirs: dict[str, Path], browser: Any, nse_dir: Path, tmp_path: Path
) -> None:
    out = report_dirs[kind]
    width, height = VIEWPORTS[viewport]
    with open(out / "bias.csv", newline="") as fh:
        sessions = [r["session"] for r in csv.DictReader(fh)]
    with open_page(browser, out / "report.html", width, height) as (page, log):
        try:
            _check_page(kind, page, log, width, sessions, nse_dir)
        finally:  # after the checks: a full-page shot resizes the window and plotly redraws
            page.screenshot(path=str(tmp_path / f"{kind}-{viewport}-{width}px.png"), full_page=True)
            print(f"screenshots in {tmp_path}")


def _check_charts(page: Any, width: int, expected: set[str]) -> None:
    """Every chart container holds a drawn plotly SVG inside the viewport, the page does not
    scroll sideways, and no chart's tick labels are clipped or on top of each other."""
    charts = page.evaluate(CHARTS_JS)
    assert {c["id"] for c in charts} == expected
    for c in charts:  # a drawn plotly SVG in every chart container, inside the viewport
        assert c["svgs"] >= 1 and c["w"] > 100 and c["h"] > 100 and c["nodes"] > 20, c
        assert c["right"] <= width + 0.5, c
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling

    for c in page.evaluate(TICKS_JS):  # tick labels neither clipped nor on top of each other
        box = c["box"]
        for t in c["ticks"]:
            assert box["left"] - 1 <= t["left"] and t["right"] <= box["right"] + 1, (c["id"], t, box)
        ts = sorted(c["ticks"], key=lambda b: b["left"])
        for a, b in itertools.pairwise(ts):
            apart = a["right"] <= b["left"] + 0.5 or a["bottom"] <= b["top"] + 0.5 or b["bottom"] <= a["top"] + 0.5
            assert apart, (c["id"], a, b)


def _check_page(kind: str, page: Any, log: Any, width: int, sessions: list[str], nse_dir: Path) -> None:
    assert log.problems == []

    _check_charts(page, width, {"equity", "bias", "by-time", "by-weekday", "rdist", "reasons", "rejected", "trade"})

    bias = page.evaluate(BIAS_JS)  # one bar per session, none outside the plot
    assert bias["n"] == bias["inside"] == len(sessions) > 200
    assert sorted(bias["dates"]) == sessions

    for axis in page.evaluate(YTICKS_JS):  # round tick steps, ticks on multiples of the step
        assert _nice(float(axis["dtick"])), axis
        assert all(math.isclose(v / axis["dtick"], round(v / axis["dtick"]), abs_tol=1e-9) for v in axis["vals"])

    header = page.inner_text("header")
    if kind == "none":
        assert "no trades" in header and "lost money" not in header
        assert page.is_disabled("#trade-pick")
        return

    align = page.evaluate(ALIGN_JS, "symbols")
    assert align["rows"]
    for j, head in enumerate(align["heads"]):
        hl, hr = head["text"]
        for row in align["rows"]:
            cl, cr = row[j]
            assert hl < cr and cl < hr, f"column {j}: header text {hl:.0f}-{hr:.0f}, cell {cl:.0f}-{cr:.0f}"
            edge = (hr, cr) if "num" in head["cls"] else (hl, cl)
            assert abs(edge[0] - edge[1]) <= 2, f"column {j} is not aligned like its header"

    trades = page.evaluate("JSON.parse(document.getElementById('tfl-data').textContent).trades")
    _check_trade_chart(page, nse_dir, trades[0])
    last = len(trades) - 1
    page.select_option("#trade-pick", str(last))
    page.wait_for_function(f"document.getElementById('trade').dataset.trade === '{last}'")
    _check_trade_chart(page, nse_dir, trades[last])
    row = page.locator("#trades tbody tr").nth(3)
    picked = int(row.get_attribute("data-trade") or "-1")
    row.click()
    page.wait_for_function(f"document.getElementById('trade').dataset.trade === '{picked}'")
    _check_trade_chart(page, nse_dir, trades[picked])
    assert log.problems == []


@pytest.mark.parametrize("kind", ["sweep", "walkforward"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_research_report_in_chromium(kind: str, viewport: str, browser: Any, tmp_path: Path) -> None:
    from test_report_research import write_fixture

    out = write_fixture(tmp_path / kind, walkforward=kind == "walkforward")
    page_file = out / "report.html"
    page_file.write_text(render_research_report(out), encoding="utf-8")
    width, height = VIEWPORTS[viewport]
    expected = {"equity", "heatmap", "scatter", "sharpes", "pbo", "costs"} | (
        {"oos"} if kind == "walkforward" else set()
    )
    with open_page(browser, page_file, width, height) as (page, log):
        try:
            assert log.problems == []
            _check_charts(page, width, expected)
            assert "no edge" in page.inner_text("header")
            assert log.problems == []
        finally:
            page.screenshot(path=str(tmp_path / f"research-{kind}-{viewport}-{width}px.png"), full_page=True)
