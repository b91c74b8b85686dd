"""A crash hook for the crash-anywhere tests.

When the environment sets ``TFL_FAULT_CRASH_AFTER=N``, the process kills itself with
SIGKILL at the N-th crash point it passes (points sit right after journal appends, broker
calls and broker commits). Unset, a crash point is a counter increment and nothing else.
"""

from __future__ import annotations

import os
import signal

_ENV = "TFL_FAULT_CRASH_AFTER"


class CrashPoints:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get(_ENV, "")
        self.after = int(raw) if raw.isdigit() else 0
        self.passed = 0

    def hit(self, where: str) -> None:
        self.passed += 1
        if self.after and self.passed >= self.after:
            os.kill(os.getpid(), signal.SIGKILL)
        del where
