"""Before the open (paper and live): history on disk must reach the previous session.

The trader warms its indicators from the bar files in its data directory. The end-of-day
job (``tfl data eod``) tops them up every evening, but on the first morning after a
deployment the directory is empty, and an evening job can fail. Warming up on history with
a hole in it would shift every indicator, so the missing bars are fetched from FYERS now
(resumable, through the shared rate limiter), and a symbol that still lacks the previous
session afterwards does not trade today.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tfl.data.loader import DAILY_DIR, INTRADAY_DIR, DataError, last_bar_time
from tfl.fyers.errors import FyersError, FyersRejected
from tfl.fyers.history import fetch_symbol
from tfl.fyers.rest import FyersRest
from tfl.fyers.symbols import SymbolMap
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY

log = logging.getLogger("tfl.fyers.topup")


@dataclass
class HistoryCheck:
    """What :func:`ensure_history` found and did."""

    fetched: dict[str, int] = field(default_factory=dict)  # "SYMBOL 15" / "SYMBOL D" -> new candles
    stale: list[str] = field(default_factory=list)  # still without the previous session: not traded
    problems: list[str] = field(default_factory=list)  # downloads that failed
    skipped: list[str] = field(default_factory=list)  # not fetched: the open was near
    unreachable: int = 0  # failures of FYERS itself (network, server, token), not refusals


def last_day(path: Path) -> dt.date | None:
    """The IST date of the last bar in a bar file, or None when there is none (or it is unreadable)."""
    if not path.is_file():
        return None
    try:
        last = last_bar_time(path)
    except DataError as exc:
        log.warning("bar file unreadable: fetched again", extra={"fields": {"file": str(path), "error": str(exc)}})
        return None
    if last is None:
        return None
    return dt.date(1970, 1, 1) + dt.timedelta(days=(last + IST_OFFSET_S) // SECONDS_PER_DAY)


def _behind(data_dir: Path, folder: str, names: list[str], previous: dt.date) -> list[str]:
    out = []
    for name in names:
        last = last_day(data_dir / folder / f"{name}.parquet")
        if last is None or last < previous:
            out.append(name)
    return out


def ensure_history(
    rest: FyersRest,
    symbols: SymbolMap,
    names: list[str],
    data_dir: Path,
    previous: dt.date,
    *,
    days: int,
    now: int,
    deadline: Callable[[], bool] = lambda: False,
    progress: Callable[[str], None] | None = None,
) -> HistoryCheck:
    """Fetch the 15-minute and daily bars ``names`` lack up to ``previous`` (the last session
    before today); an empty file is seeded with ``days`` calendar days. Nothing is written for
    a symbol that is already complete. A symbol whose download failed is tried once more.
    When ``deadline()`` turns true (the open is near) the remaining symbols are not fetched:
    they sit the day out rather than delay the start."""
    check = HistoryCheck()
    first = previous - dt.timedelta(days=days)
    stale: set[str] = set()
    for folder, resolution in ((INTRADAY_DIR, "15"), (DAILY_DIR, "D")):
        behind = _behind(data_dir, folder, names, previous)
        if not behind:
            continue
        was_behind = list(behind)
        log.info(
            "history behind the previous session: fetching",
            extra={"fields": {"resolution": resolution, "symbols": len(behind), "previous": previous.isoformat()}},
        )
        for attempt in (1, 2):
            failed: list[str] = []
            for name in behind:
                if deadline():
                    check.skipped.append(name)
                    continue
                try:
                    got = fetch_symbol(rest, symbols, name, resolution, first, previous, data_dir, now=now)
                except (FyersError, DataError, OSError) as exc:  # OSError: a full or read-only disk
                    failed.append(name)
                    if attempt == 2:
                        check.problems.append(f"{name}: {exc}")
                        check.unreachable += isinstance(exc, FyersError) and not isinstance(exc, FyersRejected)
                        log.error("history download failed", extra={"fields": {"symbol": name, "error": str(exc)}})
                else:
                    if got:
                        check.fetched[f"{name} {resolution}"] = got
                if progress is not None:
                    progress(name)
            behind = failed
            if not behind:
                break
        stale |= set(_behind(data_dir, folder, was_behind, previous))  # only these can still be behind
    check.stale = [n for n in names if n in stale]
    if check.stale:
        log.warning(
            "history still misses the previous session: these symbols do not trade today",
            extra={
                "fields": {"previous": previous.isoformat(), "symbols": check.stale[:20], "count": len(check.stale)}
            },
        )
    return check
