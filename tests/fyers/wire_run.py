"""Run ``tfl trade --world live`` as its own process with the real SDK sockets, against the
fake FYERS: REST over HTTP (``fake_fyers.py``) and the two websockets over the wire
(``wire_server.py``), on the fake exchange's simulated clock (``shared_clock.py``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_fyers import FakeFyers, Scenario
from fyers_harness import DAY, SYMBOLS
from shared_clock import SharedClock
from wire_server import WireFyers

from tfl.data.market import Market

HERE = Path(__file__).parent
GATE_TIMEOUT = 120.0  # how long the exchange waits for the trader to act on a boundary
SESSION_TIMEOUT = 900.0  # a guard against a hang only: the replayed day takes well under a minute
EXIT_TIMEOUT = 120.0  # from the exchange's close to the trader's exit (closing the sockets takes < 15 s)


class ClockedFyers(FakeFyers):
    """The fake FYERS whose simulated clock a trader in another process can read."""

    def __init__(self, *args: Any, clock_file: Path, **kwargs: Any) -> None:
        self._shared = SharedClock.create(clock_file, 0.0)
        self._now = 0.0
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def clock(self) -> float:
        return self._now

    @clock.setter
    def clock(self, value: float) -> None:
        self._now = value
        self._shared.write(value)


class SlotGate:
    """The exchange's replay waits at each boundary until the trader has acted on it: its
    journal holds the boundary's SLOT record, written once the boundary's orders reached FYERS.
    So each bar's orders are at the exchange before the bar trades, at any machine speed."""

    def __init__(self, journal: Path, session: str) -> None:
        self.journal = journal
        self.session = session
        self.db: sqlite3.Connection | None = None
        self.passed = 0
        self.timed_out: list[int] = []  # boundaries the trader did not act on in time (a test failure)
        self.alive: Any = lambda: True  # the trader's process is running

    def __call__(self, boundary: int) -> None:
        key = f"{self.session}:slot:{boundary}"
        deadline = time.monotonic() + GATE_TIMEOUT
        while time.monotonic() < deadline and self.alive():
            if self._has(key):
                self.passed += 1
                return
            time.sleep(0.01)
        self.timed_out.append(boundary)

    def _has(self, key: str) -> bool:
        if self.db is None:
            if not self.journal.exists():
                return False
            self.db = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True, timeout=5, check_same_thread=False)
        try:
            return self.db.execute("SELECT 1 FROM events WHERE key = ?", (key,)).fetchone() is not None
        except sqlite3.OperationalError:  # the trader is creating the journal's tables
            return False


@dataclass
class WireRun:
    rc: int | None
    fake: ClockedFyers
    wire: WireFyers
    journal: Path
    log_text: str
    secrets: list[str]
    sdk_logs: str
    output: str
    exit_seconds: float | None = None  # from the exchange's close to the process's exit
    exited_at: float | None = None  # wall-clock time of the process's exit
    extra: dict[str, Any] = field(default_factory=dict)

    def exit_after(self, event: str) -> float:
        """Seconds from the trader's last log record ``event`` to the process's exit."""
        import datetime as dt

        when = [r["time"] for r in self.records() if r["event"] == event]
        assert when and self.exited_at is not None, f"no '{event}' record, or no exit"
        return self.exited_at - dt.datetime.fromisoformat(when[-1]).timestamp()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text.splitlines() if line.startswith("{")]


def data_view(nse_dir: Path, tmp: Path) -> Path:
    data = tmp / "data"
    if not data.is_dir():
        data.mkdir()
        for name in ("15min", "daily", "nifty200.csv"):
            (data / name).symlink_to(nse_dir / name)
    return data


def run_wire(
    market: Market,
    nse_dir: Path,
    tmp: Path,
    scenario: Scenario | None = None,
    *,
    env: dict[str, str] | None = None,
    setup: Any = None,
    bar_pause: float = 0.05,
    exit_timeout: float = EXIT_TIMEOUT,
) -> WireRun:
    """One live session in a subprocess; ``setup(fake, wire)`` may script faults before it starts."""
    tmp.mkdir(parents=True, exist_ok=True)
    clock_file = tmp / "clock.bin"
    fake = ClockedFyers(
        market, DAY, SYMBOLS, scenario=scenario, bar_pause=bar_pause, tick_pause=0.002, clock_file=clock_file
    ).start()
    fake.start_market_on_subscribe = True
    wire = WireFyers(fake).start()
    journal = tmp / "j.sqlite"
    gate = SlotGate(journal, fake.session.isoformat())
    fake.bar_gate = gate
    if setup is not None:
        setup(fake, wire)
    token = fake.issue_token(time.time() + 2 * 86400)  # the SDK checks the expiry on the real clock
    secrets = tmp / "secrets.json"
    fd = os.open(secrets, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"access_token": token, "token_date": DAY.isoformat(), "secret_key": fake.secret}, fh)
    (tmp / "bias.json").write_text(json.dumps({"bias": "LONGS", "session": DAY.isoformat()}))
    src = os.environ.get("TFL_WIRE_SRC") or str(Path(__file__).resolve().parents[2] / "src")
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith("TFL_") and k not in ("AWS_PROFILE", "AWS_REGION")
    }
    child_env.update(
        {
            "PYTHONPATH": os.pathsep.join([src, str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "TFL_FYERS_API_URL": fake.api_url,
            "TFL_FYERS_DATA_URL": fake.data_url,
            "TFL_FYERS_CLIENT_ID": fake.client_id,
            "TFL_FYERS__SECRETS_FILE": str(secrets),
            "TFL_FYERS__SYMBOL_MASTER_URL": fake.url + "/sym_details/NSE_CM.csv",
            "TFL_LIVE__HEARTBEAT_SECONDS": "1",
            **wire.env(),
            **(env or {}),
        }
    )
    out = tmp / "stdout.txt"
    cmd = [sys.executable, str(HERE / "wire_trader.py"), str(clock_file), "trade", "--world", "live"]
    cmd += ["--data", str(data_view(nse_dir, tmp)), "--journal", str(journal), "--symbols", ",".join(SYMBOLS)]
    rc: int | None = None
    exit_seconds = exited_at = None
    with open(out, "wb") as fh:
        proc = subprocess.Popen(cmd, env=child_env, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
        gate.alive = lambda: proc.poll() is None
        try:
            ended = _wait_for_close(fake, proc)
            try:
                rc = proc.wait(exit_timeout)
                exit_seconds, exited_at = time.monotonic() - ended, time.time()
            except subprocess.TimeoutExpired:
                rc = None  # hung: the caller's assertion says so
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            wire.stop()
            fake.stop()
    log_file = tmp / "j.sqlite.log"
    sdk_dir = tmp / "j.sqlite.fyers-logs"
    sdk_logs = "\n".join(p.read_text(errors="replace") for p in sorted(sdk_dir.glob("*"))) if sdk_dir.is_dir() else ""
    return WireRun(
        rc,
        fake,
        wire,
        journal,
        log_file.read_text() if log_file.exists() else "",
        [token, fake.secret],
        sdk_logs,
        out.read_text(errors="replace"),
        exit_seconds,
        exited_at,
        {"gate": gate},
    )


def _wait_for_close(fake: FakeFyers, proc: subprocess.Popen[bytes]) -> float:
    """Wait until the exchange has closed the day (or the trader ended before); returns when."""
    deadline = time.monotonic() + SESSION_TIMEOUT
    while time.monotonic() < deadline:
        if fake.market_done.wait(0.5) or proc.poll() is not None:
            return time.monotonic()
    raise AssertionError(f"the replayed session did not end within {SESSION_TIMEOUT:.0f} s")
