"""Benchmark: what research costs on this machine.

1. One trial over the whole universe, 2020-01-01 to 2025-08-01, in one process: the first
   (the market loaded, indicators and setups computed) and then trials that share them
   (an exit setting changed) or need new setups (an entry filter changed).
2. A sweep of ``--trials`` grid points (1,000 by default) through `tfl research sweep` on
   the local process pool with ``--workers`` processes, end to end (a fresh process, a fresh
   ledger): wall time, trials per minute, and the peak RSS of the whole process tree.

    .venv/bin/python benchmarks/bench_research.py [--data ../shared/data/nse] [--trials 1000] [--workers 2]
    .venv/bin/python benchmarks/bench_research.py --only-trial
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START, END = dt.date(2020, 1, 1), dt.date(2025, 8, 1)

# 5 x 2 entry settings (10 distinct setups) x 5 x 4 x 5 exit settings = 1,000 trials.
GRID_1000 = (
    "strategy.long_rsi_min=65,70,75,80,85;strategy.max_run=5,9;strategy.target_r=2,3,5,10,20;"
    "strategy.long_trail_atr=2,3,4,6;strategy.breakeven_trigger_r=0.5,1,1.5,2,3"
)


def grid_for(n: int) -> str:
    """The 1,000-point grid, or a smaller one with the same shape of cache use."""
    if n >= 1000:
        return GRID_1000
    exits = [2, 3, 5, 10, 20, 30, 40, 50, 60, 70][: max(1, n // 10)]
    return "strategy.long_rsi_min=65,70,75,80,85;strategy.max_run=5,9;strategy.target_r=" + ",".join(map(str, exits))


def one_trial(data: Path) -> dict[str, float]:
    from tfl.research.trial import Workbench
    from tfl.settings import Settings

    s = Settings()
    t0 = time.perf_counter()
    bench = Workbench(data, None, s)
    load = time.perf_counter() - t0
    out = {"load_s": load}

    def timed(label: str, key: str, value: object) -> None:
        s2 = s.replace({key: value})
        t = time.perf_counter()
        r = bench.run(((key, value),), s2, START, END)  # type: ignore[arg-type]
        out[label] = time.perf_counter() - t
        out[label + "_trades"] = r.metrics.trades

    timed("first_trial_s", "strategy.target_r", 10.0)
    for i, tr in enumerate((3.0, 5.0, 20.0)):
        timed(f"shared_setups_trial_{i}_s", "strategy.target_r", tr)
    for i, rsi in enumerate((70.0, 80.0)):
        timed(f"new_setups_trial_{i}_s", "strategy.long_rsi_min", rsi)
    return out


def sweep(data: Path, trials: int, workers: int, ledger: Path | None, out: Path | None) -> dict[str, object]:
    """The sweep on a fresh ledger (``ledger`` must not exist yet: a cached trial is not a measurement)."""
    if ledger is not None and ledger.exists():
        raise SystemExit(f"--ledger {ledger} exists: the benchmark needs a fresh one")
    exe = Path(sys.executable).with_name("tfl")
    with tempfile.TemporaryDirectory() as tmp:
        led = str(ledger) if ledger is not None else f"{tmp}/ledger.sqlite"
        dest = str(out) if out is not None else f"{tmp}/out"
        cmd = [
            str(exe), "research", "sweep", "--data", str(data), "--start", START.isoformat(), "--end",
            END.isoformat(), "--grid", grid_for(trials), "--workers", str(workers), "--out", dest,
            "--ledger", led, "--no-progress",
        ]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"sweep failed: {proc.stderr.strip()[-2000:]}")
        verdict = json.loads(Path(dest, "verdict.json").read_text())
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "trials": verdict["trials_this_run"],
        "workers": workers,
        "wall_s": round(wall, 1),
        "trials_per_min": round(verdict["trials_this_run"] / wall * 60, 1),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
        "max_child_rss_mb": round(ru.ru_maxrss / 1024, 0),
        "verdict": verdict["verdict"],
        "verdict_text": verdict["verdict_text"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "nse")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only-trial", action="store_true")
    ap.add_argument("--ledger", type=Path, help="a fresh ledger to keep (default: a temporary one)")
    ap.add_argument("--out", type=Path, help="keep the sweep's output folder here")
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {dt.date.today()}"
    )
    print(json.dumps({"one_trial": one_trial(args.data)}, indent=2))
    if not args.only_trial:
        print(
            json.dumps(
                {"sweep": sweep(args.data, args.trials, args.workers, args.ledger, args.out)},
                indent=2,
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
