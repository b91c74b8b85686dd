"""Value types shared by every world: sides, biases, exit and rejection reasons."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import NamedTuple


class Side(IntEnum):
    """Direction of a trade; the value is the sign of its P&L per unit move up."""

    LONG = 1
    SHORT = -1

    @property
    def label(self) -> str:
        return self.name


class Bias(StrEnum):
    """The daily traffic light. BOTH is research-only (backtests)."""

    LONGS = "LONGS"
    SHORTS = "SHORTS"
    BOTH = "BOTH"
    NO_TRADES = "NO_TRADES"

    def allows(self, side: Side) -> bool:
        if self is Bias.BOTH:
            return True
        if self is Bias.LONGS:
            return side is Side.LONG
        if self is Bias.SHORTS:
            return side is Side.SHORT
        return False


class BiasRead(NamedTuple):
    """A bias read from a published record: ``accepted`` is False when there was no valid
    record for the session (the bias is then NO_TRADES and ``reason`` says why)."""

    bias: Bias
    reason: str
    accepted: bool


class ExitReason(StrEnum):
    STOP = "STOP"
    TRAIL = "TRAIL"
    TARGET = "TARGET"
    EOD = "EOD"
    KILL_SWITCH = "KILL_SWITCH"
    MANUAL = "MANUAL"
    OPERATOR = "OPERATOR"  # live: the operator closed it (``tfl ctl exit``, the status page)


class HaltReason(StrEnum):
    """Why a day stopped taking entries (its positions are flattened)."""

    DAILY_LOSS_LIMIT = "daily loss limit"
    KILL_SWITCH = "kill switch"


class RejectReason(StrEnum):
    """Why a triggered signal was not taken (recorded in rejected.csv and the journal)."""

    POSITION_OPEN = "POSITION_OPEN"
    MAX_POSITIONS = "MAX_POSITIONS"
    RISK_BUDGET = "RISK_BUDGET"
    QTY_ZERO = "QTY_ZERO"
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"  # the day's loss limit tripped: no more entries today
    KILL_SWITCH = "KILL_SWITCH"  # an operator halted trading
    REDUCE_ONLY = "REDUCE_ONLY"  # the trader could not tell what was true at the broker
    ENTRIES_BLOCKED = "ENTRIES_BLOCKED"  # live only: not reconciled yet, stale feed or no valid token
