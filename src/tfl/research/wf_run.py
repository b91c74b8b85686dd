"""`tfl research walkforward`: choose on each train window, trade the next test window.

Every train-window trial and every test-window trial is a trial in the ledger (a window is
part of a trial's identity), so walk-forward searches count toward the deflated Sharpe
ratio like any other. The grid is also run over the whole period, which gives the
probability of backtest overfitting and the null models their trials.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfl.backtest.metrics import TRADING_DAYS
from tfl.research.analysis import analyse, verdict_dict, write_returns, write_trials, write_verdict
from tfl.research.space import canonical, grid_points, parse_grid, settings_for, validate
from tfl.research.sweep import Sweeper, SweepRun, SweepSpec, check_spec, open_bench
from tfl.research.trial import TrialResult, Workbench
from tfl.research.walkforward import (
    Fold,
    WalkForwardError,
    choose_params,
    degradation,
    gap_for,
    make_folds,
    param_stability,
    parse_period,
    purge_trades,
    stitch_oos,
)
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, day_to_date


def _purged_returns(bench: Workbench, r: TrialResult, fold: Fold) -> tuple[np.ndarray, int]:
    """The test window's session returns without trades that straddle its boundaries."""
    run = bench.backtest(settings_for(bench.base, r.point), r.start, r.end)
    purged = purge_trades(run.result.trades, fold.test_start, fold.test_end)
    rets = r.returns.copy()
    if purged.n_dropped:
        capital = run.request.settings.backtest.capital
        eq = capital * np.cumprod(1.0 + rets)
        prev = np.concatenate([[capital], eq[:-1]])
        for t in purged.dropped:
            day = (t.exit_ts + IST_OFFSET_S) // SECONDS_PER_DAY
            i = int(np.searchsorted(r.days, day))
            if i < rets.shape[0] and r.days[i] == day:
                rets[i] -= t.pnl / prev[i]
    return rets, purged.n_dropped


def run_walkforward(
    spec: SweepSpec,
    grid: str,
    *,
    train: str,
    test: str,
    mode: str,
    choose: str,
    out: Path,
    null_draws: int,
    seed: int,
) -> dict[str, Any]:
    dims = parse_grid(grid)
    check_spec(spec, dims)
    points = grid_points(dims)
    settings = validate(spec.base, points)
    train_p, test_p = parse_period(train), parse_period(test)
    bench = open_bench(spec)
    sessions = bench.sessions(spec.start, spec.end)
    gap = gap_for(settings)
    folds = make_folds(sessions, train_p, test_p, mode=mode, gap_sessions=gap)  # type: ignore[arg-type]
    sweeper = Sweeper(spec, bench)  # creates the ledger: only once the folds are known to exist
    point_dicts = [dict(p) for p in points]
    rows: list[dict[str, Any]] = []
    fold_returns: list[tuple[Fold, Sequence[dt.date], Sequence[float]]] = []
    choices: list[dict[str, object]] = []
    is_scores: list[float] = []
    oos_scores: list[float] = []
    all_results: list[TrialResult] = []
    oos_net = 0.0
    skipped: list[int] = []
    try:
        for f in folds:
            train_res = sweeper.run_points(points, f.train_start, f.train_end)
            all_results.extend(train_res)
            scores = [r.objective(spec.objective) if r.metrics.trades else math.nan for r in train_res]
            scores = [s if math.isfinite(s) else math.nan for s in scores]
            if not any(math.isfinite(s) for s in scores):  # nothing traded: nothing to choose by
                skipped.append(f.index)
                continue
            choice = choose_params(point_dicts, scores, method=choose)  # type: ignore[arg-type]
            chosen = canonical(dict(choice.params))  # type: ignore[arg-type]
            test_res = sweeper.run_points([chosen], f.test_start, f.test_end)[0]
            rets, dropped = _purged_returns(bench, test_res, f)
            fold_returns.append((f, [day_to_date(int(d)) for d in test_res.days], rets.tolist()))
            oos_score = test_res.objective(spec.objective)
            oos_value = float(getattr(test_res.metrics, spec.objective))
            is_value = float(getattr(train_res[choice.index].metrics, spec.objective))
            choices.append(dict(choice.params))
            is_scores.append(choice.score)
            oos_scores.append(oos_score if math.isfinite(oos_score) else math.nan)
            oos_net += test_res.metrics.net_pnl if test_res.metrics.trades else 0.0
            all_results.append(test_res)
            row: dict[str, Any] = {
                "fold": f.index,
                "train_start": f.train_start.isoformat(),
                "train_end": f.train_end.isoformat(),
                "gap_sessions": len(f.gap),
                "test_start": f.test_start.isoformat(),
                "test_end": f.test_end.isoformat(),
            }
            row.update({k: v for k, v in chosen})
            row.update(
                {
                    "is_objective": round(is_value, 6) if math.isfinite(is_value) else "",
                    "is_plateau": round(choice.smoothed, 6) if math.isfinite(choice.smoothed) else "",
                    "oos_objective": round(oos_value, 6) if math.isfinite(oos_value) else "",
                    "oos_net_pnl": round(test_res.metrics.net_pnl, 2) if test_res.metrics.trades else 0.0,
                    "oos_trades": test_res.metrics.trades,
                    "purged_trades": dropped,
                    "test_hash": test_res.trial_hash,
                }
            )
            rows.append(row)
        full = sweeper.run_points(points, spec.start, spec.end)
    finally:
        sweeper.close()
    if not fold_returns:
        raise WalkForwardError(f"no fold had a trade in its train window ({len(folds)} folds): nothing was tested")
    curve = stitch_oos(fold_returns, spec.base.backtest.capital)
    run = SweepRun(spec, sweeper.dataset, sweeper.ledger_path, full, sweeper.ran, sweeper.cached, bench)
    analysis = analyse(
        run, spec.base, spec.objective, bench=bench, null_draws=null_draws, seed=seed, oos_net_pnl=oos_net
    )
    deg = degradation(is_scores, oos_scores)
    stab = param_stability(choices, {d.key: list(d.values) for d in dims})
    oos_rets = np.array(curve.returns)
    oos_sd = float(oos_rets.std(ddof=1)) if oos_rets.shape[0] > 1 else 0.0
    wf = {
        "folds": len(folds),
        "train": train,
        "test": test,
        "mode": mode,
        "choose": choose,
        "gap_sessions": gap,
        "oos_sessions": len(curve.dates),
        "oos_net_pnl": round(oos_net, 2),
        "oos_final_equity": round(curve.equity[-1], 2) if curve.equity else spec.base.backtest.capital,
        "oos_sharpe": round(float(oos_rets.mean() / oos_sd * math.sqrt(TRADING_DAYS)), 6) if oos_sd > 0 else None,
        "degradation": {
            "mean_is": _r(deg.mean_is),
            "mean_oos": _r(deg.mean_oos),
            "difference": _r(deg.difference),
            "ratio": _r(deg.ratio),
            "frac_oos_below_is": _r(deg.frac_oos_below_is),
            "correlation": _r(deg.correlation) if deg.correlation is not None else None,
        },
        "param_stability": {k: _r(v) for k, v in stab.items()},
        "purged_trades": sum(int(r["purged_trades"]) for r in rows),
        "skipped_folds": skipped,
    }
    keys = [d.key for d in dims]
    out.mkdir(exist_ok=True)
    with (out / "folds.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    with (out / "oos_equity.csv").open("w", newline="", encoding="utf-8") as fh:
        w2 = csv.writer(fh, lineterminator="\n")
        w2.writerow(["session", "equity", "return", "fold"])
        for d, e, r, k in zip(curve.dates, curve.equity, curve.returns, curve.fold, strict=True):
            w2.writerow([d.isoformat(), f"{e:.2f}", f"{r:.8f}", k])
    unique = list({r.trial_hash: r for r in all_results + full}.values())
    write_trials(out / "trials.csv", unique, keys)
    write_returns(out / "returns.parquet", unique)
    data = verdict_dict(analysis, run, {"swept": keys, "search": "grid", "walkforward": wf})
    write_verdict(out / "verdict.json", data)
    return data


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)
