"""The verdict: does the best trial of everything tried on this data have an edge?

An edge must pass every test, each with the number behind it:

- **costs**: the best trial makes money after the full cost model (its break-even cost
  per trade is above what a trade costs);
- **selection**: its deflated Sharpe ratio (the probability that its true Sharpe beats the
  best of that many unskilled trials, counting every trial in the ledger) is at least 0.95;
- **overfitting**: the probability of backtest overfitting (CSCV over the ledger's trials on
  the same sessions) is below 0.25; with fewer than two such trials it is not established;
- **luck**: the same trades with random entries (matched on symbol, side, time of day and
  holding time), and a block bootstrap of its sessions, each give a p-value of at most 0.05;
- **out of sample** (walk-forward only): the stitched test windows make money after costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DSR_MIN = 0.95
PBO_MAX = 0.25
P_MAX = 0.05


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    text: str


@dataclass(frozen=True)
class Verdict:
    edge: bool
    checks: tuple[Check, ...]
    text: str = field(default="")

    @property
    def label(self) -> str:
        return "edge" if self.edge else "no edge"


def _fmt(x: float, nd: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{nd}f}"


def decide(
    *,
    net_pnl: float,
    breakeven_cost_per_trade: float,
    cost_per_trade: float,
    dsr: float,
    n_trials: int,
    pbo: float,
    null_p: float,
    bootstrap_p: float,
    oos_net_pnl: float | None = None,
) -> Verdict:
    """Apply every test; the verdict is "edge" only if all pass."""
    checks = [
        Check(
            "costs",
            math.isfinite(net_pnl) and net_pnl > 0,
            f"net P&L after costs ₹{net_pnl:,.0f}; break-even cost ₹{breakeven_cost_per_trade:,.2f} a trade "
            f"against ₹{cost_per_trade:,.2f} paid",
        ),
        Check(
            "selection",
            math.isfinite(dsr) and dsr >= DSR_MIN,
            f"deflated Sharpe {_fmt(dsr)} over {n_trials} trials on this data (needs ≥ {DSR_MIN})",
        ),
        Check(
            "overfitting",
            math.isfinite(pbo) and pbo < PBO_MAX,
            f"probability of backtest overfitting {_fmt(pbo, 2)} (needs < {PBO_MAX})"
            if math.isfinite(pbo)
            else "probability of backtest overfitting not established (fewer than two trials on these sessions)",
        ),
        Check(
            "luck",
            math.isfinite(null_p) and null_p <= P_MAX and math.isfinite(bootstrap_p) and bootstrap_p <= P_MAX,
            f"p-value {_fmt(null_p)} against random entries, {_fmt(bootstrap_p)} by block bootstrap (needs ≤ {P_MAX})",
        ),
    ]
    if oos_net_pnl is not None:
        checks.append(
            Check("out of sample", oos_net_pnl > 0, f"walk-forward out-of-sample net P&L ₹{oos_net_pnl:,.0f}")
        )
    edge = all(c.passed for c in checks)
    if edge:
        head = "an edge that survives costs and out-of-sample: " + "; ".join(c.text for c in checks)
    else:
        failed = [c for c in checks if not c.passed]
        head = "no edge: " + "; ".join(c.text for c in failed)
        passed = [c for c in checks if c.passed]
        if passed:
            head += ". Passed: " + "; ".join(c.text for c in passed)
    return Verdict(edge, tuple(checks), head + ".")
