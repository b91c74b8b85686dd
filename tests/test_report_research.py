"""The research report from hand-made output files that follow the issue's contract: the
expected maximum Sharpe against an independent numerical integral, the heatmap cells against
a hand computation, bad input named in one line, same files same bytes. The page in Chromium
is checked in tests/test_report_browser.py, on the same fixture files (``write_fixture``)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scipy import integrate, stats

from tfl.report.research import (
    ResearchReportError,
    expected_max_sharpe,
    render_research_report,
    swept_keys,
)

GRID = {
    "strategy.long_rsi_min": [70.0, 75.0, 80.0],
    "strategy.target_r": [3.0, 5.0, 10.0],
    "risk.max_positions": [10, 15],
}
COSTS = (0.0, 0.5, 1.0, 1.5, 2.0)


def write_fixture(out: Path, *, walkforward: bool = False, seed: int = 11) -> Path:
    """A small sweep's output files as the issue describes them (18 trials, 250 sessions)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    sessions = pd.bdate_range("2023-01-02", periods=250)
    rows, returns = [], {}
    for combo in itertools.product(*GRID.values()):
        settings = dict(zip(GRID, combo, strict=True))
        h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        r = rng.normal(0.0002 * (combo[1] / 10), 0.01, len(sessions))
        returns[h] = r
        sharpe = float(r.mean() / r.std(ddof=1) * math.sqrt(252))
        net = float(1_000_000 * (np.prod(1 + r) - 1))
        charges = float(rng.uniform(20_000, 60_000))
        row: dict[str, Any] = {"hash": h, **settings}
        row.update(
            sharpe=sharpe, cagr_pct=net / 10_000, profit_factor=1 + sharpe / 10, sqn=sharpe / 2,
            trades=int(rng.integers(50, 200)), net_pnl=net,
        )  # fmt: skip
        for m in COSTS:
            row[f"net_pnl_{m:g}x"] = net + (1.0 - m) * charges
        rows.append(row)
    trials = pd.DataFrame(rows)
    trials.to_csv(out / "trials.csv", index=False)
    frame = pd.DataFrame(returns, index=pd.Index([d.date().isoformat() for d in sessions], name="session"))
    frame.to_parquet(out / "returns.parquet")
    best = trials.sort_values("sharpe", ascending=False).iloc[0]
    verdict = {
        "verdict": "no edge",
        "verdict_text": f"no edge: the best of 18 trials (Sharpe {best['sharpe']:.2f}) does not survive the deflation.",
        "trials_total": 18,
        "objective": "sharpe",
        "best": {
            "hash": best["hash"],
            "settings": {k: best[k].item() for k in GRID},
            "metrics": {k: float(best[k]) for k in ("sharpe", "cagr_pct", "profit_factor", "sqn", "trades", "net_pnl")},
        },
        "deflated_sharpe": 0.41,
        "pbo": 0.62,
        "null_p_value": 0.38,
        "breakeven_cost_per_trade": 12.5,
        "min_track_record_sessions": 1900,
        "cost_variants": {f"{m:g}x": {"net_pnl": float(best[f"net_pnl_{m:g}x"])} for m in COSTS},
        "pbo_logits": rng.normal(-0.3, 1.0, 70).round(4).tolist(),
    }
    (out / "verdict.json").write_text(json.dumps(verdict, indent=2, sort_keys=True))
    if walkforward:
        folds = pd.DataFrame(
            {
                "fold": [1, 2, 3],
                "train_start": ["2021-01-01", "2021-07-01", "2022-01-01"],
                "train_end": ["2022-12-31", "2023-06-30", "2023-12-31"],
                "test_start": ["2023-01-02", "2023-07-03", "2024-01-02"],
                "test_end": ["2023-06-30", "2023-12-29", "2024-06-28"],
                "strategy.target_r": [5.0, 10.0, 5.0],
                "is_sharpe": [1.2, 0.9, 1.1],
                "oos_sharpe": [-0.2, 0.1, -0.5],
            }
        )
        folds.to_csv(out / "folds.csv", index=False)
        eq = 1_000_000 * np.cumprod(1 + rng.normal(0, 0.01, len(sessions)))
        pd.DataFrame({"session": [d.date().isoformat() for d in sessions], "equity": eq.round(2)}).to_csv(
            out / "oos_equity.csv", index=False
        )
    return out


def _exact_expected_max(n: int) -> float:
    """E[max of n independent standard normals], by integrating x * d/dx Phi(x)^n."""
    val, _ = integrate.quad(lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1), -12, 12, limit=200)
    return float(val)


@pytest.mark.parametrize(("n", "tol"), [(10, 0.03), (100, 0.012), (1000, 0.006)])
def test_expected_max_sharpe_matches_the_exact_order_statistic(n: int, tol: float) -> None:
    """The theorem's approximation is within a few percent of the exact expectation, and
    closer as n grows (Bailey and Lopez de Prado 2014, appendix)."""
    exact = _exact_expected_max(n)
    got = expected_max_sharpe(1.0, n)
    assert got is not None
    assert got == pytest.approx(exact, rel=tol)
    assert expected_max_sharpe(4.0, n) == pytest.approx(2 * got)  # scales with the spread of Sharpes
    assert expected_max_sharpe(1.0, 1) is None and expected_max_sharpe(0.0, n) is None


def _page_data(page: str) -> dict[str, Any]:
    blob = re.search(r'<script type="application/json" id="tfl-data">(.*?)</script>', page, re.S)
    assert blob is not None
    data: dict[str, Any] = json.loads(blob.group(1).replace("<\\/", "</"))
    return data


def test_research_page_from_sweep_files(tmp_path: Path) -> None:
    out = write_fixture(tmp_path / "sweep")
    page = render_research_report(out)
    header = re.search(r"<header>(.*?)</header>", page, re.S)
    assert header is not None and "no edge: the best of 18 trials" in header.group(1)
    data = _page_data(page)
    assert set(data["figures"]) == {"equity", "heatmap", "scatter", "sharpes", "pbo", "costs"}
    for fig in data["figures"].values():
        go.Figure(fig)  # every property valid for plotly
    assert page.count("* plotly.js v") == 1
    assert render_research_report(out) == page  # same files, same bytes

    trials = pd.read_csv(out / "trials.csv")
    assert swept_keys(trials) == list(GRID)
    hm = data["figures"]["heatmap"]["data"][0]
    # the two settings with the most values, the objective averaged over the third, by hand
    assert hm["x"] == ["70", "75", "80"] and hm["y"] == ["3", "5", "10"]
    for i, tr in enumerate((3.0, 5.0, 10.0)):
        for j, rsi in enumerate((70.0, 75.0, 80.0)):
            vals = [r.sharpe for r in trials.itertuples() if r._3 == tr and r._2 == rsi]
            assert len(vals) == 2
            assert hm["z"][i][j] == pytest.approx(sum(vals) / 2)
    # the expected max of unskilled trials drawn on the Sharpe chart, from the trials' own spread
    e_max = expected_max_sharpe(float(np.var(trials["sharpe"], ddof=1)), 18)
    assert e_max is not None and f"{e_max:.2f}" in page
    # cost sensitivity: the best trial's line is its cost columns
    costs = data["figures"]["costs"]["data"]
    best = json.loads((out / "verdict.json").read_text())["best"]["hash"]
    row = trials[trials["hash"] == best].iloc[0]
    assert costs[1]["y"] == pytest.approx([row[f"net_pnl_{m:g}x"] for m in COSTS])
    assert "Walk-forward" not in page


def test_walkforward_files_add_their_sections(tmp_path: Path) -> None:
    out = write_fixture(tmp_path / "wf", walkforward=True)
    page = render_research_report(out)
    data = _page_data(page)
    assert "oos" in data["figures"] and 'id="folds"' in page
    assert len(data["figures"]["oos"]["data"][0]["y"]) == len(pd.read_csv(out / "oos_equity.csv"))


def test_missing_or_broken_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ResearchReportError, match=r"verdict\.json: missing"):
        render_research_report(tmp_path)
    out = write_fixture(tmp_path / "x")
    (out / "verdict.json").write_text("{not json")
    with pytest.raises(ResearchReportError, match=r"verdict\.json: not valid JSON"):
        render_research_report(out)
    assert sorted(p.name for p in out.iterdir()) == ["returns.parquet", "trials.csv", "verdict.json"]
