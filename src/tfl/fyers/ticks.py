"""NSE's tick sizes by price band, for an instrument the symbol master does not list.

NSE's tick size depends on the security's price band and is revised every month from the
closing price on the last trading day of the month before (NSE circulars of March 2025,
effective 15 April 2025; FYERS notice of 17 March 2025). :func:`fallback_tick` takes the
table's tick for twice the current price: NSE's ticks nest (each is a whole multiple of
every smaller one), so that coarser tick is valid whatever band last month's close fell
in, unless the price has more than halved since (then FYERS refuses the price with -50,
which is alerted as a bug, never retried).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TickBand:
    """Prices up to ``upto`` (inclusive when ``inclusive``) trade in steps of ``tick``."""

    upto: float
    tick: float
    inclusive: bool = True


# NSE cash market (EQ series and the others the circulars name; not ETFs), from 15 April 2025.
NSE_EQ_TICK_BANDS: tuple[TickBand, ...] = (
    TickBand(250.0, 0.01, inclusive=False),
    TickBand(1_000.0, 0.05),
    TickBand(5_000.0, 0.10),
    TickBand(10_000.0, 0.50),
    TickBand(20_000.0, 1.00),
    TickBand(math.inf, 5.00),
)
REFERENCE_DRIFT = 2.0  # the fallback assumes last month's close was at most this times today's price


def band_tick(price: float, bands: tuple[TickBand, ...] = NSE_EQ_TICK_BANDS) -> float:
    """The tick NSE's table gives a security whose reference price is ``price``."""
    for band in bands:
        if price < band.upto or (band.inclusive and price == band.upto):
            return band.tick
    return bands[-1].tick


def fallback_tick(price: float) -> float:
    """The tick for an instrument the symbol master lacks: the coarsest one the band table
    could give it this month (see the module's docstring)."""
    return band_tick(abs(price) * REFERENCE_DRIFT)
