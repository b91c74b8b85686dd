"""History before the open: the end-of-day daily candle, and the top-up of a data directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fake_fyers import FakeFyers
from fyers_harness import DAY, SYMBOLS

from tfl.fyers.history import fetch, is_final
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.rest import FyersRest
from tfl.fyers.symbols import SymbolMap
from tfl.fyers.topup import ensure_history, last_day
from tfl.secrets import FileSecretStore
from tfl.settings import FyersSettings
from tfl.timeutil import epoch_of_ist

PREVIOUS = dt.date(2020, 12, 4)  # the Friday before DAY (a Monday)


@pytest.fixture
def rest(fyers_market, tmp_path: Path):  # type: ignore[no-untyped-def]
    fake = FakeFyers(fyers_market, DAY, SYMBOLS).start()
    store = FileSecretStore(tmp_path / "secrets.json", environ={})
    store.put("access_token", fake.issue_token())
    client = FyersRest(
        fake.api_url, fake.data_url, fake.client_id, lambda: store.get("access_token"), RateLimiter(500, 30_000)
    )
    client.fake = fake  # type: ignore[attr-defined]
    yield client
    fake.stop()


def history_calls(rest: FyersRest) -> int:
    return sum(1 for r in rest.fake.requests if r[1] == "/data/history")  # type: ignore[attr-defined]


def test_a_daily_candle_is_final_from_16_00_ist_whatever_its_stamp() -> None:
    utc_midnight = epoch_of_ist(DAY, 5 * 60 + 30)  # how FYERS stamps daily candles
    ist_midnight = epoch_of_ist(DAY, 0)
    for stamp in (utc_midnight, ist_midnight):
        assert not is_final(stamp, "D", epoch_of_ist(DAY, 15 * 60 + 40))  # the old end-of-day time
        assert is_final(stamp, "D", epoch_of_ist(DAY, 16 * 60))
    assert not is_final(epoch_of_ist(DAY, 15 * 60 + 15), "15", epoch_of_ist(DAY, 15 * 60 + 29))
    assert is_final(epoch_of_ist(DAY, 15 * 60 + 15), "15", epoch_of_ist(DAY, 15 * 60 + 30))


def test_the_end_of_day_fetch_stores_the_days_daily_candle(rest: FyersRest, tmp_path: Path) -> None:
    """The bias job needs the previous session's close: at 16:10 today's candle must be stored."""
    out = tmp_path / "data"
    symbols = SymbolMap(FyersSettings())
    fetch(rest, symbols, ["SAIL"], "D", DAY - dt.timedelta(days=30), DAY, out, now=epoch_of_ist(DAY, 15 * 60 + 40))
    assert last_day(out / "daily" / "SAIL.parquet") == PREVIOUS  # not final yet: left for later
    fetch(rest, symbols, ["SAIL"], "D", DAY - dt.timedelta(days=30), DAY, out, now=epoch_of_ist(DAY, 16 * 60 + 10))
    assert last_day(out / "daily" / "SAIL.parquet") == DAY


def test_top_up_seeds_an_empty_directory_then_does_nothing(rest: FyersRest, tmp_path: Path) -> None:
    data = tmp_path / "data"
    names = ["SAIL", "BEL"]
    now = epoch_of_ist(DAY, 8 * 60 + 50)
    check = ensure_history(rest, SymbolMap(FyersSettings()), names, data, PREVIOUS, days=60, now=now)
    assert check.stale == [] and check.problems == []
    assert set(check.fetched) == {"SAIL 15", "BEL 15", "SAIL D", "BEL D"}
    for sym in names:
        assert last_day(data / "15min" / f"{sym}.parquet") == PREVIOUS
        assert last_day(data / "daily" / f"{sym}.parquet") == PREVIOUS
    calls = history_calls(rest)
    again = ensure_history(rest, SymbolMap(FyersSettings()), names, data, PREVIOUS, days=60, now=now)
    assert again.fetched == {} and again.stale == []
    assert history_calls(rest) == calls, "complete history costs no request"


def test_a_symbol_fyers_cannot_serve_is_left_out_of_the_day(rest: FyersRest, tmp_path: Path) -> None:
    data = tmp_path / "data"
    now = epoch_of_ist(DAY, 8 * 60 + 50)
    check = ensure_history(rest, SymbolMap(FyersSettings()), ["SAIL", "NOSUCH"], data, PREVIOUS, days=30, now=now)
    assert check.stale == ["NOSUCH"]
    assert any(p.startswith("NOSUCH") for p in check.problems)
    assert last_day(data / "15min" / "SAIL.parquet") == PREVIOUS


def test_a_hole_left_by_a_failed_evening_is_filled(rest: FyersRest, tmp_path: Path) -> None:
    """Yesterday's end-of-day job did not run: the files end a session early."""
    data = tmp_path / "data"
    symbols = SymbolMap(FyersSettings())
    day_before = dt.date(2020, 12, 3)
    ensure_history(rest, symbols, ["SAIL"], data, day_before, days=30, now=epoch_of_ist(day_before, 17 * 60))
    assert last_day(data / "15min" / "SAIL.parquet") == day_before
    check = ensure_history(rest, symbols, ["SAIL"], data, PREVIOUS, days=30, now=epoch_of_ist(DAY, 8 * 60 + 50))
    assert check.stale == [] and set(check.fetched) == {"SAIL 15", "SAIL D"}
    assert last_day(data / "15min" / "SAIL.parquet") == PREVIOUS


def test_near_the_open_the_rest_is_left_out_and_a_refusal_is_not_an_outage(rest: FyersRest, tmp_path: Path) -> None:
    data = tmp_path / "data"
    calls = [0]

    def deadline() -> bool:  # the open comes near before BEL's daily bars (the fourth download)
        calls[0] += 1
        return calls[0] > 3

    now = epoch_of_ist(DAY, 9 * 60 + 12)
    check = ensure_history(
        rest, SymbolMap(FyersSettings()), ["SAIL", "BEL"], data, PREVIOUS, days=30, now=now, deadline=deadline
    )
    assert check.skipped == ["BEL"] and check.stale == ["BEL"]
    refused = ensure_history(rest, SymbolMap(FyersSettings()), ["NOSUCH"], data, PREVIOUS, days=30, now=now)
    assert refused.stale == ["NOSUCH"] and refused.unreachable == 0  # FYERS answered: the symbol is unknown


def test_an_unreachable_fyers_counts_as_an_outage(tmp_path: Path) -> None:
    store = FileSecretStore(tmp_path / "secrets.json", environ={})
    store.put("access_token", "x")
    dead = FyersRest(
        "http://127.0.0.1:9/api/v3", "http://127.0.0.1:9/data", "APP-100", lambda: store.get("access_token"),
        RateLimiter(500, 30_000), timeout=0.5,
    )  # fmt: skip
    check = ensure_history(
        dead, SymbolMap(FyersSettings()), ["SAIL"], tmp_path / "data", PREVIOUS, days=30, now=epoch_of_ist(DAY, 540)
    )
    assert check.stale == ["SAIL"] and check.unreachable == 2  # its 15-minute and its daily bars
