"""Walk-forward analysis: folds, embargo, purging, the choice on each train window, the stitched
out-of-sample curve and what it says about overfitting.

Pure logic over dates, scores and returns; the trial engine and the CLI run the backtests. The
rules that keep it honest:

* Test windows follow each other without overlap (they tile the calendar from the first one), so
  the stitched out-of-sample curve counts every session at most once.
* Each fold's train window ends ``gap`` sessions before its test window starts (the embargo, see
  :func:`gap_for`); the parameters are chosen from train-window scores only.
* Trades are scored in a window only if they lie entirely inside it (:func:`purge_trades`).

The wiring, in outline: ``folds = make_folds(sessions, parse_period("24m"), parse_period("6m"),
mode=..., gap_sessions=gap_for(cells))``; for each fold, score every cell on the train window
(its purged trades, its daily returns on the train sessions), ``choose_params`` on those scores,
then score the chosen cell on the test window; ``stitch_oos`` the test windows' daily returns,
``degradation`` of the chosen cells' train scores against their test scores, ``param_stability``
of the choices. Score windows on daily *returns* (or on a fresh run per window): the P&L of a
run that crosses windows depends, through position sizing, on the equity the earlier window left.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import itertools
import logging
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

import numpy as np

from tfl.settings import Settings, parse_hhmm
from tfl.timeutil import BAR_MINUTES, ist_date

log = logging.getLogger(__name__)

Mode = Literal["rolling", "expanding"]
Method = Literal["plateau", "best"]
Neighbourhood = Literal["auto", "grid", "nearest"]

# A last test window cut short by the end of the data is kept if the data cover at least this
# fraction of its calendar days, else dropped (a few sessions would be a noisy last fold).
MIN_PARTIAL_TEST_FRACTION = 0.5
# "auto" treats the points as a grid when they fill at least this fraction of the Cartesian
# product of their distinct values; sparser point sets (random or Optuna search) use nearest
# neighbours in normalised parameter space.
MIN_GRID_FILL = 0.5
# Fewest paired folds for an in-sample/out-of-sample correlation.
MIN_FOLDS_FOR_CORRELATION = 3

_PERIOD_RE = re.compile(r"(\d+)([dwmy])")
_UNIT_TEXT = {"d": "days", "w": "weeks", "m": "months", "y": "years"}
_ONE_DAY = dt.timedelta(days=1)


class WalkForwardError(ValueError):
    """Walk-forward input that cannot give honest folds; the message names the numbers."""


# ---------------------------------------------------------------------------------------------
# Periods


@dataclass(frozen=True)
class Period:
    """A calendar length: whole months, then days ("24m", "1y" = 12 months, "90d", "2w" = 14 days).

    Months are calendar months: adding one to 31 January gives the last day of February.
    """

    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if self.months < 0 or self.days < 0 or self.months + self.days == 0:
            raise WalkForwardError(f"a period must be positive (got {self.months} months, {self.days} days)")

    def __str__(self) -> str:
        parts = ([f"{self.months}m"] if self.months else []) + ([f"{self.days}d"] if self.days else [])
        return "+".join(parts)

    def __add__(self, other: Period) -> Period:
        return Period(self.months + other.months, self.days + other.days)

    def times(self, k: int) -> Period | None:
        """``k`` periods end to end (None for k = 0: no length at all)."""
        if k < 0:
            raise WalkForwardError(f"cannot repeat a period {k} times")
        return Period(self.months * k, self.days * k) if k else None

    def after(self, d: dt.date) -> dt.date:
        """The date this period after ``d`` (months first, clipped to the month's end; then days)."""
        return _add_months(d, self.months) + dt.timedelta(days=self.days)

    def before(self, d: dt.date) -> dt.date:
        """The date this period before ``d`` (the mirror of :meth:`after`)."""
        return _add_months(d - dt.timedelta(days=self.days), -self.months)


def _add_months(d: dt.date, n: int) -> dt.date:
    years, month0 = divmod(d.month - 1 + n, 12)
    year, month = d.year + years, month0 + 1
    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))


def parse_period(text: str) -> Period:
    """Parse "24m", "6m", "1y", "90d" or "2w" (a positive whole number and one unit)."""
    m = _PERIOD_RE.fullmatch(text.strip())
    if m is None:
        raise WalkForwardError(
            f"'{text}' is not a period: expected a number and a unit d, w, m or y (e.g. 24m, 1y, 90d)"
        )
    n, unit = int(m.group(1)), m.group(2)
    if n == 0:
        raise WalkForwardError(f"'{text}' is not a period: it must be longer than 0 {_UNIT_TEXT[unit]}")
    if unit == "d":
        return Period(days=n)
    if unit == "w":
        return Period(days=7 * n)
    return Period(months=n * (12 if unit == "y" else 1))


def _shifted(origin: dt.date, base: Period | None, extra: Period | None = None) -> dt.date:
    """``origin`` moved by ``base + extra`` as one period (no month-end drift from repeated steps)."""
    total = base + extra if base is not None and extra is not None else (base or extra)
    return origin if total is None else total.after(origin)


# ---------------------------------------------------------------------------------------------
# Folds


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold; every date is a session of the list the folds were made from.

    ``gap`` holds the embargoed sessions strictly between ``train_end`` and ``test_start``
    (exactly ``gap_sessions`` of them). ``partial``: the data end before the test window's
    calendar end (kept because they cover at least half of it).
    """

    index: int
    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date
    gap: tuple[dt.date, ...]
    train_sessions: int
    test_sessions: int
    partial: bool = False

    def in_train(self, d: dt.date) -> bool:
        return self.train_start <= d <= self.train_end

    def in_test(self, d: dt.date) -> bool:
        return self.test_start <= d <= self.test_end

    def as_row(self) -> dict[str, str | int | bool]:
        """One flat row (ISO dates) for ``folds.csv``."""
        return {
            "fold": self.index,
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "gap_sessions": len(self.gap),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
            "train_sessions": self.train_sessions,
            "test_sessions": self.test_sessions,
            "partial": self.partial,
        }


def make_folds(
    sessions: Sequence[dt.date],
    train: Period,
    test: Period,
    *,
    mode: Mode = "rolling",
    gap_sessions: int,
    step: Period | None = None,
) -> list[Fold]:
    """Walk-forward folds over ``sessions`` (strictly increasing trading dates).

    The first train window covers the calendar period ``train`` from the first session; the first
    test window starts ``gap_sessions`` sessions after its last session. Test window k covers the
    sessions in the calendar interval [c0 + k*step, c0 + k*step + test) where c0 is the first test
    session: with ``step`` = ``test`` (the default) the test windows tile the calendar, one after
    the other, without overlap or hole. Each fold's train window ends exactly ``gap_sessions``
    sessions before its test window; "rolling" keeps the calendar length ``train`` (the sessions in
    [train_end + 1 day - train, train_end]), "expanding" starts every train window at the first
    session. A test window containing no session (a hole in the data) gives no fold. The last test
    window, if the data end inside it, is kept when they cover at least half of its calendar days
    (``partial=True``), else dropped.
    """
    s = tuple(sessions)
    if not s:
        raise WalkForwardError("no sessions to make walk-forward folds from")
    for a, b in itertools.pairwise(s):
        if not a < b:
            raise WalkForwardError(f"sessions must be strictly increasing ({a} is followed by {b})")
    if mode not in ("rolling", "expanding"):
        raise WalkForwardError(f"walk-forward mode '{mode}' is not rolling or expanding")
    if gap_sessions < 0:
        raise WalkForwardError(f"the gap must be 0 or more sessions (got {gap_sessions})")
    step = test if step is None else step
    first, last = s[0], s[-1]
    data_end = last + _ONE_DAY  # the data cover [first, data_end)

    i_train_end0 = bisect.bisect_left(s, train.after(first)) - 1  # >= 0: train.after(first) > first
    i_test0 = i_train_end0 + gap_sessions + 1
    if i_test0 >= len(s):
        raise WalkForwardError(
            f"{len(s)} sessions ({first} to {last}) are too few for one fold: the train window of {train} holds "
            f"{i_train_end0 + 1} sessions (to {s[i_train_end0]}) and the gap of {gap_sessions} sessions "
            f"leaves {max(0, len(s) - i_train_end0 - 1 - gap_sessions)} for a test window of {test}"
        )
    c0 = s[i_test0]
    folds: list[Fold] = []
    k = 0
    while (c_k := _shifted(c0, step.times(k))) <= last:
        end_k = _shifted(c0, step.times(k), test)
        lo, hi = bisect.bisect_left(s, c_k), bisect.bisect_left(s, end_k)
        if folds and lo <= bisect.bisect_left(s, folds[-1].test_end):
            raise WalkForwardError(
                f"a step of {step} is shorter than the test window of {test}: test windows would overlap"
            )
        partial = end_k > data_end
        if partial:
            covered = (data_end - c_k).days / (end_k - c_k).days
            if covered < MIN_PARTIAL_TEST_FRACTION:
                log.info(
                    "walk-forward: last test window dropped",
                    extra={"fields": {"test_start": c_k.isoformat(), "covered": round(covered, 3)}},
                )
                break
        if lo < hi:
            i_train_end = lo - gap_sessions - 1
            train_start = first if mode == "expanding" else train.before(s[i_train_end] + _ONE_DAY)
            i_train_start = bisect.bisect_left(s, train_start)
            folds.append(
                Fold(
                    index=len(folds),
                    train_start=s[i_train_start],
                    train_end=s[i_train_end],
                    test_start=s[lo],
                    test_end=s[hi - 1],
                    gap=s[i_train_end + 1 : lo],
                    train_sessions=i_train_end + 1 - i_train_start,
                    test_sessions=hi - lo,
                    partial=partial,
                )
            )
        k += 1
    if not folds:
        raise WalkForwardError(
            f"{len(s)} sessions ({first} to {last}) are too few for one fold: after the train window of {train} "
            f"and the gap of {gap_sessions} sessions the test window from {c0} has data for less than "
            f"{MIN_PARTIAL_TEST_FRACTION:.0%} of its {test}"
        )
    return folds


# ---------------------------------------------------------------------------------------------
# Embargo


def bars_per_session(settings: Settings) -> int:
    """15-minute bars in one regular session (09:15..15:15 bar starts: 25)."""
    st = settings.strategy
    return (parse_hhmm(st.last_bar) - parse_hhmm(st.session_open)) // BAR_MINUTES + 1


def gap_for(settings: Settings | Iterable[Settings]) -> int:
    """The embargo in sessions: the longest look-back of the rules, counted in sessions.

    Why this is the embargo: the decisions of a test window's first session read daily values
    of the sessions before it -- the bias reads SMA(n) of the previous n daily closes
    (``bias.breadth_sma``, ``bias.long_index_sma``, ``bias.short_index_sma``), the RSI filter
    the previous session's RSI(p), which needs p + 1 daily closes (``indicators.rsi_period``).
    Without a gap those are the train window's last sessions, so the first test decisions
    would share inputs with the data the parameters were chosen on, and the out-of-sample
    score would not be independent of the in-sample one. With a gap of the longest look-back,
    everything the test window's first decision reads lies in the gap (or the test window) and
    none of it in the train window. The 15-minute indicators (``indicators.mvwap_period``,
    ``indicators.atr_period``, the latter needing one bar more for the true range) are counted
    too, as the sessions their bars span; they are far shorter. Wilder's RSI is recursive: a
    trace of older closes remains, shrinking by a factor (1 - 1/p) a session, which no finite
    gap removes and which this gap makes negligible ((13/14)^100 < 1e-3 with the defaults).

    Several settings (the cells of a sweep): the longest over all of them, because any cell may
    be chosen on a train window.
    """
    items = [settings] if isinstance(settings, Settings) else list(settings)
    if not items:
        raise WalkForwardError("no settings to take the walk-forward gap from")
    gaps = []
    for s in items:
        bps = bars_per_session(s)
        daily = (s.bias.breadth_sma, s.bias.long_index_sma, s.bias.short_index_sma, s.indicators.rsi_period + 1)
        intraday = (s.indicators.mvwap_period, s.indicators.atr_period + 1)
        gaps.append(max(*daily, *(math.ceil(n / bps) for n in intraday)))
    return max(gaps)


# ---------------------------------------------------------------------------------------------
# Purging


class TimedTrade(Protocol):
    """What purging needs of a trade (:class:`tfl.strategy.book.Trade` has it)."""

    @property
    def entry_ts(self) -> int: ...

    @property
    def exit_ts(self) -> int: ...


T = TypeVar("T", bound=TimedTrade)


@dataclass(frozen=True)
class Purged(Generic[T]):
    """The trades entirely inside a window, and those dropped because they straddle its edge."""

    kept: tuple[T, ...]
    dropped: tuple[T, ...]

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)


def purge_trades(trades: Iterable[T], start: dt.date, end: dt.date) -> Purged[T]:
    """Keep the trades whose entry and exit IST sessions both lie in [start, end].

    A trade entered before ``start`` or exited after ``end`` straddles a boundary: part of its
    result belongs to the neighbouring window, so it is dropped (and returned, to be counted).
    Trades entirely outside the window are neither kept nor dropped.
    """
    if start > end:
        raise WalkForwardError(f"window start {start} is after its end {end}")
    kept: list[T] = []
    dropped: list[T] = []
    for t in trades:
        if t.exit_ts < t.entry_ts:
            raise WalkForwardError(f"a trade exits ({t.exit_ts}) before it enters ({t.entry_ts})")
        d_in, d_out = ist_date(t.entry_ts), ist_date(t.exit_ts)
        if d_out < start or d_in > end:
            continue
        (kept if start <= d_in and d_out <= end else dropped).append(t)
    return Purged(tuple(kept), tuple(dropped))


# ---------------------------------------------------------------------------------------------
# The choice on a train window


@dataclass(frozen=True)
class Choice:
    """The parameters chosen on one train window.

    ``score``: the chosen point's own score; ``smoothed``: what was maximised (the plateau
    average, or the score itself for "best"); ``neighbours``: indices of the points averaged
    with it; ``neighbourhood``: "grid", "nearest" or "none" (for "best").
    """

    index: int
    params: Mapping[str, object]
    score: float
    smoothed: float
    method: Method
    neighbourhood: str
    neighbours: tuple[int, ...] = field(default=())


def _is_number(v: object) -> bool:
    return isinstance(v, numbers.Real)


def _param_names(points: Sequence[Mapping[str, object]]) -> tuple[str, ...]:
    names = tuple(sorted(points[0]))
    for i, p in enumerate(points):
        if tuple(sorted(p)) != names:
            raise WalkForwardError(
                f"point {i} has parameters {', '.join(sorted(p))}, point 0 has {', '.join(names)}: all must match"
            )
    return names


def _levels(values: Iterable[object]) -> dict[object, int]:
    """Each distinct value's position in step order: numbers by size, anything else by first
    appearance (equal values such as 75 and 75.0 are one value)."""
    distinct = list(dict.fromkeys(values))
    if all(_is_number(v) for v in distinct):
        distinct.sort(key=float)  # type: ignore[arg-type]
    return {v: i for i, v in enumerate(distinct)}


def _grid_neighbours(points: Sequence[Mapping[str, object]], names: tuple[str, ...]) -> list[tuple[int, ...]]:
    """Cells one step away in exactly one parameter. A numeric step: the adjacent distinct value;
    a non-numeric parameter (a choice) has every other value one step away."""
    levels = {n: _levels(p[n] for p in points) for n in names}
    numeric = {n: all(_is_number(v) for v in levels[n]) for n in names}
    keys = [tuple(levels[n][p[n]] for n in names) for p in points]
    cells: dict[tuple[int, ...], list[int]] = {}
    for i, key in enumerate(keys):
        cells.setdefault(key, []).append(i)
    out: list[tuple[int, ...]] = []
    for key in keys:
        found: list[int] = []
        for j, n in enumerate(names):
            moves = (key[j] - 1, key[j] + 1) if numeric[n] else range(len(levels[n]))
            for pos in moves:
                if pos != key[j] and 0 <= pos < len(levels[n]):
                    found.extend(cells.get((*key[:j], pos, *key[j + 1 :]), ()))
        out.append(tuple(sorted(found)))
    return out


def _nearest_neighbours(
    points: Sequence[Mapping[str, object]], names: tuple[str, ...], k: int
) -> list[tuple[int, ...]]:
    """The k nearest points by Euclidean distance, each numeric parameter scaled to [0, 1] by its
    range, a non-numeric one contributing 0 (same value) or 1; equal distances: lower index first.
    One row of distances at a time: memory stays linear in the number of points."""
    n = len(points)
    num_cols: list[np.ndarray] = []
    cat_cols: list[np.ndarray] = []
    for name in names:
        vals = [p[name] for p in points]
        if all(_is_number(v) for v in vals):
            x = np.array(vals, dtype=float)
            span = float(x.max() - x.min())
            num_cols.append((x - x.min()) / span if span > 0 else np.zeros(n))
        else:
            codes = _levels(vals)
            cat_cols.append(np.array([codes[v] for v in vals]))
    z = np.column_stack(num_cols) if num_cols else np.zeros((n, 0))
    c = np.column_stack(cat_cols) if cat_cols else np.zeros((n, 0), dtype=int)
    out: list[tuple[int, ...]] = []
    for i in range(n):
        d2 = ((z - z[i]) ** 2).sum(axis=1) + (c != c[i]).sum(axis=1)
        d2[i] = math.inf
        kth = np.partition(d2, k - 1)[k - 1]
        cand = np.flatnonzero(d2 <= kth)  # ascending index, so the stable sort keeps ties in order
        out.append(tuple(sorted(cand[np.argsort(d2[cand], kind="stable")][:k].tolist())))
    return out


def _grid_fill(points: Sequence[Mapping[str, object]], names: tuple[str, ...]) -> float:
    """The share of the Cartesian product of the distinct values that the points occupy."""
    levels = {n: _levels(p[n] for p in points) for n in names}
    occupied = {tuple(levels[n][p[n]] for n in names) for p in points}
    return len(occupied) / math.prod(len(v) for v in levels.values())


def _argmax(primary: np.ndarray, secondary: np.ndarray) -> int:
    """Highest ``primary`` (NaN never wins), ties by higher ``secondary``, then lowest index."""
    best = -1
    for i in range(len(primary)):
        if math.isnan(primary[i]):
            continue
        if best < 0 or (primary[i], secondary[i]) > (primary[best], secondary[best]):
            best = i
    return best


def choose_params(
    points: Sequence[Mapping[str, object]],
    scores: Sequence[float],
    *,
    method: Method = "plateau",
    neighbourhood: Neighbourhood = "auto",
    k: int | None = None,
) -> Choice:
    """Choose the parameters of one train window from the scores of its points.

    "best": the highest score. "plateau" (the default): the highest average of a point's score
    and its neighbours' scores, so a lone spike among poor neighbours loses to a broad region of
    good ones. Neighbours on a grid: the cells one step away in exactly one parameter (missing
    cells and NaN scores are left out of the average). Points that do not fill a grid (random or
    Optuna search; "auto" decides by :data:`MIN_GRID_FILL`): the ``k`` nearest points in
    normalised parameter space, ``k`` = 2 x the number of parameters by default (a grid cell's
    count). A point whose own score is NaN is never chosen. Ties: the higher own score, then the
    first point in the given order.
    """
    if len(points) != len(scores):
        raise WalkForwardError(f"{len(points)} points but {len(scores)} scores")
    if not points:
        raise WalkForwardError("no points to choose parameters from")
    if method not in ("plateau", "best"):
        raise WalkForwardError(f"choice method '{method}' is not plateau or best")
    if neighbourhood not in ("auto", "grid", "nearest"):
        raise WalkForwardError(f"neighbourhood '{neighbourhood}' is not auto, grid or nearest")
    names = _param_names(points)
    y = np.array(scores, dtype=float)
    if np.isnan(y).all():
        raise WalkForwardError(f"none of the {len(points)} points has a score")
    if method == "best":
        i = _argmax(y, y)
        return Choice(i, dict(points[i]), float(y[i]), float(y[i]), method, "none")
    kind = neighbourhood
    if kind == "auto":
        kind = "grid" if _grid_fill(points, names) >= MIN_GRID_FILL else "nearest"
    if kind == "grid":
        nbrs = _grid_neighbours(points, names)
    else:
        k_eff = 2 * len(names) if k is None else k
        if k_eff < 1:
            raise WalkForwardError(f"k must be at least 1 (got {k_eff})")
        nbrs = _nearest_neighbours(points, names, min(k_eff, len(points) - 1))
    smoothed = np.full(len(points), np.nan)
    for i, nb in enumerate(nbrs):
        if not math.isnan(y[i]):
            vals = [y[i], *(y[j] for j in nb if not math.isnan(y[j]))]
            smoothed[i] = float(np.mean(vals))
    i = _argmax(smoothed, y)
    if i < 0:  # every finite point averaged to NaN (+inf and -inf neighbours)
        raise WalkForwardError("no point has a finite plateau score")
    return Choice(i, dict(points[i]), float(y[i]), float(smoothed[i]), method, kind, nbrs[i])


# ---------------------------------------------------------------------------------------------
# Out-of-sample curve and what it says


@dataclass(frozen=True)
class OosCurve:
    """The stitched out-of-sample equity: one row per test session, in date order.

    ``equity[i]``: the account at the close of ``dates[i]``, starting from ``capital`` and
    compounding the daily returns of the test windows only.
    """

    capital: float
    dates: tuple[dt.date, ...]
    returns: tuple[float, ...]
    equity: tuple[float, ...]
    fold: tuple[int, ...]


def stitch_oos(fold_returns: Sequence[tuple[Fold, Sequence[dt.date], Sequence[float]]], capital: float) -> OosCurve:
    """One out-of-sample curve from the test windows' daily returns, fold after fold.

    Refuses (WalkForwardError) a date outside its fold's test window, dates out of order, a fold
    whose test window starts before the previous one ended (overlap), mismatched lengths and
    non-finite values, so no session is ever counted twice or in-sample.
    """
    if not (math.isfinite(capital) and capital > 0):
        raise WalkForwardError(f"capital must be a positive number (got {capital!r})")
    dates: list[dt.date] = []
    rets: list[float] = []
    fold_of: list[int] = []
    prev: Fold | None = None
    for fold, ds, rs in fold_returns:
        if len(ds) != len(rs):
            raise WalkForwardError(f"fold {fold.index}: {len(ds)} dates but {len(rs)} returns")
        if prev is not None and fold.test_start <= prev.test_end:
            raise WalkForwardError(
                f"fold {fold.index}'s test window starts {fold.test_start}, before fold {prev.index}'s "
                f"ended ({prev.test_end}): test windows overlap or are out of order"
            )
        for d, r in zip(ds, rs, strict=True):
            if not fold.in_test(d):
                raise WalkForwardError(
                    f"fold {fold.index}: {d} is outside its test window {fold.test_start} to {fold.test_end}"
                )
            if dates and d <= dates[-1]:
                raise WalkForwardError(f"fold {fold.index}: {d} does not follow {dates[-1]}")
            if not math.isfinite(r):
                raise WalkForwardError(f"fold {fold.index}: the return on {d} is {r!r}")
            dates.append(d)
            rets.append(float(r))
            fold_of.append(fold.index)
        prev = fold
    equity = capital * np.cumprod(1.0 + np.array(rets, dtype=float))
    return OosCurve(capital, tuple(dates), tuple(rets), tuple(float(e) for e in equity), tuple(fold_of))


@dataclass(frozen=True)
class Degradation:
    """In-sample (the chosen point's train score) against out-of-sample (its test score), per fold.

    ``used``: folds with both scores finite (the others are left out of every figure).
    ``ratio``: mean OOS / mean IS, NaN unless mean IS > 0 (a ratio to a loss or to nothing means
    nothing). ``correlation``: Pearson's, across folds, None with fewer than 3 or a constant side.
    """

    folds: int
    used: int
    mean_is: float
    mean_oos: float
    difference: float
    ratio: float
    frac_oos_below_is: float
    correlation: float | None


def degradation(is_scores: Sequence[float], oos_scores: Sequence[float]) -> Degradation:
    """How much worse the chosen parameters do out of sample than on the window that chose them."""
    if len(is_scores) != len(oos_scores):
        raise WalkForwardError(f"{len(is_scores)} in-sample scores but {len(oos_scores)} out-of-sample")
    a, b = np.array(is_scores, dtype=float), np.array(oos_scores, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = len(a)
    if n == 0:
        nan = math.nan
        return Degradation(len(ok), 0, nan, nan, nan, nan, nan, None)
    mean_is, mean_oos = float(a.mean()), float(b.mean())
    corr: float | None = None
    if n >= MIN_FOLDS_FOR_CORRELATION and a.std() > 0 and b.std() > 0:
        corr = float(np.corrcoef(a, b)[0, 1])
    return Degradation(
        folds=len(ok),
        used=n,
        mean_is=mean_is,
        mean_oos=mean_oos,
        difference=mean_oos - mean_is,
        ratio=mean_oos / mean_is if mean_is > 0 else math.nan,
        frac_oos_below_is=float((b < a).mean()),
        correlation=corr,
    )


def param_stability(
    choices: Sequence[Mapping[str, object]], grid_values: Mapping[str, Sequence[object]]
) -> dict[str, float]:
    """For each parameter: the mean absolute move between consecutive folds' choices, in grid
    steps, divided by the number of steps of its grid (0: never moves; 1: jumps end to end every
    fold). Numeric values are ordered by size, others as given. NaN with fewer than two folds
    (no move can be measured); 0 for a parameter with a single value."""
    out: dict[str, float] = {}
    for name, values in grid_values.items():
        levels = _levels(values)
        steps = len(levels) - 1
        pos: list[int] = []
        for i, c in enumerate(choices):
            if name not in c:
                raise WalkForwardError(f"fold {i}'s choice has no parameter '{name}'")
            if c[name] not in levels:
                raise WalkForwardError(f"fold {i}'s choice {name}={c[name]!r} is not among its grid values")
            pos.append(levels[c[name]])
        if len(pos) < 2:
            out[name] = math.nan
        elif steps == 0:
            out[name] = 0.0
        else:
            out[name] = float(np.mean(np.abs(np.diff(pos)))) / steps
    return out
