"""The report's breakdowns of a run: by side, year, entry time, weekday and rejection reason,
the benchmark rebased to the capital, and each trade's session bars packed small.

Pure functions of the run's trades, equity curve and market data, so tests can check each
against an independent computation (sums that must match the summary, a one-year run whose
yearly drawdown is the summary's).
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tfl.core.events import SignalRejected
from tfl.data.bars import F64, I64, BarSeries, sorted_unique
from tfl.domain import Side
from tfl.strategy.book import Trade
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, day_to_date, ist_minute

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EPOCH_WEEKDAY = 3  # day 0, 1970-01-01, was a Thursday (index 3 of WEEKDAYS)
PAISE = 100  # bar prices are packed as integer paise (every NSE price is on the 0.01 grid)
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1  # the page reads packed prices as int16 or int32
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


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


@dataclass(frozen=True)
class TradeFacts:
    """Per-trade values every breakdown needs, computed once per report: ``Trade.pnl`` and
    ``Trade.r_multiple`` sum both sides' charges on each call, and a report reads them for
    every table and chart."""

    pnl: list[float]  # net of charges
    r: list[float]  # net R multiple
    day: list[int]  # IST day of the entry
    minute: list[int]  # IST minute of day of the entry


def trade_facts(trades: Sequence[Trade]) -> TradeFacts:
    """The :class:`TradeFacts` of ``trades``, in their order."""
    pnl = [t.pnl for t in trades]
    entry = [t.entry_ts + IST_OFFSET_S for t in trades]
    return TradeFacts(
        pnl,
        [p / (t.qty * t.r) for p, t in zip(pnl, trades, strict=True)],  # Trade.r_multiple
        [e // SECONDS_PER_DAY for e in entry],
        [e % SECONDS_PER_DAY // 60 for e in entry],
    )


def _group(label: str, members: Sequence[int], facts: TradeFacts) -> GroupStats:
    pnls = [facts.pnl[i] for i in members]
    return GroupStats(
        label,
        len(pnls),
        sum(1 for p in pnls if p > 0),  # a win is net P&L above zero, as in the summary
        float(sum(pnls)),
        float(sum(facts.r[i] for i in members)),
    )


def _grouped(keys: Sequence[str], shown: Sequence[str], facts: TradeFacts) -> list[GroupStats]:
    """One group per label in ``shown`` (in that order), each trade in the group of its key."""
    members: dict[str, list[int]] = {k: [] for k in shown}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    return [_group(k, members[k], facts) for k in shown]


def side_stats(trades: Sequence[Trade], facts: TradeFacts | None = None) -> list[GroupStats]:
    """Long, short and all trades (``facts``: the trades' :func:`trade_facts`, if at hand)."""
    f = facts or trade_facts(trades)
    return [
        _group("LONG", [i for i, t in enumerate(trades) if t.side is Side.LONG], f),
        _group("SHORT", [i for i, t in enumerate(trades) if t.side is Side.SHORT], f),
        _group("All", range(len(trades)), f),
    ]


def entry_time(t: Trade) -> str:
    """The IST start time (HH:MM) of the bar the trade entered on."""
    return _hhmm(ist_minute(t.entry_ts))


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def by_entry_time(trades: Sequence[Trade], facts: TradeFacts | None = None) -> list[GroupStats]:
    """Trades grouped by their entry bar's IST time, earliest first."""
    f = facts or trade_facts(trades)
    keys = [_hhmm(m) for m in f.minute]
    return _grouped(keys, sorted(set(keys)), f)


def by_weekday(trades: Sequence[Trade], facts: TradeFacts | None = None) -> list[GroupStats]:
    """Trades grouped by the IST weekday of their entry; Monday to Friday always shown."""
    f = facts or trade_facts(trades)
    wd = [(d + EPOCH_WEEKDAY) % 7 for d in f.day]
    shown = sorted(set(range(5)) | set(wd))
    return _grouped([WEEKDAYS[w] for w in wd], [WEEKDAYS[k] for k in shown], f)


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


def per_year(
    trades: Sequence[Trade], equity_ts: I64, equity: F64, capital: float, facts: TradeFacts | None = None
) -> list[YearStats]:
    """Each calendar year of the bar-close equity curve: its P&L and return from the previous
    year's last equity (the capital for the first), and its deepest fall below a peak reached
    within the year (the year's opening equity counts as a peak), in percent."""
    if equity_ts.shape[0] == 0:
        return []
    f = facts or trade_facts(trades)
    days = (equity_ts + IST_OFFSET_S) // SECONDS_PER_DAY
    unique_days, day_index = np.unique(days, return_inverse=True)
    years = np.array([day_to_date(d).year for d in unique_days.tolist()])
    bar_year = years[day_index]
    year_of_day: dict[int, int] = {}
    trade_years = [year_of_day.get(d) or year_of_day.setdefault(d, day_to_date(d).year) for d in f.day]
    n_trades = Counter(trade_years)
    n_wins = Counter(y for y, p in zip(trade_years, f.pnl, strict=True) if p > 0)
    out = []
    opening = capital
    for y in sorted(set(years.tolist())):
        eq = equity[bar_year == y]
        peak = np.maximum.accumulate(np.maximum(eq, opening))
        dd = float(-((eq / peak - 1.0) * 100.0).min())
        closing = float(eq[-1])
        out.append(
            YearStats(
                y,
                closing - opening,
                (closing / opening - 1.0) * 100.0,
                n_trades.get(y, 0),
                n_wins.get(y, 0),
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


@dataclass(frozen=True)
class PackedSession:
    """One session's bars of one symbol, small: prices as integers of ``unit`` paise (every NSE
    price is on the 0.01 grid; ``unit`` is their common factor), ``units`` the open, high, low,
    close of each bar in turn. ``minutes`` is the first bar's IST minute of day when the bars
    are every 15 minutes without a gap, else each bar's."""

    date: str
    minutes: int | list[int]
    unit: int
    units: I64


def pack_session(bars: BarSeries, day: int) -> PackedSession | None:
    """One session's bars of one symbol; None when it has no bar that day."""
    return pack_sessions(bars, [day]).get(day)


def pack_sessions(bars: BarSeries, days: Iterable[int]) -> dict[int, PackedSession]:
    """:func:`pack_session` for several days of one symbol at once (array operations over all
    their bars rather than a few small ones per session); days without bars are left out."""
    want = sorted_unique(np.fromiter(days, dtype=np.int64))
    start = want * SECONDS_PER_DAY - IST_OFFSET_S  # IST midnight; bars are sorted by time
    lo = np.searchsorted(bars.ts, start)
    hi = np.searchsorted(bars.ts, start + SECONDS_PER_DAY)
    has = hi > lo
    want, lo, n = want[has], lo[has], (hi - lo)[has]
    if want.shape[0] == 0:
        return {}
    first = np.cumsum(n) - n  # each session's first bar among the selected bars
    sel = np.repeat(lo - first, n) + np.arange(int(n.sum()))
    ohlc = np.stack([bars.open[sel], bars.high[sel], bars.low[sel], bars.close[sel]], axis=1).reshape(-1)
    paise = np.rint(ohlc * PAISE).astype(np.int64)
    unit = np.gcd.reduceat(paise, 4 * first)
    unit[unit == 0] = 1
    units = paise // np.repeat(unit, 4 * n)
    minutes = (bars.ts[sel] + IST_OFFSET_S) % SECONDS_PER_DAY // 60
    step = np.ones(minutes.shape[0], dtype=bool)
    step[1:] = np.diff(minutes) == 15
    step[first] = True  # no step between sessions
    contiguous = np.logical_and.reduceat(step, first).tolist()
    minute_list, unit_list = minutes.tolist(), unit.tolist()
    dates = want.astype("datetime64[D]").astype(str).tolist()  # ISO dates, day 0 = 1970-01-01
    out: dict[int, PackedSession] = {}
    for k, (d, a, m) in enumerate(zip(want.tolist(), first.tolist(), n.tolist(), strict=True)):
        spec: int | list[int] = minute_list[a] if contiguous[k] else minute_list[a : a + m]
        out[d] = PackedSession(dates[k], spec, unit_list[k], units[4 * a : 4 * (a + m)])
    return out


def unpack_session(packed: PackedSession) -> tuple[list[int], F64]:
    """The inverse of :func:`pack_session`: the bars' minutes of day and an (n, 4) array of
    open, high, low, close (integer paise over 100, as the page computes them)."""
    ohlc = (packed.units * packed.unit / PAISE).reshape(-1, 4)
    n = ohlc.shape[0]
    if isinstance(packed.minutes, int):
        return [packed.minutes + 15 * k for k in range(n)], ohlc
    return list(packed.minutes), ohlc


@dataclass(frozen=True)
class SessionBlob:
    """The sessions as the page holds them. ``index`` maps each key to ``[date, minutes, unit,
    base, offset, bars]``; ``data`` is base64 of every session's values in key order as
    little-endian signed integers of ``width`` bytes (2 when all fit, else 4): for each value
    the difference from the one before it, ``base`` before a session's first (so that one is
    0), ``offset`` counting values. Binary because thousands of sessions as JSON numbers cost
    more to write than the rest of the page's data, and differences because they fit 2 bytes."""

    index: dict[str, list[object]]
    data: str
    width: int


def session_blob(sessions: Mapping[str, PackedSession]) -> SessionBlob:
    """Pack ``sessions`` for the page (see :class:`SessionBlob`)."""
    keys = sorted(sessions)
    sizes = [sessions[k].units.shape[0] for k in keys]
    starts = np.cumsum(sizes, dtype=np.int64) - np.asarray(sizes, dtype=np.int64)
    units = np.concatenate([sessions[k].units for k in keys]) if keys else np.zeros(0, dtype=np.int64)
    deltas = np.diff(units, prepend=units[:1])
    deltas[starts] = 0
    bases = units[starts].tolist()
    index: dict[str, list[object]] = {}
    for k, key, offset, size in zip(range(len(keys)), keys, starts.tolist(), sizes, strict=True):
        p = sessions[key]
        index[key] = [p.date, p.minutes, p.unit, bases[k], offset, size // 4]
    width = 4
    if not deltas.shape[0] or (deltas.min() >= INT16_MIN and deltas.max() <= INT16_MAX):
        width = 2
    elif not (deltas.min() >= INT32_MIN and deltas.max() <= INT32_MAX):
        raise ValueError("a session's price steps do not fit the page's 32-bit integers")
    data = base64.b64encode(deltas.astype(f"<i{width}").tobytes()).decode("ascii")
    return SessionBlob(index, data, width)


def session_from_blob(entry: Sequence[object], data: str, width: int) -> PackedSession:
    """One session back from a :class:`SessionBlob`'s parts (the page does the same in
    JavaScript)."""
    date, minutes, unit, base, offset, bars = entry
    assert isinstance(date, str) and isinstance(minutes, int | list)
    assert isinstance(unit, int) and isinstance(base, int) and isinstance(offset, int) and isinstance(bars, int)
    deltas = np.frombuffer(base64.b64decode(data), dtype=f"<i{width}")[offset : offset + 4 * bars]
    return PackedSession(date, minutes, unit, base + np.cumsum(deltas.astype(np.int64)))


def finite_or_none(x: float | None, nd: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)
