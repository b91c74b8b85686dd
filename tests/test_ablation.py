"""The ablation switches: each turns one part of the rules off, and each changes a hand-built
day the way its definition says, identically in the backtester and in the replayed live runtime.

Expected prices are worked by hand from the strategy page, as in ``test_rules`` (slippage
0.05%, target 10R, breakeven +0.1R at 1R, ATR trail 4.0 / aggressive 1.0 at 5R for longs).
The defaults (every switch on) are the existing rules: ``test_rules``, ``test_rules_both_worlds``
and the golden trade files hold them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from test_rules import BASE, FILL, SHORT_BASE, SLIP, R, atr_at, quiet, zigzag_daily
from test_rules_both_worlds import replay_scenario
from tfl.backtest.run import BacktestRequest, run_backtest
from tfl.backtest.signals import SymbolFrame, valid_setups
from tfl.backtest.simulator import SimResult, simulate
from tfl.cli.main import main
from tfl.data.synth import SynthSpec, synthesize
from tfl.domain import Bias, ExitReason, RejectReason, Side
from tfl.indicators.streaming import RSI
from tfl.settings import ABLATION_SWITCHES, Settings, SettingsError, load_settings, switched_off
from tfl.strategy.rules import Position, ratchet, session_bias
from tfl.strategy.symbol_state import SymbolState
from tfl.timeutil import date_to_day
from tfl.trade_csv import trade_rows

from builders import TEST_DAY, daily_series, frame, hhmm_of, intraday
from test_indicators import SYMBOLS

Bar = tuple[str, float, float, float, float]


def off(*keys: str, **more: object) -> Settings:
    """Default settings with the named switches off (and any other overrides)."""
    return Settings().replace({**{f"strategy.{k}": False for k in keys}, **more})


class BothWorlds:
    """Runs a scenario in the backtester and replays it through the live runtime; the two must
    trade identically. The backtester gets the day's bias as ``tfl backtest`` passes it on (after
    ``session_bias``); the live runtime gets the traffic light's bias and must apply the switch itself."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.n = 0

    def __call__(self, frames: Sequence[SymbolFrame], settings: Settings, bias: Bias = Bias.BOTH) -> SimResult:
        traded, _ = session_bias(bias, "scenario", settings.strategy)
        day = date_to_day(TEST_DAY)
        res = simulate(list(frames), {day: traded}, day, day, settings)
        self.n += 1
        trades, rejections = replay_scenario(self.tmp / f"run{self.n}", frames, bias, settings, TEST_DAY)
        assert trades == trade_rows(res.trades), "the replayed live runtime traded differently"
        assert rejections == sorted((r.ts, r.symbol, r.side, r.reason) for r in res.rejections)
        return res


@pytest.fixture
def both(tmp_path: Path) -> BothWorlds:
    return BothWorlds(tmp_path)


def only_trade(res: SimResult):  # type: ignore[no-untyped-def]
    assert len(res.trades) == 1, res.trades
    return res.trades[0]


def mvwap_at(bars: list[Bar], hhmm: str, n: int = 50) -> float:
    """Oracle: sum(close x volume) / sum(volume) over the last n bars, written out plainly."""
    s = intraday("X", bars)
    end = len(s) - len(bars) + [b[0] for b in bars].index(hhmm) + 1
    c, v = s.close.tolist()[end - n : end], s.volume.tolist()[end - n : end]
    return float(sum(ci * vi for ci, vi in zip(c, v, strict=True)) / sum(v))


# ------------------------------------------------------------------ the bias filter


def test_use_bias_off_trades_both_sides_whatever_the_traffic_light(both: BothWorlds) -> None:
    long_day = [*BASE, *quiet(105.6, "10:15")]
    for bias in (Bias.SHORTS, Bias.NO_TRADES):
        assert both([frame("X", long_day)], Settings(), bias).trades == []  # the rule: no long today
        t = only_trade(both([frame("X", long_day)], off("use_bias"), bias))
        assert t.side is Side.LONG and t.entry_price == pytest.approx(FILL)
        assert t.exit_reason is ExitReason.EOD and t.exit_price == pytest.approx(105.6 * (1 - SLIP))
    short_day = [*SHORT_BASE, *quiet(94.4, "10:15")]
    assert both([frame("Y", short_day, rising=False)], Settings(), Bias.LONGS).trades == []
    t = only_trade(both([frame("Y", short_day, rising=False)], off("use_bias"), Bias.LONGS))
    assert t.side is Side.SHORT and t.entry_price == pytest.approx(94.7 * (1 - SLIP))


def test_session_bias_is_the_traffic_light_unless_switched_off() -> None:
    on, no = Settings().strategy, off("use_bias").strategy
    assert session_bias(Bias.SHORTS, "why", on) == (Bias.SHORTS, "why")
    for b in Bias:
        got, reason = session_bias(b, "computed", no)
        assert got is Bias.BOTH and "use_bias" in reason and b.value in reason


def test_tfl_backtest_trades_both_sides_every_session_when_use_bias_is_off(tmp_path: Path) -> None:
    data = tmp_path / "synth"
    synthesize(data, SynthSpec(symbols=8, days=160, seed=5))

    def backtest(s: Settings):  # type: ignore[no-untyped-def]
        req = BacktestRequest(data, dt.date(2023, 6, 1), dt.date(2023, 8, 10), s)
        return run_backtest(req, show_progress=False)

    computed = backtest(Settings())
    assert {r.bias for r in computed.bias} != {"BOTH"}  # the traffic light never says BOTH
    ablated = backtest(off("use_bias"))
    assert {r.bias for r in ablated.bias} == {"BOTH"}
    assert all("use_bias" in r.reason for r in ablated.bias)
    forced = backtest(Settings().replace({"backtest.bias": "BOTH"}))
    assert trade_rows(ablated.result.trades) == trade_rows(forced.result.trades)
    assert len(ablated.result.trades) > len(computed.result.trades)


# ------------------------------------------------------------------ the setup filters


def test_use_rsi_filter_off_takes_setups_whatever_the_daily_rsi(both: BothWorlds) -> None:
    day = [*BASE, *quiet(105.6, "10:15")]
    assert both([frame("X", day, rising=False)], Settings()).trades == []  # RSI 0: no long
    s = off("use_rsi_filter")
    t = only_trade(both([frame("X", day, rising=False, settings=s)], s))
    assert t.side is Side.LONG and t.entry_price == pytest.approx(FILL) and t.rsi == 0.0
    assert t.exit_reason is ExitReason.EOD and t.exit_price == pytest.approx(105.6 * (1 - SLIP))
    short_day = [*SHORT_BASE, *quiet(94.4, "10:15")]
    assert both([frame("Y", short_day, rising=True)], Settings()).trades == []  # RSI 100: no short
    t = only_trade(both([frame("Y", short_day, rising=True, settings=s)], s))
    assert t.side is Side.SHORT and t.rsi == 100.0


def test_use_rsi_filter_off_keeps_the_rsi_as_the_priority_key(both: BothWorlds) -> None:
    s = off("use_rsi_filter", **{"risk.max_positions": 1})
    dailies = {"AAA": daily_series("AAA", False), "BBB": zigzag_daily("BBB", 3.0)}
    rsi = {}
    for sym, d in dailies.items():
        r = RSI(14)
        for c in d.close.tolist():
            r.update(c)
        rsi[sym] = r.value
    assert rsi["AAA"] < rsi["BBB"] < 75  # neither passes the filter when it is on
    frames = [frame(sym, [*BASE, *quiet(105.6, "10:15")], daily=d, settings=s) for sym, d in dailies.items()]
    res = both(frames, s)
    assert [t.symbol for t in res.trades] == ["BBB"]
    assert [(r.symbol, r.reason) for r in res.rejections] == [("AAA", RejectReason.MAX_POSITIONS)]


def test_use_rsi_filter_off_still_needs_a_known_rsi(both: BothWorlds) -> None:
    s = off("use_rsi_filter")
    short_history = daily_series("X", True, n=5)  # RSI(14) is not defined yet
    assert both([frame("X", [*BASE, *quiet(105.6, "10:15")], daily=short_history, settings=s)], s).trades == []


LOW_BASE = [(t, o - 10.0, h - 10.0, lo - 10.0, c - 10.0) for t, o, h, lo, c in BASE]  # the long, under its MVWAP


def test_use_trend_filter_off_takes_setups_under_the_mvwap(both: BothWorlds) -> None:
    day = [*LOW_BASE, *quiet(95.6, "10:15")]
    assert mvwap_at(day, "09:45") > 95.2  # the setup bar closes under its MVWAP(50)
    assert both([frame("X", day)], Settings()).trades == []
    s = off("use_trend_filter")
    t = only_trade(both([frame("X", day, settings=s)], s))
    assert t.side is Side.LONG and t.entry_price == pytest.approx(95.3 * (1 + SLIP)) and t.initial_stop == 94.4
    assert t.exit_reason is ExitReason.EOD and t.exit_price == pytest.approx(95.6 * (1 - SLIP))
    # Both filters off: a long under its MVWAP on a falling RSI.
    s2 = off("use_trend_filter", "use_rsi_filter")
    assert both([frame("X", day, rising=False)], off("use_trend_filter")).trades == []
    assert len(both([frame("X", day, rising=False, settings=s2)], s2).trades) == 1


@pytest.mark.parametrize(
    "keys", [("use_rsi_filter",), ("use_trend_filter",), ("use_rsi_filter", "use_trend_filter")], ids="+".join
)
def test_streaming_setups_equal_vectorised_with_filters_off(nse_market, keys: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    """The live twin (SymbolState) finds exactly the backtester's setups with the filters off,
    and they include every setup of the full rules."""
    s, full = off(*keys), Settings()
    total = extra = 0
    for sym in SYMBOLS[:6]:
        b, d = nse_market.intraday[sym], nse_market.daily[sym]
        idx, side, ph, pl, rsi = valid_setups(b, d, s)
        expected = list(zip(idx.tolist(), side.tolist(), ph.tolist(), pl.tolist(), rsi.tolist(), strict=True))
        state = SymbolState(sym, s)
        got = []
        d_days, d_close, bar_day = d.day.tolist(), d.close.tolist(), b.day.tolist()
        j = 0
        for i in range(len(b)):
            while j < len(d_days) and d_days[j] < bar_day[i]:
                state.on_daily_close(d_close[j])
                j += 1
            setup = state.on_bar(
                int(b.ts[i]), float(b.open[i]), float(b.high[i]), float(b.low[i]), float(b.close[i]), float(b.volume[i])
            )
            if setup is not None:
                got.append((i, int(setup.side), setup.pattern_high, setup.pattern_low, setup.rsi))
        assert got == expected, sym
        assert not any(math.isnan(x[4]) for x in got)  # the priority key is always known
        kept = set(valid_setups(b, d, full)[0].tolist())
        assert kept <= set(idx.tolist())
        total += len(expected)
        extra += len(expected) - len(kept)
    assert extra > 100 and total > 500  # the switches let through many more setups


# ------------------------------------------------------------------ the exit ladder

BREAKEVEN_DAY = [
    *BASE,
    ("10:15", 105.6, FILL + 1.05 * R, 105.5, 106.0),  # best reaches 1R
    ("10:30", 106.0, 106.1, 105.3, 105.5),  # under breakeven, above the initial stop
    *quiet(105.5, "10:45"),
]


def test_use_breakeven_off_keeps_the_stop_at_the_pattern_low(both: BothWorlds) -> None:
    t = only_trade(both([frame("X", BREAKEVEN_DAY)], Settings()))
    assert t.exit_reason is ExitReason.TRAIL and t.exit_price == pytest.approx((FILL + 0.1 * R) * (1 - SLIP))
    # Without breakeven the 4-ATR trail is the only ratchet, and it stays under every later low.
    highs = {b[0]: b[2] for b in BREAKEVEN_DAY}
    trail = max(highs[h] - 4 * atr_at(BREAKEVEN_DAY, h) for h in highs if "10:00" <= h < "15:15")
    assert trail < 104.4
    t = only_trade(both([frame("X", BREAKEVEN_DAY)], off("use_breakeven")))
    assert t.exit_reason is ExitReason.EOD and hhmm_of(t.exit_ts) == "15:15"
    assert t.exit_price == pytest.approx(105.5 * (1 - SLIP))


# A wide pattern (low 102.0) so R is large and the 4-ATR trail binds before 5R (test_rules).
TRAIL_DAY = [
    BASE[0],
    ("09:30", 105.0, 105.1, 102.0, 104.6),
    BASE[2],
    BASE[3],
    ("10:15", 105.6, 110.0, 105.5, 109.8),
    ("10:30", 109.8, 114.0, 109.6, 113.9),
    ("10:45", 113.9, 112.0, 111.0, 111.5),
    ("11:00", 111.5, 111.7, 100.0, 100.5),
    *quiet(100.5, "11:15"),
]
TRAIL_R = FILL - 102.0


def test_use_trail_off_leaves_breakeven_as_the_only_ratchet(both: BothWorlds) -> None:
    trail = max(110.0 - 4 * atr_at(TRAIL_DAY, "10:15"), 114.0 - 4 * atr_at(TRAIL_DAY, "10:30"))
    t = only_trade(both([frame("X", TRAIL_DAY)], Settings()))
    assert t.exit_price == pytest.approx(trail * (1 - SLIP), abs=1e-9)
    breakeven = FILL + 0.1 * TRAIL_R
    assert breakeven < trail
    t = only_trade(both([frame("X", TRAIL_DAY)], off("use_trail")))
    assert t.exit_reason is ExitReason.TRAIL and hhmm_of(t.exit_ts) == "11:00"
    assert t.exit_price == pytest.approx(breakeven * (1 - SLIP), abs=1e-9)
    # Neither ratchet: a fixed stop at the pattern low, hit by the 11:00 low of 100.
    t = only_trade(both([frame("X", TRAIL_DAY)], off("use_trail", "use_breakeven")))
    assert t.exit_reason is ExitReason.STOP and t.exit_price == pytest.approx(102.0 * (1 - SLIP))


def test_use_trail_off_has_no_aggressive_trail_either(both: BothWorlds) -> None:
    high = FILL + 6 * R
    day = [*BASE, ("10:15", 105.6, high, 105.5, high - 0.2), ("10:30", high - 0.2, high - 0.1, 100.0, 101.0)]
    day += quiet(101.0, "10:45")
    aggressive = high - 1.0 * atr_at(day, "10:15")
    t = only_trade(both([frame("X", day)], Settings()))
    assert t.exit_price == pytest.approx(max(FILL + 0.1 * R, aggressive) * (1 - SLIP), abs=1e-9)
    t = only_trade(both([frame("X", day)], off("use_trail")))
    assert t.exit_price == pytest.approx((FILL + 0.1 * R) * (1 - SLIP), abs=1e-9)


TARGET = FILL + 10 * R
TARGET_DAY = [
    *BASE,
    ("10:15", 105.6, TARGET + 0.5, 105.5, TARGET),  # passes the 10R target
    ("10:30", TARGET, TARGET + 0.1, 105.0, 105.5),  # falls back, above the initial stop
    *quiet(105.5, "10:45"),
]


def test_use_target_off_places_no_target_and_the_trail_exits(both: BothWorlds) -> None:
    t = only_trade(both([frame("X", TARGET_DAY)], Settings()))
    assert t.exit_reason is ExitReason.TARGET and hhmm_of(t.exit_ts) == "10:15"
    assert t.exit_price == pytest.approx(TARGET, abs=1e-9)
    # No target: the aggressive trail (best beyond 5R: k = 1) set at the 10:15 close exits at 10:30.
    stop = max(FILL + 0.1 * R, TARGET + 0.5 - 1.0 * atr_at(TARGET_DAY, "10:15"))
    assert 105.0 < stop < TARGET
    t = only_trade(both([frame("X", TARGET_DAY)], off("use_target")))
    assert t.exit_reason is ExitReason.TRAIL and hhmm_of(t.exit_ts) == "10:30"
    assert t.exit_price == pytest.approx(stop * (1 - SLIP), abs=1e-9)
    # No target and no trail: breakeven exits. Nothing of the ladder: the day's end does.
    t = only_trade(both([frame("X", TARGET_DAY)], off("use_target", "use_trail")))
    assert t.exit_price == pytest.approx((FILL + 0.1 * R) * (1 - SLIP), abs=1e-9)
    t = only_trade(both([frame("X", TARGET_DAY)], off("use_target", "use_trail", "use_breakeven")))
    assert t.exit_reason is ExitReason.EOD and t.exit_price == pytest.approx(105.5 * (1 - SLIP))


def test_use_target_off_for_a_short(both: BothWorlds) -> None:
    fill = 94.7 * (1 - SLIP)
    r = 95.6 - fill
    target = fill - 10 * r
    day = [*SHORT_BASE, ("10:15", 94.4, 94.5, target - 0.3, target + 0.2), *quiet(target + 0.2, "10:30")]
    t = only_trade(both([frame("Y", day, rising=False)], Settings()))
    assert t.exit_reason is ExitReason.TARGET and t.exit_price == pytest.approx(target, abs=1e-9)
    s = off("use_target", "use_trail", "use_breakeven")
    t = only_trade(both([frame("Y", day, rising=False, settings=s)], s))
    assert t.exit_reason is ExitReason.EOD and t.exit_price == pytest.approx((target + 0.2) * (1 + SLIP))


# ------------------------------------------------------------------ the ratchet, as a property


@hyp_settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([Side.LONG, Side.SHORT]),
    st.floats(0.5, 5.0),
    st.lists(st.tuples(st.floats(-12.0, 12.0), st.floats(0.0, 3.0), st.floats(0.01, 3.0)), min_size=1, max_size=30),
    st.tuples(st.booleans(), st.booleans()),
)
def test_switching_a_ratchet_off_never_tightens_the_stop(side: Side, r: float, path, switches) -> None:  # type: ignore[no-untyped-def]
    """Each ratchet only adds a candidate stop: with fewer of them on, the stop is never tighter,
    and with both off it is the initial stop for good."""
    entry = 100.0
    use_be, use_trail = switches
    p_all = Settings().strategy
    p = off(*[k for k, on in (("use_breakeven", use_be), ("use_trail", use_trail)) if not on]).strategy
    p_none = off("use_breakeven", "use_trail").strategy
    initial = entry - side * r

    def pos() -> Position:
        return Position("X", side, 1, 0, 0, entry, initial, initial, entry + side * 10 * r, r, r, 50.0, 0.0,
                        best=-math.inf if side is Side.LONG else math.inf)  # fmt: skip

    full, some, none = pos(), pos(), pos()
    for move, width, atr in path:
        mid = entry + side * move
        h, lo = mid + width / 2, mid - width / 2
        for q, params in ((full, p_all), (some, p), (none, p_none)):
            q.stop, q.best = ratchet(q, h, lo, atr, params)
        assert side * (some.stop - full.stop) <= 1e-12
        assert none.stop == initial


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("key", ABLATION_SWITCHES)
def test_every_switch_is_on_by_default_and_parses_from_every_source(tmp_path: Path, key: str) -> None:
    assert getattr(Settings().strategy, key) is True and switched_off(Settings().strategy) == []
    cfg = tmp_path / "tfl.toml"
    cfg.write_text(f"[strategy]\n{key} = false\n")
    assert getattr(load_settings(cfg, environ={}).strategy, key) is False
    env_name = f"TFL_STRATEGY__{key.upper()}"
    for text, want in [("false", False), ("FALSE", False), ("No", False), ("0", False), (" true ", True)]:
        assert getattr(load_settings(None, environ={env_name: text}).strategy, key) is want
    for text, want in [("yes", True), ("1", True), ("False", False)]:
        s = load_settings(None, environ={}, overrides={f"strategy.{key}": text})
        assert getattr(s.strategy, key) is want
        assert switched_off(s.strategy) == ([] if want else [f"strategy.{key}"])
    assert getattr(Settings().replace({f"strategy.{key}": 0}).strategy, key) is False


@pytest.mark.parametrize("value", ["maybe", "", "2", "on", 2, 1.0, 0.0, -1, None, [True]])
def test_a_bad_boolean_names_the_key(value: object) -> None:
    with pytest.raises(SettingsError, match=r"setting 'strategy\.use_trail': .* is not a boolean"):
        Settings().replace({"strategy.use_trail": value})


def test_a_bad_boolean_from_toml_or_env_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "tfl.toml"
    cfg.write_text('[strategy]\nuse_target = "perhaps"\n')
    with pytest.raises(SettingsError, match=r"'strategy\.use_target'"):
        load_settings(cfg, environ={})
    with pytest.raises(SettingsError, match=r"'strategy\.use_bias'"):
        load_settings(None, environ={"TFL_STRATEGY__USE_BIAS": "nope"})


def test_other_types_still_refuse_booleans() -> None:
    with pytest.raises(SettingsError, match=r"risk\.max_positions"):
        Settings().replace({"risk.max_positions": True})


@pytest.mark.parametrize("forced", ["LONGS", "SHORTS", "NO_TRADES"])
def test_use_bias_off_contradicts_a_forced_side(forced: str) -> None:
    with pytest.raises(SettingsError, match=r"strategy\.use_bias.*backtest\.bias"):
        off("use_bias", **{"backtest.bias": forced})
    for fine in ("auto", "BOTH"):
        assert off("use_bias", **{"backtest.bias": fine}).backtest.bias == fine


def test_every_combination_of_switches_is_a_valid_strategy() -> None:
    """Even all six off is a strategy: every pattern, a fixed stop, the day's end."""
    for bits in itertools.product([True, False], repeat=len(ABLATION_SWITCHES)):
        s = Settings().replace({f"strategy.{k}": b for k, b in zip(ABLATION_SWITCHES, bits, strict=True)})
        assert len(switched_off(s.strategy)) == bits.count(False)


def test_paper_and_live_refuse_switches_that_are_off(
    nse_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "p.sqlite"
    args = ["trade", "--world", "paper", "--data", str(nse_dir), "--date", "2023-05-16", "--journal", str(journal)]
    assert main([*args, "--set", "strategy.use_target=false", "--set", "strategy.use_rsi_filter=no"]) == 2
    err = capsys.readouterr().err
    assert "strategy.use_rsi_filter, strategy.use_target" in err and "research-only" in err
    assert not journal.exists()
    replay = ["trade", "--world", "replay", "--data", str(nse_dir), "--date", "2023-05-16", "--journal", str(journal)]
    assert main([*replay, "--set", "strategy.use_bias=false", "--bias", "LONGS"]) == 2
    assert "contradicts strategy.use_bias" in capsys.readouterr().err
    assert not journal.exists()
    out = tmp_path / "bt"
    bt = ["backtest", "--data", str(nse_dir), "--start", "2023-05-16", "--end", "2023-05-16", "--out", str(out)]
    assert main([*bt, "--set", "strategy.use_bias=false", "--bias", "SHORTS"]) == 2
    assert "strategy.use_bias" in capsys.readouterr().err
    assert not out.exists()
