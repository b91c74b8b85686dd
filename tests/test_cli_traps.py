"""The CLI as a new user meets it: every trap of issue 12 ends in one line and exit 2 (or,
for a reader that goes away, quietly), creates no file, and the help says what to type."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tfl.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main(["data", "synth", "--out", str(out), "--symbols", "6", "--days", "140", "--seed", "5"]) == 0
    return out


def _run(
    *args: str,
    env: dict[str, str] | None = None,
    stdout: int = subprocess.PIPE,
    stdin: int | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m tfl ARGS`` from this checkout, in a new session (no controlling terminal)."""
    full_env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tfl", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=stdin,
        input=input,
        text=True,
        env=full_env,
        check=False,
        start_new_session=True,
    )


# --------------------------------------------------------------------------- journals to read


@pytest.mark.parametrize(
    "words",
    [
        ["report", "--journal", "{j}", "--date", "2023-05-16"],
        ["journal", "show", "{j}"],
        ["journal", "export", "{j}", "--out", "{d}/trades.csv"],
    ],
)
def test_reading_a_missing_journal_is_refused_and_creates_nothing(
    words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "nope.sqlite"
    argv = [w.format(j=journal, d=tmp_path) for w in words]
    assert main(argv) == 2
    assert "no such journal" in _one_line(capsys.readouterr().err)
    assert sorted(tmp_path.iterdir()) == []  # no journal, no side file, no export


@pytest.mark.parametrize(
    "words",
    [
        ["report", "--journal", "{j}", "--date", "2023-05-16"],
        ["journal", "show", "{j}"],
        ["journal", "export", "{j}", "--out", "{d}/trades.csv"],
    ],
)
@pytest.mark.parametrize("content", [b"", b"some notes, not a journal\n"])
def test_reading_a_file_that_is_not_a_journal_changes_nothing(
    words: list[str], content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(content)
    argv = [w.format(j=journal, d=tmp_path) for w in words]
    assert main(argv) == 2
    assert "journal" in _one_line(capsys.readouterr().err)
    assert journal.read_bytes() == content  # not turned into a journal
    assert sorted(tmp_path.iterdir()) == [journal]  # no side file, no export


def test_an_existing_journal_still_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tfl.live.journal import SqliteJournal

    path = tmp_path / "j.sqlite"
    SqliteJournal(path).close()
    assert main(["report", "--journal", str(path), "--date", "2023-05-16"]) == 0
    assert "TFL daily report 2023-05-16" in capsys.readouterr().out
    assert main(["journal", "export", str(path), "--out", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").read_text().startswith("symbol,")


# --------------------------------------------------------------------------- paths to write


def test_out_paths_that_cannot_work_are_one_line(
    synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tfl.live.journal import SqliteJournal

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    bt = ["backtest", "--data", str(synth), "--start", "2023-03-01", "--end", "2023-03-31"]
    assert main([*bt, "--out", str(a_file)]) == 2
    assert "exists and is not a folder" in _one_line(capsys.readouterr().err)
    assert main([*bt, "--out", str(a_file / "sub")]) == 2  # a folder to be made inside a file
    assert "is a file, not a folder" in _one_line(capsys.readouterr().err)
    assert main(["data", "synth", "--out", str(a_file)]) == 2
    assert "exists and is not a folder" in _one_line(capsys.readouterr().err)
    fetch = ["data", "fetch", "--symbols", "TCS", "--from", "2024-01-01", "--to", "2024-01-31", "--resolution", "D"]
    assert main([*fetch, "--out", str(a_file)]) == 2  # refused before any FYERS call
    assert "exists and is not a folder" in _one_line(capsys.readouterr().err)
    assert main(["data", "symbols", "--out", str(tmp_path)]) == 2
    assert "is a folder" in _one_line(capsys.readouterr().err)
    assert a_file.read_text() == "x"

    journal = tmp_path / "j.sqlite"
    SqliteJournal(journal).close()
    missing = tmp_path / "no" / "such" / "trades.csv"
    assert main(["journal", "export", str(journal), "--out", str(missing)]) == 2
    assert "does not exist" in _one_line(capsys.readouterr().err)
    assert main(["journal", "export", str(journal), "--out", str(tmp_path)]) == 2
    assert "is a folder" in _one_line(capsys.readouterr().err)
    ok = tmp_path / "t.csv"
    assert main(["journal", "export", str(journal), "--out", str(ok), "--orders", str(missing)]) == 2
    assert "--orders" in _one_line(capsys.readouterr().err)
    assert not ok.exists()  # refused before anything was written
    assert not (tmp_path / "no").exists()


def test_trade_journal_in_a_missing_folder_is_refused_before_any_file(
    synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "no" / "j.sqlite"
    argv = ["trade", "--world", "replay", "--data", str(synth), "--date", "2023-03-01", "--journal", str(journal)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"tfl: error: --journal {journal}: folder {journal.parent} does not exist"
    assert "Traceback" not in err  # the trader's FATAL log line follows, by design (the alarm reads it)
    assert not journal.parent.exists()


def test_empty_date_range_is_refused(synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bt"
    # 2023-03-04 and 05 are a Saturday and a Sunday: no session
    argv = ["backtest", "--data", str(synth), "--start", "2023-03-04", "--end", "2023-03-05", "--out", str(out)]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert "no trading session with data from 2023-03-04 to 2023-03-05" in line
    assert not out.exists()  # no report of nothing ("Sharpe None")
    audit = ["audit", "lookahead", "--data", str(synth), "--start", "2023-03-04", "--end", "2023-03-05"]
    assert main(audit) == 2
    assert "no trading session" in _one_line(capsys.readouterr().err)


def test_a_reader_that_goes_away_ends_the_command_quietly(synth: Path, tmp_path: Path) -> None:
    """`tfl backtest ... | head -1`: the pipe's read end is closed before the command starts,
    so its first write fails (deterministically, whatever the machine's speed)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    out = tmp_path / "bt"
    try:
        proc = _run(
            "backtest", "--data", str(synth), "--start", "2023-03-01", "--end", "2023-03-31", "--out", str(out),
            stdout=write_end,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr and "Exception" not in proc.stderr
    assert (out / "summary.json").exists()  # the work was done before the summary was printed


def test_auth_secret_with_stdin_closed_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "secrets.json"
    cfg = ["--set", f"fyers.secrets_file={store}"]
    env = {"TFL_FYERS_CLIENT_ID": "ABCD1234-100"}
    # no terminal (a new session has none) and stdin at its end
    prompt = _run("auth", "secret", *cfg, env=env, stdin=subprocess.DEVNULL)
    assert prompt.returncode == 2
    assert "pipe it in with --stdin" in _one_line(prompt.stderr)
    piped = _run("auth", "secret", "--stdin", *cfg, env=env, stdin=subprocess.DEVNULL)
    assert piped.returncode == 2
    assert "no secret given" in _one_line(piped.stderr)
    assert not store.exists()
    given = _run("auth", "secret", "--stdin", *cfg, env=env, input="s3cret\n")
    assert given.returncode == 0, given.stderr
    assert json.loads(store.read_text())["secret_key"] == "s3cret"


def test_read_secret_with_no_stdin_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    from tfl.cli.fyers_cmds import read_secret

    monkeypatch.setattr(sys, "stdin", None)  # `tfl auth secret --stdin <&-`: Python has no stdin
    with pytest.raises(ValueError, match="no secret given"):
        read_secret(True)


# --------------------------------------------------------------------------- the bias of a replayed session


def test_replay_without_a_bias_says_so_at_start_and_still_trades_nothing(
    synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tfl.live.journal import SqliteJournal, read_events
    from tfl.live.report import day_report

    day = "2023-06-01"
    journal = tmp_path / "j.sqlite"
    argv = ["trade", "--world", "replay", "--data", str(synth), "--date", day, "--journal", str(journal)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "tfl: ERROR: no --bias and no bias file" in err
    assert "--bias auto" in err and f"tfl bias --data {synth} --date {day} >" in err
    j = SqliteJournal(journal)
    rep = day_report(list(read_events(j)), dt.date.fromisoformat(day))
    j.close()
    assert rep.bias.startswith("NO_TRADES (no bias file") and not rep.trades  # honest: nothing traded

    # The fix it names works: the record `tfl bias` prints is a bias file the trader accepts.
    assert main(["bias", "--data", str(synth), "--date", day]) == 0
    record = json.loads(capsys.readouterr().out)
    journal2 = tmp_path / "k" / "j.sqlite"
    journal2.parent.mkdir()
    (journal2.parent / "bias.json").write_text(json.dumps(record))
    argv2 = ["trade", "--world", "replay", "--data", str(synth), "--date", day, "--journal", str(journal2)]
    assert main(argv2) == 0
    assert "no --bias" not in capsys.readouterr().err
    j = SqliteJournal(journal2)
    rep = day_report(list(read_events(j)), dt.date.fromisoformat(day))
    j.close()
    assert rep.bias.startswith(f"{record['bias']} (read from ")


def test_bias_names_the_index_smas_by_their_periods(synth: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An independent computation: the mean of the benchmark's last 30 and 100 daily closes
    up to the previous session, from the file."""
    from tfl.data.loader import read_raw
    from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY

    day = dt.date(2023, 6, 1)
    assert main(["bias", "--data", str(synth), "--date", day.isoformat()]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert "index_sma_long" not in rec and "index_sma_short" not in rec
    raw = read_raw(synth / "daily" / "NIFTY200_INDEX.parquet")
    days = (raw.ts + IST_OFFSET_S) // SECONDS_PER_DAY
    closes = raw.close[days < (day - dt.date(1970, 1, 1)).days]
    assert rec["previous_session"] < day.isoformat()
    assert rec["index_sma30"] == pytest.approx(float(np.mean(closes[-30:])), rel=1e-12)
    assert rec["index_sma100"] == pytest.approx(float(np.mean(closes[-100:])), rel=1e-12)


# --------------------------------------------------------------------------- help and version


def test_backtest_help_has_a_description_defaults_dates_and_the_layout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["backtest", "--help"])
    assert ei.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "Backtest the strategy" in text
    assert "YYYY-MM-DD" in text
    assert "(default: backtest.bias, auto)" in text and "(default: costs.model, nse_intraday)" in text
    assert "15min/SYMBOL.parquet|csv" in text and "daily/SYMBOL.parquet|csv" in text
    with pytest.raises(SystemExit):
        main(["data", "synth", "--help"])
    assert "(default: 40)" in " ".join(capsys.readouterr().out.split())


def test_data_help_documents_the_folder_layout(capsys: pytest.CaptureFixture[str]) -> None:
    from tfl.data.loader import DAILY_DIR, INTRADAY_DIR

    with pytest.raises(SystemExit):
        main(["data", "--help"])
    out = capsys.readouterr().out
    assert f"DIR/{INTRADAY_DIR}/SYMBOL" in out and f"DIR/{DAILY_DIR}/SYMBOL" in out and "Symbol" in out


def test_version_comes_from_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"tfl {declared}"


# --------------------------------------------------------------------------- data check


def _bars(path: Path, rows: list[tuple[str, float]]) -> None:
    lines = ["datetime,open,high,low,close,volume"]
    lines += [f"{t},{c},{c + 1},{c - 1},{c},100" for t, c in rows]
    path.write_text("\n".join(lines) + "\n")


def _session(day: str, skip: tuple[str, ...] = ()) -> list[str]:
    start = dt.datetime.fromisoformat(f"{day} 09:15")
    times = [(start + dt.timedelta(minutes=15 * k)).strftime("%Y-%m-%d %H:%M") for k in range(25)]
    return [t for t in times if t[-5:] not in skip]


def test_only_defects_lists_the_files_that_differ_from_the_market(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five files, three days. Every file has a Muhurat bar at 18:15 on day 2 and lacks
    11:00-11:30 on day 3 (a halt): the market's, not defects. On top: B repeats a row with other
    values, C lacks 10:00 on day 1 that the others have, D repeats a row exactly (dropped
    without loss). Only B and C are defects."""
    from tfl.data.check import check_dir

    (tmp_path / "15min").mkdir()
    halt = ("11:00", "11:15", "11:30")
    base = _session("2024-01-01") + _session("2024-01-02") + ["2024-01-02 18:15"] + _session("2024-01-03", halt)
    for sym in "ABCDE":
        times = list(base)
        if sym == "C":
            times.remove("2024-01-01 10:00")
        rows = [(t, 100.0 + i) for i, t in enumerate(times)]
        if sym == "B":
            rows.append(("2024-01-01 09:30", 555.0))
        if sym == "D":
            rows.append(rows[3])
        _bars(tmp_path / "15min" / f"{sym}.csv", rows)

    reports = {r.symbol: r for r in check_dir(tmp_path)}
    assert {s: r.defects for s, r in reports.items()} == {"A": 0, "B": 1, "C": 1, "D": 0, "E": 0}
    assert reports["A"].outside_session == 1 and reports["A"].missing_slots == 3 == reports["A"].market_slots
    assert reports["C"].missing_slots == 4 and reports["C"].own_slots == 1
    assert reports["D"].duplicates == 1 and reports["D"].differing_duplicates == 0
    assert reports["B"].differing_duplicates == 1

    assert main(["data", "check", str(tmp_path), "--only-defects"]) == 0
    listed = [ln.split()[1] for ln in capsys.readouterr().out.splitlines() if ln.startswith("15min ")]
    assert listed == ["B", "C"]
    assert main(["data", "check", str(tmp_path)]) == 0
    listed = [ln.split()[1] for ln in capsys.readouterr().out.splitlines() if ln.startswith("15min ")]
    assert listed == ["A", "B", "C", "D", "E"]


# --------------------------------------------------------------------------- progress


def test_indicators_advance_per_symbol_and_match_the_one_step_preparation(synth: Path) -> None:
    from tfl.backtest.run import prepare_each
    from tfl.backtest.signals import prepare_symbols
    from tfl.data.market import load_market
    from tfl.settings import Settings

    s = Settings()
    m = load_market(synth, s)
    pairs = [(m.intraday[sym], m.daily.get(sym)) for sym in m.universe]
    ticks: list[int] = []
    got = prepare_each(pairs, s, False, ticks.append)
    assert ticks == [1] * len(pairs)
    want = prepare_symbols(pairs, s)
    for a, b in zip(got, want, strict=True):
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(x, np.ndarray):
                assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f.name
            elif f.name == "bars":
                assert x is y  # the loaded series itself, not a copy
            else:
                assert x == y, f.name


def test_loading_and_the_audit_draw_bars_only_when_asked(synth: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tfl.backtest.audit import audit_lookahead
    from tfl.backtest.run import BacktestRequest
    from tfl.data.market import _run_jobs, load_market
    from tfl.settings import Settings

    s = Settings()
    load_market(synth, s)
    assert capsys.readouterr().err == ""
    m = load_market(synth, s, show_progress=True)
    assert "load" in capsys.readouterr().err
    done: list[int] = []
    jobs = {sym: (lambda sym=sym: m.intraday[sym]) for sym in m.intraday}
    assert list(_run_jobs(jobs, done.append)) == list(jobs)
    assert done == [1] * len(jobs)  # one tick per file read

    req = BacktestRequest(synth, dt.date(2023, 3, 1), dt.date(2023, 4, 28), s)
    audit_lookahead(req, m, samples=2, show_progress=True)
    assert "audit" in capsys.readouterr().err
