"""Benchmark: the whole shared universe, 2020-01-01 to 2025-08-01, bias auto, end to end.

Each run is a fresh `tfl backtest` process (imports, loading, indicators, simulation and
every output file), measured with wait4() for wall time, CPU time (user + system, less
disturbed than wall time by other work on the machine) and peak RSS. To show how time
grows with data, the universe is also run at 2x and 4x size: extra copies of every
symbol under new names (symlinks, so nothing is copied), the index and VIX unchanged.

    .venv/bin/python benchmarks/bench_backtest.py [--data ../shared/data/nse] [--scales 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scaled_dir(src: Path, k: int, root: Path) -> Path:
    """A data directory with k copies of the universe (symlinked files)."""
    if k == 1:
        return src
    out = root / f"x{k}"
    universe = [line.strip() for line in (src / "nifty200.csv").read_text().splitlines()[1:] if line.strip()]
    for kind in ("15min", "daily"):
        (out / kind).mkdir(parents=True)
        for f in (src / kind).iterdir():
            sym = f.stem
            (out / kind / f.name).symlink_to(f)
            if sym in universe:
                for i in range(2, k + 1):
                    (out / kind / f"{sym}_{i}{f.suffix}").symlink_to(f)
    names = [f"{s}_{i}" if i > 1 else s for i in range(1, k + 1) for s in universe]
    (out / "nifty200.csv").write_text("Symbol\n" + "\n".join(names) + "\n")
    return out


def run_once(data: Path, out: Path) -> tuple[float, float, float, dict]:  # type: ignore[type-arg]
    exe = Path(sys.executable).with_name("tfl")
    cmd = [
        str(exe),
        "backtest",
        "--data",
        str(data),
        "--start",
        "2020-01-01",
        "--end",
        "2025-08-01",
        "--bias",
        "auto",
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"backtest failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024.0, json.loads((out / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "nse")
    ap.add_argument("--scales", default="1,2,4")
    ap.add_argument("--repeat", type=int, default=2, help="runs per scale; the best wall time is reported")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k in (int(x) for x in args.scales.split(",")):
            data = scaled_dir(args.data, k, root)
            best = None
            best_cpu = float("inf")
            for r in range(args.repeat):
                wall, cpu, rss, summary = run_once(data, root / f"out{k}_{r}")
                best_cpu = min(best_cpu, cpu)
                if best is None or wall < best[0]:
                    best = (wall, rss, summary)
            assert best is not None
            wall, rss, summary = best
            bars = summary["bars"]
            rows.append((k, summary["symbols"], bars, summary["trades"], wall, best_cpu, bars / wall, rss))
    print(
        f"{'scale':>5} {'symbols':>8} {'bars':>11} {'trades':>7} {'wall s':>8} {'CPU s':>7} {'bars/s':>12}"
        f" {'peak RSS MB':>12} {'s per 1M bars':>14}"
    )
    for k, syms, bars, trades, wall, cpu, bps, rss in rows:
        print(
            f"{k:>5} {syms:>8} {bars:>11,} {trades:>7} {wall:>8.2f} {cpu:>7.2f} {bps:>12,.0f} {rss:>12.0f}"
            f" {wall / bars * 1e6:>14.2f}"
        )
    print("(wall and CPU: the best of the runs at each scale)")
    if len(rows) > 1:
        base = rows[0]
        growth = ", ".join(f"{r[0]}x data -> {r[4] / base[4]:.2f}x time" for r in rows[1:])
        print(f"growth: {growth}")


if __name__ == "__main__":
    main()
