"""Before the open, against the fake FYERS: order calls from a non-whitelisted IP, FYERS' all-day
block after repeated per-minute breaches, and no stop orders before the open."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_fyers import FakeFyers, FakeOrder, Scenario
from fyers_harness import DAY, SYMBOLS
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.core.orders import OrderRequest, OrderType
from tfl.fyers.broker import FyersBroker
from tfl.fyers.dayblock import BLOCKED_ALERT, DAY_BLOCK_BREACHES, RECHECK_SECONDS, DayBlock
from tfl.fyers.errors import FyersDayBlocked, FyersIpRefused, FyersRateLimited
from tfl.fyers.preflight import IP_FIX, PROBE_ORDER_ID, Access, check_order_access, order_access_gate
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.rest import FyersRest
from tfl.fyers.symbols import SymbolMap
from tfl.live.broker import BrokerError
from tfl.secrets import FileSecretStore
from tfl.settings import FyersSettings
from tfl.timeutil import epoch_of_ist

PRE_OPEN = float(epoch_of_ist(DAY, 8 * 60 + 50))


def start(market, scenario: Scenario | None = None) -> FakeFyers:  # type: ignore[no-untyped-def]
    fake = FakeFyers(market, DAY, SYMBOLS, scenario=scenario).start()
    fake.clock = PRE_OPEN
    return fake


def rest_for(fake: FakeFyers, tmp: Path, block: DayBlock | None = None, url: str | None = None) -> FyersRest:
    store = FileSecretStore(tmp / "secrets.json", environ={})
    store.put("access_token", fake.issue_token())
    return FyersRest(
        url or fake.api_url,
        fake.data_url,
        fake.client_id,
        lambda: store.get("access_token"),
        RateLimiter(500, 30_000),
        timeout=0.6,
        rate_limit_backoff=0.0,
        day_block=block or DayBlock(fake.now),
    )


class Alerts(list[tuple[str, str]]):
    def __call__(self, level: str, message: str) -> None:
        self.append((level, message))


ORDER = {
    "symbol": "NSE:SAIL-EQ",
    "qty": 1,
    "type": 3,
    "side": -1,
    "productType": "INTRADAY",
    "limitPrice": 0,
    "stopPrice": 50.0,
    "validity": "DAY",
    "disclosedQty": 0,
    "offlineOrder": False,
    "orderTag": "P1",
}


# --------------------------------------------------------------------------- the static IP


def test_invalid_order_id_means_order_calls_are_taken(fyers_market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = start(fyers_market)
    try:
        alerts = Alerts()
        assert order_access_gate(rest_for(fake, tmp_path), alerts) is None
        assert alerts == [] and fake.orders == {}
        assert ("DELETE", "/api/v3/orders/sync") in fake.requests  # the check did ask an order API
    finally:
        fake.stop()


def test_a_non_whitelisted_ip_stops_entries_with_a_critical_alert_naming_the_fix(fyers_market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = start(fyers_market, Scenario(ip_not_whitelisted=True))
    try:
        rest = rest_for(fake, tmp_path)
        alerts = Alerts()
        why = order_access_gate(rest, alerts)
        assert fake.ip_refused == 1  # the fault happened, once: the probe
        assert why is not None and "IP" in why
        assert [level for level, _ in alerts] == ["CRITICAL"]
        assert "Elastic IP" in alerts[0][1] and "FYERS API dashboard" in alerts[0][1]
        # An order call during the day is classified the same way, and the broker's rejection names the fix.
        with pytest.raises(FyersIpRefused):
            rest.place(dict(ORDER))
        broker = FyersBroker(rest, SymbolMap(FyersSettings()))
        with pytest.raises(BrokerError, match="Elastic IP"):
            broker.place(OrderRequest("2012071000SSAIL0001", "SAIL", -1, OrderType.STOP, 1, trigger=50.0), 0)
        assert fake.orders == {} and rest.profile()["fy_id"] == "XY00001"  # data calls still work
    finally:
        fake.stop()


def test_an_answer_that_is_not_invalid_order_id_is_read_as_refused(fyers_market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """FYERS' answer to a non-whitelisted IP is not documented: an unexplained refusal of the
    check is the safe reading, order calls may be refused."""
    odd = (400, {"s": "error", "code": -1, "message": "Request not permitted"})
    fake = start(fyers_market, Scenario(ip_not_whitelisted=True, ip_refusal=odd))
    try:
        rest = rest_for(fake, tmp_path)
        assert check_order_access(rest).access is Access.DOUBTFUL
        alerts = Alerts()
        assert order_access_gate(rest, alerts) is not None
        assert [level for level, _ in alerts] == ["CRITICAL"] and "may be refused" in alerts[0][1]
    finally:
        fake.stop()


def test_no_answer_says_nothing_about_the_ip(fyers_market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = start(fyers_market)
    try:
        rest = rest_for(fake, tmp_path, url="http://127.0.0.1:9/api/v3")  # nothing listens there
        paused: list[float] = []
        assert check_order_access(rest, pause=paused.append).access is Access.UNKNOWN
        assert len(paused) == 2  # asked three times
        alerts = Alerts()
        assert order_access_gate(rest, alerts, pause=paused.append) is None  # trading goes on
        assert [level for level, _ in alerts] == ["ERROR"] and IP_FIX in alerts[0][1]
    finally:
        fake.stop()


def test_the_check_never_cancels_one_of_todays_orders(fyers_market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = start(fyers_market)
    try:
        mine = FakeOrder(PROBE_ORDER_ID, "T1", "NSE:SAIL-EQ", "SAIL", -1, 3, 1, 0.0, 50.0)
        fake.orders[mine.id] = mine
        assert check_order_access(rest_for(fake, tmp_path)).access is Access.ACCEPTED
        assert mine.status == 6  # still pending: the check asked about another id
    finally:
        fake.stop()


# --------------------------------------------------------------------------- the day block


def test_repeated_per_minute_breaches_block_the_day_and_nothing_more_is_sent(
    fyers_market,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    fake = start(fyers_market, Scenario(per_minute_limit=2, retry_after=0.0))
    try:
        alerts = Alerts()
        rest = rest_for(fake, tmp_path, DayBlock(fake.now, alerts))
        for minute in range(DAY_BLOCK_BREACHES - 1):  # three breached minutes: plain 429s, retried
            fake.clock = PRE_OPEN + 60 * minute
            rest.profile()
            rest.profile()
            with pytest.raises(FyersRateLimited):
                rest.profile()
        assert alerts == [] and not fake.day_blocked
        fake.clock = PRE_OPEN + 60 * DAY_BLOCK_BREACHES
        rest.profile()
        rest.profile()
        with pytest.raises(FyersDayBlocked):  # the fourth breach: FYERS blocks the app, TFL knows
            rest.profile()
        assert fake.day_blocked  # the fake did block (more than three breaches)
        assert alerts == [("CRITICAL", BLOCKED_ALERT)]
        assert "15:15" in BLOCKED_ALERT and "resting at FYERS" in BLOCKED_ALERT
        sent = len(fake.requests)
        fake.clock += 120  # a new minute: a plain rate limit would allow requests again
        broker = FyersBroker(rest, SymbolMap(FyersSettings()))
        with pytest.raises(BrokerError):  # a definite "not done", not an unknown outcome to look up
            broker.place(OrderRequest("2012071000ESAIL0001", "SAIL", 1, OrderType.STOP, 1, trigger=60.0), 0)
        for _ in range(20):
            with pytest.raises(FyersDayBlocked):
                rest.orderbook()
        assert len(fake.requests) == sent  # nothing that cannot succeed was sent
        fake.clock += RECHECK_SECONDS
        with pytest.raises(FyersDayBlocked):  # one check after 15 minutes: still blocked
            rest.orderbook()
        assert len(fake.requests) == sent + 1 and len(alerts) == 1
        fake.day_blocked = False  # FYERS lifts the block
        fake.clock += RECHECK_SECONDS
        assert rest.orderbook() == []
        assert alerts[-1][0] == "WARNING" and "over" in alerts[-1][1]
    finally:
        fake.stop()


def test_a_429_that_speaks_of_a_block_is_the_day_block_at_once() -> None:
    alerts = Alerts()
    block = DayBlock(lambda: PRE_OPEN, alerts)
    with pytest.raises(FyersDayBlocked):
        block.limited("GET /orders", "User blocked for the day")
    assert [level for level, _ in alerts] == ["CRITICAL"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=24 * 60 - 1), max_size=12))
def test_the_block_is_declared_at_the_fourth_breached_minute_of_a_day(minutes: list[int]) -> None:
    """However the 429s fall, the block is declared exactly when a fourth distinct minute of the
    same IST day has one, and a new day starts from nothing."""
    day_start = float(epoch_of_ist(DAY, 0))
    t = [day_start]
    alerts = Alerts()
    block = DayBlock(lambda: t[0], alerts)
    seen: set[int] = set()
    for m in sorted(minutes):
        t[0] = day_start + 60 * m
        seen.add(m)
        if len(seen) >= DAY_BLOCK_BREACHES:
            with pytest.raises(FyersDayBlocked):
                block.limited("GET /profile", "Request limit reached")
        else:
            block.limited("GET /profile", "Request limit reached")
    assert block.blocked == (len(seen) >= DAY_BLOCK_BREACHES)
    assert len(alerts) == (1 if block.blocked else 0)
    t[0] = day_start + 86400 + 60  # the next day
    block.before("GET /profile")  # sent: the block was for that day only
    assert not block.blocked
