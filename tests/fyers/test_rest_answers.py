"""FYERS REST answers as FYERS gives them: refusals with their reason (-99), crossed stop
triggers, prices off the tick, the morning's symbol master, history without candles, and
payloads of an unexpected shape. Each test runs our client against the fake FYERS over HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_fyers import FakeFyers
from fyers_harness import DAY, SYMBOLS
from hypothesis import example, given
from hypothesis import strategies as st

from tfl.core.orders import OrderRequest, OrderType
from tfl.fyers.broker import FyersBroker
from tfl.fyers.errors import (
    FyersAmbiguous,
    FyersRejected,
    FyersStopCrossed,
    FyersTickError,
    rejection,
)
from tfl.fyers.history import fetch_symbol
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.rest import FyersRest
from tfl.fyers.symbols import Instrument, SymbolMap, read_instruments, write_instruments
from tfl.fyers.ticks import NSE_EQ_TICK_BANDS, band_tick, fallback_tick
from tfl.fyers.topup import ensure_history
from tfl.live.broker import BrokerError
from tfl.secrets import FileSecretStore
from tfl.settings import FyersSettings, Settings
from tfl.timeutil import epoch_of_ist

ORDERS = "/api/v3/orders/sync"
HISTORY = "/data/history"
MASTER = "/sym_details/NSE_CM.csv"


@pytest.fixture
def fake(fyers_market):  # type: ignore[no-untyped-def]
    f = FakeFyers(fyers_market, DAY, SYMBOLS).start()
    f.clock = float(epoch_of_ist(DAY, 10 * 60))
    yield f
    f.stop()


@pytest.fixture
def rest(fake: FakeFyers, tmp_path: Path) -> FyersRest:
    store = FileSecretStore(tmp_path / "secrets.json", environ={})
    store.put("access_token", fake.issue_token())
    return FyersRest(
        fake.api_url,
        fake.data_url,
        fake.client_id,
        lambda: store.get("access_token"),
        RateLimiter(500, 30_000),
        timeout=0.6,
        rate_limit_backoff=0.1,
    )


def _order(symbol: str, side: int, typ: int, *, stop: float = 0.0, limit: float = 0.0, tag: str = "T1") -> dict:
    return {
        "symbol": f"NSE:{symbol}-EQ",
        "qty": 10,
        "type": typ,
        "side": side,
        "productType": "INTRADAY",
        "limitPrice": limit,
        "stopPrice": stop,
        "validity": "DAY",
        "disclosedQty": 0,
        "offlineOrder": False,
        "orderTag": tag,
    }


def _set_ltp(fake: FakeFyers, symbol: str, price: float) -> None:
    with fake.lock:
        fake.ltp[symbol] = price


# --------------------------------------------------------------------------- -99 and transport


def test_code_minus_99_is_fyers_refusal_with_its_reason(fake: FakeFyers, rest: FyersRest) -> None:
    """-99 is FYERS' answer "order rejected", reason in the message; a refused protective stop
    must read as refused (not "outcome unknown") so the trader acts at once."""
    fake.s.place_outcomes = ["-99"]
    with pytest.raises(FyersRejected) as ei:
        rest.place(_order("SAIL", -1, 3, stop=50.0))
    assert not isinstance(ei.value, FyersAmbiguous)
    assert ei.value.code == -99 and "circuit limit" in ei.value.reason
    refused = [o for o in fake.orders.values() if o.tag == "T1"]
    assert [o.status for o in refused] == [5], "FYERS recorded the order as rejected"


@pytest.mark.parametrize(
    "answer",
    [
        (200, "<html>upstream reset</html>"),  # a body that is not FYERS' JSON
        (200, ["not", "an", "object"]),
        (502, "Bad gateway"),
        (200, {"s": "ok", "code": 201, "message": "Request in transit", "id": ""}),  # no acknowledgement
    ],
)
def test_transport_failures_and_201_are_ambiguous(fake: FakeFyers, rest: FyersRest, answer: tuple[int, Any]) -> None:
    fake.s.raw_answers[ORDERS] = [answer]
    with pytest.raises(FyersAmbiguous):
        rest.place(_order("SAIL", 1, 2))
    assert not fake.s.raw_answers[ORDERS], "the scripted answer was the one given"


@given(
    status=st.integers(200, 499).filter(lambda s: s not in (401, 429)),
    code=st.integers(-1000, 1200).filter(lambda c: c not in (-8, -15, -16, -17, -429, 201)),
    message=st.text(max_size=60),
)
@example(status=200, code=-99, message="RMS:Rule: Check circuit limit including square off order exceeds")
@example(status=400, code=-99, message="")
def test_every_answer_that_is_not_ok_is_a_refusal(status: int, code: int, message: str) -> None:
    """An answer FYERS gave (below 500, no token or rate problem, not 201) is never read as
    an unknown outcome: -99 included."""
    with pytest.raises(FyersRejected):
        FyersRest._classify("POST /orders/sync", status, {"s": "error", "code": code, "message": message}, False)


# --------------------------------------------------------------------------- crossed stops


@pytest.mark.parametrize(
    ("side", "ltp", "trigger"),
    [(-1, 57.0, 57.5), (-1, 57.0, 57.0), (1, 57.0, 56.9), (1, 57.0, 57.0)],
)
def test_a_stop_placed_beyond_the_price_is_refused_as_crossed(
    fake: FakeFyers, rest: FyersRest, side: int, ltp: float, trigger: float
) -> None:
    """A sell stop at or above the last price, a buy stop at or below it: FYERS refuses it, and
    the client says "trigger crossed" so the trader exits at market instead of retrying."""
    _set_ltp(fake, "SAIL", ltp)
    with pytest.raises(FyersStopCrossed) as ei:
        rest.place(_order("SAIL", side, 3, stop=trigger))
    assert ei.value.code == -99 and "last traded price" in ei.value.reason
    br = FyersBroker(rest, SymbolMap(FyersSettings()), fallback_seconds=0.0)
    req = OrderRequest("2012071000SSAIL0002", "SAIL", side, OrderType.STOP, 10, trigger=trigger)
    with pytest.raises(BrokerError, match="trigger crossed") as be:
        br.place(req, 0)
    assert isinstance(be.value.__cause__, FyersStopCrossed)
    assert all(o.status == 5 for o in fake.orders.values()), "nothing rests at FYERS"


def test_a_stop_on_the_right_side_is_accepted(fake: FakeFyers, rest: FyersRest) -> None:
    _set_ltp(fake, "SAIL", 57.0)
    assert rest.place(_order("SAIL", -1, 3, stop=56.5))
    assert rest.place(_order("SAIL", 1, 3, stop=57.5, tag="T2"))


def test_a_ratchet_above_the_price_is_refused_and_the_old_stop_stays(fake: FakeFyers, rest: FyersRest) -> None:
    """A stop moved beyond the price is refused as crossed; FYERS keeps the old trigger."""
    _set_ltp(fake, "SAIL", 57.0)
    br = FyersBroker(rest, SymbolMap(FyersSettings()), fallback_seconds=0.0)
    placed = br.place(OrderRequest("2012071000SSAIL0001", "SAIL", -1, OrderType.STOP, 10, trigger=55.0), 0)
    _set_ltp(fake, "SAIL", 55.9)  # the price falls towards the stop
    with pytest.raises(BrokerError, match="trigger crossed") as be:
        br.modify("2012071000SSAIL0001", 0, trigger=56.0)
    assert isinstance(be.value.__cause__, FyersStopCrossed)
    assert fake.orders[placed.broker_id].stop == 55.0 and fake.orders[placed.broker_id].status == 6


def test_rejection_classes_by_message() -> None:
    ep = "POST /orders/sync"
    crossed = "Trigger price for stoploss buy orders should be higher than the last traded price."
    assert isinstance(rejection(ep, crossed, -99, 200), FyersStopCrossed)
    assert isinstance(rejection(ep, "RMS:Trigger price should be less than LTP", None, 400), FyersStopCrossed)
    assert isinstance(rejection(ep, "StopLoss not a multiple of tick size 0.0500", -50, 400), FyersTickError)
    plain = rejection(ep, "RMS:Rule: Check circuit limit including square off order exceeds", -99, 200)
    assert type(plain) is FyersRejected
    assert type(rejection(ep, "Invalid orderTag", -50, 400)) is not FyersTickError


# --------------------------------------------------------------------------- ticks


def test_the_band_table_is_nse_s() -> None:
    cases = {
        249.99: 0.01,
        250.0: 0.05,
        1000.0: 0.05,
        1000.05: 0.10,
        5000.0: 0.10,
        5000.5: 0.50,
        10000.0: 0.50,
        10001.0: 1.00,
        20000.0: 1.00,
        20005.0: 5.00,
    }
    assert {p: band_tick(p) for p in cases} == cases
    ticks = [b.tick for b in NSE_EQ_TICK_BANDS]
    assert ticks == sorted(ticks)


@given(price=st.floats(0.05, 200_000.0), ratio=st.floats(0.0, 2.0))
def test_the_fallback_tick_is_valid_for_any_band_of_last_month(price: float, ratio: float) -> None:
    """Whatever last month's close (up to twice today's price), the exchange's tick divides
    the fallback tick, so a price rounded with it is on the exchange's grid."""
    steps = fallback_tick(price) / band_tick(price * ratio)
    assert abs(steps - round(steps)) < 1e-9 and round(steps) >= 1


def test_an_instrument_missing_from_the_master_is_rounded_with_the_band_table(fake: FakeFyers, rest: FyersRest) -> None:
    """AXISBANK at Rs 1,500 trades in steps of 0.10 now: a stop rounded to 0.05 is refused."""
    fake.s.ticks["AXISBANK"] = 0.10
    br = FyersBroker(rest, SymbolMap(FyersSettings()), fallback_seconds=0.0)
    o = br.place(OrderRequest("2012071000EAXISBANK01", "AXISBANK", 1, OrderType.STOP, 5, trigger=1500.03), 0)
    assert o.trigger == 1500.1  # a buy stop rounds up, on the exchange's grid
    assert fake.orders[o.broker_id].stop == 1500.1


def test_an_off_tick_price_is_a_bug_alert_never_a_silent_retry(
    fake: FakeFyers, rest: FyersRest, caplog: pytest.LogCaptureFixture
) -> None:
    """A symbol master whose tick is finer than the exchange's: FYERS refuses with -50; the
    adapter logs CRITICAL naming symbol, price and tick, and sends the order once."""
    fake.s.ticks["AXISBANK"] = 0.10
    wrong = {"AXISBANK": Instrument("AXISBANK", "NSE:AXISBANK-EQ", 0.05)}
    br = FyersBroker(rest, SymbolMap(FyersSettings(), wrong), fallback_seconds=0.0)
    before = fake.place_calls
    with caplog.at_level(logging.CRITICAL, logger="tfl.fyers.broker"), pytest.raises(BrokerError) as be:
        br.place(OrderRequest("2012071000EAXISBANK01", "AXISBANK", 1, OrderType.STOP, 5, trigger=1500.03), 0)
    assert isinstance(be.value.__cause__, FyersTickError) and be.value.__cause__.code == -50
    assert fake.place_calls == before + 1, "sent once"
    crit = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert crit, "a CRITICAL alert"
    fields = crit[0].fields  # type: ignore[attr-defined]
    assert fields["symbol"] == "AXISBANK" and fields["price"] == 1500.05 and fields["tick"] == 0.05


def test_a_stale_master_uses_the_coarser_tick() -> None:
    inst = {"AXISBANK": Instrument("AXISBANK", "NSE:AXISBANK-EQ", 0.05)}
    assert SymbolMap(FyersSettings(), inst).tick_for("AXISBANK", 1500.0) == 0.05
    assert SymbolMap(FyersSettings(), inst, stale=True).tick_for("AXISBANK", 1500.0) == 0.10
    assert SymbolMap(FyersSettings()).tick_for("SAIL", 60.0) == 0.01


# --------------------------------------------------------------------------- the symbol master


def _pre_open(fake: FakeFyers, rest: FyersRest, data: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The live pre-open step that refreshes the master and tops up history, for SAIL."""
    from tfl.cli import fyers_cmds as fy
    from tfl.cli import live_cmds

    monkeypatch.setattr(fy, "market_now", lambda: float(epoch_of_ist(DAY, 8 * 60 + 45)))
    base = Settings()
    settings = dataclasses.replace(
        base, fyers=dataclasses.replace(base.fyers, symbol_master_url=fake.url + MASTER, http_timeout_seconds=2.0)
    )
    kit = SimpleNamespace(rest=rest, symbols=SymbolMap(settings.fyers, read_instruments(data / fy.INSTRUMENTS_FILE)))
    alerts: list[tuple[str, str]] = []
    names = live_cmds._fresh_symbols(
        SimpleNamespace(data=data, symbols=["SAIL"]),
        settings,
        kit,
        SimpleNamespace(previous_session=lambda day: dt.date(2020, 12, 4)),
        SimpleNamespace(date=DAY, open_minute=555),
        SimpleNamespace(alert=lambda level, text: alerts.append((level, text))),
        SimpleNamespace(maybe_beat=lambda *a: None),
        [],
    )
    return kit, names


def _old_master(data: Path) -> Path:
    data.mkdir(parents=True, exist_ok=True)
    path = data / "symbols.csv"
    write_instruments(path, [Instrument("SAIL", "NSE:SAIL-EQ", 0.05, 1, "OLD")])
    yesterday = epoch_of_ist(dt.date(2020, 12, 4), 20 * 60)
    os.utime(path, (yesterday, yesterday))
    return path


def test_the_symbol_master_is_refreshed_every_morning(
    fake: FakeFyers, rest: FyersRest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Yesterday's master is replaced before the open: the tick sizes are today's."""
    path = _old_master(tmp_path / "data")
    kit, names = _pre_open(fake, rest, tmp_path / "data", monkeypatch)
    assert names == ["SAIL"]
    assert MASTER in [p for _, p in fake.requests], "downloaded"
    fresh = read_instruments(path)
    assert fresh["SAIL"].isin != "OLD" and fresh["SAIL"].tick == fake.tick_of("SAIL") == 0.01
    assert kit.symbols.tick_for("SAIL", 60.0) == 0.01
    assert not list(path.parent.glob("*.part"))


def test_a_failed_refresh_keeps_yesterday_s_master_with_a_warning(
    fake: FakeFyers, rest: FyersRest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = _old_master(tmp_path / "data")
    before = path.read_bytes()
    fake.s.raw_answers[MASTER] = [(503, "Service unavailable")]
    with caplog.at_level(logging.WARNING):
        kit, names = _pre_open(fake, rest, tmp_path / "data", monkeypatch)
    assert not fake.s.raw_answers[MASTER], "the download was tried and failed"
    assert path.read_bytes() == before and names == ["SAIL"]
    assert any("symbol master not refreshed" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert kit.symbols.tick_for("SAIL", 120.0) == 0.05  # yesterday's tick, or the band's where coarser


def test_a_master_write_that_fails_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "symbols.csv"
    write_instruments(path, [Instrument("SAIL", "NSE:SAIL-EQ", 0.05)])
    before = path.read_bytes()

    class Unwritable:
        def __str__(self) -> str:
            raise OSError("disk full")

    broken = [Instrument("BEL", "NSE:BEL-EQ", 0.01), Instrument("SAIL", "NSE:SAIL-EQ", Unwritable())]  # type: ignore[arg-type]
    with pytest.raises(OSError, match="disk full"):
        write_instruments(path, broken)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.part"))


# --------------------------------------------------------------------------- history and shapes


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"s": "no_data", "candles": []}),
        (200, {"s": "no_data", "code": 0, "message": "No data found"}),
        (200, {"s": "ok", "code": 200, "candles": []}),
        (200, {"s": "ok", "code": 200, "message": ""}),
    ],
)
def test_history_without_candles_is_empty(fake: FakeFyers, rest: FyersRest, answer: tuple[int, Any]) -> None:
    fake.s.raw_answers[HISTORY] = [answer]
    assert rest.history("NSE:SAIL-EQ", "15", 1_600_000_000, 1_600_086_400) == []


def test_a_symbol_without_candles_is_not_a_download_failure(fake: FakeFyers, rest: FyersRest, tmp_path: Path) -> None:
    """Before the open: FYERS has nothing for the range: no problem, no file, the symbol sits
    the day out as lacking history (not as FYERS being unreachable)."""
    fake.s.raw_answers[HISTORY] = [(200, {"s": "no_data"})] * 20
    check = ensure_history(
        rest,
        SymbolMap(FyersSettings()),
        ["SAIL"],
        tmp_path,
        dt.date(2020, 12, 4),
        days=30,
        now=epoch_of_ist(DAY, 8 * 60 + 45),
    )
    assert check.problems == [] and check.unreachable == 0 and check.stale == ["SAIL"]
    assert len(fake.s.raw_answers[HISTORY]) < 20, "FYERS was asked"


def test_odd_candle_rows_are_logged_and_skipped(
    fake: FakeFyers, rest: FyersRest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t0 = epoch_of_ist(dt.date(2020, 12, 4), 555)
    rows = [
        [t0, 120.0, 121.0, 119.5, 120.5, 1000],
        [t0 + 900, 120.5, 121.0],  # too short
        [t0 + 1800, "x", 121.0, 119.0, 120.0, 10],  # not a number
        {"t": t0 + 2700},  # not a row
        [t0 + 3600, 120.0, 121.0, 119.5, 120.5, 900, 0],  # with open interest: kept
    ]
    fake.s.raw_answers[HISTORY] = [(200, {"s": "ok", "candles": rows})]
    with caplog.at_level(logging.WARNING, logger="tfl.fyers"):
        got = rest.history("NSE:SAIL-EQ", "15", t0, t0 + 4000)
    assert [int(r[0]) for r in got] == [t0, t0 + 3600] and all(len(r) == 6 for r in got)
    assert sum("unexpected shape" in r.getMessage() for r in caplog.records) == 3
    fake.s.raw_answers[HISTORY] = [(200, {"s": "ok", "candles": {"oops": 1}})]
    assert rest.history("NSE:SAIL-EQ", "15", t0, t0 + 4000) == []
    fake.s.raw_answers[HISTORY] = [(200, {"s": "ok", "candles": rows})]
    new = fetch_symbol(
        rest,
        SymbolMap(FyersSettings()),
        "SAIL",
        "15",
        dt.date(2020, 12, 4),
        dt.date(2020, 12, 4),
        tmp_path,
        now=epoch_of_ist(DAY, 8 * 60),
    )
    assert new == 2


def test_books_and_quotes_of_an_unexpected_shape_are_skipped(fake: FakeFyers, rest: FyersRest) -> None:
    fake.s.raw_answers["/api/v3/orders"] = [(200, {"s": "ok", "orderBook": {"id": "1"}})]
    assert rest.orderbook() == []
    fake.s.raw_answers["/api/v3/tradebook"] = [(200, {"s": "ok", "tradeBook": [{"id": "1"}, "junk", 3]})]
    assert rest.tradebook() == [{"id": "1"}]
    fake.s.raw_answers["/api/v3/positions"] = [(200, {"s": "ok", "netPositions": "none"})]
    assert rest.positions() == []
    fake.s.raw_answers["/api/v3/profile"] = [(200, {"s": "ok", "data": ["x"]})]
    assert rest.profile() == {}
    quotes = [
        {"n": "NSE:SAIL-EQ", "s": "ok", "v": {"lp": "n/a"}},
        {"n": "NSE:BEL-EQ", "s": "ok", "v": {"lp": 130.5}},
        "junk",
        {"n": "NSE:DLF-EQ", "s": "ok", "v": None},
    ]
    fake.s.raw_answers["/data/quotes"] = [(200, {"s": "ok", "d": quotes})]
    assert rest.quotes(["NSE:SAIL-EQ", "NSE:BEL-EQ", "NSE:DLF-EQ"]) == {"NSE:BEL-EQ": 130.5}
