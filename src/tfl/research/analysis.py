"""The honest statistics of a sweep, and the files other tools read.

The deflated Sharpe ratio and the probability of backtest overfitting are computed over
every trial in the ledger on this data (not only this run's), from per-session returns.
The null models re-run the best trial once to get its trades.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfl.research import stats
from tfl.research.ledger import Ledger
from tfl.research.sweep import SweepRun
from tfl.research.trial import COST_MULTIPLES, TrialResult, Workbench
from tfl.research.verdict import Verdict, decide
from tfl.settings import Settings
from tfl.timeutil import day_to_date

PBO_SPLITS = 16
NULL_DRAWS = 500
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_BLOCK = 5.0  # sessions: about a week, so short runs of good and bad days stay together


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


@dataclass(frozen=True)
class Analysis:
    best: TrialResult
    objective: str
    trials_total: int
    sr_variance: float
    deflated: stats.DeflatedSharpe
    pbo: stats.PboResult | None
    pbo_trials: int
    min_trl_sessions: float
    null_p: float  # the larger of the two random-entry p-values (Sharpe and net P&L)
    null_sharpe_p: float
    null_net_p: float
    null_sharpes: Sequence[float]
    bootstrap: stats.BootstrapResult
    cost_per_trade: float
    verdict: Verdict


def best_of(results: Sequence[TrialResult], objective: str) -> TrialResult:
    """The trial with the highest objective; ties go to the earlier trial (stable)."""
    if not results:
        raise ValueError("no trials to choose from")
    return max(results, key=lambda r: (r.objective(objective), -results.index(r)))


def same_sessions(trials: Sequence[TrialResult], days: np.ndarray) -> list[TrialResult]:
    return [t for t in trials if t.days.shape == days.shape and bool(np.array_equal(t.days, days))]


def analyse(
    run: SweepRun,
    base: Settings,
    objective: str,
    *,
    bench: Workbench | None = None,
    null_draws: int = NULL_DRAWS,
    seed: int = 0,
    oos_net_pnl: float | None = None,
    best: TrialResult | None = None,
) -> Analysis:
    """Statistics of the sweep's best trial against everything in the ledger on this data."""
    from tfl.research.nulls import random_entry_nulls
    from tfl.research.space import settings_for

    best = best if best is not None else best_of(run.results, objective)
    ledger = Ledger(run.ledger_path)
    try:
        everything = list(ledger.latest(run.dataset.data_hash))
        trials_total = ledger.distinct_trials(run.dataset.data_hash)
    finally:
        ledger.close()
    srs = np.array([stats.sharpe(t.returns) for t in everything if t.returns.shape[0] > 1])
    srs = srs[np.isfinite(srs)]
    sr_var = float(srs.var(ddof=1)) if srs.shape[0] > 1 else 0.0
    deflated = stats.deflated_sharpe(best.returns, max(trials_total, 1), sr_var)
    peers = same_sessions(everything, best.days)
    pbo: stats.PboResult | None = None
    if len(peers) >= 2:
        matrix = np.column_stack([t.returns for t in peers])
        splits = PBO_SPLITS
        while splits > 2 and matrix.shape[0] < splits * 4:
            splits -= 2
        pbo = stats.pbo_cscv(matrix, n_splits=splits)
    min_trl = stats.min_track_record_length(deflated.sr, 0.0, deflated.skew, deflated.kurtosis)

    s = settings_for(base, best.point)
    if bench is None:
        bench = Workbench(run.spec.data_dir, run.spec.symbols, base)
    bt = bench.backtest(s, best.start, best.end)
    trades = bt.result.trades
    nulls = random_entry_nulls(
        trades, bench.market.intraday, best.days, s.backtest.capital, s, n_draws=null_draws, seed=seed
    )
    boot = stats.block_bootstrap_pvalue(best.returns, n_boot=BOOTSTRAP_DRAWS, block=BOOTSTRAP_BLOCK, seed=seed)
    n = best.metrics.trades
    cost_per_trade = float(best.day_cost.sum()) / n if n else 0.0
    verdict = decide(
        net_pnl=best.metrics.net_pnl if n else 0.0,
        breakeven_cost_per_trade=best.breakeven_cost_per_trade,
        cost_per_trade=cost_per_trade,
        dsr=deflated.dsr,
        n_trials=trials_total,
        pbo=pbo.pbo if pbo is not None and pbo.reason is None else math.nan,
        null_p=max(nulls.p_value, nulls.net_pnl_p_value),
        bootstrap_p=boot.p_value,
        oos_net_pnl=oos_net_pnl,
    )
    return Analysis(
        best=best,
        objective=objective,
        trials_total=trials_total,
        sr_variance=sr_var,
        deflated=deflated,
        pbo=pbo,
        pbo_trials=len(peers),
        min_trl_sessions=min_trl,
        null_p=max(nulls.p_value, nulls.net_pnl_p_value),
        null_sharpe_p=nulls.p_value,
        null_net_p=nulls.net_pnl_p_value,
        null_sharpes=[float(x) for x in nulls.null_sharpes],
        bootstrap=boot,
        cost_per_trade=cost_per_trade,
        verdict=verdict,
    )


# --------------------------------------------------------------------------- files


def _mult(k: float) -> str:
    return f"{k:g}x"


def trial_row(r: TrialResult, keys: Sequence[str]) -> dict[str, Any]:
    point = dict(r.point)
    row: dict[str, Any] = {"hash": r.trial_hash, "settings_hash": r.settings_hash}
    for k in keys:
        row[k] = point.get(k, "")
    row["start"], row["end"] = r.start.isoformat(), r.end.isoformat()
    for k, v in asdict(r.metrics).items():
        row[k] = "" if isinstance(v, float) and not math.isfinite(v) else (round(v, 6) if isinstance(v, float) else v)
    for cv in r.cost_variants:
        row[f"net_pnl_{_mult(cv.multiple)}"] = round(cv.net_pnl, 2)
        row[f"sharpe_{_mult(cv.multiple)}"] = "" if not math.isfinite(cv.sharpe) else round(cv.sharpe, 6)
    row["breakeven_multiple"] = round(r.breakeven_multiple, 6)
    row["breakeven_cost_per_trade"] = round(r.breakeven_cost_per_trade, 2)
    return row


def write_trials(path: Path, results: Sequence[TrialResult], keys: Sequence[str]) -> None:
    rows = [trial_row(r, keys) for r in results]
    cols = list(rows[0]) if rows else ["hash"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def write_returns(path: Path, results: Sequence[TrialResult]) -> None:
    """One row per session, one column per trial (its hash); NaN where a trial did not run."""
    cols: dict[str, pd.Series] = {}
    for r in results:
        idx = pd.Index([day_to_date(int(d)) for d in r.days], name="session")
        cols[r.trial_hash] = pd.Series(r.returns, index=idx, dtype="float64")
    frame = pd.DataFrame(cols).sort_index() if cols else pd.DataFrame(index=pd.Index([], name="session"))
    frame.index = pd.Index([d.isoformat() for d in frame.index], name="session")
    frame.reset_index().to_parquet(path, index=False)


def verdict_dict(a: Analysis, run: SweepRun, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    b = a.best
    variants = {
        _mult(cv.multiple): {"net_pnl": cv.net_pnl, "sharpe": _f(cv.sharpe), "cagr_pct": _f(cv.cagr_pct)}
        for cv in b.cost_variants
    }
    out: dict[str, Any] = {
        "verdict": a.verdict.label,
        "verdict_text": a.verdict.text,
        "checks": [{"name": c.name, "passed": c.passed, "text": c.text} for c in a.verdict.checks],
        "trials_total": a.trials_total,
        "trials_this_run": len(run.results),
        "trials_ran": run.ran,
        "trials_cached": run.cached,
        "objective": a.objective,
        "best": {
            "hash": b.trial_hash,
            "settings": {k: v for k, v in b.point},
            "start": b.start.isoformat(),
            "end": b.end.isoformat(),
            "metrics": {k: (_f(v) if isinstance(v, float) else v) for k, v in asdict(b.metrics).items()},
        },
        "deflated_sharpe": _f(a.deflated.dsr),
        "deflated_sharpe_detail": {
            "sr_per_session": _f(a.deflated.sr),
            "expected_max_sr_per_session": _f(a.deflated.sr_benchmark),
            "sr_variance": _f(a.sr_variance),
            "n_trials": a.trials_total,
            "sessions": a.deflated.n_obs,
            "skew": _f(a.deflated.skew),
            "kurtosis": _f(a.deflated.kurtosis),
        },
        "pbo": _f(a.pbo.pbo) if a.pbo is not None and a.pbo.reason is None else None,
        "pbo_detail": None
        if a.pbo is None
        else {
            "trials": a.pbo_trials,
            "splits": a.pbo.n_splits,
            "combinations": a.pbo.n_combinations,
            "degradation_slope": _f(a.pbo.degradation_slope),
            "prob_oos_loss": _f(a.pbo.prob_oos_loss),
            "reason": a.pbo.reason,
        },
        "pbo_logits": [_f(x) for x in a.pbo.logits.tolist()] if a.pbo is not None and a.pbo.reason is None else [],
        "min_track_record_sessions": _f(a.min_trl_sessions),
        "null_p_value": _f(max(a.null_p, a.bootstrap.p_value)),
        "null_detail": {
            "random_entries_p_value": _f(a.null_p),
            "random_entries_sharpe_p_value": _f(a.null_sharpe_p),
            "random_entries_net_pnl_p_value": _f(a.null_net_p),
            "random_entries_draws": len(a.null_sharpes),
            "random_entries_sharpes_pct": {str(q): _f(float(np.percentile(a.null_sharpes, q))) for q in (5, 50, 95)}
            if a.null_sharpes
            else {},
            "block_bootstrap_p_value": _f(a.bootstrap.p_value),
            "block_bootstrap_draws": a.bootstrap.n_boot,
            "block_bootstrap_mean_block": a.bootstrap.mean_block,
        },
        "breakeven_cost_per_trade": round(b.breakeven_cost_per_trade, 2),
        "breakeven_cost_multiple": round(b.breakeven_multiple, 6),
        "cost_per_trade": round(a.cost_per_trade, 2),
        "cost_variants": variants,
        "cost_multiples": list(COST_MULTIPLES),
        "dataset": {
            "data_dir": str(run.spec.data_dir),
            "data_hash": run.dataset.data_hash,
            "files": run.dataset.files,
            "symbols": list(run.spec.symbols) if run.spec.symbols else "all",
        },
        "ledger": str(run.ledger_path),
    }
    if extra:
        out.update(extra)
    return out


def write_verdict(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
