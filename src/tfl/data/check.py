"""`tfl data check`: a per-file defect table for a data directory.

Counts what the loader will clean or what a trader should know about: duplicate
timestamps, OHLC whose high/low do not bracket open/close, non-positive prices, bars
outside the session, missing 15-minute slots inside a session, and trading days missing
inside the file's own date range (against the days most files have).

Not everything counted is a defect (:attr:`FileReport.defects`, what ``--only-defects``
filters on). A defect is what the loader cannot repair without a guess: duplicate times
with differing values, bad OHLC, non-positive prices, slots and days that most files have
and this file lacks. Exact duplicate rows and bars outside the session (pre-open, Muhurat
and special sessions) are dropped without loss; slots that most files covering the day
lack too (a trading halt, a short session) are the market's timetable, not the file's.
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
    differing_duplicates: int = 0  # of duplicates: rows whose values differ from the kept row
    market_slots: int = 0  # of missing_slots: slots most files covering the day lack too

    @property
    def own_slots(self) -> int:
        return self.missing_slots - self.market_slots

    @property
    def defects(self) -> int:
        """What the loader cannot repair without a guess (an unreadable file counts one)."""
        return (
            self.differing_duplicates
            + self.bad_ohlc
            + self.non_positive
            + self.own_slots
            + self.missing_days
            + bool(self.error)
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
    common = _majority_times([raw for (kind, _), raw in raws.items() if kind == INTRADAY_DIR])

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
        out.append(_report(kind, sym, raw, calendars[kind], open_minute, last_bar_minute, common))
    return out


def _majority_times(raws: list[RawBars | DataError]) -> np.ndarray:
    """Bar times (sorted) at which at least half of the files whose date range covers the
    day have a bar: the market's timetable, special sessions included, halts left out."""
    per_file = [np.unique(r.ts) for r in raws if isinstance(r, RawBars) and len(r)]
    if not per_file:
        return np.zeros(0, dtype=np.int64)
    times, present = np.unique(np.concatenate(per_file), return_counts=True)
    firsts = np.sort(np.array([(t[0] + IST_OFFSET_S) // SECONDS_PER_DAY for t in per_file]))
    lasts = np.sort(np.array([(t[-1] + IST_OFFSET_S) // SECONDS_PER_DAY for t in per_file]))
    days = (times + IST_OFFSET_S) // SECONDS_PER_DAY
    covering = np.searchsorted(firsts, days, side="right") - np.searchsorted(lasts, days, side="left")
    return np.asarray(times[present * 2 >= covering], dtype=np.int64)


def _missing_slot_times(ts: np.ndarray, days: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Epoch times of the 15-minute slots absent between each day's first and last bar
    (``ts`` sorted and unique, all inside the session)."""
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    ends = np.r_[starts[1:], days.shape[0]]
    out: list[np.ndarray] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        span = (int(minutes[b - 1]) - int(minutes[a])) // BAR_MINUTES + 1
        if span == b - a:
            continue  # no gap this day (the usual case)
        expected = int(ts[a]) + 60 * BAR_MINUTES * np.arange(span, dtype=np.int64)
        out.append(np.setdiff1d(expected, ts[a:b], assume_unique=True))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


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


def _report(
    kind: str, sym: str, raw: RawBars, calendar: np.ndarray, open_min: int, last_min: int, common: np.ndarray
) -> FileReport:
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
    outside = slots = market_slots = 0
    if kind == INTRADAY_DIR:
        minute = ((ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
        inside = (minute >= open_min) & (minute <= last_min)
        outside = int((~inside).sum())
        d_in, m_in = days[inside], minute[inside]
        if d_in.shape[0]:
            # Internal gaps: slots between a day's first and last bar that are absent; the
            # market's when most files lack them too.
            gaps = _missing_slot_times(ts[inside], d_in, m_in)
            slots = int(gaps.shape[0])
            market_slots = slots - int(np.isin(gaps, common, assume_unique=True).sum())
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
        differing_duplicates=_differing_duplicates(raw) if dups else 0,
        market_slots=market_slots,
    )


def _differing_duplicates(raw: RawBars) -> int:
    """Rows repeating an earlier row's time with other values (which one is right?)."""
    order = np.argsort(raw.ts, kind="stable")
    ts = raw.ts[order]
    values = np.stack([getattr(raw, c)[order] for c in ("open", "high", "low", "close", "volume")])
    first = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    kept = np.repeat(first, np.diff(np.r_[first, ts.shape[0]]))  # each row's first row of its time
    repeat = np.arange(ts.shape[0]) != kept
    differ = (values[:, repeat] != values[:, kept[repeat]]).any(axis=0)
    return int(differ.sum())
