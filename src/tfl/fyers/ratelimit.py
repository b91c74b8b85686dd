"""One rate limiter for every FYERS call of the process, below the published limits.

FYERS allows 10 requests a second and 200 a minute per app, across all endpoints, and
blocks an app for the day after repeated per-minute breaches; so the limiter is shared by
the REST client, the history downloader and the broker, and it honours Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        per_second: int,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limits = ((1.0, per_second), (60.0, per_minute))
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._blocked_until = 0.0
        self.waited = 0.0  # total seconds spent waiting (observability)

    def acquire(self) -> None:
        """Wait until one more request fits both windows (and any Retry-After has passed)."""
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and self._calls[0] <= now - 60.0:
                    self._calls.popleft()
                wait = max(0.0, self._blocked_until - now)
                for window, limit in self._limits:
                    inside = [t for t in self._calls if t > now - window]
                    if len(inside) >= limit:
                        wait = max(wait, inside[len(inside) - limit] + window - now)
                if wait <= 0:
                    self._calls.append(now)
                    return
            self.waited += wait
            self._sleep(wait)

    def retry_after(self, seconds: float) -> None:
        """The server said: not before ``seconds`` from now."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))
