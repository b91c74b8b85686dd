"""Before the open: waiting for the day's bias record, the heartbeat while waiting, exit codes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tfl.cli.live_cmds import WaitBeat
from tfl.domain import Bias, BiasRead
from tfl.live.runtime import Controls, read_bias_file, wait_for_bias
from tfl.settings import SettingsError, load_settings

DAY = dt.date(2024, 5, 16)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_the_bias_is_read_when_it_arrives(tmp_path: Path) -> None:
    clock = Clock()
    f = tmp_path / "bias.json"
    f.write_text(json.dumps({"bias": "SHORTS", "session": "2024-05-15"}))  # yesterday's record

    def read() -> BiasRead:
        if clock.t >= 1060:  # the pre-market job publishes a minute later
            f.write_text(json.dumps({"bias": "LONGS", "session": DAY.isoformat()}))
        return read_bias_file(f, DAY)

    bias, why = wait_for_bias(read, 2000.0, now=clock.now, sleep=clock.sleep, poll_seconds=20)
    assert bias is Bias.LONGS and why == f"read from {f}"
    assert clock.t == 1060 and clock.slept == [20, 20, 20]


def test_no_record_by_the_deadline_means_no_trades(tmp_path: Path) -> None:
    clock = Clock()
    f = tmp_path / "bias.json"
    f.write_text(json.dumps({"bias": "LONGS", "session": "2024-05-15"}))
    bias, why = wait_for_bias(lambda: read_bias_file(f, DAY), 1100.0, now=clock.now, sleep=clock.sleep, poll_seconds=30)
    assert bias is Bias.NO_TRADES
    assert "dated '2024-05-15'" in why and "none for today by" in why
    assert clock.t >= 1100


def test_a_valid_no_trades_record_is_accepted_at_once(tmp_path: Path) -> None:
    clock = Clock()
    f = tmp_path / "bias.json"
    f.write_text(json.dumps({"bias": "NO_TRADES", "session": DAY.isoformat()}))
    got = read_bias_file(f, DAY)
    assert got == BiasRead(Bias.NO_TRADES, f"read from {f}", True)
    assert wait_for_bias(lambda: got, 2000.0, now=clock.now, sleep=clock.sleep, poll_seconds=5)[0] is Bias.NO_TRADES
    assert clock.slept == []
    assert read_bias_file(tmp_path / "none.json", DAY).accepted is False
    (tmp_path / "bad.json").write_text("{not json")
    assert read_bias_file(tmp_path / "bad.json", DAY).accepted is False


class Beats:
    def __init__(self) -> None:
        self.states: list[object] = []

    def heartbeat(self, **properties: object) -> None:
        self.states.append(properties.get("state"))

    def pnl(self, session: str, net_pnl: float, open_positions: int) -> None:
        return None

    def order_latency(self, ms: float, leg: str) -> None:
        return None


def test_waiting_keeps_the_heartbeat() -> None:
    clock = Clock()
    beats = Beats()
    controls = Controls(metrics=beats)
    pause = WaitBeat(controls, 60.0, lambda: "waiting for the FYERS login", sleep=clock.sleep, clock=clock.now)
    for _ in range(10):  # ten polls of 30 s: five minutes
        pause(30.0)
    assert clock.t == 1300.0
    assert beats.states == ["waiting for the FYERS login"] * 6  # at 0, 60, ..., 300 s
    assert max(clock.slept) <= 60.0


def test_pre_open_times_are_validated() -> None:
    assert load_settings(environ={}).live.bias_deadline == "09:12"
    with pytest.raises(SettingsError, match=r"live\.bias_deadline"):
        load_settings(environ={"TFL_LIVE__BIAS_DEADLINE": "9h12"})
    with pytest.raises(SettingsError, match="login_grace"):
        load_settings(environ={"TFL_FYERS__LOGIN_GRACE": "09:30"})  # after the 09:10 token deadline
