"""`tfl data fetch`: FYERS history into the Parquet layout the backtester reads.

Requests are chunked (at most 100 days per request for 15-minute candles, 366 for daily),
go through the shared rate limiter, and resume: a symbol's file is extended from its
last stored candle, and each symbol is written atomically once its download is complete.
A candle that is not final yet is dropped: a 15-minute candle until its period has ended,
a daily candle until 16:00 IST of its day. FYERS stamps daily candles at 00:00 UTC (05:30
IST), so "its period has ended" would mean the next morning; the close of the day (15:30)
plus half an hour for the exchange's closing price is when the candle stops changing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tfl.data.loader import DAILY_DIR, INTRADAY_DIR, DataError, read_raw
from tfl.fyers.errors import FyersError
from tfl.fyers.rest import FyersRest
from tfl.fyers.symbols import SymbolMap
from tfl.timeutil import BAR_SECONDS, IST_OFFSET_S, SECONDS_PER_DAY, date_to_day

CHUNK_DAYS = {"15": 100, "D": 366}
DAILY_FINAL_SECONDS = 16 * 3600  # after IST midnight: a daily candle is final from 16:00 IST


def is_final(ts: int, resolution: str, now: int) -> bool:
    """Whether the candle stamped ``ts`` (epoch seconds) can no longer change at ``now``."""
    if resolution == "D":
        ist_midnight = (ts + IST_OFFSET_S) // SECONDS_PER_DAY * SECONDS_PER_DAY - IST_OFFSET_S
        return now >= ist_midnight + DAILY_FINAL_SECONDS
    return ts + BAR_SECONDS <= now


def _existing(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    raw = read_raw(path)
    return {"ts": raw.ts, "open": raw.open, "high": raw.high, "low": raw.low, "close": raw.close, "volume": raw.volume}


def _write(path: Path, cols: dict[str, np.ndarray], daily: bool) -> None:
    order = np.argsort(cols["ts"], kind="stable")
    ts = cols["ts"][order]
    keep = np.ones(ts.shape[0], dtype=bool)
    keep[1:] = ts[1:] != ts[:-1]
    ts = ts[keep]
    wall = ts + IST_OFFSET_S  # naive IST, like the shared data
    if daily:
        wall = wall // SECONDS_PER_DAY * SECONDS_PER_DAY
    local = wall.astype("datetime64[s]").astype("datetime64[us]")
    table = pa.table(
        {
            "datetime": pa.array(local),
            **{k: pa.array(cols[k][order][keep].astype(np.float64)) for k in ("open", "high", "low", "close")},
            "volume": pa.array(cols["volume"][order][keep].astype(np.int64)),
        }
    )
    tmp = path.with_name(path.name + ".part")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def fetch_symbol(
    rest: FyersRest,
    symbols: SymbolMap,
    symbol: str,
    resolution: str,
    first: dt.date,
    last: dt.date,
    out_dir: Path,
    *,
    now: int,
) -> int:
    """Download (or extend) one symbol; returns the number of new candles."""
    daily = resolution == "D"
    folder = out_dir / (DAILY_DIR if daily else INTRADAY_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{symbol}.parquet"
    have = _existing(path)
    start = date_to_day(first) * SECONDS_PER_DAY - IST_OFFSET_S
    end = (date_to_day(last) + 1) * SECONDS_PER_DAY - IST_OFFSET_S - 1
    if have is not None and have["ts"].shape[0]:
        start = max(start, int(have["ts"].max()) + 1)  # resume after the last stored candle
    step = CHUNK_DAYS[resolution] * SECONDS_PER_DAY
    rows: list[list[float]] = []
    lo = start
    while lo <= end:
        hi = min(end, lo + step - 1)
        rows += rest.history(symbols.ticker(symbol), resolution, lo, hi)
        lo = hi + 1
    rows = [r for r in rows if is_final(int(r[0]), resolution, now)]  # an unfinished candle is not data yet
    if not rows:
        return 0
    arr = np.asarray(rows, dtype=np.float64)
    new = {
        "ts": arr[:, 0].astype(np.int64),
        "open": arr[:, 1],
        "high": arr[:, 2],
        "low": arr[:, 3],
        "close": arr[:, 4],
        "volume": arr[:, 5],
    }
    if daily:
        new["ts"] = (new["ts"] + IST_OFFSET_S) // SECONDS_PER_DAY * SECONDS_PER_DAY - IST_OFFSET_S
    if have is not None:
        new = {k: np.concatenate([have[k], new[k]]) for k in new}
    _write(path, new, daily)
    return int(arr.shape[0])


def fetch(
    rest: FyersRest,
    symbols: SymbolMap,
    names: list[str],
    resolution: str,
    first: dt.date,
    last: dt.date,
    out_dir: Path,
    *,
    now: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Fetch every symbol; a failing symbol is reported and skipped, the rest go on."""
    if resolution not in CHUNK_DAYS:
        raise ValueError(f"--resolution {resolution!r}: use 15 or D")
    got: dict[str, int] = {}
    problems: list[str] = []
    log = logging.getLogger("tfl.fyers.history")
    for name in names:
        try:
            got[name] = fetch_symbol(rest, symbols, name, resolution, first, last, out_dir, now=now)
        except (FyersError, DataError, OSError) as exc:  # OSError: the data directory is full or read-only
            problems.append(f"{name}: {exc}")
            log.error("history download failed", extra={"fields": {"symbol": name, "error": str(exc)}})
        if progress is not None:
            progress(name)
    return got, problems
