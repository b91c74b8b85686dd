"""The report's breakdowns of a run: by side, year, entry time, weekday and rejection reason,
the benchmark rebased to the capital, and each trade's session bars packed small.

Pure functions of the run's trades, equity curve and market data, so tests can check each
against an independent computation (sums that must match the summary, a one-year run whose
yearly drawdown is the summary's).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tfl.core.events import SignalRejected
from tfl.data.bars import F64, I64, BarSeries
from tfl.domain import Side
from tfl.strategy.book import Trade
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, day_to_date, ist_day, ist_minute

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
PAISE = 100  # bar prices are packed as integer paise (every NSE price is on the 0.01 grid)


@dataclass(frozen=True)
class GroupStats:
    """Trades of one group (a side, an entry time, a weekday) and what they made."""

    label: str
    trades: int
    wins: int
    net_pnl: float
    sum_r: float

    @property
    def win_rate_pct(self) -> float | None:
        return self.wins / self.trades * 100.0 if self.trades else None

    @property
    def avg_r(self) -> float | None:
        return self.sum_r / self.trades if self.trades else None


def _group(label: str, trades: Iterable[Trade]) -> GroupStats:
    ts = list(trades)
    pnls = [t.pnl for t in ts]  # computed once: Trade.pnl and r_multiple both sum the charges
    return GroupStats(
        label,
        len(ts),
        sum(1 for p in pnls if p > 0),  # a win is net P&L above zero, as in the summary
        float(sum(pnls)),
        float(sum(p / (t.qty * t.r) for p, t in zip(pnls, ts, strict=True))),  # Trade.r_multiple
    )


def _grouped(trades: Sequence[Trade], keys: Sequence[str], shown: Sequence[str]) -> list[GroupStats]:
    """One group per label in ``shown`` (in that order), each trade in the group of its key."""
    members: dict[str, list[Trade]] = {k: [] for k in shown}
    for t, k in zip(trades, keys, strict=True):
        members.setdefault(k, []).append(t)
    return [_group(k, members[k]) for k in shown]


def side_stats(trades: Sequence[Trade]) -> list[GroupStats]:
    """Long, short and all trades."""
    return [
        _group("LONG", (t for t in trades if t.side is Side.LONG)),
        _group("SHORT", (t for t in trades if t.side is Side.SHORT)),
        _group("All", trades),
    ]


def entry_time(t: Trade) -> str:
    """The IST start time (HH:MM) of the bar the trade entered on."""
    m = ist_minute(t.entry_ts)
    return f"{m // 60:02d}:{m % 60:02d}"


def by_entry_time(trades: Sequence[Trade]) -> list[GroupStats]:
    """Trades grouped by their entry bar's IST time, earliest first."""
    keys = [entry_time(t) for t in trades]
    return _grouped(trades, keys, sorted(set(keys)))


def by_weekday(trades: Sequence[Trade]) -> list[GroupStats]:
    """Trades grouped by the IST weekday of their entry; Monday to Friday always shown."""
    wd = [day_to_date(ist_day(t.entry_ts)).weekday() for t in trades]
    shown = sorted(set(range(5)) | set(wd))
    return _grouped(trades, [WEEKDAYS[w] for w in wd], [WEEKDAYS[k] for k in shown])


def rejections_by_reason(rejections: Sequence[SignalRejected]) -> list[tuple[str, int]]:
    """How many triggered signals were refused, per reason, the commonest first."""
    counts = Counter(r.reason.value for r in rejections)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class YearStats:
    year: int
    net_pnl: float
    return_pct: float
    trades: int
    wins: int
    max_drawdown_pct: float

    @property
    def win_rate_pct(self) -> float | None:
        return self.wins / self.trades * 100.0 if self.trades else None


def per_year(trades: Sequence[Trade], equity_ts: I64, equity: F64, capital: float) -> list[YearStats]:
    """Each calendar year of the bar-close equity curve: its P&L and return from the previous
    year's last equity (the capital for the first), and its deepest fall below a peak reached
    within the year (the year's opening equity counts as a peak), in percent."""
    if equity_ts.shape[0] == 0:
        return []
    days = (equity_ts + IST_OFFSET_S) // SECONDS_PER_DAY
    years = np.array([day_to_date(int(d)).year for d in np.unique(days)])
    year_of_day = dict(zip(np.unique(days).tolist(), years.tolist(), strict=True))
    bar_year = np.array([year_of_day[int(d)] for d in days])
    trade_years = Counter(day_to_date(ist_day(t.entry_ts)).year for t in trades)
    out = []
    opening = capital
    for y in sorted(set(years.tolist())):
        eq = equity[bar_year == y]
        peak = np.maximum.accumulate(np.maximum(eq, opening))
        dd = float(-((eq / peak - 1.0) * 100.0).min())
        closing = float(eq[-1])
        ts = [t for t in trades if day_to_date(ist_day(t.entry_ts)).year == y]
        out.append(
            YearStats(
                y,
                closing - opening,
                (closing / opening - 1.0) * 100.0,
                trade_years.get(y, 0),
                sum(1 for t in ts if t.pnl > 0),
                dd if dd > 0 else 0.0,  # never "-0.0"
            )
        )
        opening = closing
    return out


@dataclass(frozen=True)
class Benchmark:
    """The benchmark's closes on the run's sessions, scaled so the base close equals the capital."""

    symbol: str
    base_date: str  # the session whose close is the base: the last one before the run, if any
    values: list[float | None]  # one per session of the run; None where the index has no bar


def benchmark_curve(daily: BarSeries | None, symbol: str, days: I64, capital: float) -> Benchmark | None:
    """The benchmark rebased to the capital: the equity curve starts from the capital before
    the first session, so the base is the index's last close before that session."""
    if daily is None or len(daily) == 0 or days.shape[0] == 0:
        return None
    bday = daily.day
    before = np.flatnonzero(bday < days[0])
    base_i = int(before[-1]) if before.shape[0] else int(np.searchsorted(bday, days[0]))
    if base_i >= len(daily) or not daily.close[base_i] > 0:
        return None
    base = float(daily.close[base_i])
    close_by_day = dict(zip(bday.tolist(), daily.close.tolist(), strict=True))
    vals: list[float | None] = []
    for d in days.tolist():
        c = close_by_day.get(d)
        vals.append(None if c is None else round(c / base * capital, 2))
    return Benchmark(symbol, day_to_date(int(bday[base_i])).isoformat(), vals)


def pack_session(bars: BarSeries, day: int) -> list[object] | None:
    """One session's bars of one symbol in a small JSON form the page unpacks:
    ``[date, minutes, unit, base, d1, d2, ...]``. Prices are integer paise divided by their
    common factor ``unit``; ``d`` is the open, high, low, close of each bar in turn, each as a
    difference from the value before it (``base`` before the first). ``minutes`` is the first
    bar's IST minute of day when the bars are every 15 minutes without a gap, else the list."""
    start = day * SECONDS_PER_DAY - IST_OFFSET_S  # IST midnight; bars are sorted by time
    lo, hi = np.searchsorted(bars.ts, [start, start + SECONDS_PER_DAY])
    sel = slice(int(lo), int(hi))
    if hi <= lo:
        return None
    ohlc = np.stack([bars.open[sel], bars.high[sel], bars.low[sel], bars.close[sel]], axis=1).reshape(-1)
    paise = np.rint(ohlc * PAISE).astype(np.int64)
    unit = int(np.gcd.reduce(paise)) or 1
    units = paise // unit
    base = int(units[0])
    deltas = np.diff(units, prepend=base).tolist()
    minutes = (((bars.ts[sel] + IST_OFFSET_S) % SECONDS_PER_DAY) // 60).tolist()
    contiguous = all(b - a == 15 for a, b in itertools.pairwise(minutes))
    return [day_to_date(day).isoformat(), minutes[0] if contiguous else minutes, unit, base, *deltas]


def unpack_session(packed: Sequence[object]) -> tuple[list[int], F64]:
    """The inverse of :func:`pack_session` (the page does the same in JavaScript):
    the bars' minutes of day and an (n, 4) array of open, high, low, close."""
    minutes_spec, unit, base = packed[1], packed[2], packed[3]
    assert isinstance(unit, int) and isinstance(base, int)
    deltas = np.array(packed[4:], dtype=np.int64)
    units = base + np.cumsum(deltas)
    ohlc = (units * unit / PAISE).reshape(-1, 4)
    n = ohlc.shape[0]
    if isinstance(minutes_spec, int):
        minutes = [minutes_spec + 15 * k for k in range(n)]
    else:
        assert isinstance(minutes_spec, list)
        minutes = [int(m) for m in minutes_spec]
    return minutes, ohlc


def finite_or_none(x: float | None, nd: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)
