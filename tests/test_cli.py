"""The `tfl` command end to end: help, synth, backtest on synthetic data, bias, errors."""

from __future__ import annotations

import csv
import filecmp
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfl.cli.main import main

SUBCOMMANDS = [
    [],
    ["data"],
    ["data", "check"],
    ["data", "synth"],
    ["bias"],
    ["backtest"],
    ["audit"],
    ["audit", "lookahead"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS)
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main([*words, "--help"])
    assert ei.value.code == 0
    assert "usage: tfl" in capsys.readouterr().out


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main(["data", "synth", "--out", str(out), "--symbols", "12", "--days", "260", "--seed", "3"]) == 0
    return out


def test_synth_is_deterministic(synth_dir: Path, tmp_path: Path) -> None:
    assert main(["data", "synth", "--out", str(tmp_path), "--symbols", "12", "--days", "260", "--seed", "3"]) == 0
    for kind in ("15min", "daily"):
        for f in sorted((synth_dir / kind).iterdir()):
            assert filecmp.cmp(f, tmp_path / kind / f.name, shallow=False), f.name
    other = tmp_path / "other"
    main(["data", "synth", "--out", str(other), "--symbols", "12", "--days", "260", "--seed", "4"])
    assert not filecmp.cmp(synth_dir / "15min" / "SYN001.parquet", other / "15min" / "SYN001.parquet", shallow=False)


def test_synth_market_is_clean_and_trades(synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(synth_dir)]) == 0
    out = capsys.readouterr().out
    assert "duplicates 0, bad OHLC 0, non-positive 0, outside session 0" in out
    rc = main(
        [
            "backtest",
            "--data",
            str(synth_dir),
            "--start",
            "2023-03-01",
            "--end",
            "2023-12-31",
            "--out",
            str(tmp_path / "bt"),
        ]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "bt" / "summary.json").read_text())
    assert summary["trades"] > 20
    assert summary["bias_days"]["LONGS"] > 0 and summary["bias_days"]["SHORTS"] > 0
    with (tmp_path / "bt" / "trades.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["side"] for r in rows} == {"LONG", "SHORT"}
    assert all(r["entry_time"].endswith("+05:30") for r in rows)
    for col in (
        "symbol",
        "side",
        "entry_time",
        "entry_price",
        "qty",
        "exit_time",
        "exit_price",
        "exit_reason",
        "pnl",
        "r_multiple",
        "charges",
    ):
        assert col in rows[0]


def test_report_is_self_contained(synth_dir: Path, tmp_path: Path) -> None:
    main(["backtest", "--data", str(synth_dir), "--start", "2023-03-01", "--end", "2023-12-31", "--out", str(tmp_path)])
    page = (tmp_path / "report.html").read_text()
    # nothing fetched from a network: no external script, style, image or frame (plotly.js is inlined;
    # tests/test_report_browser.py opens the page with every non-file request refused)
    outside = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", outside)
    assert not re.search(r"<script[^>]+src=|<link\b", outside)
    blob = re.search(r'<script type="application/json" id="tfl-data">(.*?)</script>', page, re.S)
    assert blob is not None
    data = json.loads(blob.group(1).replace("<\\/", "</"))
    for key in ("figures", "trades", "sessions"):
        assert data[key], key
    for chart in ("equity", "bias", "by-time", "by-weekday", "rdist", "reasons", "rejected", "trade"):
        assert chart in data["figures"], chart
    bias_days = sum(len(t["x"]) for t in data["figures"]["bias"]["data"])
    assert bias_days == json.loads((tmp_path / "summary.json").read_text())["sessions"]
    # The report says how it prices the day's last exit, and how live differs from it.
    eod = json.loads((tmp_path / "summary.json").read_text())["eod_exit"]
    assert "open of the 15:15 bar" in eod and "before the broker's own square-off" in eod
    assert "How the exits are priced" in page and "open of the 15:15 bar" in page
    node = shutil.which("node")
    if node:  # each of the page's scripts (plotly.js, the report's own) must at least parse
        for k, js in enumerate(re.findall(r"<script>(.*?)</script>", page, re.S)):
            (tmp_path / f"r{k}.js").write_text(js)
            subprocess.run([node, "--check", str(tmp_path / f"r{k}.js")], check=True)


def test_bias_command_matches_the_backtest_bias(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["backtest", "--data", str(synth_dir), "--start", "2023-06-01", "--end", "2023-06-30", "--out", str(tmp_path)])
    with (tmp_path / "bias.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    capsys.readouterr()
    for row in rows[:5]:
        assert main(["bias", "--data", str(synth_dir), "--date", row["session"]]) == 0
        rec = json.loads(capsys.readouterr().out)
        assert rec["bias"] == row["bias"] and rec["previous_session"] == row["previous_session"]
        assert f"{rec['breadth_above']:.4f}" == row["breadth_above"]


def test_user_errors_are_one_line_and_exit_2(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[risk]\nmax_positons = 3\n")
    rc = main(
        [
            "backtest",
            "--data",
            str(synth_dir),
            "--start",
            "2023-03-01",
            "--end",
            "2023-04-01",
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(cfg),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "unknown setting 'risk.max_positons'" in err and "Traceback" not in err
    rc = main(
        [
            "backtest",
            "--data",
            str(tmp_path / "nope"),
            "--start",
            "2023-03-01",
            "--end",
            "2023-04-01",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = main(
        [
            "backtest",
            "--data",
            str(synth_dir),
            "--start",
            "2023-05-01",
            "--end",
            "2023-04-01",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2 and "before" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["backtest", "--data", str(synth_dir), "--start", "2023-13-01", "--end", "2023-04-01", "--out", "x"])
    assert "not a date" in capsys.readouterr().err


def test_console_script_runs() -> None:
    exe = Path(sys.executable).with_name("tfl")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "backtest" in out.stdout
