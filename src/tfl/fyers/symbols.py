"""Our symbols vs FYERS tickers, the symbol master, and rounding prices to the tick.

Only the live broker adapter rounds prices (stops and targets away from the market), so
replay equals backtest exactly and live differs by at most a tick.

The day's symbol master carries the tick that applies; for an instrument it lacks, the
band table decides (:mod:`tfl.fyers.ticks`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

from tfl.fyers.ticks import fallback_tick
from tfl.settings import FyersSettings

MASTER_COLUMNS = 21
COL_TICK, COL_LOT, COL_ISIN, COL_TICKER, COL_UNDERLYING = 4, 3, 5, 9, 13


UNKNOWN_TICK = 0.0  # an instrument the symbol master does not list: the band table decides


@dataclass(frozen=True)
class Instrument:
    symbol: str  # ours, e.g. SBIN
    ticker: str  # FYERS, e.g. NSE:SBIN-EQ
    tick: float  # from the symbol master; UNKNOWN_TICK when it has none
    lot: int = 1
    isin: str = ""


class SymbolMap:
    """Two-way mapping; equities follow ``symbol_format``, indices come from a fixed list."""

    def __init__(
        self, settings: FyersSettings, instruments: dict[str, Instrument] | None = None, *, stale: bool = False
    ) -> None:
        self._fmt = settings.symbol_format
        self._stale = stale  # the master is not today's: its ticks may be last month's
        self._default_tick = settings.tick_size
        self._by_symbol: dict[str, Instrument] = dict(instruments or {})
        for pair in (p for p in settings.index_symbols.split(",") if p.strip()):
            ours, _, ticker = pair.partition("=")
            self._by_symbol.setdefault(ours.strip(), Instrument(ours.strip(), ticker.strip(), self._default_tick))
        self._by_ticker = {i.ticker: i for i in self._by_symbol.values()}

    def instrument(self, symbol: str) -> Instrument:
        inst = self._by_symbol.get(symbol)
        if inst is None:
            inst = Instrument(symbol, self._fmt.format(symbol=symbol), UNKNOWN_TICK)
            self._by_symbol[symbol] = inst
            self._by_ticker[inst.ticker] = inst
        return inst

    def ticker(self, symbol: str) -> str:
        return self.instrument(symbol).ticker

    def tick_for(self, symbol: str, price: float) -> float:
        """The tick to round an order price of ``symbol`` near ``price`` with: the symbol
        master's, else the band table's. A master that is not today's may predate a monthly
        revision, so then the coarser of the two is used (ticks nest: it is valid for both)."""
        master = self.instrument(symbol).tick
        if master <= 0:
            return fallback_tick(price)
        return max(master, fallback_tick(price)) if self._stale else master

    def symbol(self, ticker: str) -> str | None:
        inst = self._by_ticker.get(ticker)
        if inst is not None:
            return inst.symbol
        prefix, _, rest = self._fmt.partition("{symbol}")
        if ticker.startswith(prefix) and ticker.endswith(rest) and len(ticker) > len(prefix) + len(rest):
            return ticker[len(prefix) : len(ticker) - len(rest)] if rest else ticker[len(prefix) :]
        return None


def round_to_tick(price: float, tick: float, *, up: bool) -> float:
    """Round to the tick grid, up or down; the result is a clean decimal (two places here)."""
    steps = price / tick
    n = math.ceil(steps - 1e-9) if up else math.floor(steps + 1e-9)
    decimals = max(0, -math.floor(math.log10(tick))) + 1
    return round(n * tick, decimals)


def parse_symbol_master(text: str, universe: list[str] | None = None) -> list[Instrument]:
    """Rows of the FYERS NSE_CM.csv master (header-less, 21 columns) for EQ-series tickers."""
    out = []
    wanted = set(universe) if universe else None
    for rowno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or len(row) < MASTER_COLUMNS - 3:
            continue
        ticker = row[COL_TICKER].strip()
        if not ticker.startswith("NSE:") or not ticker.endswith("-EQ"):
            continue
        symbol = ticker[4:-3]
        if wanted is not None and symbol not in wanted:
            continue
        try:
            tick = float(row[COL_TICK])
            lot = int(float(row[COL_LOT]))
        except ValueError:
            bad = f"tick size '{row[COL_TICK]}' or lot '{row[COL_LOT]}'"
            raise ValueError(f"symbol master row {rowno}: {bad}") from None
        good = tick > 0 and math.isfinite(tick)
        out.append(Instrument(symbol, ticker, tick if good else UNKNOWN_TICK, max(lot, 1), row[COL_ISIN].strip()))
    return out


def write_instruments(path: Path, instruments: list[Instrument]) -> None:
    """Written to a temporary file and renamed: a reader never sees half a file, and a
    failed write leaves the previous one in place."""
    tmp = path.with_name(path.name + ".part")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["Symbol", "ticker", "tick", "lot", "isin"])
            for i in sorted(instruments, key=lambda x: x.symbol):
                w.writerow([i.symbol, i.ticker, i.tick, i.lot, i.isin])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_instruments(path: Path) -> dict[str, Instrument]:
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        return {
            r["Symbol"]: Instrument(r["Symbol"], r["ticker"], float(r["tick"]), int(r["lot"]), r.get("isin", ""))
            for r in csv.DictReader(fh)
        }
