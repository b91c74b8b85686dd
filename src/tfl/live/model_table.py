"""The running table of live-against-model comparisons, one row per session, and its verdict.

A CSV file (readable in a spreadsheet, diffable), upserted by session: comparing a day
again replaces its row, so re-running is idempotent. The verdict pools every day's fills and
tells the trader whether the backtest's slippage assumption holds, saying so when there are
too few fills to tell. Standard library only (the post-market Lambda may read it).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from tfl.live.model_check import (
    DayComparison,
    mean_excess_bps,
    mean_real_bps,
    sd_excess_bps,
    worst_excess_bps,
)

MIN_FILLS = 30  # fewer pooled fills than this: too few to judge the slippage assumption
SIGNIFICANCE_SE = 2.0  # a mean beyond this many standard errors from zero is a real difference
TABLE_SUFFIX = ".model-check.csv"  # beside a journal J: J.model-check.csv
EXPORT_KEY = "exports/{session}/model-check.txt"  # the day's comparison, for the post-market report
TABLE_KEY = "exports/model-check.csv"  # the running table, for the status page on AWS


def export_key(session: str) -> str:
    return EXPORT_KEY.format(session=session)


class ModelTableError(ValueError):
    """The running table cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class DayRow:
    """One session's comparison, as the running table keeps it."""

    session: str
    bias: str
    live_trades: int
    model_trades: int
    matched: int
    missing: int
    extra: int
    fills: int  # slippage samples: matched fills of the same order (entries, exits alike)
    slipping_fills: int  # of which stops and market orders, the ones the assumption slips
    assumed_bps: float
    mean_real_bps: float | None  # slippage paid on stop/market fills, from the model's reference price
    mean_excess_bps: float | None  # beyond the model's fill (positive: worse than the backtest)
    sd_excess_bps: float | None
    worst_excess_bps: float | None
    excess_rupees: float
    exits_differing: int  # matched trades whose exit reason or bar differ
    mean_exit_slots: float | None  # over matched trades: live exit bar minus the model's
    live_pnl: float
    model_pnl: float
    live_charges: float
    model_charges: float


COLUMNS = tuple(f.name for f in fields(DayRow))
_INTS = frozenset(f.name for f in fields(DayRow) if f.type in ("int",))
_STRS = frozenset({"session", "bias"})


def day_row(c: DayComparison) -> DayRow:
    slots = [m.exit_slots for m in c.matched]
    return DayRow(
        session=c.session,
        bias=c.bias,
        live_trades=c.live_trades,
        model_trades=c.model_trades,
        matched=len(c.matched),
        missing=len(c.missing),
        extra=len(c.extra),
        fills=len(c.fills),
        slipping_fills=len(c.slipping_fills),
        assumed_bps=c.assumed_slippage_bps,
        mean_real_bps=mean_real_bps(c),
        mean_excess_bps=mean_excess_bps(c),
        sd_excess_bps=sd_excess_bps(c),
        worst_excess_bps=worst_excess_bps(c),
        excess_rupees=math.fsum(f.excess_rupees for f in c.fills),
        exits_differing=c.exits_differing,
        mean_exit_slots=math.fsum(slots) / len(slots) if slots else None,
        live_pnl=c.live_pnl,
        model_pnl=c.model_pnl,
        live_charges=c.live_charges,
        model_charges=c.model_charges,
    )


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v + 0.0)  # the float read back is the float written
    return str(v)


def _parse(name: str, raw: str, where: str) -> object:
    if name in _STRS:
        return raw
    if raw == "":
        return None
    try:
        return int(raw) if name in _INTS else float(raw)
    except ValueError:
        raise ModelTableError(f"{where}: {name} {raw[:20]!r} is not a number") from None


def table_text(rows: Sequence[DayRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in sorted(rows, key=lambda r: r.session):
        w.writerow([_cell(getattr(r, c)) for c in COLUMNS])
    return buf.getvalue()


def read_table(path: Path) -> list[DayRow]:
    """The table's rows (none when the file does not exist)."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelTableError(f"{path}: cannot read the running table ({exc})") from None
    return parse_table(text, str(path))


def parse_table(text: str, where: str) -> list[DayRow]:
    """The rows of a table's text (a file, or the copy the server uploads for the status page)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ModelTableError(f"{where}: not a live-vs-model table (its header is not {','.join(COLUMNS[:3])},...)")
    rows = []
    for n, line in enumerate(reader, start=2):
        if len(line) != len(COLUMNS):
            raise ModelTableError(f"{where} line {n}: expected {len(COLUMNS)} fields, found {len(line)}")
        values = {c: _parse(c, raw, f"{where} line {n}") for c, raw in zip(COLUMNS, line, strict=True)}
        rows.append(DayRow(**values))  # type: ignore[arg-type]
    return rows


def upsert(path: Path, row: DayRow) -> list[DayRow]:
    """Put ``row`` into the table (replacing the same session's), atomically; the new rows."""
    if not path.parent.is_dir():
        raise ModelTableError(f"{path}: its folder {path.parent} does not exist")
    rows = [r for r in read_table(path) if r.session != row.session] + [row]
    rows.sort(key=lambda r: r.session)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(table_text(rows), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ModelTableError(f"{path}: cannot write the running table ({exc})") from None
    return rows


@dataclass(frozen=True)
class Verdict:
    """Whether the backtest's slippage assumption holds, over every day of the table."""

    days: int
    fills: int
    mean_excess_bps: float | None
    se_bps: float | None  # standard error of that mean
    mean_real_bps: float | None  # over stop/market fills
    assumed_bps: float | None
    holds: bool | None  # None: too few fills to tell
    text: str


def verdict(rows: Sequence[DayRow]) -> Verdict:
    """Pool every day's fills: mean slippage beyond the model, its standard error, and a sentence."""
    n = sum(r.fills for r in rows)
    days = len(rows)
    assumed = rows[-1].assumed_bps if rows else None
    sampled = [r for r in rows if r.fills and r.mean_excess_bps is not None]
    mean = se = None
    if n:
        mean = math.fsum(r.fills * (r.mean_excess_bps or 0.0) for r in sampled) / n
    if n >= 2:
        ss = math.fsum(
            (r.fills - 1) * (r.sd_excess_bps or 0.0) ** 2 + r.fills * ((r.mean_excess_bps or 0.0) - (mean or 0.0)) ** 2
            for r in sampled
        )
        se = math.sqrt(ss / (n - 1)) / math.sqrt(n)
    slipping = sum(r.slipping_fills for r in rows)
    real = (
        math.fsum(r.slipping_fills * (r.mean_real_bps or 0.0) for r in rows if r.mean_real_bps is not None) / slipping
        if slipping
        else None
    )
    where = f"{n} fill{'' if n == 1 else 's'} over {days} day{'' if days == 1 else 's'}"
    paid = (
        f"; stop/market fills paid {real:.1f} bps against the assumed {assumed:.1f}"
        if real is not None and assumed is not None
        else ""
    )
    holds: bool | None = None
    if mean is None:
        text = f"no matched fills yet ({days} days): nothing to judge"
    elif n < MIN_FILLS or se is None:
        text = (
            f"too few fills to judge the slippage assumption ({where}, {MIN_FILLS} needed): "
            f"so far {mean:+.1f} bps a side beyond the model{paid}"
        )
    elif abs(mean) <= SIGNIFICANCE_SE * se:
        holds = True
        text = (
            f"the slippage assumption holds: live fills are {mean:+.1f} ± {se:.1f} bps from the model's ({where}){paid}"
        )
    else:
        holds = False
        which = "optimistic" if mean > 0 else "pessimistic"
        text = f"the backtest is {which} by {abs(mean):.1f} bps a side (± {se:.1f}, {where}){paid}"
    return Verdict(days, n, mean, se, real, assumed, holds, text)


def table_lines(rows: Sequence[DayRow]) -> list[str]:
    """The verdict and the table's totals, for the CLI and the status page."""
    v = verdict(rows)
    model = sum(r.model_trades for r in rows)
    missing = sum(r.missing for r in rows)
    extra = sum(r.extra for r in rows)
    diff = math.fsum(r.live_pnl - r.model_pnl for r in rows)
    charges = math.fsum(r.live_charges - r.model_charges for r in rows)
    return [
        v.text,
        f"trades over {len(rows)} day(s): model {model}, missed live {missing}, extra live {extra}; "
        f"exits differing {sum(r.exits_differing for r in rows)}",
        f"live P&L minus model P&L: {diff:+,.2f} (of which charges {-charges:+,.2f})",
    ]
