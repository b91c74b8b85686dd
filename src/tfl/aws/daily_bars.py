"""Daily bars as CSV objects in S3: the format ``tfl data sync`` writes and the bias job reads.

One object per symbol, ``daily/<SYMBOL>.csv``, header ``date,open,high,low,close,volume``,
dates ``YYYY-MM-DD`` strictly ascending. Prices are written with ``repr`` so a float read
back is the very float written: the Lambda's bias equals the backtester's to the bit.
Standard library and boto3 only (the pre-market Lambda imports this module).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code
from tfl.data.universe import UniverseError, parse_universe
from tfl.regime import DailyCloses

DAILY_PREFIX = "daily/"
UNIVERSE_KEY = "config/universe.csv"  # `tfl deploy --universe` uploads it (column ``Symbol``)
HEADER = ("date", "open", "high", "low", "close", "volume")
_MAX_OBJECT_BYTES = 8 * 1024 * 1024  # ~100 years of daily bars; anything larger is not ours


class DailyBarsError(ValueError):
    """A daily-bars object cannot be used; the message names the object (and line)."""


class DailyBar(NamedTuple):
    """One day's bar (a named tuple: the bias job builds ~200,000 of them per run)."""

    date: dt.date
    open: float
    high: float
    low: float
    close: float
    volume: float


def daily_key(symbol: str) -> str:
    return f"{DAILY_PREFIX}{symbol}.csv"


def _num(x: float) -> str:
    """Shortest text that reads back as the same float; whole volumes without '.0'."""
    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"{x!r} is not a finite number")
    return repr(f)


def _vol(x: float) -> str:
    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"volume {x!r} is not a finite number")
    return str(int(f)) if f.is_integer() else repr(f)


def format_daily_csv(rows: Iterable[DailyBar]) -> str:
    """The object's text; raises ValueError on unordered dates or non-finite values."""
    lines = [",".join(HEADER)]
    last: dt.date | None = None
    for b in rows:
        if last is not None and b.date <= last:
            raise ValueError(f"daily bars out of order: {b.date} after {last}")
        last = b.date
        lines.append(
            f"{b.date.isoformat()},{_num(b.open)},{_num(b.high)},{_num(b.low)},{_num(b.close)},{_vol(b.volume)}"
        )
    return "\n".join(lines) + "\n"


def parse_daily_csv(text: str, name: str) -> list[DailyBar]:
    """Parse an object written by :func:`format_daily_csv`; errors name ``name`` and the line."""
    lines = text.splitlines()
    if not lines or lines[0].strip().lstrip("\ufeff") != ",".join(HEADER):
        got = lines[0][:80] if lines else "an empty object"
        raise DailyBarsError(f"{name} line 1: expected the header {','.join(HEADER)!r}, found {got!r}")
    out: list[DailyBar] = []
    last = ""
    isfinite = math.isfinite
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            if any(rest.strip() for rest in lines[n:]):
                raise DailyBarsError(f"{name} line {n}: empty line")
            break
        parts = line.split(",")
        if len(parts) != len(HEADER):
            raise DailyBarsError(f"{name} line {n}: expected {len(HEADER)} fields, found {len(parts)}: {line[:80]!r}")
        iso = parts[0].strip()
        try:
            day = dt.date.fromisoformat(iso)
            o, h, lo, c, v = map(float, parts[1:])
        except ValueError:
            raise DailyBarsError(f"{name} line {n}: {_bad_field(parts)}") from None
        if not (isfinite(o) and isfinite(h) and isfinite(lo) and isfinite(c) and isfinite(v)):
            raise DailyBarsError(f"{name} line {n}: {_bad_field(parts)}")
        if iso <= last:
            raise DailyBarsError(f"{name} line {n}: {iso} is not after the previous line's {last}")
        last = iso
        out.append(DailyBar(day, o, h, lo, c, v))
    return out


def _bad_field(parts: list[str]) -> str:
    """Which field of a line that failed to parse is wrong (the slow path, for the message)."""
    try:
        dt.date.fromisoformat(parts[0].strip())
    except ValueError:
        return f"{parts[0][:20]!r} is not a date (YYYY-MM-DD)"
    for col, raw in zip(HEADER[1:], parts[1:], strict=True):
        try:
            v = float(raw)
        except ValueError:
            return f"{col} {raw[:20]!r} is not a number"
        if not math.isfinite(v):
            return f"{col} {raw[:20]!r} is not a finite number"
    return "unreadable"  # pragma: no cover - only called after a failure


def daily_closes(bars: Iterable[DailyBar]) -> DailyCloses:
    """The closes the bias rules read; rows with a non-positive close are dropped, as the
    backtester's loader does."""
    kept = [b for b in bars if b.close > 0]
    return DailyCloses.from_dates([b.date for b in kept], [b.close for b in kept])


def list_daily(s3: Any, bucket: str, prefix: str = DAILY_PREFIX, *, page_size: int = 1000) -> dict[str, str]:
    """``{symbol: key}`` for every ``<prefix><SYMBOL>.csv`` object (paginated listing)."""
    out: dict[str, str] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        for obj in page.get("Contents", []):
            key = str(obj["Key"])
            rest = key[len(prefix) :]
            if "/" in rest or not rest.endswith(".csv") or len(rest) <= len(".csv"):
                continue
            out[rest[: -len(".csv")]] = key
    return out


def read_daily_object(s3: Any, bucket: str, key: str) -> list[DailyBar]:
    name = f"s3://{bucket}/{key}"
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
        size = int(obj.get("ContentLength") or 0)
        if size > _MAX_OBJECT_BYTES:
            raise DailyBarsError(f"{name}: {size} bytes is too large for a daily-bars file")
        body = obj["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise DailyBarsError(f"{name}: cannot read ({code})") from None
    except BotoCoreError as exc:
        raise DailyBarsError(f"{name}: cannot read ({type(exc).__name__})") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DailyBarsError(f"{name}: not UTF-8 text") from None
    return parse_daily_csv(text, name)


def read_daily(
    s3: Any, bucket: str, keys: Mapping[str, str], *, workers: int = 8
) -> dict[str, list[DailyBar] | DailyBarsError]:
    """Read and parse many objects on a few threads; each symbol gets its bars or its error."""

    def one(key: str) -> list[DailyBar] | DailyBarsError:
        try:
            return read_daily_object(s3, bucket, key)
        except DailyBarsError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, keys.values()))
    return dict(zip(keys, results, strict=True))


def parse_universe_csv(text: str, name: str) -> list[str]:
    """The universe's symbols (:func:`tfl.data.universe.parse_universe`, the data loader's rules);
    a list without a symbol is an error here: the bias would have nothing to count."""
    try:
        out = parse_universe(text)
    except UniverseError as exc:
        where = f"{name} line {exc.row + 1}" if exc.row is not None else name  # the header is line 1
        raise DailyBarsError(f"{where}: {exc}") from None
    if not out:
        raise DailyBarsError(f"{name}: lists no symbol")
    return out


def read_universe(s3: Any, bucket: str, key: str = UNIVERSE_KEY) -> list[str] | None:
    """The universe uploaded by ``tfl deploy --universe``, or None when there is none.

    Any other failure (access denied, a damaged file) raises :class:`DailyBarsError`: a list
    that exists but cannot be read must not silently become "every file in the bucket".
    """
    name = f"s3://{bucket}/{key}"
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read(_MAX_OBJECT_BYTES + 1)
    except (ClientError, BotoCoreError) as exc:
        code = aws_code(exc)
        if code in ("NoSuchKey", "404"):
            return None
        raise DailyBarsError(f"{name}: cannot read ({code})") from None
    if len(body) > _MAX_OBJECT_BYTES:
        raise DailyBarsError(f"{name}: too large for a universe file")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DailyBarsError(f"{name}: not UTF-8 text") from None
    return parse_universe_csv(text, name)
