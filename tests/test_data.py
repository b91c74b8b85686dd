"""Loading, cleaning and checking bar files: the shared Parquet layout, CSV, and bad files."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfl.data.bars import sorted_unique
from tfl.data.check import check_dir
from tfl.data.loader import DataError, clean_daily, clean_intraday, read_raw
from tfl.data.market import load_market
from tfl.settings import Settings
from tfl.timeutil import IST, iso_ist


def write_parquet(path: Path, stamps: list[str], rows: list[tuple[float, float, float, float, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = pa.table(
        {
            "datetime": pa.array(np.array(stamps, dtype="datetime64[us]")),
            "open": [r[0] for r in rows],
            "high": [r[1] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[3] for r in rows],
            "volume": pa.array([r[4] for r in rows], type=pa.int64()),
        }
    )
    pq.write_table(t, path)


def test_parquet_dedupe_sort_and_session_filter(tmp_path: Path) -> None:
    p = tmp_path / "X.parquet"
    write_parquet(
        p,
        ["2024-01-02T09:30", "2024-01-02T09:15", "2024-01-02T09:30", "2024-01-02T09:00", "2024-01-02T15:30"],
        [(2, 3, 1, 2, 10), (1, 2, 0.5, 1.5, 10), (9, 9, 9, 9, 99), (1, 1, 1, 1, 1), (5, 5, 5, 5, 5)],
    )
    s = clean_intraday(read_raw(p), "X", 555, 915)
    assert [iso_ist(int(t)) for t in s.ts] == ["2024-01-02T09:15:00+05:30", "2024-01-02T09:30:00+05:30"]
    assert s.open.tolist() == [1.0, 2.0]  # the first of the duplicates is kept


def test_daily_0530_stamps_belong_to_their_calendar_date(tmp_path: Path) -> None:
    p = tmp_path / "D.parquet"
    write_parquet(
        p,
        ["2024-01-02T05:30", "2024-01-03T05:30", "2024-01-03T05:30"],
        [(1, 2, 1, 1.5, 5), (2, 3, 1, 2.5, 5), (2, 3, 1, 2.5, 5)],
    )
    d = clean_daily(read_raw(p), "D")
    assert len(d) == 2
    assert [dt.datetime.fromtimestamp(int(t), IST).date().isoformat() for t in d.ts] == ["2024-01-02", "2024-01-03"]


def test_csv_with_iso_and_epoch_times(tmp_path: Path) -> None:
    iso = tmp_path / "A.csv"
    iso.write_text(
        "datetime,open,high,low,close,volume\n2024-01-02 09:15:00,1,2,0.5,1.5,10\n"
        "2024-01-02T09:30:00+05:30,1.5,2,1,1.8,10\n"
    )
    epoch = tmp_path / "B.csv"
    e = int(dt.datetime(2024, 1, 2, 9, 15, tzinfo=IST).timestamp())
    epoch.write_text(f"timestamp,open,high,low,close,volume\n{e},1,2,0.5,1.5,10\n{(e + 900) * 1000},1.5,2,1,1.8,10\n")
    a = clean_intraday(read_raw(iso), "A", 555, 915)
    b = clean_intraday(read_raw(epoch), "B", 555, 915)
    assert a.ts.tolist() == b.ts.tolist() == [e, e + 900]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("datetime,open,high,low,close,volume\n2024-01-02 09:15,1,2,x,1.5,10\n", "row 1: low 'x' is not a number"),
        (
            "datetime,open,high,low,close,volume\n2024-01-02 09:15,1,2,1,1.5,10\nyesterday,1,2,1,1,1\n",
            "row 2: time 'yesterday'",
        ),
        ("datetime,open,high,close,volume\n2024-01-02 09:15,1,2,1.5,10\n", "missing column(s): low"),
        ("when,open,high,low,close,volume\n", "no time column"),
        ("datetime,open,high,low,close,volume\n2024-01-02 09:15,1,2\n", "row 1: expected 6 fields"),
        ("datetime,open,high,low,close,volume\n2024-01-02 09:15,1,inf,1,1.5,10\n", "row 1: high is not a finite"),
        ("", "empty file"),
    ],
)
def test_bad_csv_names_file_row_and_problem(tmp_path: Path, content: str, needle: str) -> None:
    p = tmp_path / "BAD.csv"
    p.write_text(content)
    with pytest.raises(DataError) as ei:
        read_raw(p)
    msg = str(ei.value)
    assert str(p) in msg and needle in msg and "\n" not in msg


def test_bad_parquet_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "X.parquet"
    p.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_raw(p)


def test_market_goes_on_without_a_bad_file(tmp_path: Path, nse_dir: Path) -> None:
    data = tmp_path / "data"
    for kind in ("15min", "daily"):
        (data / kind).mkdir(parents=True)
        for sym in ("RELIANCE", "TCS", "NIFTY200_INDEX", "INDIAVIX"):
            src = nse_dir / kind / f"{sym}.parquet"
            if src.exists():
                shutil.copy(src, data / kind / src.name)
    (data / "15min" / "BROKEN.csv").write_text("datetime,open,high,low,close,volume\n2024-01-02 09:15,1,2,1,?,1\n")
    shutil.copy(nse_dir / "daily" / "TCS.parquet", data / "daily" / "BROKEN.parquet")
    (data / "universe.csv").write_text("Symbol\nRELIANCE\nTCS\nBROKEN\n")
    m = load_market(data, Settings())
    assert sorted(m.intraday) == ["RELIANCE", "TCS"]
    assert len(m.problems) == 1
    assert "BROKEN.csv: row 1: close '?' is not a number" in m.problems[0]
    assert "continuing with the other symbols" in m.problems[0]


def test_data_check_on_the_shared_data_finds_the_documented_defects(nse_dir: Path) -> None:
    reports = {(r.kind, r.symbol): r for r in check_dir(nse_dir)}
    assert len(reports) == 172 + 165
    assert not [r for r in reports.values() if r.error]
    daily_dups = sum(1 for (k, _), r in reports.items() if k == "daily" and r.duplicates >= 1)
    assert daily_dups > 150  # "the last daily row of most files is duplicated"
    assert max(r.duplicates for (k, _), r in reports.items() if k == "15min") == 25
    outside = sum(r.outside_session for (k, _), r in reports.items() if k == "15min")
    assert 5000 < outside < 6000  # "about 5,400"
    bad = sum(r.bad_ohlc for (k, _), r in reports.items() if k == "15min")
    assert 150 < bad < 300  # "about 220"
    assert reports[("daily", "INDIAVIX")].non_positive == 2
    # "48 symbol-days are missing inside files' own date ranges"
    assert sum(r.missing_days for r in reports.values()) == 48
    assert reports[("daily", "NIFTY200_INDEX")].missing_days == 1  # 2020-08-10
    assert reports[("15min", "NIFTY_200")].last == "2025-07-23"


def test_last_bar_time_reads_only_the_time_column_and_agrees_with_the_loader(nse_dir: Path, tmp_path: Path) -> None:
    """The trader's freshness check before the open reads one column; it must see what a full read sees."""
    from tfl.data.loader import last_bar_time, read_raw

    for sub in ("15min", "daily"):
        for path in sorted((nse_dir / sub).glob("*.parquet"))[:5]:
            assert last_bar_time(path) == int(read_raw(path).ts.max()), path
    csv_file = tmp_path / "X.csv"
    csv_file.write_text("datetime,open,high,low,close,volume\n2024-05-16 09:15:00,1,2,0.5,1.5,10\n")
    assert last_bar_time(csv_file) == int(read_raw(csv_file).ts.max())
    empty = tmp_path / "E.csv"
    empty.write_text("datetime,open,high,low,close,volume\n")
    assert last_bar_time(empty) is None


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Kolkata"])
def test_time_columns_of_every_arrow_type_read_alike(tmp_path: Path, unit: str, tz: str | None) -> None:
    """Timestamps in any unit, zoned or naive (naive = IST), dates as date32 and date64, in
    several chunks: the same epoch seconds as Python's own datetime arithmetic gives."""
    moments = [dt.datetime(2024, 1, 2, 9, 15), dt.datetime(2024, 1, 2, 9, 30), dt.datetime(2024, 1, 3, 15, 15)]
    want = [int(m.replace(tzinfo=IST).timestamp()) for m in moments]
    values = moments if tz is None else [m.replace(tzinfo=IST).astimezone(dt.UTC) for m in moments]
    col = pa.chunked_array([pa.array(values[:1], pa.timestamp(unit, tz)), pa.array(values[1:], pa.timestamp(unit, tz))])
    n = len(moments)
    table = pa.table({"datetime": col, "open": [1.0] * n, "high": [2.0] * n, "low": [0.5] * n, "close": [1.5] * n,
                      "volume": pa.array([10] * n, pa.int64())})  # fmt: skip
    p = tmp_path / "T.parquet"
    pq.write_table(table, p)
    assert read_raw(p).ts.tolist() == want


@pytest.mark.parametrize("kind", [pa.date32(), pa.date64()])
def test_date_columns_are_ist_midnights(tmp_path: Path, kind: pa.DataType) -> None:
    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    table = pa.table({"date": pa.array(days, kind), "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
                      "close": [1.5, 1.5], "volume": pa.array([10, 10], pa.int64())})  # fmt: skip
    p = tmp_path / "D.parquet"
    pq.write_table(table, p)
    assert read_raw(p).ts.tolist() == [int(dt.datetime.combine(d, dt.time(), IST).timestamp()) for d in days]


@given(st.lists(st.integers(-(2**40), 2**40), max_size=60))
def test_sorted_unique_is_numpys_unique(values: list[int]) -> None:
    a = np.array(values, dtype=np.int64)
    assert sorted_unique(a).tolist() == np.unique(a).tolist()
