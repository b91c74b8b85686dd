"""The NSE session calendar as a static table, for the Lambda functions.

The trader's calendar (:mod:`tfl.calendar.nse`) needs pandas_market_calendars, which a
Lambda does not have. So ``tfl deploy`` generates this table from it at build time and ships
it as ``nse_calendar.json``. The table stores only what differs from "every weekday,
09:15-15:30": the weekday holidays and the special sessions (weekend sessions, other hours).

Outside its years the table refuses to answer (:class:`CalendarTableExpired`): a job that
cannot tell whether today is a session does nothing rather than guess.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tfl.timeutil import REGULAR_CLOSE, REGULAR_OPEN

TABLE_FILE = "nse_calendar.json"
FIRST_YEAR = 2020
# From this day of the table's last year (NSE's circular for the next year comes in December),
# the operator is warned that next year's holidays are missing: in tfl doctor and the daily e-mails.
NEXT_YEAR_WARNING_FROM = (12, 1)  # month, day
_MAX_GAP_DAYS = 31  # no NSE break is this long: a longer walk means the table is broken


class CalendarTableError(ValueError):
    """The table cannot be used (missing, malformed): callers fail closed."""


class CalendarTableExpired(CalendarTableError):  # noqa: N818 - an expiry, named for what it is
    """The day lies outside the table's years: regenerate the table (``tfl deploy``)."""


@dataclass(frozen=True)
class SessionTimes:
    date: dt.date
    open_minute: int  # minutes after IST midnight
    close_minute: int
    note: str = ""


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _parse_hhmm(text: Any, where: str) -> int:
    hh, sep, mm = str(text).partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2 or int(hh) > 23 or int(mm) > 59:
        raise CalendarTableError(f"{where}: {text!r} is not HH:MM")
    return int(hh) * 60 + int(mm)


class CalendarTable:
    """Sessions between ``first_year`` and ``last_year`` (inclusive); pure standard library."""

    def __init__(
        self,
        first_year: int,
        last_year: int,
        closed: Sequence[dt.date],
        special: Mapping[dt.date, SessionTimes],
        *,
        generated_from: Mapping[str, str] | None = None,
        generated_at: str = "",  # only older tables have one; generate_table no longer sets it
    ) -> None:
        if first_year > last_year:
            raise CalendarTableError(f"calendar table: first year {first_year} is after last year {last_year}")
        self.first_year = first_year
        self.last_year = last_year
        self.closed = frozenset(closed)
        self.special = dict(special)
        self.generated_from = dict(generated_from or {})
        self.generated_at = generated_at
        both = self.closed & set(self.special)
        if both:
            raise CalendarTableError(f"calendar table: {min(both)} is both closed and a session")
        for d in [*self.closed, *self.special]:
            if not first_year <= d.year <= last_year:
                raise CalendarTableError(f"calendar table: {d} lies outside {first_year}..{last_year}")

    def _check(self, day: dt.date) -> None:
        if day.year > self.last_year:
            raise CalendarTableExpired(
                f"{day.isoformat()}: the NSE calendar table ends in {self.last_year}: regenerate it (tfl deploy) "
                f"after adding NSE's {self.last_year + 1} holidays (tfl calendar add-year)"
            )
        if day.year < self.first_year:
            raise CalendarTableExpired(f"{day.isoformat()}: the NSE calendar table starts in {self.first_year}")

    def session(self, day: dt.date) -> SessionTimes | None:
        """The session on ``day``, or None (weekend, holiday); raises outside the table's years."""
        self._check(day)
        hit = self.special.get(day)
        if hit is not None:
            return hit
        if day.weekday() >= 5 or day in self.closed:
            return None
        return SessionTimes(day, REGULAR_OPEN, REGULAR_CLOSE)

    def is_session(self, day: dt.date) -> bool:
        return self.session(day) is not None

    def previous_session(self, day: dt.date) -> dt.date:
        """The last session strictly before ``day`` (raises if that lies outside the table)."""
        self._check(day)
        d = day
        for _ in range(_MAX_GAP_DAYS):
            d -= dt.timedelta(days=1)
            if self.session(d) is not None:
                return d
        raise CalendarTableError(f"calendar table: no session in the {_MAX_GAP_DAYS} days before {day}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON content; it depends only on the sessions and their sources (``generated_from``), never
        on when it was made, so the Lambda bundle's hash changes only when the code or the calendar does."""
        out: dict[str, Any] = {
            "first_year": self.first_year,
            "last_year": self.last_year,
            "generated_from": dict(sorted(self.generated_from.items())),
            "closed": sorted(d.isoformat() for d in self.closed),
            "sessions": {
                d.isoformat(): {"open": _hhmm(s.open_minute), "close": _hhmm(s.close_minute), "note": s.note}
                for d, s in sorted(self.special.items())
            },
        }
        if self.generated_at:  # only a table read from an older file has one
            out["generated_at"] = self.generated_at
        return out

    @staticmethod
    def from_dict(data: Any, where: str = "calendar table") -> CalendarTable:
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            first, last = data["first_year"], data["last_year"]
            if not isinstance(first, int) or not isinstance(last, int):
                raise TypeError("first_year and last_year must be integers")
            closed = [dt.date.fromisoformat(str(d)) for d in data["closed"]]
            special = {}
            for iso, spec in dict(data["sessions"]).items():
                day = dt.date.fromisoformat(str(iso))
                special[day] = SessionTimes(
                    day,
                    _parse_hhmm(spec["open"], f"{where} {iso}"),
                    _parse_hhmm(spec["close"], f"{where} {iso}"),
                    str(spec.get("note", "")),
                )
            generated_from = {str(k): str(v) for k, v in dict(data.get("generated_from", {})).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, CalendarTableError):
                raise
            raise CalendarTableError(f"{where}: invalid ({exc})") from None
        return CalendarTable(
            first,
            last,
            closed,
            special,
            generated_from=generated_from,
            generated_at=str(data.get("generated_at", "")),
        )


def next_year_missing(last_year: int, today: dt.date) -> str:
    """From 1 December of the calendar's last year on, the warning that the next year is missing ("" before).

    Past the last year nothing starts (the table fails closed), so the operator must add NSE's
    holidays for the next year before 1 January; the text says how.
    """
    month, day = NEXT_YEAR_WARNING_FROM
    if today < dt.date(last_year, month, day):
        return ""
    nxt = last_year + 1
    return (
        f"WARNING: the NSE calendar ends on {last_year}-12-31 and has no {nxt} holidays: from {nxt}-01-01 "
        f"nothing starts. Add NSE's {nxt} holiday circular: tfl calendar add-year --year {nxt} --from FILE "
        "--source CIRCULAR, commit and push, then tfl deploy"
    )


def load_table(path: str | Path | None = None) -> CalendarTable:
    """The table at ``path``, or the one packaged beside this module."""
    try:
        if path is None:
            text = resources.files("tfl.aws").joinpath(TABLE_FILE).read_text(encoding="utf-8")
            where = f"packaged {TABLE_FILE}"
        else:
            text = Path(path).read_text(encoding="utf-8")
            where = str(path)
    except OSError as exc:
        raise CalendarTableError(f"calendar table {path or TABLE_FILE}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalendarTableError(f"{where}: not valid JSON ({exc.msg})") from None
    return CalendarTable.from_dict(data, where)


def generate_table(first_year: int = FIRST_YEAR, last_year: int | None = None) -> dict[str, Any]:
    """The table's JSON content from :class:`tfl.calendar.nse.NseCalendar` (build time only:
    this imports pandas_market_calendars)."""
    from importlib.metadata import version

    from tfl.calendar.nse import NseCalendar

    cal = NseCalendar()
    last = cal.last_year if last_year is None else last_year  # the package's, or overrides' next years
    closed: list[dt.date] = []
    special: dict[dt.date, SessionTimes] = {}
    day = dt.date(first_year, 1, 1)
    while day.year <= last:
        s = cal.session(day)
        if s is None:
            if day.weekday() < 5:
                closed.append(day)
        elif day.weekday() >= 5 or (s.open_minute, s.close_minute) != (REGULAR_OPEN, REGULAR_CLOSE):
            special[day] = SessionTimes(day, s.open_minute, s.close_minute, s.note)
        day += dt.timedelta(days=1)
    overrides = resources.files("tfl.calendar").joinpath("overrides.json").read_bytes()
    table = CalendarTable(
        first_year,
        last,
        closed,
        special,
        generated_from={
            "pandas_market_calendars": version("pandas_market_calendars"),
            "tfl.calendar/overrides.json": "sha256:" + hashlib.sha256(overrides).hexdigest()[:16],
        },
    )
    return table.to_dict()


def table_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def write_table(path: str | Path, first_year: int = FIRST_YEAR, last_year: int | None = None) -> dict[str, Any]:
    """Generate the table and write it to ``path`` (what ``tfl deploy`` packages)."""
    data = generate_table(first_year, last_year)
    Path(path).write_text(table_json(data), encoding="utf-8")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tfl.aws.calendar_table", description="Write the static NSE calendar table."
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON table")
    parser.add_argument("--first-year", type=int, default=FIRST_YEAR)
    args = parser.parse_args(argv)
    data = write_table(args.out, args.first_year)
    sys.stdout.write(f"wrote {args.out}: {data['first_year']}..{data['last_year']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
