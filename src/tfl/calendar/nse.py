"""NSE trading sessions: the calendar package plus an override file for circulars.

``pandas_market_calendars`` (NSE) provides the regular sessions and holidays; the packaged
``overrides.json`` and an optional operator file add special sessions (budget Saturdays,
DR drills) or close days. Bars run from 09:15; the last bar of a session starts 15
minutes before its close. Sessions outside the regular window (Muhurat evenings) are not
traded. Past the end of the calendar package's holiday table, the calendar refuses to
answer (fails closed) rather than guess, unless an override file lists that year's
holidays under ``years`` (from NSE's circular, which comes out in December, often before
the package has it): then every other weekday of that year is a regular session.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tfl.settings import parse_hhmm
from tfl.timeutil import BAR_MINUTES, IST, REGULAR_CLOSE, REGULAR_OPEN


class CalendarError(ValueError):
    """The calendar cannot say whether a day is a session (unknown year, bad override file)."""


@dataclass(frozen=True)
class Session:
    date: dt.date
    open_minute: int  # minutes after IST midnight
    close_minute: int
    note: str = ""

    @property
    def last_bar_minute(self) -> int:
        return self.close_minute - BAR_MINUTES

    def squareoff_minute(self, squareoff: int) -> int:
        """When positions are flattened: the configured time, or the session's end if earlier."""
        return min(squareoff, self.close_minute)

    @property
    def is_short(self) -> bool:
        return self.close_minute < REGULAR_CLOSE


@dataclass(frozen=True)
class Overrides:
    sessions: dict[str, dict[str, str]]  # ISO day -> {"open", "close", "note"}
    closed: set[str]  # ISO days
    years: dict[int, frozenset[str]]  # a year past the package -> its weekday holidays (ISO)


def _read_years(data: dict[str, object]) -> dict[int, frozenset[str]]:
    out: dict[int, frozenset[str]] = {}
    raw = data.get("years", {})
    if not isinstance(raw, dict):
        raise TypeError("'years' must be an object of year -> {holidays: [...]}")
    for year, spec in raw.items():
        y = int(year)
        holidays = spec["holidays"] if isinstance(spec, dict) else None
        if not isinstance(holidays, list):
            raise TypeError(f"years.{year}: 'holidays' must be a list of dates")
        days = {dt.date.fromisoformat(str(d)) for d in holidays}
        wrong = sorted(d.isoformat() for d in days if d.year != y)
        if wrong:
            raise ValueError(f"years.{year}: holidays outside {year}: {', '.join(wrong)}")
        out[y] = frozenset(d.isoformat() for d in days)
    return out


def _read_overrides(path: Path | None) -> Overrides:
    if path is None:
        text = resources.files("tfl.calendar").joinpath("overrides.json").read_text(encoding="utf-8")
        where = "packaged overrides.json"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CalendarError(f"calendar override file {path}: cannot read ({exc.strerror})") from None
        where = str(path)
    try:
        data = json.loads(text)
        sessions = {str(k): dict(v) for k, v in data.get("sessions", {}).items()}
        closed = {str(d) for d in data.get("closed", [])}
        for day, spec in sessions.items():
            dt.date.fromisoformat(day)
            parse_hhmm(spec["open"])
            parse_hhmm(spec["close"])
        for day in closed:
            dt.date.fromisoformat(day)
        years = _read_years(data)
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CalendarError(f"calendar override file {where}: invalid ({exc})") from None
    return Overrides(sessions, closed, years)


@lru_cache(maxsize=4)
def _package_sessions(first_year: int, last_year: int) -> dict[dt.date, tuple[int, int]]:
    import pandas_market_calendars as pmc  # heavy import, only when a calendar is needed

    cal = pmc.get_calendar("NSE")
    sched = cal.schedule(f"{first_year}-01-01", f"{last_year}-12-31")
    out: dict[dt.date, tuple[int, int]] = {}
    for day, row in sched.iterrows():
        o = row.market_open.tz_convert(IST)
        c = row.market_close.tz_convert(IST)
        out[day.date()] = (o.hour * 60 + o.minute, c.hour * 60 + c.minute)
    return out


@lru_cache(maxsize=1)
def package_last_year() -> int:
    """The last year for which the calendar package lists NSE holidays."""
    import pandas_market_calendars as pmc

    holidays = pmc.get_calendar("NSE").holidays().holidays
    return int(str(max(holidays))[:4])


class NseCalendar:
    def __init__(self, override_file: Path | None = None) -> None:
        base = _read_overrides(None)
        self._sessions, self._closed, self._years = dict(base.sessions), set(base.closed), dict(base.years)
        if override_file is not None:
            extra = _read_overrides(override_file)
            self._sessions.update(extra.sessions)
            self._closed |= extra.closed
            self._years.update(extra.years)

    @property
    def last_year(self) -> int:
        """The last year the calendar can answer for: the package's, or a later one whose
        holidays an override file lists (every year in between must be listed too)."""
        last = package_last_year()
        while last + 1 in self._years:
            last += 1
        return last

    def session(self, day: dt.date) -> Session | None:
        """The tradeable session on ``day``, or None for a holiday / weekend / evening-only day."""
        iso = day.isoformat()
        if iso in self._closed:
            return None
        if iso in self._sessions:
            spec = self._sessions[iso]
            return Session(day, parse_hhmm(spec["open"]), parse_hhmm(spec["close"]), spec.get("note", ""))
        if day.year > package_last_year():
            if day.year > self.last_year:
                raise CalendarError(
                    f"{iso}: the NSE calendar package has no holiday table for {day.year}; refusing to guess "
                    f"(add NSE's {day.year} holidays: tfl calendar add-year --year {day.year})"
                )
            if day.weekday() >= 5 or iso in self._years[day.year]:
                return None
            return Session(day, REGULAR_OPEN, REGULAR_CLOSE)
        o_c = _package_sessions(day.year, day.year).get(day)
        if o_c is None:
            return None
        open_m, close_m = o_c
        if open_m != REGULAR_OPEN:  # Muhurat and other evening sessions are not traded
            return None
        return Session(day, open_m, close_m)

    def previous_session(self, day: dt.date) -> dt.date:
        """The last session strictly before ``day``; no NSE break lasts a month."""
        d = day
        for _ in range(31):
            d -= dt.timedelta(days=1)
            if self.session(d) is not None:
                return d
        raise CalendarError(f"no NSE session in the month before {day}: the calendar is broken")

    def sessions_between(self, first: dt.date, last: dt.date) -> list[Session]:
        out = []
        d = first
        while d <= last:
            s = self.session(d)
            if s is not None:
                out.append(s)
            d += dt.timedelta(days=1)
        return out
