"""`tfl trade` and friends end to end: JSON logs, bias input, bad input, the kill switch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TFL = str(Path(sys.executable).with_name("tfl"))
SYMS = "RELIANCE,TCS,HDFCBANK,ICICIBANK,SBIN,ITC,LT,AXISBANK,TATASTEEL,ADANIENT,BEL,TRENT,DLF,BHEL,SAIL,PNB"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("TFL_")}
HANG_GUARD = 3600  # seconds: only a process that hangs outright ever reaches it


def trade(
    nse: Path,
    journal: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    date: str = "2023-05-16",
    symbols: str = SYMS,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            TFL,
            "trade",
            "--world",
            "replay",
            "--data",
            str(nse),
            "--date",
            date,
            "--journal",
            str(journal),
            "--symbols",
            symbols,
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        timeout=HANG_GUARD,
        check=False,
    )


def records(text: str) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for line in text.splitlines():
        rec = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "event"} <= rec.keys()
        out.append(rec)
    return out


def test_logs_are_json_lines_with_a_heartbeat(nse_dir: Path, tmp_path: Path) -> None:
    j = tmp_path / "j.sqlite"
    res = trade(nse_dir, j, "--bias", "auto", "--speed", "20000", env={"TFL_LIVE__HEARTBEAT_SECONDS": "1"})
    assert res.returncode == 0, res.stderr
    recs = records(res.stdout)
    events = [r["event"] for r in recs]
    assert "session open" in events and "session closed" in events and "heartbeat" in events
    assert any(r["event"] == "trade closed" for r in recs)
    assert {r["level"] for r in recs} <= {"INFO", "WARNING", "ERROR", "FATAL"}
    assert records((tmp_path / "j.sqlite.log").read_text())  # the same lines go to the log file
    rep = subprocess.run(
        [TFL, "report", "--journal", str(j), "--date", "2023-05-16"], capture_output=True, text=True, check=True
    ).stdout
    assert "net P&L" in rep and "open positions left: none" in rep
    show = subprocess.run([TFL, "journal", "show", str(j)], capture_output=True, text=True, check=True).stdout
    assert "== session 2023-05-16" in show and "trades (" in show


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "no bias file"),
        ("{not json", "not valid JSON"),
        ('{"bias": "LONGS", "session": "2023-05-15"}', "dated"),
        ('{"bias": "BUY EVERYTHING", "session": "2023-05-16"}', "is not LONGS"),
    ],
)
def test_bad_or_missing_bias_means_no_trades(nse_dir: Path, tmp_path: Path, content: str | None, why: str) -> None:
    j = tmp_path / "j.sqlite"
    if content is not None:
        (tmp_path / "bias.json").write_text(content)
    res = trade(nse_dir, j)
    assert res.returncode == 0, res.stderr
    recs = records(res.stdout)
    warn = [r for r in recs if r["level"] == "WARNING" and "bias" in r["event"]]
    assert warn and why in json.dumps(warn)
    opened = next(r for r in recs if r["event"] == "session open")
    assert opened["bias"] == "NO_TRADES"
    assert not any(r["event"] == "trade closed" for r in recs)


def test_a_good_bias_file_is_traded(nse_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bias.json").write_text('{"bias": "LONGS", "session": "2023-05-16", "breadth_above": 70}')
    res = trade(nse_dir, tmp_path / "j.sqlite")
    recs = records(res.stdout)
    assert next(r for r in recs if r["event"] == "session open")["bias"] == "LONGS"
    assert any(r["event"] == "trade closed" for r in recs)


def test_corrupt_journal_is_refused_and_left_alone(nse_dir: Path, tmp_path: Path) -> None:
    j = tmp_path / "j.sqlite"
    j.write_bytes(b"\x00garbage" * 512)
    before = j.read_bytes()
    res = trade(nse_dir, j, "--bias", "auto")
    assert res.returncode == 2
    assert "not a usable SQLite journal" in res.stderr and "Traceback" not in res.stderr
    assert j.read_bytes() == before


def test_bad_settings_and_unsafe_modes_are_refused(nse_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[live]\nfeed_stale_secs = 5\n")
    res = trade(nse_dir, tmp_path / "j.sqlite", "--config", str(cfg))
    assert res.returncode == 2 and "live.feed_stale_secs" in res.stderr
    res = trade(nse_dir, tmp_path / "j.sqlite", "--set", "risk.allocation=bar")
    assert res.returncode == 2 and "only the backtester" in res.stderr
    res = subprocess.run(
        [
            TFL,
            "trade",
            "--world",
            "paper",
            "--data",
            str(nse_dir),
            "--date",
            "2023-05-16",
            "--journal",
            str(tmp_path / "p.sqlite"),
            "--bias",
            "BOTH",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    assert res.returncode == 2 and "research-only" in res.stderr
    # A journal started with one set of settings refuses another (one journal, one account).
    assert trade(nse_dir, tmp_path / "k.sqlite", "--bias", "auto").returncode == 0
    res = trade(nse_dir, tmp_path / "k.sqlite", "--bias", "auto", "--capital", "5000", date="2023-05-17")
    assert res.returncode == 2 and "backtest.capital" in res.stderr


def test_a_bad_data_file_skips_that_symbol(nse_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for kind in ("15min", "daily"):
        (data / kind).mkdir(parents=True)
        for f in (nse_dir / kind).glob("*.parquet"):
            (data / kind / f.name).symlink_to(f)
    shutil.copy(nse_dir / "nifty200.csv", data / "nifty200.csv")
    (data / "15min" / "TCS.parquet").unlink()
    (data / "15min" / "TCS.csv").write_text("datetime,open,high,low,close,volume\n2023-05-16 09:15,1,2,1,x,1\n")
    res = trade(data, tmp_path / "j.sqlite", "--bias", "auto")
    assert res.returncode == 0
    errors = [r for r in records(res.stdout) if r["level"] == "ERROR"]
    assert any("TCS.csv: row 1" in r["event"] for r in errors)


def test_kill_switch_flattens_and_stops_entries(nse_dir: Path, tmp_path: Path) -> None:
    """The trader dies mid-session (at its 12th bar boundary, counted, not timed) with positions
    open; the operator runs ``tfl halt``; the restarted trader flattens and takes no entries."""
    from tfl.core.events import Allocated, Halted, OrderPlaced, SessionClosed
    from tfl.core.orders import Leg
    from tfl.domain import ExitReason, RejectReason
    from tfl.live.journal import SqliteJournal, read_events
    from tfl.live.report import rebuild

    j = tmp_path / "j.sqlite"
    args = ("--date", "2020-12-07")
    syms = ("--symbols", SYMS + ",CANBK,NMDC,GAIL,BPCL")
    crash = {"TFL_FAULT_CRASH_AFTER": "12", "TFL_FAULT_CRASH_WHERE": "journal:SLOT"}
    first = trade(nse_dir, j, "--bias", "auto", env=crash, date=args[1], symbols=syms[1])
    assert first.returncode == -9, first.stderr  # killed at the 12th boundary (12:15)
    journal = SqliteJournal(j)
    held = sorted(rebuild(journal).book.positions)
    journal.close()
    assert held, "positions were open when the trader died"
    halt = subprocess.run(
        [TFL, "halt", "--journal", str(j), "--reason", "test"], capture_output=True, text=True, check=True
    )
    assert "kill switch set" in halt.stdout
    second = trade(nse_dir, j, "--bias", "auto", date=args[1], symbols=syms[1])
    assert second.returncode == 0, second.stderr
    assert [r for r in records(second.stdout) if r["level"] == "FATAL" and "halted" in r["event"]]
    journal = SqliteJournal(j)
    events = list(read_events(journal))
    state = rebuild(journal)
    journal.close()
    at = next(i for i, (_, ev) in enumerate(events) if isinstance(ev, Halted))
    after = [ev for _, ev in events[at:]]
    assert not [ev for ev in after if isinstance(ev, OrderPlaced) and ev.leg is Leg.ENTRY]  # no new entries
    allocs = [ev for ev in after if isinstance(ev, Allocated)]
    assert allocs and all(a.reject is RejectReason.KILL_SWITCH for a in allocs)  # setups were seen, and refused
    flattened = {t.symbol for t in state.book.trades if t.exit_reason is ExitReason.KILL_SWITCH}
    assert flattened == set(held)  # every open position was closed by the kill switch
    assert next(ev for ev in after if isinstance(ev, SessionClosed)).flat
