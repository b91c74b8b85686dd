"""`tfl data sync`: the daily bars the pre-market job needs, from a data directory to S3.

Runs on the instance after each close (``tfl data eod``), so the 08:45 job reads
yesterday's complete bars. Each symbol is one CSV object (:mod:`tfl.aws.daily_bars`);
an object whose content has not changed is not uploaded again (its SHA-256 is kept in
the object's metadata, because with KMS encryption the ETag is not a content hash).
Objects of symbols that are neither in the universe nor the index or VIX are reported,
never deleted: they may be an older universe's, and the operator decides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from tfl.aws.daily_bars import DailyBar, daily_key, format_daily_csv, list_daily
from tfl.data.bars import BarSeries
from tfl.data.market import Market
from tfl.settings import Settings

log = logging.getLogger("tfl.aws.sync")
_EPOCH = dt.date(1970, 1, 1)


@dataclass
class SyncResult:
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)  # daily/ objects of symbols the sync does not know


def daily_rows(series: BarSeries) -> list[DailyBar]:
    """A daily series as rows; ``series.day`` holds IST day numbers."""
    return [
        DailyBar(_EPOCH + dt.timedelta(days=int(d)), float(o), float(h), float(lo), float(c), float(v))
        for d, o, h, lo, c, v in zip(
            series.day.tolist(),
            series.open.tolist(),
            series.high.tolist(),
            series.low.tolist(),
            series.close.tolist(),
            series.volume.tolist(),
            strict=True,
        )
    ]


def sync_names(market: Market, settings: Settings) -> list[str]:
    """The universe plus the benchmark index and VIX: everything the bias reads."""
    extra = [settings.bias.benchmark_symbol, settings.bias.vix_symbol]
    return list(dict.fromkeys([*market.universe, *extra]))


def _stored_digest(s3: Any, bucket: str, key: str) -> str | None:
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return None
    return str(head.get("Metadata", {}).get("sha256", "")) or None


def sync_daily(
    market: Market,
    settings: Settings,
    s3: Any,
    bucket: str,
    *,
    progress: Callable[[str], None] | None = None,
) -> SyncResult:
    """Upload each symbol's daily bars whose content changed; symbols without data are reported."""
    result = SyncResult()
    names = sync_names(market, settings)
    result.stray = sorted(set(list_daily(s3, bucket)) - set(names))
    for name in names:
        series = market.daily.get(name)
        if series is None or len(series) == 0:
            result.missing.append(name)
            continue
        body = format_daily_csv(daily_rows(series)).encode("utf-8")
        digest = hashlib.sha256(body).hexdigest()
        key = daily_key(name)
        if _stored_digest(s3, bucket, key) == digest:
            result.unchanged.append(name)
        else:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv", Metadata={"sha256": digest})
            result.uploaded.append(name)
        if progress is not None:
            progress(name)
    log.info(
        "daily bars synced",
        extra={
            "fields": {
                "bucket": bucket,
                "uploaded": len(result.uploaded),
                "unchanged": len(result.unchanged),
                "missing": result.missing,
                "stray": result.stray,
            }
        },
    )
    return result
