"""The static NSE calendar table the Lambdas use: fresh, equal to the trader's calendar, cross-checked."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tfl.aws.calendar_table import (
    CalendarTable,
    CalendarTableError,
    CalendarTableExpired,
    generate_table,
    load_table,
    main,
    table_json,
)
from tfl.calendar.nse import NseCalendar

REGENERATE = "regenerate it: python -m tfl.aws.calendar_table --out src/tfl/aws/nse_calendar.json"
# The special sessions NSE announced by circular that exchange_calendars' XBOM (BSE, same holidays)
# does not have. A new disagreement between the two packages must be looked at, so the set is exact.
XBOM_DIFFERENCES = {
    dt.date(2020, 2, 1),
    dt.date(2024, 1, 20),
    dt.date(2024, 3, 2),
    dt.date(2024, 5, 18),
    dt.date(2025, 2, 1),
}


@pytest.fixture(scope="module")
def fresh() -> dict[str, Any]:
    return generate_table()


@pytest.fixture(scope="module")
def table() -> CalendarTable:
    return load_table()


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def test_committed_table_equals_a_fresh_generation(fresh: dict[str, Any]) -> None:
    committed = resources.files("tfl.aws").joinpath("nse_calendar.json").read_text(encoding="utf-8")
    # byte for byte: the content depends only on its sources, so the Lambda bundle's hash is stable
    assert committed == table_json(fresh), f"the packaged calendar table is stale: {REGENERATE}"
    assert "generated_at" not in fresh
    assert fresh["first_year"] == 2020
    assert fresh["last_year"] == NseCalendar().last_year
    assert set(fresh["generated_from"]) == {"pandas_market_calendars", "tfl.calendar/overrides.json"}


def test_a_table_with_the_old_generation_date_still_loads(tmp_path: Path, fresh: dict[str, Any]) -> None:
    p = tmp_path / "old.json"
    p.write_text(json.dumps({**fresh, "generated_at": "2026-11-25"}), encoding="utf-8")
    old = load_table(p)
    assert old.generated_at == "2026-11-25" and old.to_dict() == {**fresh, "generated_at": "2026-11-25"}
    assert load_table().generated_at == ""


def test_every_day_agrees_with_the_trader_calendar(table: CalendarTable) -> None:
    cal = NseCalendar()
    checked = 0
    for d in days(dt.date(table.first_year, 1, 1), dt.date(table.last_year, 12, 31)):
        ours, theirs = table.session(d), cal.session(d)
        if theirs is None:
            assert ours is None, d
        else:
            assert ours is not None, d
            assert (ours.date, ours.open_minute, ours.close_minute, ours.note) == (
                theirs.date,
                theirs.open_minute,
                theirs.close_minute,
                theirs.note,
            ), d
            checked += 1
    assert checked > 240 * (table.last_year - table.first_year + 1)


@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")
def test_a_second_package_agrees_except_on_the_announced_special_sessions(table: CalendarTable) -> None:
    import exchange_calendars as xcals

    first, last = dt.date(table.first_year, 1, 1), dt.date(table.last_year, 12, 31)
    xbom = xcals.get_calendar("XBOM", start=first.isoformat(), end=last.isoformat())
    bse = {ts.date() for ts in xbom.sessions}
    differ = {d for d in days(first, last) if table.is_session(d) != (d in bse)}
    assert differ == XBOM_DIFFERENCES
    overrides = json.loads(resources.files("tfl.calendar").joinpath("overrides.json").read_text(encoding="utf-8"))
    assert {dt.date.fromisoformat(d) for d in overrides["sessions"]} == XBOM_DIFFERENCES
    assert all(table.is_session(d) and d.weekday() == 5 for d in XBOM_DIFFERENCES)  # Saturday sessions


def test_sessions_holidays_and_special_hours(table: CalendarTable) -> None:
    assert table.session(dt.date(2024, 5, 16)) is not None  # a regular Thursday
    regular = table.session(dt.date(2024, 5, 16))
    assert regular is not None and (regular.open_minute, regular.close_minute) == (555, 930)
    assert table.session(dt.date(2024, 1, 22)) is None  # a weekday holiday
    assert table.session(dt.date(2024, 5, 19)) is None  # a Sunday
    saturday = table.session(dt.date(2024, 3, 2))
    assert saturday is not None and saturday.close_minute == 12 * 60 + 30 and "DR" in saturday.note
    extended = table.session(dt.date(2021, 2, 24))  # the day NSE extended trading to 17:00
    assert extended is not None and extended.close_minute == 17 * 60
    assert dt.date(2024, 1, 22).isoformat() in table.to_dict()["closed"]


def test_previous_session_skips_holidays_and_finds_special_saturdays(table: CalendarTable) -> None:
    assert table.previous_session(dt.date(2024, 5, 16)) == dt.date(2024, 5, 15)
    assert table.previous_session(dt.date(2024, 1, 23)) == dt.date(2024, 1, 20)  # Mon 22nd closed, Sat 20th open
    assert table.previous_session(dt.date(2024, 5, 21)) == dt.date(2024, 5, 18)  # Mon 20th closed (election)
    assert table.previous_session(dt.date(2024, 5, 20)) == dt.date(2024, 5, 18)


def test_outside_the_table_everything_fails_closed(table: CalendarTable) -> None:
    after = dt.date(table.last_year + 1, 1, 5)
    with pytest.raises(CalendarTableExpired, match=f"ends in {table.last_year}: regenerate it"):
        table.session(after)
    with pytest.raises(CalendarTableExpired):
        table.previous_session(after)
    with pytest.raises(CalendarTableExpired):
        table.is_session(dt.date(table.first_year - 1, 12, 31))
    with pytest.raises(CalendarTableExpired):  # the walk back would leave the table
        table.previous_session(dt.date(table.first_year, 1, 1))
    table.session(dt.date(table.last_year, 12, 31))  # the table's last day still answers
    table.previous_session(dt.date(table.first_year, 1, 2))


def test_a_damaged_table_is_refused(tmp_path: Path, fresh: dict[str, Any]) -> None:
    p = tmp_path / "t.json"
    with pytest.raises(CalendarTableError, match="cannot read"):
        load_table(p)
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(CalendarTableError, match="not valid JSON"):
        load_table(p)
    for change in (
        {"closed": ["2024-13-01"]},
        {"last_year": "2026"},
        {"sessions": {"2024-01-20": {"open": "9.15", "close": "15:30"}}},
        {"sessions": {"2024-01-20": {"close": "15:30"}}},
        {"closed": ["2019-05-01"]},
        {"closed": ["2024-01-20"]},  # both closed and a session
        {"first_year": 2030},
    ):
        p.write_text(json.dumps({**fresh, **change}), encoding="utf-8")
        with pytest.raises(CalendarTableError):
            load_table(p)
    del_key = {k: v for k, v in fresh.items() if k != "closed"}
    p.write_text(json.dumps(del_key), encoding="utf-8")
    with pytest.raises(CalendarTableError, match="invalid"):
        load_table(p)


def test_the_command_line_writes_the_table(
    tmp_path: Path, fresh: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cal.json"
    assert main(["--out", str(out)]) == 0  # what `tfl deploy` does through write_table
    assert f"wrote {out}: 2020..{fresh['last_year']}" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == table_json(fresh)
    assert load_table(out).to_dict() == fresh
