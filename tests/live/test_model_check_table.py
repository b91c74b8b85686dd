"""The running live-vs-model table: upserted by session (re-runs are idempotent), read back
exactly, and a verdict whose pooled mean and standard error equal those of the raw fills."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.cli.main import main
from tfl.live.model_table import (
    MIN_FILLS,
    DayRow,
    ModelTableError,
    read_table,
    table_text,
    upsert,
    verdict,
)

from live_helpers import replay

SYMBOLS = ["ASHOKLEY", "LT", "VEDL", "SAIL", "GAIL"]
DAY = dt.date(2021, 1, 8)


def row(session: str, samples: list[float], **kw: object) -> DayRow:
    """A day whose fills beyond the model are ``samples`` (bps), all stop/market fills."""
    n = len(samples)
    base = dict(
        session=session,
        bias="LONGS",
        live_trades=n // 2,
        model_trades=n // 2,
        matched=n // 2,
        missing=0,
        extra=0,
        fills=n,
        slipping_fills=n,
        assumed_bps=5.0,
        mean_real_bps=statistics.fmean(samples) + 5.0 if samples else None,
        mean_excess_bps=statistics.fmean(samples) if samples else None,
        sd_excess_bps=statistics.stdev(samples) if n >= 2 else None,
        worst_excess_bps=max(samples) if samples else None,
        excess_rupees=0.0,
        exits_differing=0,
        mean_exit_slots=0.0 if samples else None,
        live_pnl=-100.0,
        model_pnl=-90.0,
        live_charges=12.5,
        model_charges=12.0,
    )
    base.update(kw)
    return DayRow(**base)  # type: ignore[arg-type]


finite = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from(["2024-01-02", "2024-01-03", "2024-01-04"]), st.lists(finite, max_size=6)),
        min_size=1,
        max_size=8,
    )
)
def test_the_table_keeps_the_last_row_of_each_session(tmp_path_factory: pytest.TempPathFactory, writes) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("t") / "model-check.csv"
    last: dict[str, DayRow] = {}
    for session, samples in writes:
        r = row(session, samples)
        upsert(path, r)
        last[session] = r
        before = path.read_bytes()
        upsert(path, r)  # the same day compared again: the same bytes
        assert path.read_bytes() == before
    assert read_table(path) == [last[s] for s in sorted(last)]  # floats read back exactly
    assert path.read_text(encoding="utf-8") == table_text(list(last.values()))


def test_the_verdict_pools_the_raw_fills() -> None:
    days = [[1.0, 3.0, 8.0], [2.5], [-1.0, 4.0, 6.0, 7.5, 0.5], []]
    rows = [row(f"2024-01-0{i + 2}", s) for i, s in enumerate(days)]
    flat = [x for s in days for x in s]
    v = verdict(rows)
    assert v.fills == len(flat) and v.days == 4
    assert v.mean_excess_bps == pytest.approx(statistics.fmean(flat), abs=1e-12)
    assert v.se_bps == pytest.approx(statistics.stdev(flat) / math.sqrt(len(flat)), abs=1e-12)
    assert v.holds is None and "too few fills" in v.text  # 9 fills


def test_the_verdict_says_optimistic_pessimistic_or_holds() -> None:
    worse = [row(f"2024-02-{i + 10}", [4.0, 6.0, 5.0, 7.0, 3.0, 5.0]) for i in range(6)]  # 36 fills, mean 5
    v = verdict(worse)
    assert v.fills >= MIN_FILLS and v.holds is False
    assert "the backtest is optimistic by 5.0 bps a side" in v.text
    better = [row(f"2024-02-{i + 10}", [-4.0, -6.0, -5.0, -7.0, -3.0, -5.0]) for i in range(6)]
    assert "pessimistic by 5.0 bps" in verdict(better).text
    noise = [row(f"2024-02-{i + 10}", [-4.0, 4.0, -1.0, 1.0, 3.0, -3.0]) for i in range(6)]
    v = verdict(noise)
    assert v.holds is True and v.text.startswith("the slippage assumption holds")
    assert verdict([]).holds is None


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "other.csv"
    p.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ModelTableError, match="not a live-vs-model table"):
        upsert(p, row("2024-01-02", [1.0]))
    assert p.read_text(encoding="utf-8") == "a,b\n1,2\n"


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def journal(nse_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tfl.data.market import load_market
    from tfl.settings import Settings

    s = Settings()
    tmp = tmp_path_factory.mktemp("cli")
    replay(tmp, load_market(nse_dir, s, SYMBOLS), SYMBOLS, DAY, s)
    return tmp / "journal.sqlite"


def compare(*extra: str) -> int:
    return main(["compare", "--symbols", ",".join(SYMBOLS), *extra])


def test_compare_writes_the_table_once_per_day(
    journal: Path, nse_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "t.csv"
    args = ["--journal", str(journal), "--date", DAY.isoformat(), "--data", str(nse_dir), "--table", str(table)]
    assert compare(*args, "--out", str(tmp_path / "day.txt")) == 0
    out = capsys.readouterr().out
    assert "missing 0, extra 0" in out and "running table" in out
    first = table.read_bytes()
    assert compare(*args) == 0  # again: the same row, the same file
    assert table.read_bytes() == first
    (r,) = read_table(table)
    assert r.session == DAY.isoformat() and r.missing == r.extra == 0 and r.matched == r.model_trades > 0
    assert (tmp_path / "day.txt").read_text(encoding="utf-8").startswith(f"Live vs model {DAY}")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no journal", "no journal at"),
        ("no session", "has no session 2021-01-11"),
        ("no bars", "no 15-minute bars for 2030-01-02"),
    ],
)
def test_compare_bad_input_is_one_line_and_writes_nothing(
    case: str, message: str, journal: Path, nse_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "t.csv"
    path, day = str(journal), DAY.isoformat()
    if case == "no journal":
        path = str(tmp_path / "missing.sqlite")
    elif case == "no session":
        day = "2021-01-11"
    else:  # a session in the journal whose bars were never stored
        copy = tmp_path / "j.sqlite"
        copy.write_bytes(journal.read_bytes())
        _rename_session(copy, DAY.isoformat(), "2030-01-02")
        path, day = str(copy), "2030-01-02"
    code = compare("--journal", path, "--date", day, "--data", str(nse_dir), "--table", str(table))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not table.exists()
    assert case != "no journal" or not Path(path).exists()  # a read of a missing journal creates none


def _rename_session(path: Path, old: str, new: str) -> None:
    """Rewrite a journal with its session moved to another date, through the journal's own API."""
    import dataclasses

    from tfl.live.journal import SqliteJournal

    src = SqliteJournal(path)
    records = list(src.records())
    src.close()
    path.unlink()
    dst = SqliteJournal(path)
    for r in records:
        dst.append(dataclasses.replace(r, key=r.key.replace(old, new), session=new if r.session == old else r.session))
    dst.flush()
    dst.close()
