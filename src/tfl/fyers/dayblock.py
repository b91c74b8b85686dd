"""FYERS' all-day block after repeated per-minute rate-limit breaches.

FYERS' API documentation ("User blocking") says an app that exceeds the per-minute limit
more than three times in a day is blocked for the rest of that day; its rate-limit answers
are HTTP 429 and code -429. What FYERS answers once the block is on is not documented, so
the safe reading is that it looks like any other 429. The block is therefore recognised by
counting, whatever the message says: 429s in a fourth distinct minute of the same IST day
mean the app is blocked (a message that speaks of a block says so at once).

While blocked, requests that cannot succeed are not sent: each raises
:class:`~tfl.fyers.errors.FyersDayBlocked` at once, except one request every
``recheck_seconds``, which finds out whether FYERS lifted the block (a wrongly declared
block would otherwise cost the whole day). A new IST day forgets everything.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from tfl.fyers.errors import FyersDayBlocked
from tfl.timeutil import IST

log = logging.getLogger("tfl.fyers.dayblock")

DAY_BLOCK_BREACHES = 4  # FYERS: blocked when the per-minute limit is exceeded "more than 3 times in the day"
RECHECK_SECONDS = 15 * 60.0  # while blocked: one request every 15 minutes asks whether the block is over

BLOCKED_ALERT = (
    "TFL: FYERS has blocked this app for the rest of the day after repeated per-minute rate-limit "
    "breaches. No order, modification or cancel can be sent today, and no entries will be made. "
    "Stop-loss orders already resting at FYERS still protect the open positions, and FYERS' own "
    "risk system squares intraday positions off from 15:15. TFL sends nothing more except one "
    "check every 15 minutes. Find what else used the app's limit (another process, a script)."
)


def _log_alert(level: str, message: str) -> None:
    log.log(logging.getLevelName(level), message)


class DayBlock:
    """Counts per-minute breaches (429s) per IST day and refuses requests while FYERS blocks the app."""

    def __init__(
        self,
        now: Callable[[], float] = time.time,
        alert: Callable[[str, str], None] | None = None,
        *,
        breaches: int = DAY_BLOCK_BREACHES,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self.now = now
        self.alert = alert if alert is not None else _log_alert
        self._breaches = breaches
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._day: dt.date | None = None
        self._minutes: set[int] = set()
        self._next_check = 0.0
        self.blocked = False
        self.held_back = 0  # requests not sent because of the block (observability)

    def _roll(self, now: float) -> None:
        day = dt.datetime.fromtimestamp(now, IST).date()
        if day != self._day:
            self._day, self._minutes, self.blocked = day, set(), False

    def before(self, endpoint: str) -> None:
        """Called before each request: raises FyersDayBlocked instead of sending one that cannot
        succeed. One request per ``recheck_seconds`` goes through, to see whether FYERS lifted it."""
        with self._lock:
            now = self.now()
            self._roll(now)
            if not self.blocked:
                return
            if now >= self._next_check:
                self._next_check = now + self._recheck
                log.info("FYERS day block: asking once whether it is over", extra={"fields": {"endpoint": endpoint}})
                return
            self.held_back += 1
        raise FyersDayBlocked(endpoint, "blocked by FYERS for the rest of the day: not sent", -429, 429)

    def limited(self, endpoint: str, message: str) -> None:
        """FYERS answered 429: one more per-minute breach. Raises FyersDayBlocked when that means
        the day block (the request must not be retried then)."""
        with self._lock:
            now = self.now()
            self._roll(now)
            self._minutes.add(int(now // 60))
            newly = False
            if not self.blocked and ("block" in message.lower() or len(self._minutes) >= self._breaches):
                self.blocked, newly = True, True
                self._next_check = now + self._recheck
            elif not self.blocked:
                return
            minutes = len(self._minutes)
        if newly:
            log.critical(
                "FYERS blocked the app for the day: no more requests",
                extra={"fields": {"endpoint": endpoint, "breach_minutes": minutes, "message": message[:120]}},
            )
            self.alert("CRITICAL", BLOCKED_ALERT)
        raise FyersDayBlocked(
            endpoint, "blocked by FYERS for the rest of the day (repeated rate-limit breaches)", -429, 429
        )

    def answered(self) -> None:
        """FYERS answered something other than a 429: a block believed in force is over."""
        if not self.blocked:
            return
        with self._lock:
            if not self.blocked:
                return
            self.blocked = False
        log.warning("FYERS answers again: the day block is over")
        self.alert("WARNING", "TFL: FYERS answers requests again; the rate-limit day block is over and orders resume")
