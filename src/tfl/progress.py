"""Progress bars: on stderr, only when asked (the CLI asks when stderr is a terminal).

One place makes them, so every long step (loading, indicators, simulation, the audit's
runs) looks alike and none writes into a log file or a pipe.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


def wanted(show: bool | None) -> bool:
    """``show``, or when it is None, whether stderr is a terminal."""
    return sys.stderr.isatty() if show is None else show


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool, unit: str = "sym") -> Iterator[tqdm]:
    """A bar that disappears when done (``leave=False``); a no-op object when not enabled."""
    bar = tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False, unit=unit)
    try:
        yield bar
    finally:
        bar.close()
