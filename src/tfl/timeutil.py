"""Market time: IST wall clock for the exchange, UTC epoch seconds for storage.

Bars are identified by their start time as integer epoch seconds (UTC), which is
unambiguous and cheap to compare; everything shown to a person is ISO-8601 in IST.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

IST = ZoneInfo("Asia/Kolkata")
IST_OFFSET_S = 19_800  # +05:30; India has no daylight saving time
SECONDS_PER_DAY = 86_400
_EPOCH_DATE = dt.date(1970, 1, 1)


def ist_day(epoch_s: int) -> int:
    """IST calendar day number (days since 1970-01-01) of a UTC epoch second."""
    return (epoch_s + IST_OFFSET_S) // SECONDS_PER_DAY


def ist_minute(epoch_s: int) -> int:
    """Minutes after IST midnight of a UTC epoch second."""
    return ((epoch_s + IST_OFFSET_S) % SECONDS_PER_DAY) // 60


def day_to_date(day: int) -> dt.date:
    return _EPOCH_DATE + dt.timedelta(days=int(day))


def date_to_day(d: dt.date) -> int:
    return (d - _EPOCH_DATE).days


def epoch_of_ist(d: dt.date, minute: int) -> int:
    """UTC epoch seconds of ``minute`` after IST midnight on date ``d``."""
    return date_to_day(d) * SECONDS_PER_DAY + minute * 60 - IST_OFFSET_S


def iso_ist(epoch_s: int) -> str:
    """ISO-8601 with the +05:30 offset, e.g. ``2024-05-02T10:15:00+05:30``."""
    return dt.datetime.fromtimestamp(int(epoch_s), IST).isoformat()


def parse_date(text: str) -> dt.date:
    """Parse YYYY-MM-DD strictly; raises ValueError naming the input."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a date in YYYY-MM-DD form") from None


def iso_ist_many(epochs: NDArray[np.int64]) -> list[str]:
    """Vectorised :func:`iso_ist` for long columns (equity curves)."""
    local = (epochs + IST_OFFSET_S).astype("datetime64[s]")
    return [f"{t}+05:30" for t in np.datetime_as_string(local, unit="s").tolist()]
