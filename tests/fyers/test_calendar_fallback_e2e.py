"""`tfl trade` past the calendar's last year: FYERS' market status decides, or nothing trades.

As if the calendar package ended in 2019 and nobody had added NSE's 2020 holidays: the
trader asks the fake FYERS (its clock starting where each test says).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_fyers import Scenario
from fyers_harness import DAY
from test_fyers_e2e import data_view, trade

from tfl.calendar import nse
from tfl.cli.main import main
from tfl.live.journal import SqliteJournal, to_event
from tfl.live.report import day_report
from tfl.timeutil import epoch_of_ist


@pytest.fixture(autouse=True)
def no_2020_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nse, "package_last_year", lambda: DAY.year - 1)
    with pytest.raises(nse.CalendarError, match="refusing to guess"):
        nse.NseCalendar().session(DAY)


def records(log_text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_text.splitlines()]


def test_fyers_says_it_is_a_session_and_the_day_is_traded(
    fyers_market: Any, nse_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = Scenario(start_clock=epoch_of_ist(DAY, 9 * 60 + 5))  # the pre-open
    rc, fake, journal_path, log_text = trade(fyers_market, nse_dir, tmp_path, monkeypatch, "live", scenario)
    assert rc == 0
    logs = records(log_text)
    decided = [r for r in logs if r["event"].startswith("FYERS decided: today is a session")]
    assert decided and decided[0]["level"] == "WARNING" and decided[0]["status"] == "PREOPEN"
    assert any(r["level"] == "ERROR" and "FYERS' market status decides" in r["event"] for r in logs)  # the alert
    previous = [r for r in logs if r["event"].startswith("previous session taken from FYERS")]
    assert previous and previous[0]["previous"] == "2020-12-04"
    assert any(path == "/data/marketStatus" for _, path in fake.requests)
    journal = SqliteJournal(journal_path)
    rep = day_report([(r, to_event(r)) for r in journal.records()], DAY)
    journal.close()
    assert rep.trades and not rep.open_positions  # it traded, and ended flat
    assert fake.orders and fake.duplicate_tags() == {}


def test_fyers_shows_nse_shut_after_the_open_and_nothing_trades(
    fyers_market: Any, nse_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = Scenario(start_clock=epoch_of_ist(DAY, 9 * 60 + 25), nse_holiday=True)
    rc, fake, journal_path, log_text = trade(fyers_market, nse_dir, tmp_path, monkeypatch, "live", scenario)
    assert rc == 0
    logs = records(log_text)
    decided = [r for r in logs if r["event"].startswith("FYERS decided: no session today")]
    assert decided and decided[0]["level"] == "WARNING" and decided[0]["status"] == "CLOSED"
    assert any("FYERS shows NSE CLOSED" in r["event"] for r in logs)  # the operator hears of it
    assert fake.orders == {} and not any(r["event"] == "session open" for r in logs)
    journal = SqliteJournal(journal_path)
    assert list(journal.records()) == []
    journal.close()


def test_no_answer_from_fyers_either_is_critical_and_nothing_trades(
    fyers_market: Any,
    nse_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = Scenario(start_clock=epoch_of_ist(DAY, 9 * 60 + 25), market_status_down=True)
    rc, fake, _, log_text = trade(fyers_market, nse_dir, tmp_path, monkeypatch, "live", scenario)
    assert rc == 2  # final: systemd does not restart it
    logs = records(log_text)
    assert any(r["level"] in ("CRITICAL", "FATAL") and "TFL is NOT trading on 2020-12-07" in r["event"] for r in logs)
    assert any(path == "/data/marketStatus" for _, path in fake.requests)  # the fault was met
    assert fake.orders == {} and not any(r["event"] == "session open" for r in logs)
    assert "neither the calendar nor FYERS" in capsys.readouterr().err


def test_replay_never_asks_fyers(
    nse_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tfl.fyers.rest import FyersRest

    asked: list[str] = []
    monkeypatch.setattr(FyersRest, "call", lambda self, method, path, **kw: asked.append(path))
    args = ["trade", "--world", "replay", "--data", str(data_view(nse_dir, tmp_path)), "--date", DAY.isoformat()]
    rc = main([*args, "--journal", str(tmp_path / "j.sqlite"), "--symbols", "SAIL", "--bias", "LONGS"])
    assert rc == 2 and "refusing to guess" in capsys.readouterr().err and asked == []
