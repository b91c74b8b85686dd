"""`tfl data synth`: a deterministic synthetic NSE market for demos and tests.

The market follows the real NSE session calendar (holidays included), has bull, bear
and sideways regimes, stock-specific momentum bursts (so daily RSI does go above 75 and
below 25), pullbacks inside trends, overnight gaps, U-shaped intraday volume, an
equal-weight index and a VIX derived from the index's realised volatility. Prices sit
on the 0.05 tick and every bar's high/low brackets its open/close.

The same ``seed`` always gives the same files, byte for byte.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tfl.data.loader import DAILY_DIR, INTRADAY_DIR
from tfl.timeutil import BAR_MINUTES, REGULAR_OPEN

BARS_PER_DAY = 25
TICK = 0.05


@dataclass(frozen=True)
class SynthSpec:
    symbols: int = 40
    days: int = 500
    seed: int = 7
    start: dt.date = dt.date(2023, 1, 2)
    index_symbol: str = "NIFTY200_INDEX"
    vix_symbol: str = "INDIAVIX"
    # Research fixtures. ``momentum``: each 15-minute bar's noise carries this fraction of the
    # previous bar's (an AR(1) coefficient; > 0 plants an edge a breakout can catch).
    # ``random_walk``: no regimes, no momentum bursts, no drift: nothing to find.
    momentum: float = 0.0
    random_walk: bool = False


def nse_sessions(start: dt.date, count: int) -> list[dt.date]:
    """``count`` regular NSE sessions from ``start`` (holidays skipped, via the NSE calendar).

    Past the end of the calendar package's holiday table, weekdays are used.
    """
    import pandas_market_calendars as pmc  # heavy; only the generator needs it

    cal = pmc.get_calendar("NSE")
    end = start + dt.timedelta(days=int(count * 1.6) + 30)
    sched = cal.schedule(start.isoformat(), end.isoformat())
    regular = sched[(sched.market_open.dt.hour == 3) & (sched.market_open.dt.minute == 45)]
    days = [ts.date() for ts in regular.index][:count]
    d = days[-1] + dt.timedelta(days=1) if days else start
    while len(days) < count:
        if d.weekday() < 5:
            days.append(d)
        d += dt.timedelta(days=1)
    return days


def _regimes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Market regime per day: +1 bull, -1 bear, 0 sideways.

    Regimes come in blocks of random length cycling bull, sideways, bear, sideways, so any
    market of a year or more has both long and short days for the traffic light.
    """
    cycle = (1, 0, -1, 0)
    out = np.empty(n, dtype=np.int64)
    i, k = 0, int(rng.integers(0, 4))
    while i < n:
        length = int(rng.integers(45, 100))
        out[i : i + length] = cycle[k % 4]
        i += length
        k += 1
    return out


def _round_tick(x: np.ndarray) -> np.ndarray:
    return np.round(x / TICK) * TICK


def synthesize(out_dir: Path, spec: SynthSpec) -> dict[str, int]:
    """Write the synthetic market under ``out_dir``; returns a count of files and bars."""
    if spec.symbols < 1 or spec.days < 30:
        raise ValueError("synth needs at least 1 symbol and 30 days")
    rng = np.random.default_rng(spec.seed)
    days = nse_sessions(spec.start, spec.days)
    nd, nb, ns = len(days), BARS_PER_DAY, spec.symbols

    if not -0.95 <= spec.momentum <= 0.95:
        raise ValueError(f"synth --momentum {spec.momentum}: must be between -0.95 and 0.95")
    regime = _regimes(rng, nd)
    if spec.random_walk:
        regime[:] = 0
    mkt_drift = np.where(regime == 1, 0.0011, np.where(regime == -1, -0.0016, 0.0))
    mkt_vol = np.where(regime == -1, 0.016, np.where(regime == 1, 0.008, 0.010))
    mkt_day = mkt_drift + mkt_vol * rng.standard_normal(nd)

    # Intraday shape: more movement and volume at the open and close (U shape).
    u = np.linspace(-1.0, 1.0, nb)
    vol_shape = 0.7 + 0.9 * u**2
    vol_shape /= np.sqrt((vol_shape**2).sum())

    beta = rng.uniform(0.6, 1.4, ns)
    idio_vol = rng.uniform(0.010, 0.022, ns)
    start_px = np.exp(rng.uniform(np.log(80), np.log(3500), ns))
    base_volume = np.exp(rng.uniform(np.log(2e5), np.log(5e6), ns))

    # Stock momentum bursts: stretches of strong drift either way (these make RSI extremes).
    burst = np.zeros((nd, ns))
    for k in range(ns):
        i = 0
        while i < nd:
            i += int(rng.integers(15, 70))
            length = int(rng.integers(6, 18))
            sign = 1.0 if rng.random() < 0.6 else -1.0
            burst[i : i + length, k] = sign * rng.uniform(0.008, 0.02)
            i += length
    if spec.random_walk:
        burst[:] = 0.0

    day_ret = beta * mkt_day[:, None] + burst + idio_vol * rng.standard_normal((nd, ns)) * 0.6
    gaps = 0.004 * rng.standard_normal((nd, ns)) + 0.35 * day_ret  # part of the move happens overnight
    gaps[0] = 0.0
    intraday_ret = day_ret - gaps
    # Spread each day's intraday return over the bars with noise that has pullbacks.
    noise = rng.standard_normal((nd, nb, ns)) * (idio_vol[None, None, :] * 1.1) * vol_shape[None, :, None]
    if spec.momentum:
        for b in range(1, nb):
            noise[:, b, :] += spec.momentum * noise[:, b - 1, :]
    noise -= noise.mean(axis=1, keepdims=True)
    bar_ret = intraday_ret[:, None, :] / nb + noise

    log_open_day = np.log(start_px)[None, :] + np.cumsum(day_ret, axis=0) - day_ret + gaps
    log_close_bar = log_open_day[:, None, :] + np.cumsum(bar_ret, axis=1)
    log_open_bar = np.concatenate([log_open_day[:, None, :], log_close_bar[:, :-1, :]], axis=1)
    o = np.exp(log_open_bar)
    c = np.exp(log_close_bar)
    wick = (
        np.abs(rng.standard_normal((2, nd, nb, ns)))
        * idio_vol[None, None, None, :]
        * 0.35
        * vol_shape[None, None, :, None]
    )
    h = np.maximum(o, c) * np.exp(wick[0])
    lo = np.minimum(o, c) * np.exp(-wick[1])
    o, h, lo, c = (_round_tick(a) for a in (o, h, lo, c))
    h = np.maximum.reduce([h, o, c])
    lo = np.minimum.reduce([lo, o, c])
    lo = np.maximum(lo, TICK)
    vol = base_volume[None, None, :] * (vol_shape[None, :, None] / vol_shape.mean()) / nb
    vol = vol * (1.0 + 40.0 * np.abs(bar_ret)) * np.exp(0.3 * rng.standard_normal((nd, nb, ns)))
    vol = np.maximum(np.round(vol), 1.0)

    # Equal-weight index from the stocks' log returns, and a VIX from its realised volatility.
    idx_log_bar = np.log(15000.0) + (log_close_bar - np.log(start_px)[None, None, :]).mean(axis=2)
    idx_close = np.exp(idx_log_bar)
    idx_open = np.concatenate([[[15000.0]], idx_close.reshape(-1)[:-1][None, :]], axis=1).reshape(nd, nb)
    idx_high = np.maximum(idx_open, idx_close) * (1 + 0.0004)
    idx_low = np.minimum(idx_open, idx_close) * (1 - 0.0004)
    idx_day_close = idx_close[:, -1]
    idx_ret = np.diff(np.log(np.concatenate([[15000.0], idx_day_close])))
    rv = np.array([idx_ret[max(0, i - 9) : i + 1].std() for i in range(nd)]) * np.sqrt(252) * 100
    vix_close = np.clip(9.0 + 1.1 * rv + 1.5 * rng.standard_normal(nd), 9.5, 60.0)
    vix_close = np.round(vix_close, 2)

    bar_minutes = REGULAR_OPEN + BAR_MINUTES * np.arange(nb)
    day64 = np.array([np.datetime64(d.isoformat(), "m") for d in days])
    stamps = (day64[:, None] + bar_minutes[None, :].astype("timedelta64[m]")).reshape(-1)
    (out_dir / INTRADAY_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / DAILY_DIR).mkdir(parents=True, exist_ok=True)
    day_stamps = np.array([np.datetime64(d.isoformat(), "us") for d in days])

    def write(
        kind: str,
        sym: str,
        t: np.ndarray,
        oo: np.ndarray,
        hh: np.ndarray,
        ll: np.ndarray,
        cc: np.ndarray,
        vv: np.ndarray,
    ) -> None:
        table = pa.table(
            {
                "datetime": pa.array(t.astype("datetime64[us]")),
                "open": pa.array(oo.astype(np.float64)),
                "high": pa.array(hh.astype(np.float64)),
                "low": pa.array(ll.astype(np.float64)),
                "close": pa.array(cc.astype(np.float64)),
                "volume": pa.array(vv.astype(np.int64)),
            }
        )
        pq.write_table(table, out_dir / kind / f"{sym}.parquet", compression="zstd")

    names = [f"SYN{k + 1:03d}" for k in range(ns)]
    for k, sym in enumerate(names):
        oo, hh, ll, cc, vv = (a[:, :, k] for a in (o, h, lo, c, vol))
        write(INTRADAY_DIR, sym, stamps, oo.reshape(-1), hh.reshape(-1), ll.reshape(-1), cc.reshape(-1), vv.reshape(-1))
        write(DAILY_DIR, sym, day_stamps, oo[:, 0], hh.max(axis=1), ll.min(axis=1), cc[:, -1], vv.sum(axis=1))
    zero = np.zeros(nd * nb)
    io, ih, il, ic = (_round_tick(a) for a in (idx_open, idx_high, idx_low, idx_close))
    write(INTRADAY_DIR, spec.index_symbol, stamps, io.reshape(-1), ih.reshape(-1), il.reshape(-1), ic.reshape(-1), zero)
    write(DAILY_DIR, spec.index_symbol, day_stamps, io[:, 0], ih.max(axis=1), il.min(axis=1), ic[:, -1], np.zeros(nd))
    vix_open = np.concatenate([[vix_close[0]], vix_close[:-1]])
    write(
        DAILY_DIR,
        spec.vix_symbol,
        day_stamps,
        vix_open,
        np.maximum(vix_open, vix_close) + 0.3,
        np.minimum(vix_open, vix_close) - 0.3,
        vix_close,
        np.zeros(nd),
    )
    universe = out_dir / "universe.csv"
    universe.write_text("Symbol\n" + "".join(f"{s}\n" for s in names), encoding="utf-8")
    return {
        "symbols": ns,
        "sessions": nd,
        "bars": nd * nb * ns,
        "first": days[0].toordinal(),
        "last": days[-1].toordinal(),
    }
