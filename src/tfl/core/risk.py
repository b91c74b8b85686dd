"""The risk gate: why new entries may not be taken now. Exits are never gated.

One rule for every world: a halted day (the daily loss limit, the kill switch) first, then
reduce-only (the trader could not tell what was true at the broker), then the live
trader's own preconditions (reconciled with the broker, a fresh feed, a valid token).
The daily loss limit itself is :func:`tfl.strategy.allocation.loss_limit_hit`, checked by
the core at every bar close.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfl.domain import HaltReason, RejectReason


@dataclass
class Gate:
    """The live trader's preconditions for entries (a backtest has none: always open)."""

    reconciled: bool = True
    feed_fresh: bool = True
    token_ok: bool = True

    def open(self) -> bool:
        return self.reconciled and self.feed_fresh and self.token_ok


def entry_block(halted: HaltReason | None, reduce_only: str, gate: Gate | None) -> RejectReason | None:
    """Why setups get no order now, or None when entries are allowed."""
    if halted is not None:
        return RejectReason.DAILY_LOSS_LIMIT if halted is HaltReason.DAILY_LOSS_LIMIT else RejectReason.KILL_SWITCH
    if reduce_only:
        return RejectReason.REDUCE_ONLY
    if gate is not None and not gate.open():
        return RejectReason.ENTRIES_BLOCKED
    return None
