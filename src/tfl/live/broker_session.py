"""Is today an NSE session? FYERS answers when the static calendar cannot (paper and live only).

Past the last year whose holidays the calendar knows, :class:`tfl.calendar.nse.NseCalendar`
refuses to answer. Rather than not trading silently, the paper and live trader asks FYERS'
market status (``GET /data/marketStatus``) for NSE's capital market (exchange 10, segment
10, market type NORMAL). The status is the state *now*, not a calendar: before the pre-open
(09:00) it cannot tell a session from a holiday, so the trader asks until the pre-open or
the open shows (PREOPEN, PREOPEN_CLOSED, OPEN: a session) or until a few minutes after the
regular open; a market still shut then is a holiday. Any other answer, or none, leaves the
question open: the trader does not trade and alerts. The day traded is the regular
09:15-15:30 one (a special session's hours come only from a circular).

The last session before today, which the history check needs, comes from FYERS' daily
candles of the benchmark index. Replay and backtest never ask FYERS: they read the calendar.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tfl.calendar.nse import CalendarError, NseCalendar, Session
from tfl.fyers.errors import FyersError
from tfl.timeutil import IST_OFFSET_S, REGULAR_CLOSE, REGULAR_OPEN, SECONDS_PER_DAY, epoch_of_ist

log = logging.getLogger("tfl.live.broker_session")

NSE_EXCHANGE = 10
CAPITAL_MARKET = 10
NORMAL_MARKET = "NORMAL"
TRADING_STATUSES = frozenset({"PREOPEN", "PREOPEN_CLOSED", "OPEN"})  # only on a session day
SHUT_STATUSES = frozenset({"CLOSE", "CLOSED", "POSTCLOSE_START", "POSTCLOSE_CLOSED"})  # FYERS' docs spell both
ANSWER_GRACE_MINUTES = 5  # after the regular open: a market still shut then is shut for the day
POLL_SECONDS = 15.0
PREVIOUS_LOOKBACK_DAYS = 31  # no NSE break is longer


@dataclass(frozen=True)
class Verdict:
    """FYERS' answer: ``session`` True (trade), False (a holiday), None (no answer: do not trade)."""

    session: bool | None
    status: str  # the NSE capital market's status, or what went wrong
    asked: int  # how many times FYERS was asked


def nse_cash_status(rows: Any) -> str | None:
    """The status of NSE's normal capital market in a marketStatus answer, or None if it has none."""
    if not isinstance(rows, list):
        return None
    for row in rows:
        if not isinstance(row, dict):
            continue
        if (
            row.get("exchange") == NSE_EXCHANGE
            and row.get("segment") == CAPITAL_MARKET
            and row.get("market_type") == NORMAL_MARKET
        ):
            status = row.get("status")
            return status.upper() if isinstance(status, str) else None
    return None


def ask_broker(
    status: Callable[[], list[dict[str, Any]]],
    day: dt.date,
    *,
    now: Callable[[], float],
    sleep: Callable[[float], None],
    poll_seconds: float = POLL_SECONDS,
) -> Verdict:
    """Ask FYERS until it shows a session, or until ``ANSWER_GRACE_MINUTES`` after the open.

    Never raises for FYERS' sake: a failed or odd answer is logged and asked again.
    """
    deadline = epoch_of_ist(day, REGULAR_OPEN + ANSWER_GRACE_MINUTES)
    asked = 0
    while True:
        asked += 1
        try:
            got = nse_cash_status(status())
            what = got or "no NSE capital-market row in the answer"
        except FyersError as exc:
            got, what = None, str(exc)
        except Exception as exc:  # an answer that is not what the docs show: logged, asked again
            got, what = None, f"unexpected answer ({type(exc).__name__})"
        log.info("FYERS market status", extra={"fields": {"date": day.isoformat(), "status": what, "ask": asked}})
        if got in TRADING_STATUSES:
            return Verdict(True, str(got), asked)
        left = deadline - now()
        if left <= 0:
            return Verdict(False, str(got), asked) if got in SHUT_STATUSES else Verdict(None, what, asked)
        sleep(min(poll_seconds, left))


def broker_previous_session(
    history: Callable[[str, str, int, int], list[list[float]]], ticker: str, day: dt.date
) -> dt.date:
    """The last session before ``day``: the date of FYERS' last weekday candle of ``ticker`` before it.

    FYERS also has candles for Muhurat evenings (a Saturday or Sunday), which the calendar never
    counts as sessions; weekend candles are skipped. A rare special weekend session is skipped with
    them, which only makes the history check less strict, never stricter than the data can meet."""
    first = day - dt.timedelta(days=PREVIOUS_LOOKBACK_DAYS)
    start = (first - dt.date(1970, 1, 1)).days * SECONDS_PER_DAY - IST_OFFSET_S
    end = (day - dt.date(1970, 1, 1)).days * SECONDS_PER_DAY - IST_OFFSET_S - 1  # up to the end of the day before
    try:
        candles = history(ticker, "D", start, end)
    except FyersError as exc:
        raise CalendarError(f"the session before {day} is unknown: the calendar has no table and {exc}") from None
    days = {
        dt.date(1970, 1, 1) + dt.timedelta(days=(int(c[0]) + IST_OFFSET_S) // SECONDS_PER_DAY) for c in candles if c
    }
    before = [d for d in days if d < day and d.weekday() < 5]
    if not before:
        raise CalendarError(f"the session before {day} is unknown: FYERS has no weekday candle of {ticker} before it")
    return max(before)


class BrokerBackedCalendar:
    """The static calendar; for the last session before a day it cannot answer, FYERS' daily candles."""

    def __init__(self, calendar: NseCalendar, previous: Callable[[dt.date], dt.date]) -> None:
        self.calendar = calendar
        self._previous = previous

    def session(self, day: dt.date) -> Session | None:
        return self.calendar.session(day)

    def previous_session(self, day: dt.date) -> dt.date:
        try:
            return self.calendar.previous_session(day)
        except CalendarError:
            got = self._previous(day)
            log.warning(
                "previous session taken from FYERS' daily candles: the calendar has no table",
                extra={"fields": {"date": day.isoformat(), "previous": got.isoformat()}},
            )
            return got


def regular_session(day: dt.date) -> Session:
    """The session FYERS' market status stands for: the regular hours (special hours come by circular)."""
    return Session(day, REGULAR_OPEN, REGULAR_CLOSE, "decided by FYERS' market status")
