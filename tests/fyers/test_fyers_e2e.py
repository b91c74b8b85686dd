"""`tfl trade --world paper` and `--world live` end to end against the fake FYERS.

The command runs in-process (so the SDK sockets can be swapped for the fakes at the SDK's
boundary and the market clock simulated); everything else is the real command: settings
from the environment, the secrets file, the token gate, the REST client with the real
rate limits, the sockets' adapters, the journal. The journal is checked afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from fake_fyers import FakeDataSocket, FakeFyers, FakeOrderSocket, Scenario
from fyers_harness import DAY, SYMBOLS

from tfl.cli import fyers_cmds
from tfl.cli.main import main
from tfl.fyers import sockets
from tfl.live.journal import SqliteJournal, to_event
from tfl.live.report import day_report, rebuild
from tfl.strategy.book import Trade
from tfl.timeutil import epoch_of_ist


def data_view(nse_dir: Path, tmp: Path) -> Path:
    """A data directory of the trader's own that reads the shared bars in place (symlinks):
    the trader may write its symbol master beside them, never into the shared data."""
    data = tmp / "data"
    if data.is_dir():
        return data
    data.mkdir()
    for name in ("15min", "daily", "nifty200.csv"):
        (data / name).symlink_to(nse_dir / name)
    return data


def trade(
    fyers_market,
    nse_dir: Path,
    tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    world: str,  # type: ignore[no-untyped-def]
    scenario: Scenario | None = None,
    data: Path | None = None,
    bias: bool = True,
    token_date: dt.date = DAY,
) -> tuple[int, FakeFyers, Path, str]:
    fake = FakeFyers(fyers_market, DAY, SYMBOLS, scenario=scenario, bar_pause=0.6, tick_pause=0.002).start()
    fake.start_market_on_subscribe = True
    secrets = tmp / "secrets.json"
    fd = os.open(secrets, os.O_WRONLY | os.O_CREAT, 0o600)
    token = fake.issue_token()
    with os.fdopen(fd, "w") as fh:
        json.dump({"access_token": token, "token_date": token_date.isoformat(), "secret_key": fake.secret}, fh)
    for k, v in {
        "TFL_FYERS_API_URL": fake.api_url,
        "TFL_FYERS_DATA_URL": fake.data_url,
        "TFL_FYERS_CLIENT_ID": fake.client_id,
        "TFL_FYERS__SECRETS_FILE": str(secrets),
        "TFL_LIVE__HEARTBEAT_SECONDS": "1",
        "TFL_FYERS__SYMBOL_MASTER_URL": fake.url + "/sym_details/NSE_CM.csv",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(fyers_cmds, "market_now", fake.now)
    if not getattr(sockets.sdk_data_socket, "is_test_fake", False):
        monkeypatch.setattr(sockets, "sdk_data_socket", lambda **kw: FakeDataSocket(fake, **kw))
    monkeypatch.setattr(sockets, "sdk_order_socket", lambda **kw: FakeOrderSocket(fake, **kw))
    if bias:
        (tmp / "bias.json").write_text(json.dumps({"bias": "LONGS", "session": DAY.isoformat()}))
    journal = tmp / "j.sqlite"
    try:
        rc = main(
            [
                "trade",
                "--world",
                world,
                "--data",
                str(data or data_view(nse_dir, tmp)),
                "--journal",
                str(journal),
                "--symbols",
                ",".join(SYMBOLS),
            ]
        )
    finally:
        fake.stop()
    log_text = (tmp / "j.sqlite.log").read_text()
    for secret in (token, fake.secret):
        assert secret not in log_text
    return rc, fake, journal, log_text


@pytest.mark.parametrize("world", ["paper", "live"])
def test_a_full_session_through_tfl_trade(
    fyers_market,
    nse_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    world: str,
) -> None:
    rc, fake, journal_path, logs = trade(fyers_market, nse_dir, tmp_path, monkeypatch, world)
    assert rc == 0
    journal = SqliteJournal(journal_path)
    state = rebuild(journal)
    events = list(journal.records())
    rep = day_report([(r, to_event(r)) for r in events], DAY)
    assert rep.trades and not rep.open_positions
    assert next(e for e in events if e.kind == "SESSION_CLOSE").data["flat"] is True
    assert {r["event"] for r in map(json.loads, logs.splitlines())} >= {"session open", "heartbeat", "session closed"}
    if world == "live":  # the orders went to FYERS, tagged, once each
        assert fake.duplicate_tags() == {}
        tags = {o.tag for o in fake.orders.values()}
        assert tags == set(state.orders)
        assert fake.fill_ids() == state.fills_seen
    else:  # paper: FYERS only fed the data; no order reached it
        assert fake.orders == {} and len(state.fills_seen) >= len(rep.trades) * 2
    journal.close()


def test_live_token_expires_mid_session_and_a_new_login_recovers(
    fyers_market,
    nse_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = tmp_path / "secrets.json"
    holder: list[FakeFyers] = []

    def relogin() -> None:  # at 12:00 the operator logs in again (tfl auth login rewrites the secrets file)
        fake = holder[0]
        fake.s.token_expires_at = None
        data = json.loads(secrets.read_text())
        data["access_token"] = fake.issue_token()
        secrets.write_text(json.dumps(data))

    expiry, login = epoch_of_ist(DAY, 11 * 60), epoch_of_ist(DAY, 12 * 60)
    scenario = Scenario(token_expires_at=expiry, at=[(login, relogin)])
    orig_init = FakeFyers.__init__

    def capture(self, *a, **k):  # type: ignore[no-untyped-def]
        orig_init(self, *a, **k)
        holder.append(self)

    monkeypatch.setattr(FakeFyers, "__init__", capture)
    monkeypatch.setenv("TFL_LIVE__TOKEN_RECHECK_SECONDS", "0.5")
    monkeypatch.setenv("TFL_FYERS__SOCKET_SILENCE_SECONDS", "1")
    rc, fake, journal_path, logs = trade(fyers_market, nse_dir, tmp_path, monkeypatch, "live", scenario)
    records = [json.loads(line) for line in logs.splitlines()]
    assert any(r["level"] == "ERROR" and "token" in r["event"] for r in records)  # the alert
    assert any("token accepted again" in r["event"] for r in records)  # and the recovery
    journal = SqliteJournal(journal_path)
    state = rebuild(journal)
    assert not state.book.positions and rc == 0
    assert fake.duplicate_tags() == {}
    assert fake.fill_ids() == state.fills_seen
    # An entry that filled while the token was dead got its protective stop after the login.
    late = [o for o in fake.orders.values() if o.tag[10] == "E" and o.filled_at and expiry < o.filled_at < login]
    assert late, "the scenario had an entry fill while the token was dead"
    for o in late:
        assert any(
            s.symbol == o.symbol and s.type == 3 and s.tag[10] == "S" and s.placed >= login
            for s in fake.orders.values()
        ), f"{o.symbol} filled at {o.filled_at} but got no protective stop after the login"
    journal.close()


def _session_open(journal_path: Path) -> dict[str, object]:
    journal = SqliteJournal(journal_path)
    try:
        return next(e for e in journal.records() if e.kind == "SESSION_OPEN").data
    finally:
        journal.close()


def test_the_first_morning_seeds_history_from_fyers(
    fyers_market,
    nse_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new server's data directory holds only the universe: the trader fetches the history
    it warms up on (up to the previous session) before the open, then trades as usual."""
    from tfl.fyers.topup import last_day

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "universe.csv").write_text("Symbol\n" + "\n".join(SYMBOLS) + "\n")
    seeded = tmp_path / "seeded"
    seeded.mkdir()
    rc, fake, journal_path, _ = trade(fyers_market, nse_dir, seeded, monkeypatch, "paper", data=fresh)
    assert rc == 0
    previous = dt.date(2020, 12, 4)  # the Friday before DAY
    for sym in SYMBOLS:
        assert last_day(fresh / "15min" / f"{sym}.parquet") == previous, sym
        assert last_day(fresh / "daily" / f"{sym}.parquet") == previous, sym
    assert (fresh / "symbols.csv").exists()  # tick sizes from the symbol master
    assert any(r[1] == "/data/history" for r in fake.requests)
    assert _session_open(journal_path)["bias"] == "LONGS"
    seeded_trades = [trade_key(t) for t in rebuild_trades(journal_path)]
    assert seeded_trades, "the seeded history is enough to trade"
    # The same session on the full history: the same decisions (the indicators have converged).
    full = tmp_path / "full"
    full.mkdir()
    rc, _, full_journal, _ = trade(fyers_market, nse_dir, full, monkeypatch, "paper")
    assert rc == 0
    full_trades = [trade_key(t) for t in rebuild_trades(full_journal)]
    assert seeded_trades == full_trades


def trade_key(t: Trade) -> tuple[object, ...]:
    return (t.symbol, t.side, t.entry_ts, t.entry_price, t.qty, t.exit_ts, t.exit_price, t.exit_reason)


def rebuild_trades(journal_path: Path) -> list[Trade]:
    journal = SqliteJournal(journal_path)
    try:
        return list(rebuild(journal).book.trades)
    finally:
        journal.close()


def test_a_bias_published_after_the_start_is_waited_for(
    fyers_market,
    nse_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server starts the trader at 08:30 and the bias job publishes at 08:45: the trader
    must wait for today's record, not trade the day on yesterday's (NO_TRADES)."""
    import threading

    monkeypatch.setenv("TFL_LIVE__BIAS_POLL_SECONDS", "0.05")
    record = json.dumps({"bias": "LONGS", "session": DAY.isoformat()})
    (tmp_path / "bias.json").write_text(json.dumps({"bias": "SHORTS", "session": "2020-12-04"}))  # yesterday's
    done = threading.Event()

    def publish_once_the_trader_waits() -> None:  # the pre-market job, as seen from the trader
        log_file = tmp_path / "j.sqlite.log"
        while not done.wait(0.05):
            if log_file.exists() and "waiting for today's bias record" in log_file.read_text():
                (tmp_path / "bias.json").write_text(record)
                return

    publisher = threading.Thread(target=publish_once_the_trader_waits, daemon=True)
    publisher.start()
    try:
        rc, _, journal_path, logs = trade(fyers_market, nse_dir, tmp_path, monkeypatch, "paper", bias=False)
    finally:
        done.set()
    assert rc == 0
    opened = _session_open(journal_path)
    assert opened["bias"] == "LONGS" and "read from" in str(opened["bias_reason"])
    events = [json.loads(line)["event"] for line in logs.splitlines()]
    assert "waiting for today's bias record" in events and "bias record arrived" in events


def test_a_restart_keeps_the_sessions_bias_and_waits_for_a_login_until_the_close(
    fyers_market,
    nse_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trader restarted after the token deadline, in a session its journal has opened, must not
    give up (exit 4 is final, and would leave its positions alone): it alerts CRITICAL, waits for
    the login, and goes on with the bias the session opened with, not a record read again."""
    import threading

    full = tmp_path / "full"
    full.mkdir()
    rc, _, full_journal, _ = trade(fyers_market, nse_dir, full, monkeypatch, "paper")
    assert rc == 0
    # Started again after the close: the journal says the day is done; no token is even checked.
    rc, fake, _, logs = trade(fyers_market, nse_dir, full, monkeypatch, "paper")
    assert rc == 0 and "session already closed in the journal" in logs
    assert not [r for r in fake.requests if r[1].endswith("/profile")]
    # A journal that stopped right after the open (the process died there).
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    source = SqliteJournal(full_journal)
    copy = SqliteJournal(resumed / "j.sqlite")
    for ev in source.records():
        copy.append(ev)
        if ev.kind == "SESSION_OPEN":
            break
    source.close()
    copy.close()
    # (no paper broker store: nothing had reached the broker yet)
    (resumed / "bias.json").write_text(json.dumps({"bias": "SHORTS", "session": DAY.isoformat()}))
    monkeypatch.setenv("TFL_FYERS__TOKEN_RETRY_SECONDS", "0.05")
    done = threading.Event()

    def log_in_when_asked() -> None:  # the operator reacts to the alert
        log_file, secrets = resumed / "j.sqlite.log", resumed / "secrets.json"
        while not done.wait(0.05):
            if log_file.exists() and "no valid FYERS token" in log_file.read_text():
                data = json.loads(secrets.read_text())
                secrets.write_text(json.dumps({**data, "token_date": DAY.isoformat()}))
                return

    operator = threading.Thread(target=log_in_when_asked, daemon=True)
    operator.start()
    try:
        rc, _, journal_path, logs = trade(
            fyers_market, nse_dir, resumed, monkeypatch, "paper", bias=False, token_date=dt.date(2020, 12, 4)
        )
    finally:
        done.set()
    assert rc == 0
    records = [json.loads(line) for line in logs.splitlines()]
    assert any(r["level"] == "FATAL" and "restarted mid-session" in r["event"] for r in records)
    assert _session_open(journal_path)["bias"] == "LONGS"
    assert [trade_key(t) for t in rebuild_trades(journal_path)] == [trade_key(t) for t in rebuild_trades(full_journal)]
