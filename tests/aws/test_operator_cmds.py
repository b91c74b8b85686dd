"""`tfl data sync` and `tfl data eod` end to end on moto: what reaches S3 and what the operator is told.

The market is a small synthetic one (`tfl data synth`), with one universe symbol that has no
data at all, as happens when a new listing is added before its history is downloaded.
"""

from __future__ import annotations

import shutil
import types
from pathlib import Path
from typing import Any

import pytest

from tfl.aws.daily_bars import daily_key, list_daily
from tfl.cli.main import main

NAMES = ["SYN001", "SYN002", "SYN003", "NIFTY200_INDEX", "INDIAVIX"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert main(["data", "synth", "--out", str(out), "--symbols", "3", "--days", "30", "--seed", "7"]) == 0
    return out


@pytest.fixture
def market(synth: Path, tmp_path: Path) -> Path:
    """A copy of the synthetic data directory whose universe also lists NEWCO, which has no bars."""
    data = tmp_path / "data"
    shutil.copytree(synth, data)
    universe = data / "universe.csv"
    universe.write_text(universe.read_text().rstrip("\n") + "\nNEWCO\n")
    return data


def test_data_sync_uploads_once_reports_missing_and_stray(
    data_bucket: tuple[Any, str], market: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, bucket = data_bucket
    s3.put_object(Bucket=bucket, Key=daily_key("OLDCO"), Body=b"date,open,high,low,close,volume\n")
    rc = main(["data", "sync", "--data", str(market), "--bucket", bucket])
    out = capsys.readouterr().out
    assert rc == 1, out  # NEWCO has no daily data
    assert "5 uploaded, 0 unchanged" in out
    assert "no daily data for NEWCO" in out
    assert "not in the universe, index or VIX (kept; delete them if unused): OLDCO" in out
    assert set(list_daily(s3, bucket)) == {*NAMES, "OLDCO"}  # reported, not deleted
    first = {n: s3.head_object(Bucket=bucket, Key=daily_key(n))["LastModified"] for n in NAMES}

    rc = main(["data", "sync", "--data", str(market), "--bucket", bucket])
    out = capsys.readouterr().out
    assert rc == 1 and "0 uploaded, 5 unchanged" in out, out
    assert {n: s3.head_object(Bucket=bucket, Key=daily_key(n))["LastModified"] for n in NAMES} == first


def test_data_sync_of_a_complete_universe_succeeds(
    data_bucket: tuple[Any, str], synth: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, bucket = data_bucket
    assert main(["data", "sync", "--data", str(synth), "--bucket", bucket]) == 0
    out = capsys.readouterr().out
    assert "5 uploaded" in out and "no daily data" not in out and "not in the universe" not in out
    assert set(list_daily(s3, bucket)) == set(NAMES)


def test_data_eod_fails_after_syncing_the_others_when_a_symbol_has_no_data(
    data_bucket: tuple[Any, str],
    market: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """FYERS is out of the picture (no downloads, nothing failed): only the missing daily data is wrong."""
    import tfl.cli.fyers_cmds as fy
    from tfl.fyers import history

    s3, bucket = data_bucket
    monkeypatch.setenv("TFL_AWS__DATA_BUCKET", bucket)
    (market / fy.INSTRUMENTS_FILE).write_text("fresh, so the symbol master is not downloaded\n")
    monkeypatch.setattr(fy, "build_kit", lambda settings, data: types.SimpleNamespace(rest=None, symbols=None))
    monkeypatch.setattr(history, "fetch", lambda *args, **kwargs: ({}, []))
    rc = main(["data", "eod", "--data", str(market), "--days", "5"])
    captured = capsys.readouterr()
    assert rc == 2, captured
    assert "no daily data for 1 symbol(s): NEWCO" in captured.err
    assert "5 uploaded" in captured.out
    assert set(list_daily(s3, bucket)) == set(NAMES)  # the others were synced first


def test_deploy_notices_calendar_overrides_the_server_would_not_get(tmp_path: Path) -> None:
    """The Lambdas' table is built from this checkout; the server installs GitRef from git."""
    import shutil
    import subprocess

    from tfl.cli.aws_cmds import uncommitted_calendar

    if shutil.which("git") is None:
        pytest.skip("no git")
    repo = tmp_path / "repo"
    repo.mkdir()
    overrides = repo / "overrides.json"
    overrides.write_text('{"sessions": {}, "closed": []}\n')
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    for cmd in (["git", "init", "-q"], ["git", "add", "overrides.json"], ["git", "commit", "-q", "-m", "c"]):
        subprocess.run(cmd, cwd=repo, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    assert uncommitted_calendar(overrides) == ""
    overrides.write_text('{"sessions": {}, "closed": [], "years": {"2027": {"holidays": []}}}\n')
    assert uncommitted_calendar(overrides) == str(overrides)
    assert uncommitted_calendar(tmp_path / "elsewhere" / "overrides.json") == ""  # not in a repository
