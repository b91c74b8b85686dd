"""Benchmark: the live runtime on a replayed session of 200 symbols.

Ticks per second through the whole runtime (bar building, the paper broker's matching,
the engine, the SQLite journal with fsync; no sleeping), the latency from a tick's
arrival to the end of its handling (decisions included: slot boundaries, fills,
protective stops), and the peak RSS of the process. The market is synthetic (200 stocks,
150 sessions of history) so the figure does not depend on outside data.

    .venv/bin/python benchmarks/bench_live.py [--symbols 200] [--sessions 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from tfl import logs
from tfl.calendar.nse import NseCalendar
from tfl.data.market import load_market
from tfl.data.synth import SynthSpec, synthesize
from tfl.domain import Bias
from tfl.live.journal import SqliteJournal
from tfl.live.paper import PaperBroker
from tfl.live.runtime import Controls, run_session
from tfl.settings import Settings


def pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--sessions", type=int, default=3)
    args = ap.parse_args()
    logs.configure("ERROR", "text")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesize(root / "data", SynthSpec(symbols=args.symbols, days=150, seed=11))
        settings = Settings().replace({"risk.max_positions": 15})
        market = load_market(root / "data", settings)
        symbols = sorted(market.intraday)
        symbols = [s for s in symbols if s in market.universe]
        last_day = max(int(market.intraday[s].day[-1]) for s in symbols)
        cal = NseCalendar()
        days = [dt.date(1970, 1, 1) + dt.timedelta(days=last_day - k) for k in range(14)]
        sessions = [s for s in (cal.session(d) for d in sorted(days)) if s is not None][-args.sessions :]
        journal = SqliteJournal(root / "j.sqlite")
        broker = PaperBroker(root / "b.sqlite")
        lat: list[int] = []
        ticks = 0
        wall = 0.0
        trades = 0
        for sess in sessions:
            controls = Controls(latencies_ns=lat)
            t0 = time.perf_counter()
            res = run_session(
                sess, market, symbols, journal, broker, settings, Bias.BOTH, "benchmark", controls, market_sim=broker
            )
            wall += time.perf_counter() - t0
            ticks += res.ticks
            trades += res.trades
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        events = sum(1 for _ in journal.records())
    print(
        f"{len(symbols)} symbols, {len(sessions)} replayed sessions, {ticks:,} ticks, {trades} trades, "
        f"{events:,} journal events"
    )
    print(f"throughput (incl. start-up and warm-up of each session): {ticks / wall:,.0f} ticks/s over {wall:.2f} s")
    loop = sum(lat) / 1e9
    print(f"throughput of the tick loop alone: {len(lat) / loop:,.0f} ticks/s")
    print(
        f"tick -> decision latency: p50 {pct(lat, 0.50):.1f} us, p99 {pct(lat, 0.99):.1f} us, "
        f"p99.9 {pct(lat, 0.999):.1f} us, max {max(lat) / 1000:.1f} us"
    )
    print(f"peak RSS: {rss:.0f} MB")


if __name__ == "__main__":
    main()
