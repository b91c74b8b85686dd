"""`tfl trade` and friends end to end: JSON logs, bias input, bad input, the kill switch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TFL = str(Path(sys.executable).with_name("tfl"))
SYMS = "RELIANCE,TCS,HDFCBANK,ICICIBANK,SBIN,ITC,LT,AXISBANK,TATASTEEL,ADANIENT,BEL,TRENT,DLF,BHEL,SAIL,PNB"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("TFL_")}


def trade(
    nse: Path, journal: Path, *extra: str, env: dict[str, str] | None = None, date: str = "2023-05-16"
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
            SYMS,
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        timeout=300,
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
    j = tmp_path / "j.sqlite"
    p = subprocess.Popen(
        [
            TFL,
            "trade",
            "--world",
            "replay",
            "--data",
            str(nse_dir),
            "--date",
            "2020-12-07",
            "--journal",
            str(j),
            "--symbols",
            SYMS + ",CANBK,NMDC,GAIL,BPCL",
            "--bias",
            "auto",
            "--speed",
            "2500",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "j.sqlite.pid").exists():
        time.sleep(0.1)
    time.sleep(4.0)  # about 2.8 market hours in
    halt = subprocess.run(
        [TFL, "halt", "--journal", str(j), "--reason", "test"], capture_output=True, text=True, check=True
    )
    assert "kill switch set" in halt.stdout
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    recs = records(out)
    halted = [r for r in recs if r["level"] == "FATAL" and "halted" in r["event"]]
    assert halted
    res = subprocess.run(
        [TFL, "journal", "export", str(j), "--out", str(tmp_path / "t.csv")], check=True, capture_output=True, text=True
    )
    assert res.returncode == 0
    from tfl.live.journal import SqliteJournal

    journal = SqliteJournal(j)
    events = list(journal.events())
    halt_ts = next(e.ts for e in events if e.kind == "HALT")
    assert not [e for e in events if e.kind == "ALLOC" and e.ts > halt_ts]  # no new entries after the halt
    assert next(e for e in events if e.kind == "SESSION_CLOSE").data["flat"] is True
