"""The trader always exits, with its code, within seconds.

Python waits at exit for every non-daemon thread. The FYERS SDK starts its websocket,
ping and send threads as non-daemons unless told otherwise, and a socket left open (or
reconnecting) keeps them alive: ``sys.exit`` then hangs, systemd never sees the exit code
(3 "not flat" and 4 "no token" are final) and never restarts a crashed trader. So the
trader closes its sockets when the session ends, however it ends, and as a backstop exits
hard (``os._exit``, after flushing the logs; the journal is closed before) if a thread
started during the run still lives after a grace time. ``os._exit`` skips the
interpreter's clean-up, which is why it is only the backstop: every file the trader owns is
closed or flushed by then, and the only work lost is the stray thread's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("tfl.cli")

EXIT_STUCK_AFTER_ERROR = 1  # the code of an uncaught error; systemd restarts it


def non_daemon_threads() -> set[int]:
    """The identities of the live non-daemon threads now (taken before the run starts)."""
    return {id(t) for t in threading.enumerate() if not t.daemon}


def close_all(closers: Iterable[Callable[[], None]], timeout: float) -> list[str]:
    """Run every closer at once, each on its own daemon thread, waiting at most ``timeout``
    seconds in all (the SDK's close joins a ping thread that sleeps 10 s). Returns the names
    of the closers that did not finish; a closer's error is logged, never raised."""

    def run(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:
            log.warning("closing a socket failed", extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:200]}})

    threads = []
    for i, fn in enumerate(closers):
        t = threading.Thread(target=run, args=(fn,), name=f"tfl-close-{i}", daemon=True)
        t.start()
        threads.append(t)
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


def stray_threads(before: set[int]) -> list[threading.Thread]:
    """Non-daemon threads started since ``before`` that are still alive (they would hold the exit)."""
    me = threading.current_thread()
    return [
        t
        for t in threading.enumerate()
        if t.is_alive() and not t.daemon and t is not me and t is not threading.main_thread() and id(t) not in before
    ]


def exit_if_stuck(before: set[int], code: int, grace: float) -> None:
    """Give stray non-daemon threads ``grace`` seconds to end; if one still lives, flush the
    logs and end the process now with ``code`` (it would otherwise never exit)."""
    deadline = time.monotonic() + grace
    for t in stray_threads(before):
        t.join(max(0.0, deadline - time.monotonic()))
    left = stray_threads(before)
    if not left:
        return
    log.error(
        "threads still running at exit: exiting now",
        extra={"fields": {"threads": [t.name for t in left][:10], "exit_code": code}},
        exc_info=sys.exc_info()[0] is not None,  # a crash in flight: its traceback, before os._exit
    )
    flush_logs()
    os._exit(code)


def flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
