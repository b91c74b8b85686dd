"""NSE's published holiday list for a year, read from a CSV or the circular's table pasted as text.

NSE announces the next year's trading holidays by circular in December, often before the
calendar package has them. The operator copies the circular's table (or a CSV of it) and
``tfl calendar add-year`` turns it into the override file's ``years`` entry. Each line that
holds a date is one holiday; lines without a date (headings, notes) are ignored. Nothing is
guessed: a line with a date that does not parse, with two dates, or whose weekday name
contradicts its date is refused, so is a date outside the year or listed twice.

NSE's list also names holidays that fall on a Saturday or Sunday. The exchange is shut on
weekends anyway, so they are not closures: they are reported and left out. Special weekend
sessions (budget day, DR drills) come by their own circulars into ``sessions``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

# A weekday-holiday count outside this range is almost surely a paste error (a part of the
# table, or two years' tables): NSE closed 12 to 17 weekdays a year in 2020-2026.
PLAUSIBLE_WEEKDAY_HOLIDAYS = (10, 22)

_MONTHS = {
    name: i
    for i, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        1,
    )
    for name in names
}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH = r"[A-Za-z]{3,9}"
# Date shapes found in NSE circulars and spreadsheets; each shape is parsed strictly afterwards.
_SHAPES = (
    ("iso", re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")),
    ("dmy_name", re.compile(rf"\b(\d{{1,2}})[-\s/.]({_MONTH})[-\s/.,]+(\d{{4}})\b")),
    ("mdy_name", re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b")),
    ("dmy_num", re.compile(r"\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\b")),
)
_WEEKDAY_WORD = re.compile(r"\b(" + "|".join(_WEEKDAYS) + r")\b", re.IGNORECASE)


class HolidayListError(ValueError):
    """The list cannot be used; the message names the line and the problem."""


@dataclass(frozen=True)
class Holiday:
    date: dt.date
    name: str
    line: int


@dataclass
class HolidayList:
    year: int
    closures: list[Holiday] = field(default_factory=list)  # weekday holidays: the days NSE is shut
    weekend: list[Holiday] = field(default_factory=list)  # listed by NSE, but no trading day is lost

    @property
    def plausible(self) -> bool:
        lo, hi = PLAUSIBLE_WEEKDAY_HOLIDAYS
        return lo <= len(self.closures) <= hi


def _to_date(shape: str, groups: tuple[str, ...]) -> dt.date | None:
    """The date a shape's match names, or None when it names none (31 February, a month 'Xyz')."""
    try:
        if shape == "iso":
            return dt.date(int(groups[0]), int(groups[1]), int(groups[2]))
        if shape == "dmy_num":
            return dt.date(int(groups[2]), int(groups[1]), int(groups[0]))
        if shape == "dmy_name":
            month = _MONTHS.get(groups[1].lower())
            return None if month is None else dt.date(int(groups[2]), month, int(groups[0]))
        month = _MONTHS.get(groups[0].lower())
        return None if month is None else dt.date(int(groups[2]), month, int(groups[1]))
    except ValueError:
        return None


def _dates_in(text: str, number: int) -> tuple[list[dt.date], str]:
    """The dates on one line and the line without them; a date-shaped token that is no date is refused."""
    found: list[tuple[int, int, dt.date]] = []
    for shape, pattern in _SHAPES:
        for m in pattern.finditer(text):
            if any(a <= m.start() < b or m.start() <= a < m.end() for a, b, _ in found):
                continue  # the same characters already read as a date by an earlier shape
            day = _to_date(shape, m.groups())
            if day is None:
                if shape in ("dmy_name", "mdy_name") and not any(
                    g.lower() in _MONTHS for g in m.groups() if g.isalpha()
                ):
                    continue  # a word and numbers, not a date ("Sr 1 2027")
                raise HolidayListError(f"line {number}: {m.group(0)!r} is not a valid date")
            found.append((m.start(), m.end(), day))
    found.sort()
    rest = text
    for a, b, _ in reversed(found):
        rest = rest[:a] + " " + rest[b:]
    return [d for _, _, d in found], rest


def _name(rest: str) -> str:
    """The holiday's name: what is left of the line without its number, date and weekday."""
    text = _WEEKDAY_WORD.sub(" ", rest)
    text = re.sub(r"^[\s|,;\t]*\d{1,2}[.)]?(?=[\s|,;\t])", " ", text)  # the serial number
    parts = [p.strip(" \"'") for p in re.split(r"[|,;\t]", text)]
    return " ".join(" ".join(p.split()) for p in parts if p.strip(" \"'")).strip()


def parse_holiday_list(text: str, year: int) -> HolidayList:
    """Read NSE's holiday list for ``year`` from ``text`` (CSV or pasted table); raises HolidayListError."""
    out = HolidayList(year)
    seen: dict[dt.date, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        dates, rest = _dates_in(line, number)
        if not dates:
            continue
        if len(set(dates)) > 1:
            shown = ", ".join(d.isoformat() for d in dates)
            raise HolidayListError(f"line {number}: more than one date ({shown}): one holiday per line")
        day = dates[0]
        if day.year != year:
            raise HolidayListError(f"line {number}: {day.isoformat()} is not in {year}")
        if day in seen:
            raise HolidayListError(f"line {number}: {day.isoformat()} is listed twice (first on line {seen[day]})")
        seen[day] = number
        said = {w.lower() for w in _WEEKDAY_WORD.findall(rest)}
        actual = _WEEKDAYS[day.weekday()]
        if said and said != {actual}:
            raise HolidayListError(
                f"line {number}: {day.isoformat()} is a {actual.title()}, the line says {', '.join(sorted(said))}"
            )
        holiday = Holiday(day, _name(rest), number)
        (out.weekend if day.weekday() >= 5 else out.closures).append(holiday)
    if not seen:
        raise HolidayListError(f"no dates found: expected NSE's {year} holiday table, one holiday per line")
    out.closures.sort(key=lambda h: h.date)
    out.weekend.sort(key=lambda h: h.date)
    return out
