"""Crash anywhere: kill -9 the replay process at random points and restart it each time.

The final journal must hold exactly the trades and P&L of an uninterrupted run, the
paper broker exactly the same orders (no duplicate) and every broker fill must be in the
journal (no lost fill). Kills come from an in-process hook (``TFL_FAULT_CRASH_AFTER``) at
crash points chosen by count: after journal appends (including right after an order
intent, before the broker hears of it), after broker calls and after the paper broker's
commits. Counting points, not seconds, makes the test the same on a fast machine and on a
loaded one: nothing here waits on the wall clock.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SYMBOLS = (
    "ADANIENT,AXISBANK,BAJFINANCE,BEL,BHEL,BPCL,CANBK,COALINDIA,DLF,GAIL,HDFCBANK,HINDALCO,ICICIBANK,IOC,"
    "ITC,JINDALSTEL,JSWSTEEL,LT,MARUTI,NMDC,NTPC,ONGC,PNB,RELIANCE,SAIL,SBIN,TATASTEEL,TCS,TRENT,VEDL"
)
TFL = str(Path(sys.executable).with_name("tfl"))


def trade_cmd(nse: Path, work: Path, first: str, last: str) -> list[str]:
    return [
        TFL,
        "trade",
        "--world",
        "replay",
        "--data",
        str(nse),
        "--date",
        first,
        "--to",
        last,
        "--journal",
        str(work / "j.sqlite"),
        "--symbols",
        SYMBOLS,
        "--bias",
        "auto",
    ]


HANG_GUARD = 3600  # seconds: only a process that hangs outright ever reaches it


def run(cmd: list[str], env: dict[str, str]) -> int:
    proc = subprocess.run(
        cmd, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=HANG_GUARD
    )
    return proc.returncode


def export(work: Path) -> tuple[str, set[str], list[tuple[str, int]], set[str]]:
    out = work / "trades.csv"
    subprocess.run(
        [TFL, "journal", "export", str(work / "j.sqlite"), "--out", str(out)], check=True, stdout=subprocess.DEVNULL
    )
    broker = sqlite3.connect(work / "j.sqlite.broker")
    tags = [r[0] for r in broker.execute("SELECT tag FROM orders")]
    assert len(tags) == len(set(tags))
    fills = sorted(broker.execute("SELECT tag, qty, price, ts FROM fills"))
    broker_ids = {r[0] for r in broker.execute("SELECT fill_id FROM fills")}
    journal = sqlite3.connect(work / "j.sqlite")
    journal_ids = {r[0].split(":fill:")[1] for r in journal.execute("SELECT key FROM events WHERE kind='FILL'")}
    assert broker_ids == journal_ids  # every broker fill is in the journal, and nothing else
    return out.read_text(), set(tags), fills


@pytest.mark.parametrize(
    ("first", "last", "seed"),
    [
        ("2020-12-03", "2020-12-07", 1),  # busy long days
        ("2022-05-12", "2022-05-16", 2),  # short days (SHORTS bias)
        ("2023-12-05", "2023-12-07", 3),
    ],
)
def test_kill_minus_nine_anywhere(nse_dir: Path, tmp_path: Path, first: str, last: str, seed: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFL_")}
    ref = tmp_path / "reference"
    ref.mkdir()
    count_log = ref / "points.log"
    assert run(trade_cmd(nse_dir, ref, first, last), {**env, "TFL_FAULT_LOG": str(count_log)}) == 0
    total = int(count_log.read_text().split()[-1])
    want_trades, want_tags, want_fills = export(ref)
    assert want_trades.count("\n") > 3  # the run trades

    work = tmp_path / "crashy"
    work.mkdir()
    rng = random.Random(seed)
    kills: list[str] = []
    log = work / "kills.log"
    finished = False
    for attempt in range(200):
        if len(kills) >= 17:
            break
        n = rng.randint(1, max(1, total // 40))
        fault = {"TFL_FAULT_CRASH_AFTER": str(n), "TFL_FAULT_LOG": str(log)}
        if attempt < 4:  # the first kills land between an order intent and the broker's answer
            fault = {
                "TFL_FAULT_CRASH_AFTER": str(rng.randint(1, 3)),
                "TFL_FAULT_LOG": str(log),
                "TFL_FAULT_CRASH_WHERE": ("journal:INTENT", "broker")[attempt % 2],
            }
        rc = run(trade_cmd(nse_dir, work, first, last), {**env, **fault})
        if rc == -signal.SIGKILL:
            kills.append(log.read_text().strip().splitlines()[-1].split()[1])
            continue
        assert rc == 0, f"restart {attempt} exited {rc}"
        finished = True
        break
    if not finished:
        assert run(trade_cmd(nse_dir, work, first, last), env) == 0
    assert len(kills) >= 17, kills  # >= 50 over the three ranges
    assert "journal:INTENT" in kills and "broker" in kills
    got_trades, got_tags, got_fills = export(work)
    assert got_trades == want_trades  # same trades, prices, quantities, reasons and P&L
    assert got_tags == want_tags  # the same orders: nothing sent twice, nothing missing
    assert got_fills == want_fills  # the same fills (order, quantity, price, time)
    print(f"{len(kills)} kills: {sorted(set(kills))}")
