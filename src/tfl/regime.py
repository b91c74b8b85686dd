"""The daily traffic light: one pure function for the pre-market job, backtester and trader.

Pure Python on purpose (no NumPy, no pandas) so the AWS pre-market Lambda imports this
very module. Sums use ``math.fsum`` (exactly rounded), so the result does not depend on
the container the closes arrive in or on the Python version.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from tfl.domain import Bias
from tfl.settings import BiasSettings

_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class DailyCloses:
    """Daily closes of one instrument; ``days`` are IST day numbers, strictly increasing."""

    days: Sequence[int]
    closes: Sequence[float]

    @staticmethod
    def from_dates(dates: Sequence[dt.date], closes: Sequence[float]) -> DailyCloses:
        return DailyCloses([(d - _EPOCH).days for d in dates], list(closes))


@dataclass(frozen=True)
class BiasRecord:
    """The published bias with its date and every input it was decided from."""

    bias: str
    session: str
    previous_session: str | None
    breadth_above: float | None
    breadth_below: float | None
    breadth_count: int
    index_symbol: str
    index_close: float | None
    # The published names say which check each SMA serves, not its length: index_sma_long is
    # the LONGS check's SMA (bias.long_index_sma, 30 days), index_sma_short the SHORTS check's
    # (bias.short_index_sma, 100 days). People read them from by_period(), named by period.
    index_sma_long: float | None
    index_sma_short: float | None
    vix_symbol: str
    vix: float | None
    reason: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def by_period(self, params: BiasSettings) -> dict[str, object]:
        """The record for people (``tfl bias``): the benchmark's SMAs named by their periods
        (``index_sma30``, ``index_sma100``), since "long" and "short" read as lengths while the
        published fields name the side each check serves. Still a valid bias file."""
        out: dict[str, object] = asdict(self)
        sma_longs, sma_shorts = out.pop("index_sma_long"), out.pop("index_sma_short")
        out[f"index_sma{params.long_index_sma}"] = sma_longs
        out[f"index_sma{params.short_index_sma}"] = sma_shorts
        return out

    @staticmethod
    def no_trades(session: dt.date, reason: str, params: BiasSettings) -> BiasRecord:
        return BiasRecord(
            Bias.NO_TRADES.value,
            session.isoformat(),
            None,
            None,
            None,
            0,
            params.benchmark_symbol,
            None,
            None,
            None,
            params.vix_symbol,
            None,
            reason,
        )


def day_number(d: dt.date) -> int:
    return (d - _EPOCH).days


def previous_session(calendar_days: Sequence[int], session: dt.date) -> dt.date | None:
    """The last trading day strictly before ``session`` in a sorted calendar of day numbers."""
    i = bisect.bisect_left(calendar_days, day_number(session))
    return _EPOCH + dt.timedelta(days=calendar_days[i - 1]) if i > 0 else None


def _close_and_sma(series: DailyCloses, day: int, n: int) -> tuple[float, float] | None:
    """Close on ``day`` and the SMA(n) of closes ending there, or None if not available."""
    i = bisect.bisect_left(series.days, day)
    if i >= len(series.days) or series.days[i] != day or i + 1 < n:
        return None
    window = series.closes[i + 1 - n : i + 1]
    return series.closes[i], math.fsum(window) / n


def breadth(universe: Mapping[str, DailyCloses], day: int, n: int) -> tuple[int, int, int]:
    """(above, below, counted): stocks whose close on ``day`` is above / below their SMA(n),
    of those with a bar that day and n closes of history (a close equal to its SMA counts
    in the total only)."""
    above = below = counted = 0
    for sym in sorted(universe):
        cs = _close_and_sma(universe[sym], day, n)
        if cs is None:
            continue
        counted += 1
        if cs[0] > cs[1]:
            above += 1
        elif cs[0] < cs[1]:
            below += 1
    return above, below, counted


def compute_bias(
    session: dt.date,
    prev_session: dt.date | None,
    universe: Mapping[str, DailyCloses],
    benchmark: DailyCloses | None,
    vix: DailyCloses | None,
    params: BiasSettings,
    *,
    counts: tuple[int, int, int] | None = None,
) -> BiasRecord:
    """Decide LONGS / SHORTS / NO_TRADES for ``session`` from data final at ``prev_session``.

    Shorts are checked first. Any input that is missing on the previous session, or
    invalid, gives NO_TRADES with the reason recorded. ``counts``: the breadth of
    ``prev_session`` when the caller has counted it already (the backtester counts every
    day at once with :func:`tfl.data.bias_inputs.breadth_table`, which a test holds equal
    to :func:`breadth`).
    """
    if prev_session is None:
        return BiasRecord.no_trades(session, "no previous session in the calendar", params)
    if prev_session >= session:
        return BiasRecord.no_trades(session, "previous session is not before the session", params)
    day = day_number(prev_session)
    above, below, counted = counts if counts is not None else breadth(universe, day, params.breadth_sma)

    def rec(bias: Bias, reason: str, **kw: float | None) -> BiasRecord:
        return BiasRecord(
            bias=bias.value,
            session=session.isoformat(),
            previous_session=prev_session.isoformat(),
            breadth_above=100.0 * above / counted if counted else None,
            breadth_below=100.0 * below / counted if counted else None,
            breadth_count=counted,
            index_symbol=params.benchmark_symbol,
            index_close=kw.get("index_close"),
            index_sma_long=kw.get("sma_long"),
            index_sma_short=kw.get("sma_short"),
            vix_symbol=params.vix_symbol,
            vix=kw.get("vix"),
            reason=reason,
        )

    if counted == 0:
        return rec(Bias.NO_TRADES, "no universe stock has a bar and enough history on the previous session")
    if benchmark is None:
        return rec(Bias.NO_TRADES, f"benchmark {params.benchmark_symbol} has no data")
    long_cs = _close_and_sma(benchmark, day, params.long_index_sma)
    short_cs = _close_and_sma(benchmark, day, params.short_index_sma)
    vix_cs = _close_and_sma(vix, day, 1) if vix is not None else None
    kw: dict[str, float | None] = {
        "index_close": long_cs[0] if long_cs else (short_cs[0] if short_cs else None),
        "sma_long": long_cs[1] if long_cs else None,
        "sma_short": short_cs[1] if short_cs else None,
        "vix": vix_cs[0] if vix_cs else None,
    }
    if long_cs is None or short_cs is None:
        return rec(
            Bias.NO_TRADES,
            f"benchmark {params.benchmark_symbol} lacks a bar or history on {prev_session.isoformat()}",
            **kw,
        )
    if vix_cs is None:
        return rec(Bias.NO_TRADES, f"{params.vix_symbol} has no bar on {prev_session.isoformat()}", **kw)
    vix_close = vix_cs[0]
    if not math.isfinite(vix_close) or vix_close <= 0:
        return rec(Bias.NO_TRADES, f"{params.vix_symbol} close {vix_close!r} is invalid", **kw)
    breadth_above = 100.0 * above / counted
    breadth_below = 100.0 * below / counted
    index_close = long_cs[0]
    thr = params.breadth_threshold_pct
    if breadth_below > thr and index_close < short_cs[1] and vix_close > params.vix_threshold:
        return rec(Bias.SHORTS, f"breadth below, index under its SMA{params.short_index_sma} and VIX high", **kw)
    if breadth_above > thr and index_close > long_cs[1]:
        return rec(Bias.LONGS, f"breadth above and index over its SMA{params.long_index_sma}", **kw)
    return rec(Bias.NO_TRADES, "no condition met", **kw)


def parse_bias_record(text: str, session: dt.date) -> tuple[Bias, str]:
    """Read a published record for ``session``; anything doubtful means NO_TRADES.

    Returns the bias to trade and a reason (empty when the record was accepted).
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return Bias.NO_TRADES, "bias record is not valid JSON"
    if not isinstance(data, dict):
        return Bias.NO_TRADES, "bias record is not a JSON object"
    if data.get("session") != session.isoformat():
        return Bias.NO_TRADES, f"bias record is dated {data.get('session')!r}, not {session.isoformat()}"
    value = data.get("bias")
    if value not in (Bias.LONGS.value, Bias.SHORTS.value, Bias.NO_TRADES.value):
        return Bias.NO_TRADES, f"bias value {value!r} is not LONGS, SHORTS or NO_TRADES"
    if data.get("provisional") is True:  # the job failed and is being retried
        return Bias.NO_TRADES, f"provisional record ({data.get('reason', '')}): the pre-market job is retrying"
    return Bias(value), ""
