"""The backtest report's numbers and page, without a browser (tests/test_report_browser.py
opens it in Chromium): breakdowns checked against the summary and against the data files
read independently with pandas, the packed session bars round-trip exactly, the page is one
offline file with plotly.js inlined once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.backtest.metrics import daily_equity, per_symbol
from tfl.backtest.run import BacktestRequest, BacktestRun, run_backtest
from tfl.data.bars import BarSeries
from tfl.report.breakdown import (
    benchmark_curve,
    by_entry_time,
    by_weekday,
    pack_session,
    pack_sessions,
    per_year,
    session_blob,
    session_from_blob,
    side_stats,
    unpack_session,
)
from tfl.report.html import TRADE_FIELDS, render_report
from tfl.settings import Settings
from tfl.timeutil import IST_OFFSET_S, date_to_day, epoch_of_ist

SYMBOLS = ["RELIANCE", "TCS", "SBIN", "TATASTEEL", "ADANIENT", "BEL", "DLF", "TRENT"]


@pytest.fixture(scope="module")
def run_2023(nse_dir: Path) -> BacktestRun:
    req = BacktestRequest(nse_dir, dt.date(2023, 1, 1), dt.date(2023, 12, 31), Settings(), SYMBOLS)
    return run_backtest(req, show_progress=False)


@pytest.fixture(scope="module")
def run_two_years(nse_dir: Path) -> BacktestRun:
    req = BacktestRequest(nse_dir, dt.date(2022, 1, 1), dt.date(2023, 12, 31), Settings(), SYMBOLS)
    return run_backtest(req, show_progress=False)


def page_data(page: str) -> dict[str, Any]:
    blob = re.search(r'<script type="application/json" id="tfl-data">(.*?)</script>', page, re.S)
    assert blob is not None
    data: dict[str, Any] = json.loads(blob.group(1).replace("<\\/", "</"))
    return data


def test_per_year_adds_up_to_the_summary(run_two_years: BacktestRun) -> None:
    run = run_two_years
    res, sm = run.result, run.summary
    capital = run.request.settings.backtest.capital
    years = per_year(res.trades, res.equity_ts, res.equity, capital)
    assert [y.year for y in years] == [2022, 2023]
    assert sum(y.net_pnl for y in years) == pytest.approx(sm["net_pnl"], abs=0.01)
    assert sum(y.trades for y in years) == sm["trades"] > 0
    growth = np.prod([1 + y.return_pct / 100 for y in years])
    assert growth == pytest.approx(sm["final_equity"] / capital, abs=0.01 / capital)  # summary rounds to paise
    # the worst within-year drawdown cannot exceed the whole run's
    assert max(y.max_drawdown_pct for y in years) <= sm["max_drawdown_pct"] + 1e-9


def test_a_one_year_run_has_the_summary_drawdown_for_its_year(run_2023: BacktestRun) -> None:
    res = run_2023.result
    (year,) = per_year(res.trades, res.equity_ts, res.equity, run_2023.request.settings.backtest.capital)
    assert year.max_drawdown_pct == pytest.approx(run_2023.summary["max_drawdown_pct"], abs=1e-4)
    assert year.win_rate_pct == pytest.approx(run_2023.summary["win_rate_pct"], abs=1e-4)


def test_side_time_and_weekday_groups_partition_the_trades(run_2023: BacktestRun) -> None:
    trades, sm = run_2023.result.trades, run_2023.summary
    long_, short, all_ = side_stats(trades)
    assert (long_.trades, short.trades, all_.trades) == (sm["long_trades"], sm["short_trades"], sm["trades"])
    assert long_.net_pnl + short.net_pnl == pytest.approx(sm["net_pnl"], abs=0.01)
    assert all_.avg_r == pytest.approx(sm["avg_r"], abs=1e-4)
    for groups in (by_entry_time(trades), by_weekday(trades)):
        assert sum(g.trades for g in groups) == len(trades)
        assert sum(g.net_pnl for g in groups) == pytest.approx(sm["net_pnl"], abs=0.01)
    # entry times read independently from trades.csv-style ISO strings
    times = sorted({t.entry_ts for t in trades})
    want = sorted({dt.datetime.fromtimestamp(ts + IST_OFFSET_S, dt.UTC).strftime("%H:%M") for ts in times})
    assert [g.label for g in by_entry_time(trades)] == want
    assert [g.label for g in by_weekday(trades)][:5] == ["Mon", "Tue", "Wed", "Thu", "Fri"]


def test_benchmark_is_the_index_rebased_to_the_capital(run_2023: BacktestRun, nse_dir: Path) -> None:
    s = run_2023.request.settings
    sym, capital = s.bias.benchmark_symbol, s.backtest.capital
    days, _ = daily_equity(run_2023.result)
    bench = benchmark_curve(run_2023.market.daily.get(sym), sym, days, capital)
    assert bench is not None
    raw = pd.read_parquet(nse_dir / "daily" / f"{sym}.parquet")
    raw["date"] = raw["datetime"].dt.date
    closes = raw.drop_duplicates("date", keep="last").set_index("date")["close"]
    base_date = max(d for d in closes.index if d < dt.date(2023, 1, 1) and date_to_day(d) < days[0])
    assert bench.base_date == base_date.isoformat()
    first = dt.date.fromisoformat("1970-01-01") + dt.timedelta(days=int(days[0]))
    assert bench.values[0] == pytest.approx(closes[first] / closes[base_date] * capital, abs=0.01)
    assert len(bench.values) == days.shape[0]


def _series(ohlc: np.ndarray, minutes: list[int], day: int) -> BarSeries:
    ts = np.array([epoch_of_ist(dt.date(1970, 1, 1) + dt.timedelta(days=day), m) for m in minutes], dtype=np.int64)
    return BarSeries("X", ts, ohlc[:, 0], ohlc[:, 1], ohlc[:, 2], ohlc[:, 3], np.ones(len(minutes)))


@settings(max_examples=60, deadline=None)
@given(
    paise=st.lists(st.integers(1, 50_000_000), min_size=4, max_size=100).map(lambda v: v[: len(v) // 4 * 4]),
    tick=st.sampled_from([1, 5, 10]),
    gap=st.booleans(),
)
def test_packed_session_bars_round_trip_exactly(paise: list[int], tick: int, gap: bool) -> None:
    ohlc = (np.array(paise, dtype=np.int64) * tick / 100).reshape(-1, 4)
    n = ohlc.shape[0]
    minutes = [555 + 15 * k + (15 if gap and k >= n // 2 else 0) for k in range(n)]
    day = 19_500
    packed = pack_session(_series(ohlc, minutes, day), day)
    assert packed is not None
    # Through the page's form: the JSON index and the base64 int32 units, beside another session.
    other = pack_session(_series(ohlc[::-1].copy(), minutes, day), day)
    assert other is not None
    blob = session_blob({"b": packed, "a": other})
    index = json.loads(json.dumps(blob.index))
    for key, want in (("b", ohlc), ("a", ohlc[::-1])):
        got_minutes, got = unpack_session(session_from_blob(index[key], blob.data, blob.width))
        assert got_minutes == minutes
        assert np.array_equal(got, want)  # bit-exact: integer paise over 100, as the page computes


def test_real_session_bars_round_trip(run_2023: BacktestRun) -> None:
    bars = run_2023.market.intraday["TCS"]
    days = np.unique(bars.day)[:50].tolist()
    together = pack_sessions(bars, [*days, days[0] - 1])  # packed in one go; a day without bars
    assert sorted(together) == days
    blob = session_blob({str(d): p for d, p in together.items()})
    assert blob.width == 2  # a real session's steps fit two bytes
    for day in days:
        packed = pack_session(bars, day)
        assert packed is not None
        assert packed == dataclasses.replace(together[day], units=packed.units)
        assert np.array_equal(packed.units, together[day].units)
        minutes, ohlc = unpack_session(session_from_blob(blob.index[str(day)], blob.data, blob.width))
        sel = bars.day == day
        assert minutes == bars.minute[sel].tolist()
        want = np.stack([bars.open[sel], bars.high[sel], bars.low[sel], bars.close[sel]], axis=1)
        np.testing.assert_allclose(ohlc, want, rtol=0, atol=1e-9)


def test_session_steps_take_two_bytes_until_one_does_not_fit() -> None:
    day = 19_500
    near = np.array([[100.0, 100.05, 99.95, 100.0]])  # steps of one 0.05 unit
    far = np.array([[100.0, 2_000.05, 100.0, 100.0]])  # a step of 38,001 units of 0.05
    for ohlc, width in ((near, 2), (far, 4)):
        packed = pack_session(_series(ohlc, [555], day), day)
        assert packed is not None
        blob = session_blob({"x": packed})
        assert blob.width == width
        assert np.array_equal(unpack_session(session_from_blob(blob.index["x"], blob.data, blob.width))[1], ohlc)


def test_prices_beyond_the_pages_integers_are_refused() -> None:
    day = 19_500
    ohlc = np.array([[0.01, 30_000_000.03, 0.01, 0.01]])  # a step of 3e9 paise, factor 1
    packed = pack_session(_series(ohlc, [555], day), day)
    assert packed is not None
    with pytest.raises(ValueError, match="32-bit"):
        session_blob({"x": packed})


def test_page_is_one_offline_file_with_plotly_once(run_2023: BacktestRun) -> None:
    page = render_report(run_2023, per_symbol(run_2023.result.trades))
    assert page.count("* plotly.js v") == 1  # the bundle's banner: inlined exactly once
    outside = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"<script[^>]+src=|<link\b|<img\b|<iframe\b", outside)
    data = page_data(page)
    for div_id, fig in data["figures"].items():
        assert f'id="{div_id}"' in page
        # Written as plain dicts for speed: plotly validates every property (a typo raises) and
        # must give back the very same figure.
        assert go.Figure(fig).to_plotly_json() == fig, div_id
    assert len(data["trades"]) == run_2023.summary["trades"] > 0
    assert data["trade_fields"] == list(TRADE_FIELDS)
    assert {t[TRADE_FIELDS.index("session")] for t in data["trades"]} <= set(data["sessions"])
    assert "the strategy" in page and "no trades over this period" not in page
    assert render_report(run_2023, per_symbol(run_2023.result.trades)) == page  # same run, same bytes


def test_a_run_without_trades_says_no_trades(run_2023: BacktestRun) -> None:
    req = dataclasses.replace(run_2023.request, settings=Settings().replace({"backtest.bias": "NO_TRADES"}))
    run = run_backtest(req, show_progress=False, market=run_2023.market)
    assert run.summary["trades"] == 0
    page = render_report(run, per_symbol(run.result.trades))
    assert "no trades over this period" in page
    assert "lost money" not in page and "made money" not in page
    data = page_data(page)
    assert data["trades"] == [] and data["sessions"] == {} and data["session_data"] == ""
    for div_id, fig in data["figures"].items():  # the empty figures' notes, as plotly writes them
        assert go.Figure(fig).to_plotly_json() == fig, div_id
    assert len(data["figures"]["bias"]["data"][0]["x"]) == run.summary["sessions"]


def test_per_symbol_headers_share_their_columns_alignment(run_2023: BacktestRun) -> None:
    page = render_report(run_2023, per_symbol(run_2023.result.trades))
    table = re.search(r'<table id="symbols".*?</table>', page, re.S)
    assert table is not None
    heads = re.findall(r'<th class="(\w+)"', table.group(0))
    first_row = re.search(r"<tbody><tr>(.*?)</tr>", table.group(0), re.S)
    assert first_row is not None
    cells = re.findall(r'<td class="(\w+)', first_row.group(1))
    assert heads == cells == ["txt", "num", "num", "num", "num"]
