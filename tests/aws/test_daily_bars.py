"""The daily-bars CSV objects: exact round trip, clear errors, paginated listing and reading from S3."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tfl.aws.daily_bars import (
    DailyBar,
    DailyBarsError,
    daily_closes,
    daily_key,
    format_daily_csv,
    list_daily,
    parse_daily_csv,
    read_daily,
)

D = dt.date(2024, 5, 13)
ROWS = [
    DailyBar(D, 101.05, 103.1, 100.0, 102.35000000000001, 123456.0),
    DailyBar(D + dt.timedelta(days=1), 0.1 + 0.2, 1e-7, 1 / 3, 2 / 3, 0.5),
    DailyBar(D + dt.timedelta(days=2), 24000.15, 24100.0, 23950.55, 24005.7, 0.0),
]


def test_round_trip_is_exact_to_the_bit() -> None:
    text = format_daily_csv(ROWS)
    assert text.splitlines()[0] == "date,open,high,low,close,volume"
    assert text.splitlines()[1] == "2024-05-13,101.05,103.1,100.0,102.35000000000001,123456"
    assert text.endswith("\n")
    assert parse_daily_csv(text, "x") == ROWS
    closes = daily_closes(parse_daily_csv(text, "x"))
    assert list(closes.closes) == [r.close for r in ROWS]
    assert list(closes.days) == [(r.date - dt.date(1970, 1, 1)).days for r in ROWS]


def test_format_refuses_unordered_or_non_finite_rows() -> None:
    with pytest.raises(ValueError, match="out of order"):
        format_daily_csv([ROWS[1], ROWS[0]])
    with pytest.raises(ValueError, match="not a finite number"):
        format_daily_csv([DailyBar(D, float("nan"), 1, 1, 1, 1)])


def test_non_positive_closes_are_dropped_like_the_backtester_loader() -> None:
    bars = [DailyBar(D, 1, 1, 1, 10.0, 0), DailyBar(D + dt.timedelta(days=1), 1, 1, 1, -1.0, 0)]
    assert list(daily_closes(bars).closes) == [10.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "s3://b/daily/X.csv line 1: expected the header"),
        ("date,close\n", "line 1: expected the header"),
        ("date,open,high,low,close,volume\n2024-05-13,1,2,3,4\n", "line 2: expected 6 fields, found 5"),
        ("date,open,high,low,close,volume\n2024-5-13x,1,2,3,4,5\n", "line 2: '2024-5-13x' is not a date"),
        ("date,open,high,low,close,volume\n2024-05-13,1,2,3,4,5\n2024-05-14,1,2,abc,4,5\n", "line 3: low 'abc'"),
        ("date,open,high,low,close,volume\n2024-05-13,1,2,3,inf,5\n", "line 2: close 'inf' is not a finite"),
        (
            "date,open,high,low,close,volume\n2024-05-14,1,2,3,4,5\n2024-05-13,1,2,3,4,5\n",
            "line 3: 2024-05-13 is not after the previous line's 2024-05-14",
        ),
        ("date,open,high,low,close,volume\n2024-05-13,1,2,3,4,5\n\n2024-05-14,1,2,3,4,5\n", "line 3: empty line"),
    ],
)
def test_errors_name_the_object_and_the_line(text: str, message: str) -> None:
    with pytest.raises(DailyBarsError) as ei:
        parse_daily_csv(text, "s3://b/daily/X.csv")
    assert message in str(ei.value)
    assert str(ei.value).startswith("s3://b/daily/X.csv line ")


def test_trailing_blank_lines_and_a_bom_are_accepted() -> None:
    text = "\ufeff" + format_daily_csv(ROWS) + "\n\n"
    assert parse_daily_csv(text, "x") == ROWS


def test_listing_is_paginated_and_reading_is_concurrent(data_bucket: tuple[Any, str]) -> None:
    s3, bucket = data_bucket
    for sym in ("AAA", "BBB", "CCC", "DDD", "EEE"):
        s3.put_object(Bucket=bucket, Key=daily_key(sym), Body=format_daily_csv(ROWS).encode())
    s3.put_object(Bucket=bucket, Key="daily/BAD.csv", Body=b"date,open,high,low,close,volume\nnope\n")
    s3.put_object(Bucket=bucket, Key="daily/notes.txt", Body=b"ignored")
    s3.put_object(Bucket=bucket, Key="daily/sub/FFF.csv", Body=b"ignored")
    s3.put_object(Bucket=bucket, Key="exports/2024-05-13/trades.csv", Body=b"ignored")
    keys = list_daily(s3, bucket, page_size=2)
    assert keys == {s: f"daily/{s}.csv" for s in ("AAA", "BAD", "BBB", "CCC", "DDD", "EEE")}
    got = read_daily(s3, bucket, {**keys, "GONE": "daily/GONE.csv"}, workers=3)
    assert all(got[s] == ROWS for s in ("AAA", "BBB", "CCC", "DDD", "EEE"))
    assert isinstance(got["BAD"], DailyBarsError)
    assert str(got["BAD"]) == f"s3://{bucket}/daily/BAD.csv line 2: expected 6 fields, found 1: 'nope'"
    assert isinstance(got["GONE"], DailyBarsError)
    assert str(got["GONE"]) == f"s3://{bucket}/daily/GONE.csv: cannot read (NoSuchKey)"
