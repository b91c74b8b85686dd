"""`tfl data check`: a per-file defect table for a data directory.

Counts what the loader will clean or what a trader should know about: duplicate
timestamps, OHLC whose high/low do not bracket open/close, non-positive prices, bars
outside the session, missing 15-minute slots inside a session, and trading days missing
inside the file's own date range (against the union of all files' days).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfl.data.loader import DAILY_DIR, INTRADAY_DIR, DataError, RawBars, dedupe_sorted, read_raw, symbol_files
from tfl.timeutil import BAR_MINUTES, IST_OFFSET_S, REGULAR_CLOSE, REGULAR_OPEN, SECONDS_PER_DAY


@dataclass(frozen=True)
class FileReport:
    kind: str
    symbol: str
    path: str
    rows: int = 0
    duplicates: int = 0
    bad_ohlc: int = 0
    non_positive: int = 0
    outside_session: int = 0
    missing_slots: int = 0
    missing_days: int = 0
    first: str = ""
    last: str = ""
    error: str = ""

    @property
    def defects(self) -> int:
        return (
            self.duplicates
            + self.bad_ohlc
            + self.non_positive
            + self.outside_session
            + self.missing_slots
            + self.missing_days
        )


def _days(raw: RawBars) -> np.ndarray:
    return (raw.ts + IST_OFFSET_S) // SECONDS_PER_DAY


def check_dir(
    data_dir: Path, open_minute: int = REGULAR_OPEN, last_bar_minute: int = REGULAR_CLOSE - BAR_MINUTES
) -> list[FileReport]:
    if not data_dir.is_dir():
        raise DataError(data_dir, "data directory does not exist")
    raws: dict[tuple[str, str], RawBars | DataError] = {}
    for kind in (INTRADAY_DIR, DAILY_DIR):
        for sym, path in symbol_files(data_dir, kind).items():
            try:
                raws[(kind, sym)] = read_raw(path)
            except DataError as exc:
                raws[(kind, sym)] = exc
    if not raws:
        raise DataError(data_dir, f"no bar files under {INTRADAY_DIR}/ or {DAILY_DIR}/")
    # Reference calendars, one per kind: every day on which any file of that kind has a bar
    # (in the session, for 15-minute files).
    cal_parts: dict[str, list[np.ndarray]] = {INTRADAY_DIR: [], DAILY_DIR: []}
    for (kind, _), raw in raws.items():
        if isinstance(raw, RawBars) and len(raw):
            d = _days(raw)
            if kind == INTRADAY_DIR:
                minute = ((raw.ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
                d = d[(minute >= open_minute) & (minute <= last_bar_minute)]
            cal_parts[kind].append(np.unique(d))
    calendars = {k: _majority_calendar(v) for k, v in cal_parts.items()}

    out = []
    for (kind, sym), raw in raws.items():
        path = symbol_files(data_dir, kind)[sym]
        if isinstance(raw, DataError):
            out.append(
                FileReport(
                    kind, sym, str(path), error=raw.problem if raw.row is None else f"row {raw.row}: {raw.problem}"
                )
            )
            continue
        out.append(_report(kind, sym, raw, calendars[kind], open_minute, last_bar_minute))
    return out


def _majority_calendar(per_file_days: list[np.ndarray]) -> np.ndarray:
    """Days on which at least half of the files whose date range covers the day have a bar.

    A lone special session in one file (e.g. a Muhurat hour) is then not counted as a day
    every other file is missing.
    """
    if not per_file_days:
        return np.zeros(0, dtype=np.int64)
    allc = np.concatenate(per_file_days)
    days, present = np.unique(allc, return_counts=True)
    firsts = np.sort(np.array([d[0] for d in per_file_days]))
    lasts = np.sort(np.array([d[-1] for d in per_file_days]))
    covering = np.searchsorted(firsts, days, side="right") - np.searchsorted(lasts, days, side="left")
    return days[present * 2 >= covering]


def _report(kind: str, sym: str, raw: RawBars, calendar: np.ndarray, open_min: int, last_min: int) -> FileReport:
    from tfl.timeutil import iso_ist

    n = len(raw)
    if n == 0:
        return FileReport(kind, sym, str(raw.path), error="no rows")
    idx, dups = dedupe_sorted(raw)
    o, h, lo, c = raw.open[idx], raw.high[idx], raw.low[idx], raw.close[idx]
    bad = int(((h < np.maximum(o, c)) | (lo > np.minimum(o, c)) | (h < lo)).sum())
    nonpos = int(((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)).sum())
    ts = raw.ts[idx]
    days = (ts + IST_OFFSET_S) // SECONDS_PER_DAY
    outside = slots = 0
    if kind == INTRADAY_DIR:
        minute = ((ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
        inside = (minute >= open_min) & (minute <= last_min)
        outside = int((~inside).sum())
        d_in, m_in = days[inside], minute[inside]
        if d_in.shape[0]:
            # Internal gaps: slots between a day's first and last bar that are absent.
            starts = np.flatnonzero(np.r_[True, d_in[1:] != d_in[:-1]])
            ends = np.r_[starts[1:], d_in.shape[0]]
            first_m, last_m = m_in[starts], m_in[ends - 1]
            expected = (last_m - first_m) // BAR_MINUTES + 1
            slots = int((expected - (ends - starts)).sum())
        present = np.unique(d_in)
    else:
        present = np.unique(days)
    missing = 0
    if present.shape[0]:
        span = calendar[(calendar >= present[0]) & (calendar <= present[-1])]
        missing = int(np.setdiff1d(span, present, assume_unique=True).shape[0])
    return FileReport(
        kind,
        sym,
        str(raw.path),
        rows=n,
        duplicates=dups,
        bad_ohlc=bad,
        non_positive=nonpos,
        outside_session=outside,
        missing_slots=slots,
        missing_days=missing,
        first=iso_ist(int(ts[0]))[:10],
        last=iso_ist(int(ts[-1]))[:10],
    )
