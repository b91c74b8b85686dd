"""`tfl calendar add-year`: NSE's holiday list for the year after the calendar package, validated.

The lists here are made up for the tests ("Test holiday N"): they are not NSE's.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.calendar.holiday_list import HolidayListError, parse_holiday_list
from tfl.calendar.nse import CalendarError, NseCalendar, package_last_year
from tfl.cli import calendar_cmds
from tfl.cli.main import main

YEAR = package_last_year() + 1


def weekdays(year: int, n: int, start: int = 5, step: int = 21) -> list[dt.date]:
    """``n`` weekdays of ``year``, about ``step`` days apart (made up, not NSE's)."""
    out, d = [], dt.date(year, 1, start)
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
            d += dt.timedelta(days=step)
        else:
            d += dt.timedelta(days=1)
    return out


def first_weekend_day(year: int, month: int) -> dt.date:
    d = dt.date(year, month, 1)
    while d.weekday() < 5:
        d += dt.timedelta(days=1)
    return d


def circular(days: list[dt.date], year: int = YEAR, extra: str = "") -> str:
    """The table of NSE's circular as an operator pastes it from the PDF."""
    lines = [f"Holidays for the calendar year {year}", "Sr. No | Holidays | Date | Day"]
    for i, d in enumerate(days, 1):
        lines.append(f"{i} | Test holiday {i} | {d:%d-%b-%Y} | {d:%A}")
    return "\n".join(lines) + "\n" + extra


def run(tmp: Path, text: str, *extra: str, target: Path | None = None) -> tuple[int, Path]:
    src = tmp / "list.txt"
    src.write_text(text)
    target = target or tmp / "overrides.json"
    args = ["calendar", "add-year", "--year", str(YEAR), "--from", str(src), "--source", "TEST circular"]
    return main([*args, "--file", str(target), *extra]), target


def test_the_circular_table_becomes_the_years_holidays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    days = weekdays(YEAR, 14)
    saturday = first_weekend_day(YEAR, 8)
    rc, target = run(tmp_path, circular(days) + f"15 | Test holiday 15 | {saturday:%B %d, %Y} | {saturday:%A}\n")
    out = capsys.readouterr().out
    assert rc == 0, out
    entry = json.loads(target.read_text())["years"][str(YEAR)]
    assert entry["holidays"] == [d.isoformat() for d in days]  # the weekend day is no closure
    assert entry["source"] == "TEST circular" and entry["names"][days[0].isoformat()] == "Test holiday 1"
    assert f"on a weekend, not closures (left out): {saturday.isoformat()}" in out
    with pytest.raises(CalendarError):  # without the file the year is unknown: the trader would not start
        NseCalendar().session(days[0])
    cal = NseCalendar(target)
    assert all(cal.session(d) is None for d in days)
    others = [d for d in (dt.date(YEAR, 1, 1) + dt.timedelta(days=i) for i in range(365)) if d.year == YEAR]
    sessions = [d for d in others if cal.session(d) is not None]
    assert len(sessions) == sum(d.weekday() < 5 for d in others) - len(days)
    assert cal.session(saturday) is None


def test_a_csv_with_a_header_and_a_bom_is_read(tmp_path: Path) -> None:
    days = weekdays(YEAR, 12)
    rows = ["Date,Day,Description"] + [f"{d.isoformat()},{d:%A},Test holiday {i}" for i, d in enumerate(days, 1)]
    src = tmp_path / "list.csv"
    src.write_bytes(("\ufeff" + "\n".join(rows) + "\n").encode())
    target = tmp_path / "o.json"
    rc = main(["calendar", "add-year", "--year", str(YEAR), "--from", str(src), "--source", "T", "--file", str(target)])
    assert rc == 0
    assert json.loads(target.read_text())["years"][str(YEAR)]["holidays"] == [d.isoformat() for d in days]


def test_the_default_target_is_the_packaged_file_the_lambdas_are_built_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    packaged = tmp_path / "overrides.json"  # a copy stands in for src/tfl/calendar/overrides.json
    packaged.write_text(calendar_cmds.PACKAGED.read_text())
    monkeypatch.setattr(calendar_cmds, "PACKAGED", packaged)
    src = tmp_path / "list.txt"
    src.write_text(circular(weekdays(YEAR, 13)))
    assert main(["calendar", "add-year", "--year", str(YEAR), "--from", str(src), "--source", "T"]) == 0
    data = json.loads(packaged.read_text())
    assert str(YEAR) in data["years"] and data["sessions"]  # the existing sessions are kept
    assert "commit and push it, then `tfl deploy`" in capsys.readouterr().out


def _wrong_weekday(d: dt.date) -> str:
    return (d + dt.timedelta(days=1)).strftime("%A")


BAD = [
    ("wrong year", lambda days: circular(days, extra=f"99 | Test | 02-Jan-{YEAR + 1} | x\n"), f"is not in {YEAR}"),
    ("listed twice", lambda days: circular([*days, days[3]]), "is listed twice"),
    (
        "weekday contradicts the date",
        lambda days: circular(days).replace(f"{days[2]:%A}", _wrong_weekday(days[2]), 1),
        f"the line says {_wrong_weekday(weekdays(YEAR, 14)[2]).lower()}",
    ),
    ("no such date", lambda days: circular(days, extra=f"99 | Test | 31-Feb-{YEAR} | Monday\n"), "is not a valid date"),
    ("two dates on a line", lambda days: circular(days, extra=f"99 | {YEAR}-03-02 {YEAR}-03-03\n"), "more than one"),
    ("no dates at all", lambda days: "Sr. No | Holidays | Date | Day\n", "no dates found"),
    ("too few", lambda days: circular(days[:4]), "4 weekday holidays"),
    ("too many", lambda days: circular(weekdays(YEAR, 30, start=2, step=9)), "30 weekday holidays"),
]


@pytest.mark.parametrize(("case", "make", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, make: object, message: str
) -> None:
    days = weekdays(YEAR, 14)
    text = make(days)  # type: ignore[operator]
    rc, target = run(tmp_path, text)
    err = capsys.readouterr().err
    assert rc == 2, case
    assert err.startswith("tfl: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err
    assert not target.exists()


def test_an_unusual_count_needs_force_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, target = run(tmp_path, circular(weekdays(YEAR, 4)), "--force")
    assert rc == 0 and len(json.loads(target.read_text())["years"][str(YEAR)]["holidays"]) == 4
    assert "outside the usual 10-22: accepted because of --force" in capsys.readouterr().out


def test_a_year_already_listed_is_replaced_only_with_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = weekdays(YEAR, 12)
    rc, target = run(tmp_path, circular(first))
    assert rc == 0
    before = target.read_text()
    rc, _ = run(tmp_path, circular(weekdays(YEAR, 13, start=8)))
    assert rc == 2 and "already lists" in capsys.readouterr().err and target.read_text() == before
    rc, _ = run(tmp_path, circular(weekdays(YEAR, 13, start=8)), "--force")
    assert rc == 0 and len(json.loads(target.read_text())["years"][str(YEAR)]["holidays"]) == 13


def test_years_the_package_knows_or_beyond_the_next_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for year, message in ((YEAR - 1, "already lists NSE's"), (YEAR + 1, f"add {YEAR}'s holidays first")):
        src = tmp_path / "l.txt"
        src.write_text(circular(weekdays(year, 14), year))
        target = tmp_path / "o.json"
        rc = main(
            ["calendar", "add-year", "--year", str(year), "--from", str(src), "--source", "T", "--file", str(target)]
        )
        err = capsys.readouterr().err
        assert rc == 2 and message in err and not target.exists(), err


def test_a_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, target = run(tmp_path, circular(weekdays(YEAR, 14)), "--dry-run")
    assert rc == 0 and not target.exists() and "dry run" in capsys.readouterr().out


FORMATS = ("%Y-%m-%d", "%d-%b-%Y", "%d %B %Y", "%B %d, %Y", "%b %d %Y", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y")


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.sets(st.integers(0, 364), min_size=1, max_size=25),
    fmt=st.lists(st.sampled_from(FORMATS), min_size=25, max_size=25),
    with_day=st.booleans(),
)
def test_every_listed_day_is_read_once_weekdays_as_closures(offsets: set[int], fmt: list[str], with_day: bool) -> None:
    year = 2031
    days = sorted({dt.date(year, 1, 1) + dt.timedelta(days=o) for o in offsets if o < 365})
    lines = ["Sr. No | Holidays | Date | Day"]
    for i, d in enumerate(days):
        lines.append(f"{i + 1} | Test holiday {i + 1} | {d.strftime(fmt[i])}" + (f" | {d:%A}" if with_day else ""))
    got = parse_holiday_list("\n".join(lines), year)
    assert [h.date for h in got.closures] == [d for d in days if d.weekday() < 5]
    assert [h.date for h in got.weekend] == [d for d in days if d.weekday() >= 5]
    assert all(h.name == f"Test holiday {h.line - 1}" for h in got.closures + got.weekend)


def test_a_word_that_looks_like_a_month_is_not_a_date() -> None:
    got = parse_holiday_list(f"1 | Republic Day | 26 Jan {YEAR}\n2 Day 14 {YEAR} notes\n", YEAR)
    assert [h.date for h in got.closures + got.weekend] == [dt.date(YEAR, 1, 26)]
    with pytest.raises(HolidayListError, match="line 1: '32-Jan-"):
        parse_holiday_list(f"32-Jan-{YEAR}\n", YEAR)
