"""`tfl ctl` and `tfl halt --lift` end to end: commands to a running replay trader are
acknowledged; bad requests get one line and exit 2, and create nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_trade_cli import ENV, SYMS

from tfl.core.events import Lifted, ReduceOnly
from tfl.live.journal import SqliteJournal, read_events
from tfl.live.ops_store import OpsStoreError, SqliteOpsStore

TFL = str(Path(sys.executable).with_name("tfl"))
PATIENCE = 600.0  # seconds: a bound on waiting for a condition, never a delay that decides a result


def run(*args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TFL, *args], check=False, capture_output=True, text=True, env=ENV, stdin=stdin, timeout=PATIENCE
    )


def _wait_for(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + PATIENCE
    while not cond():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_commands_reach_a_running_trader(nse_dir: Path, tmp_path: Path) -> None:
    j = tmp_path / "j.sqlite"
    trader = subprocess.Popen(
        [TFL, "trade", "--world", "replay", "--data", str(nse_dir), "--date", "2020-12-07", "--journal", str(j),
         "--symbols", SYMS, "--bias", "auto", "--speed", "30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True,
    )  # fmt: skip
    try:

        def running() -> bool:
            if trader.poll() is not None:
                raise AssertionError(f"the trader ended early: {trader.stderr.read() if trader.stderr else ''}")
            if not j.exists():
                return False
            try:
                store = SqliteOpsStore(j, read_only=True)
            except OpsStoreError:  # created, not yet a journal
                return False
            beat = store.beat()
            store.close()
            return beat is not None and beat.last_tick_ts > 0

        _wait_for(running, "the trader's first heartbeat with ticks")
        stop = run("ctl", "stop-entries", "--journal", str(j), "--yes", "--reason", "news", "--wait", str(PATIENCE))
        assert stop.returncode == 0, stop.stderr
        assert "stop_entries: done" in stop.stdout
        lift = run("halt", "--lift", "--journal", str(j), "--wait", str(PATIENCE))
        assert lift.returncode == 0, lift.stderr
        assert "lift_halt: done: lifted" in lift.stdout
        again = run("ctl", "lift", "--journal", str(j), "--yes", "--wait", str(PATIENCE))
        assert again.returncode == 1 and "nothing to lift" in again.stdout
        listing = run("ctl", "list", "--journal", str(j))
        assert listing.returncode == 0
        assert [line.split()[1:4] for line in listing.stdout.splitlines()] == [
            ["lift_halt", "refused", "ctl"],
            ["lift_halt", "done", "halt"],
            ["stop_entries", "done", "ctl"],
        ]
    finally:
        trader.send_signal(signal.SIGTERM)
        trader.wait(timeout=PATIENCE)
    journal = SqliteJournal(j)
    kinds = [type(ev) for _, ev in read_events(journal) if isinstance(ev, ReduceOnly | Lifted)]
    journal.close()
    assert kinds == [ReduceOnly, Lifted]


def test_bad_requests_are_refused_and_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    for args in (
        ("ctl", "flatten", "--journal", str(missing), "--yes"),
        ("ctl", "list", "--journal", str(missing)),
        ("halt", "--lift", "--journal", str(missing)),
    ):
        res = run(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert res.stderr.count("\n") == 1 and "no such file" in res.stderr
        assert "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []
    j = tmp_path / "j.sqlite"
    SqliteJournal(j).close()
    no_symbol = run("ctl", "exit", "--journal", str(j), "--yes")
    assert no_symbol.returncode == 2 and "needs a SYMBOL" in no_symbol.stderr
    unconfirmed = run("ctl", "flatten", "--journal", str(j))  # stdin is not a terminal, no --yes
    assert unconfirmed.returncode == 2 and "confirmation needed" in unconfirmed.stderr
    store = SqliteOpsStore(j, read_only=True)
    assert store.commands() == []  # nothing was sent
    store.close()
    unanswered = run("ctl", "exit", "sbin", "--journal", str(j), "--yes", "--wait", "0")
    assert unanswered.returncode == 0 and "not acknowledged yet" in unanswered.stdout
    store = SqliteOpsStore(j, read_only=True)
    (view,) = store.commands()
    assert view.command.symbol == "SBIN" and view.ack is None
    store.close()
    assert os.path.getsize(j) > 0
