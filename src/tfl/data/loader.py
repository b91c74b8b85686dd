"""Read bar files (the shared Parquet layout, or plain OHLCV CSV) into clean series.

Layout of a data directory (in full, for the help and the docs: :data:`tfl.data.layout.DATA_LAYOUT`)::

    DIR/15min/SYMBOL.parquet|csv   15-minute bars, naive IST start times (or epoch/ISO in CSV)
    DIR/daily/SYMBOL.parquet|csv   daily bars; the row's IST calendar date is the trading day
    DIR/nifty200.csv               the universe (column ``Symbol``), optional

Cleaning follows the strategy page's conventions: rows are sorted by time (stable), the
first of duplicate timestamps is kept, 15-minute bars outside the session window are
dropped, and OHLC is used as delivered. A file that cannot be used raises
:class:`DataError` with one line naming the file, the row and the problem.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tfl.data.bars import F64, I64, BarSeries
from tfl.data.universe import UniverseError, parse_universe
from tfl.timeutil import IST, IST_OFFSET_S, SECONDS_PER_DAY

log = logging.getLogger(__name__)

INTRADAY_DIR = "15min"
DAILY_DIR = "daily"
EXTENSIONS = (".parquet", ".csv")
PRICE_COLUMNS = ("open", "high", "low", "close")
TIME_COLUMNS = ("datetime", "timestamp", "date", "time")


class DataError(ValueError):
    """A data file cannot be used; ``str()`` is one line: file, row, problem."""

    def __init__(self, path: Path | str, problem: str, row: int | None = None) -> None:
        where = f"{path}: row {row}: " if row is not None else f"{path}: "
        super().__init__(where + problem)
        self.path = str(path)
        self.row = row
        self.problem = problem


@dataclass(frozen=True)
class RawBars:
    """A file's rows as delivered (file order), with their 1-based row numbers."""

    path: Path
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def symbol_files(data_dir: Path, kind: str) -> dict[str, Path]:
    """Map symbol -> file for ``kind`` ('15min' or 'daily'); Parquet wins over CSV."""
    folder = data_dir / kind
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for ext in reversed(EXTENSIONS):
        for p in sorted(folder.glob(f"*{ext}")):
            found[p.name[: -len(ext)]] = p
    return dict(sorted(found.items()))


def read_universe(path: Path) -> list[str]:
    """Symbols of a universe CSV (column ``Symbol``), in file order, without duplicates."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not a readable CSV ({exc})") from None
    try:
        return parse_universe(text)
    except UniverseError as exc:
        raise DataError(path, str(exc), row=exc.row) from None


# --------------------------------------------------------------------------- reading


def read_raw(path: Path) -> RawBars:
    """Read one bar file without cleaning it; malformed content raises DataError."""
    if path.suffix == ".parquet":
        return _read_parquet(path)
    if path.suffix == ".csv":
        return _read_csv(path)
    raise DataError(path, f"unsupported file type '{path.suffix}' (use .parquet or .csv)")


def last_bar_time(path: Path) -> int | None:
    """UTC epoch seconds of a bar file's latest stamp (None when it has no rows), reading only
    its time column where the format allows: a freshness check before loading the file."""
    if path.suffix != ".parquet":
        raw = read_raw(path)
        return int(raw.ts.max()) if raw.ts.shape[0] else None
    try:
        names = {n.lower(): n for n in pq.ParquetFile(path).schema_arrow.names}
        tcol = next((names[c] for c in TIME_COLUMNS if c in names), None)
        if tcol is None:
            raise DataError(path, f"no time column (expected one of: {', '.join(TIME_COLUMNS)})")
        col = pq.read_table(path, columns=[tcol], use_threads=False).column(tcol)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(path, f"not a readable Parquet file ({_short(exc)})") from None
    ts = _arrow_times(path, col)
    return int(ts.max()) if ts.shape[0] else None


def _read_parquet(path: Path) -> RawBars:
    try:
        table = pq.ParquetFile(path).read(use_threads=False)  # one file: no dataset machinery
    except (OSError, pa.ArrowException) as exc:
        raise DataError(path, f"not a readable Parquet file ({_short(exc)})") from None
    names = {n.lower(): n for n in table.column_names}
    tcol = next((names[c] for c in TIME_COLUMNS if c in names), None)
    if tcol is None:
        raise DataError(path, f"no time column (expected one of: {', '.join(TIME_COLUMNS)})")
    missing = [c for c in (*PRICE_COLUMNS, "volume") if c not in names]
    if missing:
        raise DataError(path, f"missing column(s): {', '.join(missing)}")
    ts = _arrow_times(path, table.column(tcol))
    cols: dict[str, F64] = {}
    for c in (*PRICE_COLUMNS, "volume"):
        col = table.column(names[c])
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            raise DataError(path, f"column '{c}' is {col.type}, not numeric")
        arr = _numpy(col).astype(np.float64, copy=False)
        if col.null_count:
            row = int(np.flatnonzero(np.isnan(arr))[0]) + 1 if np.isnan(arr).any() else None
            raise DataError(path, f"column '{c}' has an empty value", row=row)
        cols[c] = arr
    raw = RawBars(path, ts, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"])
    _check_finite(raw)
    return raw


# Arrow's own to_numpy imports pandas, whose import alone costs a backtest 0.3 s: a
# null-free column of these types is read straight from its buffer instead.
_BUFFER_TYPES: dict[pa.DataType, type[np.generic]] = {
    pa.int64(): np.int64,
    pa.int32(): np.int32,
    pa.float64(): np.float64,
    pa.float32(): np.float32,
}


def _numpy(col: pa.ChunkedArray) -> np.ndarray[tuple[int], np.dtype[np.generic]]:
    """The column as a new NumPy array (a copy, so callers may write to it)."""
    arr = col.combine_chunks()
    dtype = _BUFFER_TYPES.get(arr.type)
    if dtype is None or arr.null_count or len(arr) == 0:
        return np.asarray(arr.to_numpy(zero_copy_only=False))
    width = np.dtype(dtype).itemsize
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * width).copy()


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _arrow_times(path: Path, col: pa.ChunkedArray) -> I64:
    """UTC epoch seconds from a timestamp/date/integer column; naive stamps are IST."""
    if col.null_count:
        arr = col.to_pylist()
        row = next(i for i, v in enumerate(arr, start=1) if v is None)
        raise DataError(path, "empty time value", row=row)
    t = col.type
    # The stored values are read as integers (a zero-copy view): Arrow's cast would import
    # pyarrow.compute, 30 ms of every backtest. A timestamp's values count its unit since the
    # epoch (UTC if zoned); a date32 counts days, a date64 milliseconds.
    if pa.types.is_timestamp(t):
        per_second = _PER_SECOND[t.unit]
        raw = _numpy(pa.chunked_array([c.view(pa.int64()) for c in col.chunks], pa.int64())).astype(np.int64)
        secs: I64 = raw // per_second
        return secs if t.tz else secs - IST_OFFSET_S
    if pa.types.is_date32(t):
        days: I64 = _numpy(pa.chunked_array([c.view(pa.int32()) for c in col.chunks], pa.int32())).astype(np.int64)
        return days * SECONDS_PER_DAY - IST_OFFSET_S
    if pa.types.is_date64(t):
        ms = _numpy(pa.chunked_array([c.view(pa.int64()) for c in col.chunks], pa.int64())).astype(np.int64)
        return (ms // 1000 // SECONDS_PER_DAY) * SECONDS_PER_DAY - IST_OFFSET_S
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return _epoch_numbers(_numpy(col).astype(np.float64))
    raise DataError(path, f"time column is {t}, not a timestamp, date or epoch number")


def _epoch_numbers(x: F64) -> I64:
    """Epoch numbers (UTC) in seconds or milliseconds, detected by magnitude."""
    secs = np.where(np.abs(x) > 1e11, x / 1000.0, x)
    return np.floor(secs).astype(np.int64)


def _read_csv(path: Path) -> RawBars:
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(path, "empty file") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(path, f"not a readable CSV ({exc})") from None
        names = {h.strip().lower(): i for i, h in enumerate(header)}
        tcol = next((names[c] for c in TIME_COLUMNS if c in names), None)
        if tcol is None:
            raise DataError(path, f"no time column (expected one of: {', '.join(TIME_COLUMNS)})")
        missing = [c for c in (*PRICE_COLUMNS, "volume") if c not in names]
        if missing:
            raise DataError(path, f"missing column(s): {', '.join(missing)}")
        idx = [names[c] for c in (*PRICE_COLUMNS, "volume")]
        ts: list[int] = []
        vals: list[list[float]] = [[], [], [], [], []]
        try:
            for rowno, row in enumerate(reader, start=1):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) < len(header):
                    raise DataError(path, f"expected {len(header)} fields, got {len(row)}", rowno)
                ts.append(_parse_time(path, row[tcol].strip(), rowno))
                for k, j in enumerate(idx):
                    cell = row[j].strip()
                    try:
                        v = float(cell)
                    except ValueError:
                        col = (*PRICE_COLUMNS, "volume")[k]
                        raise DataError(path, f"{col} '{cell}' is not a number", rowno) from None
                    vals[k].append(v)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(path, f"not a readable CSV ({exc})") from None
    arrs = [np.asarray(v, dtype=np.float64) for v in vals]
    raw = RawBars(path, np.asarray(ts, dtype=np.int64), *arrs)
    _check_finite(raw)
    return raw


def _parse_time(path: Path, text: str, row: int) -> int:
    """ISO date/datetime (naive means IST) or epoch seconds/milliseconds (UTC)."""
    try:
        num = float(text)
    except ValueError:
        num = math.nan
    if math.isfinite(num) and text.replace(".", "", 1).lstrip("-").isdigit():
        return int(_epoch_numbers(np.asarray([num]))[0])
    try:
        if len(text) == 10:
            d = dt.date.fromisoformat(text)
            stamp = dt.datetime(d.year, d.month, d.day, tzinfo=IST)
        else:
            stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=IST)
    except ValueError:
        raise DataError(path, f"time '{text}' is neither ISO-8601 nor an epoch number", row) from None
    return int(stamp.timestamp())


def _check_finite(raw: RawBars) -> None:
    for name in (*PRICE_COLUMNS, "volume"):
        arr = getattr(raw, name)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(raw.path, f"{name} is not a finite number", int(np.flatnonzero(bad)[0]) + 1)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


# --------------------------------------------------------------------------- cleaning


def dedupe_sorted(raw: RawBars) -> tuple[I64, int]:
    """Indices of rows sorted by time keeping the first of duplicates; and the duplicate count."""
    if raw.ts.shape[0] < 2 or bool((raw.ts[1:] > raw.ts[:-1]).all()):
        return np.arange(raw.ts.shape[0], dtype=np.int64), 0  # already sorted and unique
    order = np.argsort(raw.ts, kind="stable")
    ts = raw.ts[order]
    keep = np.ones(ts.shape[0], dtype=bool)
    keep[1:] = ts[1:] != ts[:-1]
    return order[keep].astype(np.int64), int((~keep).sum())


def in_session(ts: I64, open_minute: int, last_bar_minute: int) -> np.ndarray:
    minute = ((ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
    return (minute >= open_minute) & (minute <= last_bar_minute)


def clean_intraday(raw: RawBars, symbol: str, open_minute: int, last_bar_minute: int) -> BarSeries:
    """Sorted, de-duplicated bars inside the session window (09:15-15:15 by default).

    Bars with a non-positive price cannot be traded or filled honestly; they are dropped
    with a warning (the shared data has none).
    """
    idx, _ = dedupe_sorted(raw)
    idx = idx[in_session(raw.ts[idx], open_minute, last_bar_minute)]
    if all(bool((getattr(raw, c) > 0).all()) for c in PRICE_COLUMNS):
        return _series(raw, symbol, idx)  # every price in the file is positive (the usual case)
    prices = np.stack([raw.open[idx], raw.high[idx], raw.low[idx], raw.close[idx]])
    ok = (prices > 0).all(axis=0)
    if not ok.all():
        log.warning(
            "dropped bars with non-positive prices",
            extra={"fields": {"file": str(raw.path), "bars": int((~ok).sum())}},
        )
        idx = idx[ok]
    return _series(raw, symbol, idx)


def clean_daily(raw: RawBars, symbol: str) -> BarSeries:
    """Daily bars keyed by IST calendar day; ``ts`` becomes IST midnight of that day.

    Only the close feeds the rules (RSI, SMAs, VIX), so rows with a non-positive close
    are dropped (an input missing on a session then gives NO_TRADES, as it should);
    defects in open/high/low are left as delivered and reported by ``tfl data check``.
    """
    days = (raw.ts + IST_OFFSET_S) // SECONDS_PER_DAY
    day_raw = RawBars(
        raw.path, days * SECONDS_PER_DAY - IST_OFFSET_S, raw.open, raw.high, raw.low, raw.close, raw.volume
    )
    idx, _ = dedupe_sorted(day_raw)
    idx = idx[day_raw.close[idx] > 0]
    return _series(day_raw, symbol, idx)


def _series(raw: RawBars, symbol: str, idx: I64) -> BarSeries:
    return BarSeries(
        symbol,
        np.ascontiguousarray(raw.ts[idx]),
        np.ascontiguousarray(raw.open[idx]),
        np.ascontiguousarray(raw.high[idx]),
        np.ascontiguousarray(raw.low[idx]),
        np.ascontiguousarray(raw.close[idx]),
        np.ascontiguousarray(raw.volume[idx]),
    )
