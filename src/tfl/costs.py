"""Slippage and exchange charges (strategy page, section 7).

Charges are computed per order (one side) and are not rounded. The ``nse_intraday``
model itemises brokerage, STT, exchange transaction charges, SEBI fees, stamp duty and
GST so reports can show each component.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfl.settings import CostSettings

COMPONENTS = ("brokerage", "stt", "exchange_txn", "sebi", "stamp", "gst")
_CRORE = 1e7


@dataclass(frozen=True)
class Charges:
    brokerage: float = 0.0
    stt: float = 0.0
    exchange_txn: float = 0.0
    sebi: float = 0.0
    stamp: float = 0.0
    gst: float = 0.0

    @property
    def total(self) -> float:
        return self.brokerage + self.stt + self.exchange_txn + self.sebi + self.stamp + self.gst

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in COMPONENTS}


class CostModel:
    """Charges and slippage with rates taken once from the settings."""

    __slots__ = ("_c", "slip")

    def __init__(self, settings: CostSettings) -> None:
        self._c = settings
        self.slip = settings.slippage_pct / 100.0

    def charges(self, turnover: float, is_buy: bool) -> Charges:
        c = self._c
        if c.model == "flat":
            return Charges(brokerage=turnover * c.flat_pct / 100.0)
        brokerage = min(c.brokerage_cap, turnover * c.brokerage_pct / 100.0)
        stt = 0.0 if is_buy else turnover * c.stt_sell_pct / 100.0
        txn = turnover * c.exchange_txn_pct / 100.0
        sebi = turnover * c.sebi_per_crore / _CRORE
        stamp = turnover * c.stamp_buy_pct / 100.0 if is_buy else 0.0
        gst = (brokerage + txn + sebi) * c.gst_pct / 100.0
        return Charges(brokerage, stt, txn, sebi, stamp, gst)

    def charge_total(self, turnover: float, is_buy: bool) -> float:
        """``charges(turnover, is_buy).total`` without building the itemised record (sizing
        calls it in a search); the same expressions, summed in the same order."""
        c = self._c
        if c.model == "flat":
            return turnover * c.flat_pct / 100.0
        b = turnover * c.brokerage_pct / 100.0
        brokerage = b if b < c.brokerage_cap else c.brokerage_cap
        stt = 0.0 if is_buy else turnover * c.stt_sell_pct / 100.0
        txn = turnover * c.exchange_txn_pct / 100.0
        sebi = turnover * c.sebi_per_crore / _CRORE
        stamp = turnover * c.stamp_buy_pct / 100.0 if is_buy else 0.0
        gst = (brokerage + txn + sebi) * c.gst_pct / 100.0
        return brokerage + stt + txn + sebi + stamp + gst

    def adverse(self, price: float, is_buy: bool) -> float:
        """``price`` moved against the trader by the slippage (buys pay more, sells get less)."""
        return price * (1.0 + self.slip) if is_buy else price * (1.0 - self.slip)
