"""trades.csv: one format for the backtester, `tfl journal export` and the report job's export.

Pure standard library, so the post-market Lambda writes exactly the bytes the backtester
writes for the same trades.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from tfl.strategy.book import Trade
from tfl.timeutil import iso_ist

TRADE_COLUMNS = (
    "symbol",
    "side",
    "setup_time",
    "entry_time",
    "entry_price",
    "qty",
    "exit_time",
    "exit_price",
    "exit_reason",
    "initial_stop",
    "risk_per_share",
    "gross_pnl",
    "charges",
    "pnl",
    "r_multiple",
    "rsi",
)


def _iso(ts: int) -> str:
    return iso_ist(ts)


def _f(x: float, nd: int) -> str:
    return f"{x:.{nd}f}"


def trade_rows(trades: Iterable[Trade]) -> list[dict[str, str]]:
    """The rows, ordered by entry time then symbol, with fixed number formats."""
    iso: dict[int, str] = {}  # many trades share bar times: format each once

    def when(ts: int) -> str:
        text = iso.get(ts)
        if text is None:
            text = iso[ts] = _iso(ts)
        return text

    rows = []
    for t in sorted(trades, key=lambda t: (t.entry_ts, t.symbol)):
        gross, charges = t.gross_pnl, t.charges
        pnl = gross - charges  # Trade.pnl, without computing both parts again
        rows.append(
            {
                "symbol": t.symbol,
                "side": t.side.label,
                "setup_time": when(t.setup_ts),
                "entry_time": when(t.entry_ts),
                "entry_price": _f(t.entry_price, 6),
                "qty": str(t.qty),
                "exit_time": when(t.exit_ts),
                "exit_price": _f(t.exit_price, 6),
                "exit_reason": t.exit_reason.value,
                "initial_stop": _f(t.initial_stop, 6),
                "risk_per_share": _f(t.r, 6),
                "gross_pnl": _f(gross, 4),
                "charges": _f(charges, 4),
                "pnl": _f(pnl, 4),
                "r_multiple": _f(pnl / (t.qty * t.r), 4),
                "rsi": _f(t.rsi, 4),
            }
        )
    return rows


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(columns)
    w.writerow(cols)
    w.writerows([row[c] for c in cols] for row in rows)
    return buf.getvalue()


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        fh.write(csv_text(columns, rows))


def trades_csv(trades: Iterable[Trade]) -> str:
    """The whole trades.csv text."""
    return csv_text(TRADE_COLUMNS, trade_rows(trades))
