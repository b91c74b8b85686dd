"""Market time: IST wall clock for the exchange, UTC epoch seconds for storage.

Bars are identified by their start time as integer epoch seconds (UTC), which is
unambiguous and cheap to compare; everything shown to a person is ISO-8601 in IST.
This module is the one place where the IST zone, the bar length and the session grid
are defined. It is pure standard library (the Lambda jobs import it): India has no
daylight saving time, so IST is a fixed offset and needs no time-zone database.
"""

from __future__ import annotations

import datetime as dt

IST_OFFSET_S = 19_800  # +05:30
IST = dt.timezone(dt.timedelta(seconds=IST_OFFSET_S), "IST")
SECONDS_PER_DAY = 86_400
BAR_MINUTES = 15
BAR_SECONDS = BAR_MINUTES * 60
REGULAR_OPEN = 9 * 60 + 15  # NSE's regular session, minutes after IST midnight
REGULAR_CLOSE = 15 * 60 + 30
_EPOCH_DATE = dt.date(1970, 1, 1)


def ist_day(epoch_s: int) -> int:
    """IST calendar day number (days since 1970-01-01) of a UTC epoch second."""
    return (epoch_s + IST_OFFSET_S) // SECONDS_PER_DAY


def ist_minute(epoch_s: int) -> int:
    """Minutes after IST midnight of a UTC epoch second."""
    return ((epoch_s + IST_OFFSET_S) % SECONDS_PER_DAY) // 60


def ist_date(epoch_s: int) -> dt.date:
    """The IST calendar date of a UTC epoch second."""
    return day_to_date(ist_day(epoch_s))


def day_to_date(day: int) -> dt.date:
    return _EPOCH_DATE + dt.timedelta(days=int(day))


def date_to_day(d: dt.date) -> int:
    return (d - _EPOCH_DATE).days


def epoch_of_ist(d: dt.date, minute: int) -> int:
    """UTC epoch seconds of ``minute`` after IST midnight on date ``d``."""
    return date_to_day(d) * SECONDS_PER_DAY + minute * 60 - IST_OFFSET_S


def slot_of(ts: int, session_open_ts: int) -> int:
    """Start of the 15-minute slot (on the session's grid) that contains ``ts``."""
    return session_open_ts + ((ts - session_open_ts) // BAR_SECONDS) * BAR_SECONDS


def iso_ist(epoch_s: int) -> str:
    """ISO-8601 with the +05:30 offset, e.g. ``2024-05-02T10:15:00+05:30``."""
    return dt.datetime.fromtimestamp(int(epoch_s), IST).isoformat()


def parse_date(text: str) -> dt.date:
    """Parse YYYY-MM-DD strictly; raises ValueError naming the input."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a date in YYYY-MM-DD form") from None
