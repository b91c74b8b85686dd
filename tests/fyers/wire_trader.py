"""``tfl trade`` as its own process, on the fake exchange's clock.

The same as the ``tfl`` console script (``sys.exit(main())``), except that the market clock
(``fyers_cmds.market_now``, the seam the in-process tests patch) reads the fake exchange's
simulated time from a shared file. Usage: ``python wire_trader.py CLOCK_FILE trade ...``.
"""

from __future__ import annotations

import sys

from shared_clock import SharedClock


def main() -> None:
    clock = SharedClock.open(sys.argv[1])
    from tfl.cli import fyers_cmds

    fyers_cmds.market_now = clock.read
    from tfl.cli.main import main as tfl

    sys.exit(tfl(sys.argv[2:]))


if __name__ == "__main__":
    main()
