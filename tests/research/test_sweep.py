"""`tfl research sweep` end to end on generated markets: the ledger, resuming, the costs,
the verdict on a planted edge and on a random walk, and the errors that stop a sweep
before it runs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfl.backtest.run import BacktestRequest, run_backtest
from tfl.backtest.signals import prepare_symbols
from tfl.cli.main import main
from tfl.data.market import load_market
from tfl.data.synth import SynthSpec, synthesize
from tfl.research.ledger import Ledger
from tfl.research.trial import SETUP_KEYS, Workbench, raw_and_cost, result_of, session_series
from tfl.settings import Settings, StrategySettings

START, END = "2023-06-01", "2024-02-29"
GRID = "strategy.target_r=0.5,3,10;strategy.long_trail_atr=1,4"


def _synth(root: Path, name: str, **kw: object) -> Path:
    out = root / name
    synthesize(out, SynthSpec(symbols=12, days=320, seed=5, **kw))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def markets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("markets")
    return {
        "edge": _synth(root, "edge", momentum=0.4),
        "walk": _synth(root, "walk", random_walk=True),
    }


def _sweep(data: Path, out: Path, ledger: Path, grid: str = GRID, *extra: str) -> int:
    return main(
        [
            "research",
            "sweep",
            "--data",
            str(data),
            "--start",
            START,
            "--end",
            END,
            "--grid",
            grid,
            "--bias",
            "BOTH",
            "--out",
            str(out),
            "--ledger",
            str(ledger),
            "--null-draws",
            "200",
            "--no-progress",
            *extra,
        ]
    )


def _verdict(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "verdict.json").read_text())


def test_a_planted_edge_is_found_and_the_verdict_says_so(markets: dict[str, Path], tmp_path: Path) -> None:
    """Bars whose 15-minute moves carry on (AR(1) 0.4): breakouts catch it, random entries do not."""
    assert _sweep(markets["edge"], tmp_path / "out", tmp_path / "l.sqlite", GRID, "--workers", "2") == 0
    v = _verdict(tmp_path / "out")
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 6 and trials["trades"].min() > 100  # something traded, in every trial
    assert v["verdict"] == "edge", v["verdict_text"]
    assert v["verdict_text"].startswith("an edge that survives costs and out-of-sample")
    assert v["deflated_sharpe"] >= 0.95 and v["pbo"] < 0.25 and v["null_p_value"] <= 0.05
    assert v["trials_total"] == 6
    best = trials.loc[trials["hash"] == v["best"]["hash"]].iloc[0]
    assert best["sharpe"] == trials["sharpe"].max()
    assert v["breakeven_cost_per_trade"] > v["cost_per_trade"] > 0
    returns = pd.read_parquet(tmp_path / "out" / "returns.parquet")
    assert set(returns.columns) == {"session", *trials["hash"]}
    assert returns["session"].is_monotonic_increasing and returns["session"].is_unique


def test_the_default_strategy_on_a_random_walk_has_no_edge(markets: dict[str, Path], tmp_path: Path) -> None:
    assert _sweep(markets["walk"], tmp_path / "out", tmp_path / "l.sqlite", GRID, "--workers", "1") == 0
    v = _verdict(tmp_path / "out")
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert trials["trades"].min() > 20  # it traded
    assert v["verdict"] == "no edge" and v["verdict_text"].startswith("no edge: ")
    assert v["deflated_sharpe"] < 0.95  # not significant
    assert v["pbo"] >= 0.25  # the best in-sample is a coin flip out of sample
    failed = {c["name"] for c in v["checks"] if not c["passed"]}
    assert {"selection", "overfitting"} <= failed


def test_the_ledger_counts_every_trial_across_runs(markets: dict[str, Path], tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite"
    assert _sweep(markets["walk"], tmp_path / "a", ledger, "strategy.target_r=3,10", "--workers", "1") == 0
    assert _verdict(tmp_path / "a")["trials_total"] == 2
    # A second sweep overlapping the first, over other keys: target 10 with the default trail
    # (4 ATR) is the first sweep's target-10 trial; it comes from the ledger under this
    # sweep's labels. One new trial, three in all.
    grid = "strategy.target_r=10;strategy.long_trail_atr=4,2"
    assert _sweep(markets["walk"], tmp_path / "b", ledger, grid, "--workers", "1") == 0
    v = _verdict(tmp_path / "b")
    assert (v["trials_total"], v["trials_ran"], v["trials_cached"], v["trials_this_run"]) == (3, 1, 1, 2)
    rows = pd.read_csv(tmp_path / "b" / "trials.csv")
    assert sorted(rows["strategy.long_trail_atr"]) == [2.0, 4.0] and (rows["strategy.target_r"] == 10.0).all()
    # The deflated Sharpe ratio was computed with all three, not the two of this run.
    assert v["deflated_sharpe_detail"]["n_trials"] == 3


def test_ledger_round_trip_is_exact(markets: dict[str, Path], tmp_path: Path) -> None:
    s = Settings().replace({"backtest.bias": "BOTH"})
    bench = Workbench(markets["walk"], None, s)
    import datetime as dt

    r = bench.run(
        (("strategy.target_r", 3.0),), s.replace({"strategy.target_r": 3.0}), dt.date(2023, 6, 1), dt.date(2023, 12, 29)
    )
    led = Ledger(tmp_path / "l.sqlite")
    led.put("d" * 16, "c" * 12, "{}", r)
    back = led.get("d" * 16, r.trial_hash, "c" * 12)
    led.close()
    assert back is not None and back.metrics == r.metrics and back.point == r.point
    for name in ("days", "returns", "day_raw_pnl", "day_cost"):
        assert np.array_equal(getattr(back, name), getattr(r, name))
    assert back.cost_variants == r.cost_variants


def test_a_killed_sweep_resumes_without_redoing_finished_trials(markets: dict[str, Path], tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite"
    grid = "strategy.target_r=1,2,3,4,5,6,7,8;strategy.long_trail_atr=2,4"  # 16 trials
    cmd = [
        sys.executable, "-m", "tfl", "research", "sweep", "--data", str(markets["walk"]), "--start", START,
        "--end", END, "--grid", grid, "--bias", "BOTH", "--out", str(tmp_path / "first"), "--ledger", str(ledger),
        "--workers", "1", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    done = 0
    guard = time.monotonic() + 600  # a hang guard only: the kill is decided by the ledger's count
    try:
        while time.monotonic() < guard and proc.poll() is None:
            if ledger.exists():
                try:
                    with sqlite3.connect(ledger, timeout=5) as db:
                        done = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
            if done >= 4:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"
    assert not (tmp_path / "first" / "verdict.json").exists()
    with sqlite3.connect(ledger) as db:
        recorded = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    assert 4 <= recorded < 16
    assert _sweep(markets["walk"], tmp_path / "again", ledger, grid, "--workers", "1") == 0
    v = _verdict(tmp_path / "again")
    assert v["trials_cached"] == recorded and v["trials_ran"] == 16 - recorded
    assert v["trials_total"] == 16


def test_cost_variants_reprice_the_same_trades(markets: dict[str, Path]) -> None:
    import datetime as dt

    s = Settings().replace({"backtest.bias": "BOTH"})
    m = load_market(markets["edge"], s)
    run = run_backtest(
        BacktestRequest(markets["edge"], dt.date(2023, 6, 1), dt.date(2023, 12, 29), s), show_progress=False, market=m
    )
    assert len(run.result.trades) > 50
    _days, rets, raw, cost = session_series(run)
    # The book is flat every night: each session's raw P&L less its costs is its equity change.
    eq = s.backtest.capital * np.cumprod(1 + rets)
    assert np.allclose(np.diff(np.concatenate([[s.backtest.capital], eq])), raw - cost, atol=1e-4)
    r = result_of(run, (), None)
    one = next(v for v in r.cost_variants if v.multiple == 1.0)
    assert one.net_pnl == pytest.approx(run.summary["net_pnl"], abs=0.05)
    assert one.sharpe == pytest.approx(run.summary["sharpe"], abs=1e-3)
    nets = [v.net_pnl for v in r.cost_variants]
    assert nets == sorted(nets, reverse=True)  # dearer costs, less money
    zero = next(v for v in r.cost_variants if v.multiple == 0.0)
    assert r.breakeven_multiple == pytest.approx(zero.net_pnl / (zero.net_pnl - one.net_pnl), rel=1e-6)
    # With no slippage and no charges, a trade's raw P&L is its gross and it cost nothing.
    free = s.replace({"costs.model": "flat", "costs.flat_pct": 0.0, "costs.slippage_pct": 0.0})
    run0 = run_backtest(
        BacktestRequest(markets["edge"], dt.date(2023, 6, 1), dt.date(2023, 12, 29), free),
        show_progress=False,
        market=m,
    )
    assert run0.result.trades
    for t in run0.result.trades:
        raw_t, cost_t = raw_and_cost(t, 0.0)
        assert raw_t == pytest.approx(t.gross_pnl) and cost_t == pytest.approx(0.0, abs=1e-9)


def test_setups_depend_only_on_the_setup_keys(markets: dict[str, Path]) -> None:
    """The workbench shares setups between trials with equal SETUP_KEYS; changing any other
    strategy setting must leave every setup unchanged, or a sweep would reuse wrong ones."""
    base = Settings()
    m = load_market(markets["edge"], base)
    pairs = [(m.intraday[s], m.daily.get(s)) for s in m.universe[:4]]
    ref = prepare_symbols(pairs, base)
    assert sum(f.setup_idx.shape[0] for f in ref) > 20
    for f in dataclasses.fields(StrategySettings):
        if f.name in SETUP_KEYS:
            continue
        value = getattr(base.strategy, f.name)
        if isinstance(value, bool):
            new: object = not value
        elif isinstance(value, int | float):
            new = value * 0.8 if isinstance(value, float) else max(1, value - 1)
        else:
            continue
        other = prepare_symbols(pairs, base.replace({f"strategy.{f.name}": new}))
        for a, b in zip(ref, other, strict=True):
            assert np.array_equal(a.setup_idx, b.setup_idx), f.name
            assert np.array_equal(a.pattern_high, b.pattern_high), f.name


@pytest.mark.parametrize(
    ("grid", "extra", "names"),
    [
        ("strategy.min_run=5;strategy.max_run=3", [], "strategy"),
        ("strategy.no_such_key=1,2", [], "strategy.no_such_key"),
        ("strategy.target_r=3,abc", [], "strategy.target_r"),
        ("strategy.target_r=-1,3", [], "strategy.target_r"),
        ("strategy.target_r=1:5", [], "--random"),
        ("strategy.session_open=09:30", [], "strategy.session_open"),
        ("live.feed_stale_seconds=5", [], "live.feed_stale_seconds"),
        ("strategy.target_r=3", ["--objective", "luck"], "--objective"),
    ],
)
def test_bad_spaces_are_refused_before_anything_runs(
    markets: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    grid: str,
    extra: list[str],
    names: str,
) -> None:
    out, ledger = tmp_path / "out", tmp_path / "l.sqlite"
    assert _sweep(markets["walk"], out, ledger, grid, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tfl: error:") and names in err and "\n" not in err
    assert not out.exists() and not ledger.exists()


def test_random_and_optuna_searches_record_their_trials(markets: dict[str, Path], tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite"
    space = "strategy.target_r=1:10;strategy.use_trail=true,false"
    assert _sweep(markets["walk"], tmp_path / "r", ledger, space, "--random", "3", "--seed", "4", "--workers", "1") == 0
    r = pd.read_csv(tmp_path / "r" / "trials.csv")
    assert len(r) == 3 and r["strategy.target_r"].between(1, 10).all()
    assert (
        _sweep(markets["walk"], tmp_path / "o", ledger, space, "--search", "optuna", "--trials", "3", "--workers", "1")
        == 0
    )
    o = pd.read_csv(tmp_path / "o" / "trials.csv")
    assert 1 <= len(o) <= 3
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT COUNT(DISTINCT trial_hash) FROM trials").fetchone()[0] == len(
            set(r["hash"]) | set(o["hash"])
        )


def test_ray_engine_gives_the_local_engines_trials(markets: dict[str, Path], tmp_path: Path) -> None:
    """A small sweep as Ray tasks on a local Ray instance, the bars in its object store."""
    assert (
        _sweep(
            markets["walk"],
            tmp_path / "ray",
            tmp_path / "a.sqlite",
            "strategy.target_r=3,10",
            "--engine",
            "ray",
            "--workers",
            "2",
        )
        == 0
    )
    assert (
        _sweep(markets["walk"], tmp_path / "loc", tmp_path / "b.sqlite", "strategy.target_r=3,10", "--workers", "1")
        == 0
    )
    a = pd.read_csv(tmp_path / "ray" / "trials.csv").sort_values("hash").reset_index(drop=True)
    b = pd.read_csv(tmp_path / "loc" / "trials.csv").sort_values("hash").reset_index(drop=True)
    assert a["trades"].min() > 0
    pd.testing.assert_frame_equal(a, b)


def test_walkforward_end_to_end(markets: dict[str, Path], tmp_path: Path) -> None:
    """Folds from the CLI: each test window after its train window and the gap, one stitched
    curve from the test sessions only, and every train and test trial in the ledger."""
    out, ledger = tmp_path / "wf", tmp_path / "l.sqlite"
    args = [
        "research", "walkforward", "--data", str(markets["edge"]), "--start", "2023-03-01", "--end", END,
        "--grid", "strategy.target_r=0.5,3,10", "--bias", "BOTH", "--train", "3m", "--test", "2m",
        "--out", str(out), "--ledger", str(ledger), "--null-draws", "50", "--no-progress", "--workers", "1",
        "--set", "bias.short_index_sma=20", "--set", "bias.breadth_sma=20", "--set", "bias.long_index_sma=20",
    ]  # fmt: skip
    assert main(args) == 0
    folds = pd.read_csv(out / "folds.csv", parse_dates=["train_start", "train_end", "test_start", "test_end"])
    curve = pd.read_csv(out / "oos_equity.csv", parse_dates=["session"])
    v = _verdict(out)
    assert len(folds) >= 2 and (folds["gap_sessions"] == 20).all()
    assert folds["oos_trades"].sum() > 0
    sessions = sorted(pd.read_parquet(out / "returns.parquet")["session"].map(pd.Timestamp))
    for f in folds.itertuples():
        between = [s for s in sessions if f.train_end < s < f.test_start]
        assert len(between) == f.gap_sessions  # the embargo, in sessions
        own = curve[curve["fold"] == f.fold]["session"]
        assert own.min() >= f.test_start and own.max() <= f.test_end
    assert curve["session"].is_monotonic_increasing and curve["session"].is_unique
    assert (folds["test_start"].iloc[1:].values > folds["test_end"].iloc[:-1].values).all()
    wf = v["walkforward"]
    assert wf["folds"] == len(folds) and wf["oos_sessions"] == len(curve)
    # Runs: 3 cells per train window, one test run per fold, 3 over the whole period. Trials
    # (what the deflated Sharpe counts): the 3 configurations, whatever windows they ran over.
    with sqlite3.connect(ledger) as db:
        runs = db.execute("SELECT COUNT(DISTINCT trial_hash) FROM trials").fetchone()[0]
        configs = db.execute("SELECT COUNT(DISTINCT config_hash) FROM trials").fetchone()[0]
    assert runs == 3 * len(folds) + len(folds) + 3
    assert configs == v["trials_total"] == 3
    assert {c["name"] for c in v["checks"]} >= {"out of sample"}


def test_a_sweep_where_nothing_trades_says_so(markets: dict[str, Path], tmp_path: Path) -> None:
    grid = "strategy.long_rsi_min=100;strategy.short_rsi_max=0,1"
    assert _sweep(markets["walk"], tmp_path / "out", tmp_path / "l.sqlite", grid, "--workers", "1") == 0
    v = _verdict(tmp_path / "out")
    assert pd.read_csv(tmp_path / "out" / "trials.csv")["trades"].max() == 0
    assert v["verdict"] == "no edge" and "the best trial made no trades" in v["verdict_text"]
    assert v["null_p_value"] == 1.0


def test_a_period_without_sessions_is_refused_before_the_ledger(
    markets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "l.sqlite"
    args = ["research", "sweep", "--data", str(markets["walk"]), "--start", "2023-06-03", "--end", "2023-06-04",
            "--grid", "strategy.target_r=3", "--out", str(tmp_path / "out"), "--ledger", str(ledger)]  # fmt: skip
    assert main(args) == 2
    assert "0 trading session(s) between 2023-06-03 and 2023-06-04" in capsys.readouterr().err
    assert not ledger.exists() and not (tmp_path / "out").exists()


def test_the_workbench_shares_indicators_setups_and_bias_and_changes_nothing(markets: dict[str, Path]) -> None:
    """Indicators once per indicator setting, setups once per setup setting: and each trial
    equal to a backtest run from scratch."""
    import datetime as dt

    base = Settings().replace({"backtest.bias": "BOTH"})
    bench = Workbench(markets["edge"], None, base)
    start, end = dt.date(2023, 6, 1), dt.date(2023, 12, 29)
    points = [
        (("strategy.long_rsi_min", 70.0), ("strategy.target_r", 3.0)),
        (("strategy.long_rsi_min", 70.0), ("strategy.target_r", 10.0)),
        (("strategy.long_rsi_min", 60.0), ("strategy.target_r", 3.0)),
        (("strategy.long_rsi_min", 60.0), ("strategy.target_r", 10.0)),
    ]
    for p in points:
        s = base.replace(dict(p))
        r = bench.run(p, s, start, end)
        fresh = run_backtest(BacktestRequest(markets["edge"], start, end, s), show_progress=False)
        assert r.metrics.trades == len(fresh.result.trades) > 0
        assert r.metrics.net_pnl == pytest.approx(fresh.summary["net_pnl"], abs=0.005)
        assert np.array_equal(r.returns, session_series(fresh)[1])
    assert (bench.indicator_builds, bench.frame_builds, bench.layout_builds) == (1, 2, 2)
    # Another indicator setting: new indicators.
    s = base.replace({"indicators.atr_period": 10})
    bench.run((("indicators.atr_period", 10),), s, start, end)
    assert bench.indicator_builds == 2
