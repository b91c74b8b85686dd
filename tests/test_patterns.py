"""The streaming pattern tracker and per-symbol state find exactly the setups of the
vectorised backtester: on random bar colours and on 20+ real symbols."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.backtest.signals import valid_setups
from tfl.settings import Settings
from tfl.strategy.pattern import PatternTracker, find_patterns
from tfl.strategy.symbol_state import SymbolState

from test_indicators import SYMBOLS


def streaming_patterns(o, h, lo, c, min_run=1, max_run=9):  # type: ignore[no-untyped-def]
    tr = PatternTracker(min_run, max_run)
    out = []
    for i, vals in enumerate(zip(o.tolist(), h.tolist(), lo.tolist(), c.tolist(), strict=True)):
        p = tr.update(*vals)
        if p is not None:
            out.append((i, int(p.side), p.pattern_high, p.pattern_low))
    return out


bars_strategy = st.lists(
    st.tuples(st.sampled_from([-1, 0, 1]), st.floats(0.1, 5.0), st.floats(0.0, 2.0), st.floats(0.0, 2.0)),
    min_size=2,
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(bars_strategy, st.integers(1, 3), st.integers(3, 12))
def test_tracker_matches_vectorised(rows, min_run: int, max_run: int) -> None:  # type: ignore[no-untyped-def]
    o = np.array([100.0 + i for i in range(len(rows))])
    c = o + np.array([col * size for col, size, _, _ in rows])
    h = np.maximum(o, c) + np.array([r[2] for r in rows])
    lo = np.minimum(o, c) - np.array([r[3] for r in rows])
    idx, side, ph, pl = find_patterns(o, h, lo, c, min_run, max_run)
    vec = list(zip(idx.tolist(), side.tolist(), ph.tolist(), pl.tolist(), strict=True))
    assert vec == streaming_patterns(o, h, lo, c, min_run, max_run)


def test_run_length_limits_by_hand() -> None:
    def seq(n_red: int) -> tuple[np.ndarray, ...]:
        colours = [1] + [-1] * n_red + [1]
        o = np.full(len(colours), 100.0)
        c = o + np.array(colours, dtype=float)
        return o, np.maximum(o, c) + 0.5, np.minimum(o, c) - 0.5, c

    assert [len(find_patterns(*seq(n))[0]) for n in (1, 9, 10, 12)] == [1, 1, 0, 0]
    # A run touching the start of history has an unknown length: no setup.
    o = np.array([100.0, 100.0, 100.0])
    c = np.array([99.0, 99.0, 101.0])
    assert len(find_patterns(o, np.maximum(o, c), np.minimum(o, c), c)[0]) == 0


def test_symbol_state_matches_vectorised_setups_on_real_data(nse_market) -> None:  # type: ignore[no-untyped-def]
    s = Settings()
    total = 0
    for sym in SYMBOLS[:20]:
        b, d = nse_market.intraday[sym], nse_market.daily[sym]
        idx, side, ph, pl, rsi = valid_setups(b, d, s)
        expected = list(zip(idx.tolist(), side.tolist(), ph.tolist(), pl.tolist(), rsi.tolist(), strict=True))
        state = SymbolState(sym, s)
        got = []
        d_days, d_close = d.day.tolist(), d.close.tolist()
        j = 0
        bar_day = b.day.tolist()
        for i in range(len(b)):
            while j < len(d_days) and d_days[j] < bar_day[i]:  # sessions completed before this bar's day
                state.on_daily_close(d_close[j])
                j += 1
            setup = state.on_bar(
                int(b.ts[i]), float(b.open[i]), float(b.high[i]), float(b.low[i]), float(b.close[i]), float(b.volume[i])
            )
            if setup is not None:
                got.append((i, int(setup.side), setup.pattern_high, setup.pattern_low, setup.rsi))
        assert got == expected, sym
        total += len(expected)
    assert total > 500  # the comparison had plenty of setups in it
