"""FYERS' market status as the answer when the calendar has none: the real REST client against the fake.

The clock is the fake's simulated one and every wait advances it: nothing here depends on
the machine's speed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fake_fyers import FakeFyers, Scenario
from fyers_harness import DAY, SETTINGS, SYMBOLS

from tfl.calendar.nse import CalendarError
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.rest import FyersRest
from tfl.fyers.symbols import SymbolMap
from tfl.live.broker_session import BrokerBackedCalendar, ask_broker, broker_previous_session, nse_cash_status
from tfl.timeutil import epoch_of_ist


@pytest.fixture
def fake_at(fyers_market: Any) -> Iterator[Any]:
    made: list[FakeFyers] = []

    def make(minute: int, **scenario: Any) -> tuple[FakeFyers, FyersRest]:
        fake = FakeFyers(
            fyers_market, DAY, SYMBOLS, scenario=Scenario(start_clock=epoch_of_ist(DAY, minute), **scenario)
        ).start()
        made.append(fake)
        token = fake.issue_token()
        rest = FyersRest(fake.api_url, fake.data_url, fake.client_id, lambda: token, RateLimiter(50, 3000), timeout=2)
        return fake, rest

    yield make
    for fake in made:
        fake.stop()


def advance(fake: FakeFyers) -> Any:
    def sleep(seconds: float) -> None:
        assert seconds > 0
        fake.clock += seconds

    return sleep


def status_asks(fake: FakeFyers) -> int:
    return sum(1 for _, path in fake.requests if path == "/data/marketStatus")


def test_a_session_day_is_confirmed_at_the_pre_open_not_before(fake_at: Any) -> None:
    fake, rest = fake_at(8 * 60 + 30)  # the server starts at 08:30: NSE shows CLOSED until 09:00
    verdict = ask_broker(rest.market_status, DAY, now=fake.now, sleep=advance(fake))
    assert verdict.session is True and verdict.status == "PREOPEN"
    assert verdict.asked > 1 and status_asks(fake) == verdict.asked  # the 08:30 CLOSED decided nothing
    assert epoch_of_ist(DAY, 9 * 60) <= fake.clock < epoch_of_ist(DAY, 9 * 60 + 1)


def test_a_restart_during_the_session_sees_open_at_once(fake_at: Any) -> None:
    fake, rest = fake_at(11 * 60)
    verdict = ask_broker(rest.market_status, DAY, now=fake.now, sleep=advance(fake))
    assert (verdict.session, verdict.status, verdict.asked) == (True, "OPEN", 1)


def test_a_holiday_is_decided_only_after_the_open_and_mcx_trading_does_not_count(fake_at: Any) -> None:
    fake, rest = fake_at(8 * 60 + 30, nse_holiday=True)
    assert "OPEN" in {r["status"] for r in rest.market_status()}  # MCX trades on an NSE holiday
    verdict = ask_broker(rest.market_status, DAY, now=fake.now, sleep=advance(fake))
    assert verdict.session is False and verdict.status == "CLOSED"
    assert fake.clock >= epoch_of_ist(DAY, 9 * 60 + 20)  # five minutes past the regular open
    assert verdict.asked > 2


def test_no_answer_from_fyers_is_no_verdict_never_a_session(fake_at: Any) -> None:
    fake, rest = fake_at(8 * 60 + 55, market_status_down=True)
    verdict = ask_broker(rest.market_status, DAY, now=fake.now, sleep=advance(fake))
    assert verdict.session is None and "HTTP 500" in verdict.status
    assert status_asks(fake) == verdict.asked > 1  # the fault was met, and asked again until the deadline


def test_only_the_nse_capital_markets_normal_row_counts() -> None:
    rows = [
        {"exchange": 11, "segment": 20, "market_type": "NORMAL", "status": "OPEN"},
        {"exchange": 10, "segment": 10, "market_type": "ODD_LOT", "status": "OPEN"},
        {"exchange": 10, "segment": 10, "market_type": "NORMAL", "status": "postclose_closed"},
    ]
    assert nse_cash_status(rows) == "POSTCLOSE_CLOSED"
    assert nse_cash_status(rows[:2]) is None
    assert nse_cash_status({"marketStatus": rows}) is None and nse_cash_status([None, "x"]) is None


@pytest.mark.parametrize(
    ("day", "previous"),
    [(DAY, dt.date(2020, 12, 4)), (dt.date(2020, 11, 17), dt.date(2020, 11, 13))],
    ids=["after-a-weekend", "after-a-holiday-and-a-weekend"],
)
def test_the_previous_session_comes_from_fyers_daily_candles(
    fake_at: Any, day: dt.date, previous: dt.date, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfl.calendar import nse

    _, rest = fake_at(8 * 60 + 30)
    ticker = SymbolMap(SETTINGS.fyers).ticker(SETTINGS.bias.benchmark_symbol)
    assert broker_previous_session(rest.history, ticker, day) == previous
    monkeypatch.setattr(nse, "package_last_year", lambda: 2019)  # as if the calendar had no 2020 table
    cal = BrokerBackedCalendar(nse.NseCalendar(), lambda d: broker_previous_session(rest.history, ticker, d))
    with pytest.raises(CalendarError):
        nse.NseCalendar().previous_session(day)
    assert cal.previous_session(day) == previous
    with pytest.raises(CalendarError, match="no weekday candle"):
        broker_previous_session(rest.history, ticker, dt.date(1990, 1, 2))
