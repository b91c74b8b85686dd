"""What the backtest assumes where live trading differs, said in words for its report."""

from __future__ import annotations

from tfl.settings import Settings


def eod_exit_note(s: Settings) -> str:
    """How the backtest prices the end-of-day exit, and how live differs from it."""
    return (
        f"Positions still open at the square-off are closed at the open of the {s.strategy.squareoff_time} bar, "
        f"less {s.costs.slippage_pct}% slippage (reason EOD). Live, TFL sends those exits "
        f"{s.live.squareoff_lead_seconds} s before the broker's own square-off ({s.live.broker_squareoff_time}), "
        "so a live EOD exit trades a minute or two before the price the backtest uses."
    )
