"""A crash hook for the crash-anywhere tests.

When the environment sets ``TFL_FAULT_CRASH_AFTER=N``, the process kills itself with
SIGKILL at the N-th crash point it passes; with ``TFL_FAULT_CRASH_WHERE=PREFIX`` only
points whose name starts with PREFIX count (``journal:INTENT``: right after an order
intent is journalled and before the broker is called; ``broker``: right after the broker
answered and before the answer is journalled). Points sit after journal appends, broker
calls and broker commits. ``TFL_FAULT_LOG=FILE`` records where each kill happened and, at
a normal exit, how many points the run passed. Unset, a crash point is a counter
increment and nothing else.
"""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Mapping

_AFTER = "TFL_FAULT_CRASH_AFTER"
_WHERE = "TFL_FAULT_CRASH_WHERE"  # only count points whose name starts with this (e.g. journal:INTENT)
_LOG = "TFL_FAULT_LOG"


class CrashPoints:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get(_AFTER, "")
        self.after = int(raw) if raw.isdigit() else 0
        self.where = env.get(_WHERE, "")
        self.log = env.get(_LOG, "")
        self.passed = 0
        self.counted = 0
        if self.log:
            atexit.register(self._write, "total")

    def hit(self, where: str) -> None:
        self.passed += 1
        if self.where and not where.startswith(self.where):
            return
        self.counted += 1
        if self.after and self.counted >= self.after:
            if self.log:
                self._write(f"kill {where}")
            os.kill(os.getpid(), signal.SIGKILL)

    def _write(self, what: str) -> None:
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(f"{what} {self.passed}\n")
