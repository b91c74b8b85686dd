"""The trader's exit code tells systemd whether a restart can help (the unit restarts all but 2, 3, 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfl.cli.main import EXIT_TRANSIENT, EXIT_USAGE, main


def run_trader(nse_dir: Path, state: Path) -> tuple[int, list[dict[str, object]]]:
    rc = main(
        [
            "trade",
            "--world",
            "replay",
            "--data",
            str(nse_dir),
            "--date",
            "2023-05-16",
            "--journal",
            "dynamodb://TFL-Journal",
            "--state-dir",
            str(state),
            "--symbols",
            "SBIN,TCS",
        ]
    )
    log = state / "TFL-Journal.log"
    return rc, [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def fatal(records: list[dict[str, object]]) -> dict[str, object]:
    (line,) = [r for r in records if r["level"] == "FATAL"]
    return line


def test_an_unreachable_journal_service_is_restartable(
    aws_env: None, nse_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    rc, records = run_trader(nse_dir, tmp_path / "state")
    assert rc == EXIT_TRANSIENT == 5
    line = fatal(records)
    assert line["event"] == "trader stopped" and line["restartable"] is True
    assert "tfl: error: journal" in capsys.readouterr().err


def test_a_missing_journal_table_is_final(
    mocked_aws: None, nse_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, records = run_trader(nse_dir, tmp_path / "state")  # the table was never created
    assert rc == EXIT_USAGE == 2
    line = fatal(records)
    assert line["restartable"] is False and "ResourceNotFoundException" in str(line["error"])
    assert "ResourceNotFoundException" in capsys.readouterr().err
