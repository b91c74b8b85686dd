"""Bars from ticks (and the ticks that must not make them), and the NSE calendar."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from tfl.calendar.nse import CalendarError, NseCalendar, package_last_year
from tfl.live.bars import BarBuilder
from tfl.live.feed import Tick
from tfl.timeutil import epoch_of_ist

OPEN = epoch_of_ist(dt.date(2024, 3, 6), 555)


def t(sec: int, price: float, vol: float, sym: str = "X") -> Tick:
    return Tick(sym, OPEN + sec, price, vol, (OPEN + sec) * 1000)


def test_ticks_make_ohlcv_bars_and_bad_ticks_are_dropped() -> None:
    b = BarBuilder(OPEN)
    for tick in (
        t(0, 100.0, 10),
        t(60, 101.0, 15),
        t(60, 101.0, 15),
        t(120, 99.5, 30),
        t(90, 150.0, 31),
        t(130, 0.0, 40),
        t(140, math.nan, 41),
        t(150, 180.0, 42),
        t(200, 100.5, 50),
        t(900, 100.7, 55),
        t(800, 100.1, 56),
    ):
        b.on_tick(tick)
    bars = b.close_until(OPEN + 900)
    assert len(bars) == 1
    bar = bars[0]
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (100.0, 101.0, 99.5, 100.5, 50.0)
    assert b.dropped == {"bad_price": 3, "duplicate": 1, "out_of_order": 2, "outside": 0}
    nxt = b.close_until(OPEN + 1800)
    assert [(x.open, x.volume) for x in nxt] == [(100.7, 5.0)]


def test_volume_after_a_restart_uses_the_days_volume_so_far() -> None:
    b = BarBuilder(OPEN, day_volume={"X": 1000.0})
    b.on_tick(t(900, 100.0, 1010))
    b.on_tick(t(1000, 100.5, 1030))
    assert b.close_until(OPEN + 1800)[0].volume == 30.0


def test_calendar_regular_special_and_closed_days(tmp_path: Path) -> None:
    cal = NseCalendar()
    assert cal.session(dt.date(2024, 3, 8)) is None  # Mahashivratri
    assert cal.session(dt.date(2024, 3, 9)) is None  # Saturday
    assert cal.session(dt.date(2021, 11, 4)) is None  # Muhurat evening only: not traded
    half = cal.session(dt.date(2024, 3, 2))
    assert half is not None and half.close_minute == 12 * 60 + 30 and half.last_bar_minute == 12 * 60 + 15
    normal = cal.session(dt.date(2024, 3, 6))
    assert normal is not None and normal.squareoff_minute(15 * 60 + 15) == 15 * 60 + 15
    override = tmp_path / "cal.json"
    override.write_text('{"sessions": {"2024-03-09": {"open": "09:15", "close": "15:30"}}, "closed": ["2024-03-06"]}')
    cal2 = NseCalendar(override)
    assert cal2.session(dt.date(2024, 3, 9)) is not None and cal2.session(dt.date(2024, 3, 6)) is None


def test_calendar_fails_closed_past_its_table_and_on_bad_overrides(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="refusing to guess"):
        NseCalendar().session(dt.date(package_last_year() + 1, 3, 1))
    bad = tmp_path / "bad.json"
    bad.write_text('{"sessions": {"2024-13-01": {"open": "09:15", "close": "15:30"}}}')
    with pytest.raises(CalendarError, match="invalid"):
        NseCalendar(bad)


def test_a_new_years_holidays_from_the_circular_extend_the_calendar(tmp_path: Path) -> None:
    """NSE publishes next year's holidays in December, often before the calendar package:
    listing them in an override file keeps the system trading on 1 January."""
    import json

    year = package_last_year() + 1
    jan = [dt.date(year, 1, d) for d in range(1, 15)]
    holiday = next(d for d in jan if d.weekday() == 2)  # some Wednesday
    override = tmp_path / "next-year.json"
    override.write_text(json.dumps({"years": {str(year): {"holidays": [holiday.isoformat()], "source": "test"}}}))
    cal = NseCalendar(override)
    assert cal.last_year == year and NseCalendar().last_year == year - 1
    assert cal.session(holiday) is None
    weekdays = [d for d in jan if d.weekday() < 5 and d != holiday]
    got = [cal.session(d) for d in weekdays]
    assert all(s is not None and (s.open_minute, s.close_minute) == (555, 930) for s in got)
    assert all(cal.session(d) is None for d in jan if d.weekday() >= 5)
    with pytest.raises(CalendarError, match="refusing to guess"):
        cal.session(dt.date(year + 1, 3, 1))  # the year after is still unknown
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"years": {str(year): {"holidays": [f"{year + 1}-01-26"]}}}))
    with pytest.raises(CalendarError, match="outside"):
        NseCalendar(wrong)


def test_previous_session_skips_holidays_and_sees_special_saturdays() -> None:
    from tfl.aws.calendar_table import load_table

    cal = NseCalendar()
    assert cal.previous_session(dt.date(2020, 12, 7)) == dt.date(2020, 12, 4)  # over a weekend
    assert cal.previous_session(dt.date(2024, 1, 23)) == dt.date(2024, 1, 20)  # 22nd a holiday, 20th a Saturday session
    table = load_table()  # the Lambdas' table agrees, day by day
    day = dt.date(2024, 1, 1)
    while day < dt.date(2024, 4, 1):
        assert cal.previous_session(day) == table.previous_session(day), day
        day += dt.timedelta(days=1)
