"""Indicators computed once and shared: the split of setup preparation into
``compute_indicators`` (depends on the indicator settings only) and ``frames_from`` (the
strategy settings), and ``run_backtest`` given precomputed frames and bias records.

Research runs many backtests on one data set; these tests check that sharing what does not
change between them gives exactly what a run from scratch gives, on real data."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from tfl.backtest.run import (
    BacktestRequest,
    PrecomputedMismatchError,
    run_backtest,
    session_dates,
    traded_symbols,
)
from tfl.backtest.signals import (
    SymbolFrame,
    compute_indicators,
    frames_from,
    indicator_key,
    prepare_symbol,
    prepare_symbols,
)
from tfl.data.bias_inputs import bias_records
from tfl.data.market import load_market
from tfl.settings import Settings
from tfl.trade_csv import trade_rows

# Liquid names, a late listing (ETERNAL), an index (EMA trend, no volume) and a symbol
# without daily bars (no setups at all).
SYMBOLS = ["RELIANCE", "TCS", "SBIN", "DLF", "ADANIENT", "YESBANK", "ETERNAL", "NIFTY200_INDEX", "AJANTPHARM"]
# Settings that change only what frames_from decides, never the indicators.
STRATEGY_VARIANTS = [
    {},
    {"strategy.long_rsi_min": 60.0, "strategy.short_rsi_max": 40.0},
    {"strategy.min_run": 2, "strategy.max_run": 5},
    {"strategy.squareoff_time": "14:30"},
]


def frame_fields(f: SymbolFrame) -> tuple[object, ...]:
    return (
        f.symbol,
        f.bars.ts.tobytes(),
        f.atr.tobytes(),
        f.setup_idx.tobytes(),
        f.side.tobytes(),
        f.pattern_high.tobytes(),
        f.pattern_low.tobytes(),
        f.rsi.tobytes(),
    )


@pytest.fixture(scope="module")
def pairs(nse_dir: Path):  # type: ignore[no-untyped-def]
    m = load_market(nse_dir, Settings(), SYMBOLS, load_universe_daily=False)
    return [(m.intraday[s], m.daily.get(s)) for s in SYMBOLS]


def test_shared_indicators_give_the_frames_of_a_fresh_preparation(pairs) -> None:  # type: ignore[no-untyped-def]
    base = Settings()
    shared = compute_indicators(pairs, base)  # once, for every strategy variant
    setups = 0
    for variant in STRATEGY_VARIANTS:
        s = base.replace(variant)
        assert indicator_key(s) == indicator_key(base)
        fresh = prepare_symbols(pairs, s)
        got = frames_from(shared, s)
        assert [frame_fields(f) for f in got] == [frame_fields(f) for f in fresh], variant
        # The panel of many symbols agrees with each symbol prepared on its own.
        alone = [prepare_symbol(b, d, s) for b, d in pairs]
        assert [frame_fields(f) for f in got] == [frame_fields(f) for f in alone], variant
        setups += sum(f.setup_idx.shape[0] for f in got)
    assert setups > 1000  # the comparison had setups in it
    # Variants do change the setups (else this test could not tell shared from fresh).
    counts = {sum(f.setup_idx.shape[0] for f in frames_from(shared, base.replace(v))) for v in STRATEGY_VARIANTS}
    assert len(counts) == len(STRATEGY_VARIANTS)


def test_the_indicator_key_names_what_the_indicators_depend_on(pairs) -> None:  # type: ignore[no-untyped-def]
    base = Settings()
    shared = compute_indicators(pairs, base)
    for change in ({"indicators.mvwap_period": 20}, {"indicators.rsi_period": 10}, {"indicators.atr_period": 7}):
        s = base.replace(change)
        assert indicator_key(s) != indicator_key(base), change
        stale = [frame_fields(f) for f in frames_from(shared, s)]
        assert stale != [frame_fields(f) for f in prepare_symbols(pairs, s)], change
    index = base.replace({"backtest.index_symbols": ()})  # the index would get an MVWAP (NaN: no volume)
    assert indicator_key(index) != indicator_key(base)
    ind = compute_indicators(pairs, index)[SYMBOLS.index("NIFTY200_INDEX")]
    assert np.isnan(ind.trend).all()
    assert not np.isnan(shared[SYMBOLS.index("NIFTY200_INDEX")].trend[-100:]).any()


def test_a_symbol_without_daily_bars_has_indicators_but_no_setups(pairs) -> None:  # type: ignore[no-untyped-def]
    s = Settings()
    ind = compute_indicators(pairs, s)[SYMBOLS.index("AJANTPHARM")]
    assert ind.daily is None and ind.daily_rsi is None
    assert ind.atr.shape == ind.bars.ts.shape and not np.isnan(ind.atr[-1])
    assert frames_from([ind], s)[0].setup_idx.shape[0] == 0


GOLDEN_SYMBOLS = ["RELIANCE", "TCS", "HDFCBANK", "ICICIBANK", "SBIN", "ITC", "LT", "AXISBANK", "TATASTEEL", "DLF"]


@pytest.mark.parametrize("bias", ["auto", "BOTH"])
def test_run_backtest_with_precomputed_frames_and_records(nse_dir: Path, nse_market, bias: str) -> None:  # type: ignore[no-untyped-def]
    s = Settings().replace({"backtest.bias": bias})
    req = BacktestRequest(nse_dir, dt.date(2023, 1, 1), dt.date(2023, 6, 30), s, GOLDEN_SYMBOLS)
    plain = run_backtest(req, show_progress=False)

    traded = traded_symbols(req, nse_market)
    shared = compute_indicators([(nse_market.intraday[x], nse_market.daily.get(x)) for x in traded], Settings())
    frames = frames_from(shared, s)
    records = bias_records(nse_market, session_dates(frames, req), s)
    cached = run_backtest(req, show_progress=False, market=nse_market, frames=frames, records=records)

    assert len(plain.result.trades) >= 10
    assert trade_rows(cached.result.trades) == trade_rows(plain.result.trades)
    assert cached.result.rejections == plain.result.rejections
    assert np.array_equal(cached.result.equity, plain.result.equity)
    assert cached.bias == plain.bias
    assert cached.summary == plain.summary

    # The frames given are the frames used: other strategy settings' frames trade differently.
    other = frames_from(shared, s.replace({"strategy.long_rsi_min": 60.0}))
    moved = run_backtest(req, show_progress=False, market=nse_market, frames=other, records=records)
    assert trade_rows(moved.result.trades) != trade_rows(plain.result.trades)


def test_precomputed_inputs_that_do_not_fit_are_refused(nse_dir: Path, nse_market) -> None:  # type: ignore[no-untyped-def]
    s = Settings()
    req = BacktestRequest(nse_dir, dt.date(2023, 1, 1), dt.date(2023, 3, 31), s, GOLDEN_SYMBOLS)
    traded = traded_symbols(req, nse_market)
    frames = prepare_symbols([(nse_market.intraday[x], nse_market.daily.get(x)) for x in traded], s)
    records = bias_records(nse_market, session_dates(frames, req), s)
    with pytest.raises(PrecomputedMismatchError, match="symbols"):
        run_backtest(req, show_progress=False, market=nse_market, frames=frames[:-1], records=records)
    later = dataclasses.replace(req, start=dt.date(2023, 2, 1))
    with pytest.raises(PrecomputedMismatchError, match="sessions"):
        run_backtest(later, show_progress=False, market=nse_market, frames=frames, records=records)
