"""The FYERS adapters piece by piece, against the fake server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import os
import stat
import urllib.request
from pathlib import Path

import pytest
from fake_fyers import FakeFyers, Scenario
from fyers_harness import DAY, SYMBOLS

from tfl.core.orders import OrderRequest, OrderType
from tfl.fyers import auth
from tfl.fyers.book_poller import BookPoller
from tfl.fyers.broker import FyersBroker, parse_time, strip_tag
from tfl.fyers.errors import FyersAmbiguous, FyersAuthError, FyersRateLimited, FyersRejected
from tfl.fyers.history import fetch
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.rest import FyersRest
from tfl.fyers.symbols import Instrument, SymbolMap, parse_symbol_master, round_to_tick
from tfl.secrets import FileSecretStore, SecretError
from tfl.settings import FyersSettings
from tfl.timeutil import epoch_of_ist


@pytest.fixture
def fake(fyers_market):  # type: ignore[no-untyped-def]
    f = FakeFyers(fyers_market, DAY, SYMBOLS).start()
    f.clock = float(epoch_of_ist(DAY, 10 * 60))
    yield f
    f.stop()


@pytest.fixture
def store(tmp_path: Path) -> FileSecretStore:
    return FileSecretStore(tmp_path / "secrets.json", environ={})


def rest_for(
    fake: FakeFyers, store: FileSecretStore, timeout: float = 0.6, limiter: RateLimiter | None = None
) -> FyersRest:
    return FyersRest(
        fake.api_url,
        fake.data_url,
        fake.client_id,
        lambda: store.get("access_token"),
        limiter or RateLimiter(500, 30_000),
        timeout=timeout,
        rate_limit_backoff=0.1,
    )


def test_rate_limiter_keeps_below_both_windows() -> None:
    t = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t[0] += s

    lim = RateLimiter(8, 20, clock=lambda: t[0], sleep=sleep)
    stamps = []
    for _ in range(30):
        lim.acquire()
        stamps.append(t[0])
    for i in range(len(stamps)):
        assert sum(1 for x in stamps if stamps[i] - 1.0 < x <= stamps[i]) <= 8
        assert sum(1 for x in stamps if stamps[i] - 60.0 < x <= stamps[i]) <= 20
    lim.retry_after(5.0)
    before = t[0]
    lim.acquire()
    assert t[0] - before >= 5.0


def test_login_flow_stores_a_private_token(fake: FakeFyers, store: FileSecretStore) -> None:
    store.put("secret_key", fake.secret)
    rest = rest_for(fake, store)
    state = auth.new_state()
    url = auth.login_url(fake.api_url, fake.client_id, "https://example.test/cb", state)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as ei:
        opener.open(url)
    redirect = ei.value.headers["Location"]
    assert redirect.startswith("https://example.test/cb?")
    with pytest.raises(auth.LoginError, match="state does not match"):
        auth.parse_redirect(redirect, "another-state")
    code = auth.parse_redirect(redirect, state)
    auth.exchange_code(rest, store, code, DAY)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert auth.check_token(rest, store, DAY).ok
    assert not auth.check_token(rest, store, DAY + dt.timedelta(days=1)).ok  # a login is needed every day


def test_wrong_secret_fails_without_leaking_it(fake: FakeFyers, store: FileSecretStore) -> None:
    store.put("secret_key", "wrong-secret-123")
    with pytest.raises(auth.LoginError) as ei:
        auth.exchange_code(rest_for(fake, store), store, "some-code", DAY)
    assert "wrong-secret-123" not in str(ei.value) and "-371" in str(ei.value)


def test_token_deadline_waits_alerts_and_gives_up(fake: FakeFyers, store: FileSecretStore) -> None:
    rest = rest_for(fake, store)
    now = [dt.datetime(2020, 12, 7, 8, 50, tzinfo=auth.IST)]
    alerts: list[tuple[str, str]] = []

    def sleep(s: float) -> None:
        now[0] += dt.timedelta(seconds=s)
        if now[0] >= dt.datetime(2020, 12, 7, 9, 5, tzinfo=auth.IST):  # the operator logs in at 09:05
            store.put("access_token", fake.issue_token())
            store.put("token_date", DAY.isoformat())

    deadline = dt.datetime(2020, 12, 7, 9, 10, tzinfo=auth.IST)
    check = auth.wait_for_token(
        rest, store, DAY, deadline, now=lambda: now[0], sleep=sleep, alert=lambda lv, m: alerts.append((lv, m))
    )
    assert check.ok and alerts and alerts[0][0] == "ERROR"
    # A token that expired at 03:00 and no login before the deadline: no trading today.
    store.put("access_token", fake.issue_token(exp=epoch_of_ist(DAY, 3 * 60)))
    now[0] = dt.datetime(2020, 12, 7, 9, 0, tzinfo=auth.IST)
    alerts.clear()
    check = auth.wait_for_token(
        rest,
        store,
        DAY,
        deadline,
        now=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + dt.timedelta(seconds=s)),
        alert=lambda lv, m: alerts.append((lv, m)),
    )
    assert not check.ok and alerts[-1][0] == "CRITICAL"


def test_token_wait_is_quiet_until_the_grace_time(
    fake: FakeFyers, store: FileSecretStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The trader starts at 08:30 with yesterday's token and the login link goes out then:
    waiting for the login is normal until 09:00, not an ERROR line (the error alarm) or an alert."""
    import logging

    rest = rest_for(fake, store)
    store.put("access_token", fake.issue_token())
    store.put("token_date", "2020-12-04")  # yesterday's
    now = [dt.datetime(2020, 12, 7, 8, 31, tzinfo=auth.IST)]
    alerts: list[tuple[str, str]] = []
    login_at = [dt.datetime(2020, 12, 7, 8, 52, tzinfo=auth.IST)]

    def sleep(s: float) -> None:
        now[0] += dt.timedelta(seconds=s)
        if now[0] >= login_at[0]:
            store.put("access_token", fake.issue_token())
            store.put("token_date", DAY.isoformat())

    def wait() -> auth.TokenCheck:
        return auth.wait_for_token(
            rest,
            store,
            DAY,
            dt.datetime(2020, 12, 7, 9, 10, tzinfo=auth.IST),
            now=lambda: now[0],
            sleep=sleep,
            alert=lambda lv, m: alerts.append((lv, m)),
            grace=dt.datetime(2020, 12, 7, 9, 0, tzinfo=auth.IST),
        )

    caplog.set_level(logging.INFO, logger="tfl.fyers.auth")
    assert wait().ok
    assert alerts == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "waiting for the daily FYERS login"
    ]
    # No login by 09:00: from then on it is an ERROR and one alert.
    store.put("token_date", "2020-12-04")
    now[0] = dt.datetime(2020, 12, 7, 8, 50, tzinfo=auth.IST)
    login_at[0] = dt.datetime(2020, 12, 7, 9, 5, tzinfo=auth.IST)
    caplog.clear()
    assert wait().ok
    assert [lv for lv, _ in alerts] == ["ERROR"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "no valid FYERS token: not trading until one is stored"
    ]


def test_rest_classifies_answers(fake: FakeFyers, store: FileSecretStore) -> None:
    store.put("access_token", fake.issue_token())
    rest = rest_for(fake, store)
    body = {
        "symbol": "NSE:SAIL-EQ",
        "qty": 1,
        "type": 2,
        "side": 1,
        "productType": "INTRADAY",
        "limitPrice": 0,
        "stopPrice": 0,
        "validity": "DAY",
        "disclosedQty": 0,
        "offlineOrder": False,
        "orderTag": "T1",
    }
    assert rest.place(body)
    fake.s.place_outcomes = ["201", "timeout", "drop"]
    for tag in ("T2", "T3", "T4"):
        with pytest.raises(FyersAmbiguous):
            rest.place({**body, "orderTag": tag})
    with pytest.raises(FyersRejected, match="-50"):
        rest.place({**body, "orderTag": "bad tag!"})
    fake.s.rate_limited_requests = 10
    with pytest.raises(FyersRateLimited):
        rest.profile()
    fake.s.rate_limited_requests = 1
    assert rest.profile()["fy_id"] == "XY00001"  # one 429, then Retry-After honoured and retried
    store.put("access_token", "not-a-token")
    with pytest.raises(FyersAuthError) as ei:
        rest.orderbook()
    assert "not-a-token" not in str(ei.value)


def test_broker_orders_by_tag_rounds_to_tick_and_reads_fills(fake: FakeFyers, store: FileSecretStore) -> None:
    store.put("access_token", fake.issue_token())
    master = {"SAIL": Instrument("SAIL", "NSE:SAIL-EQ", 0.05)}  # the symbol master's tick is used
    rest = rest_for(fake, store)
    br = FyersBroker(
        rest, SymbolMap(FyersSettings(), master), fallback_seconds=0.0, poller=BookPoller(rest, threaded=False)
    )
    o = br.place(OrderRequest("2012071000ESAIL0001", "SAIL", 1, OrderType.STOP, 10, trigger=55.8321), 0)
    assert o.trigger == 55.85  # a buy stop rounds up, away from the market
    fyers_order = fake.orders[o.broker_id]
    assert fyers_order.stop == 55.85 and fyers_order.tag == "2012071000ESAIL0001"
    assert br.order_by_tag("2012071000ESAIL0001").status == "PENDING"  # type: ignore[union-attr]
    br.modify("2012071000ESAIL0001", 0, trigger=56.123)
    assert fake.orders[o.broker_id].stop == 56.15
    s = br.place(OrderRequest("2012071000SSAIL0001", "SAIL", -1, OrderType.STOP, 10, trigger=50.0199), 0)
    assert s.trigger == 50.0  # a sell stop rounds down
    with fake.lock:
        fake.engine.on_tick("SAIL", int(fake.clock) + 60, 57.0, 10**12)
        fake._publish(fake.engine.poll())
    fills = br.fills()
    assert [(f.tag, f.qty) for f in fills] == [("2012071000ESAIL0001", 10)]
    assert br.positions() == {"SAIL": 10}
    assert br.poll() == [] and br.poller.requested  # no socket: the books are asked for, not waited for
    br.poller.cycle()  # the poller thread's work, run here
    events = br.poll()
    assert any(getattr(e, "fill_id", None) == fills[0].fill_id for e in events)
    br.poller.cycle()
    assert br.poll() == []  # and de-duplicated
    assert br.cancel("2012071000SSAIL0001", 0).status == "CANCELLED"


def test_a_stop_resize_reaches_fyers_with_the_new_quantity(fake: FakeFyers, store: FileSecretStore) -> None:
    """A late entry fill resizes the stop in place: FYERS must get the new quantity (once, a bug
    sent the quantity it was placed with), and a second resize starts from the first."""
    store.put("access_token", fake.issue_token())
    br = FyersBroker(rest_for(fake, store), SymbolMap(FyersSettings()), fallback_seconds=0.0)
    s = br.place(OrderRequest("2012071000SSAIL0001", "SAIL", -1, OrderType.STOP, 50, trigger=50.0), 0)
    assert fake.orders[s.broker_id].qty == 50
    assert br.modify("2012071000SSAIL0001", 0, trigger=50.0, qty=100).qty == 100
    assert fake.orders[s.broker_id].qty == 100
    assert br.modify("2012071000SSAIL0001", 0, trigger=49.5).qty == 100  # a move keeps the size
    assert fake.orders[s.broker_id].qty == 100 and fake.orders[s.broker_id].stop == 49.5


def test_a_cancel_answer_says_what_traded_before_it(fake: FakeFyers, store: FileSecretStore) -> None:
    """FYERS' answer to a cancel does not say how much had filled; the order book does. A stop
    that sold 4 of 10 before its cancel is reported cancelled with those 4 filled, so the
    square-off's exit is sized to the 6 still held, not 10."""
    store.put("access_token", fake.issue_token())
    br = FyersBroker(rest_for(fake, store), SymbolMap(FyersSettings()), fallback_seconds=0.0)
    s = br.place(OrderRequest("2012071000SSAIL0001", "SAIL", -1, OrderType.STOP, 10, trigger=50.0), 0)
    with fake.lock:
        fake._record_trade(fake.orders[s.broker_id], 4, 49.95, int(fake.clock))
    done = br.cancel("2012071000SSAIL0001", 0)
    assert (done.status, done.filled, done.qty) == ("CANCELLED", 4, 10)
    assert fake.orders[s.broker_id].filled == 4


def test_tags_times_and_symbols() -> None:
    assert strip_tag("1:ABC123") == "ABC123" and strip_tag("2:Untagged") == "Untagged" and strip_tag("X") == "X"
    assert parse_time("07-Dec-2020 10:08:00") == parse_time("07-12-2020 10:08:00") == epoch_of_ist(DAY, 608)
    m = SymbolMap(FyersSettings())
    assert m.ticker("M&M") == "NSE:M&M-EQ" and m.symbol("NSE:M&M-EQ") == "M&M"
    assert m.ticker("INDIAVIX") == "NSE:INDIAVIX-INDEX" and m.symbol("NSE:INDIAVIX-INDEX") == "INDIAVIX"
    assert round_to_tick(100.01, 0.05, up=True) == 100.05 and round_to_tick(100.04, 0.05, up=False) == 100.0
    assert round_to_tick(100.05, 0.05, up=True) == 100.05  # already on the tick


def test_symbol_master_and_data_fetch(fake: FakeFyers, store: FileSecretStore, tmp_path: Path) -> None:
    text = urllib.request.urlopen(fake.url + "/sym_details/NSE_CM.csv").read().decode()
    inst = parse_symbol_master(text, ["SAIL", "BEL", "NOPE"])
    assert sorted(i.symbol for i in inst) == ["BEL", "SAIL"] and all(i.tick == fake.tick_of(i.symbol) for i in inst)
    store.put("access_token", fake.issue_token())
    rest = rest_for(fake, store)
    out = tmp_path / "data"
    now = epoch_of_ist(dt.date(2020, 12, 8), 12 * 60)
    got, problems = fetch(
        rest, SymbolMap(FyersSettings()), ["SAIL"], "15", dt.date(2020, 6, 1), dt.date(2020, 12, 7), out, now=now
    )
    assert problems == [] and got["SAIL"] > 3000  # about 130 sessions of 25 bars
    history_calls = [r for r in fake.requests if r[1] == "/data/history"]
    assert len(history_calls) == 2  # 190 days in chunks of at most 100
    again, _ = fetch(
        rest,
        SymbolMap(FyersSettings()),
        ["SAIL", "NOPE"],
        "15",
        dt.date(2020, 6, 1),
        dt.date(2020, 12, 7),
        out,
        now=now,
    )
    assert again["SAIL"] == 0  # resumed: nothing new to fetch
    from tfl.data.loader import clean_intraday, read_raw

    s = clean_intraday(read_raw(out / "15min" / "SAIL.parquet"), "SAIL", 555, 915)
    want = fake.market.intraday["SAIL"]
    sel = (want.ts >= epoch_of_ist(dt.date(2020, 6, 1), 0)) & (want.ts < epoch_of_ist(dt.date(2020, 12, 8), 0))
    assert s.ts.tolist() == want.ts[sel].tolist() and s.close.tolist() == want.close[sel].tolist()
    daily, _ = fetch(
        rest, SymbolMap(FyersSettings()), ["SAIL"], "D", dt.date(2019, 1, 1), dt.date(2020, 12, 7), out, now=now
    )
    assert daily["SAIL"] > 200


def test_secret_store_refuses_a_readable_file(tmp_path: Path) -> None:
    p = tmp_path / "secrets.json"
    p.write_text('{"access_token": "abc"}')
    os.chmod(p, 0o644)
    with pytest.raises(SecretError, match="readable by others") as ei:
        FileSecretStore(p, environ={}).get("access_token")
    assert "abc" not in str(ei.value)
    assert FileSecretStore(p, environ={"TFL_FYERS_ACCESS_TOKEN": "from-env"}).get("access_token") == "from-env"


def test_the_sdk_writes_no_files_into_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tfl.fyers.sockets import sdk_data_socket, sdk_order_socket

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    logs = tmp_path / "sdk-logs"
    noop = lambda *a, **k: None  # noqa: E731
    sdk_data_socket(
        access_token="APP-100:tok",
        log_dir=logs,
        url="ws://127.0.0.1:9",
        on_message=noop,
        on_connect=noop,
        on_close=noop,
        on_error=noop,
    )
    sdk_order_socket(
        access_token="APP-100:tok",
        log_dir=logs,
        url="ws://127.0.0.1:9",
        on_orders=noop,
        on_trades=noop,
        on_positions=noop,
        on_connect=noop,
        on_close=noop,
        on_error=noop,
    )
    assert list(cwd.iterdir()) == []
    assert any(logs.iterdir())  # the SDK's logs went where we pointed them


def test_scenario_knobs_default_to_a_quiet_exchange() -> None:
    assert Scenario().place_outcomes == [] and not Scenario().partial_fills


def test_fyers_unreachable_at_the_token_deadline_is_restartable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No verdict on the token is not "no token": the run ends with a restartable error (exit 5)."""
    from tfl.cli import fyers_cmds
    from tfl.fyers.errors import FyersError
    from tfl.settings import load_settings

    store = FileSecretStore(tmp_path / "secrets.json", environ={})
    store.put("access_token", "tok")
    store.put("token_date", DAY.isoformat())
    dead = FyersRest(
        "http://127.0.0.1:9/api/v3", "http://127.0.0.1:9/data", "APP-100", lambda: store.get("access_token"),
        RateLimiter(500, 30_000), timeout=0.5,
    )  # fmt: skip
    settings = load_settings(environ={})
    kit = fyers_cmds.FyersKit(settings, store, RateLimiter(500, 30_000), dead, SymbolMap(FyersSettings()))
    monkeypatch.setattr(fyers_cmds, "market_now", lambda: float(epoch_of_ist(DAY, 9 * 60 + 11)))  # past 09:10
    with pytest.raises(FyersError, match="unreachable at the token deadline"):
        fyers_cmds.token_gate(kit, DAY, lambda lv, m: None, sleep=lambda s: None)
