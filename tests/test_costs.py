from __future__ import annotations

import pytest

from tfl.costs import CostModel
from tfl.settings import CostSettings


def test_nse_intraday_components_on_a_buy_and_a_sell() -> None:
    m = CostModel(CostSettings())
    buy = m.charges(100_000.0, is_buy=True)
    assert buy.brokerage == pytest.approx(20.0)  # min(20, 30)
    assert buy.stt == 0.0
    assert buy.exchange_txn == pytest.approx(2.97)
    assert buy.sebi == pytest.approx(0.1)  # Rs 10 per crore
    assert buy.stamp == pytest.approx(3.0)
    assert buy.gst == pytest.approx(0.18 * (20.0 + 2.97 + 0.1))
    sell = m.charges(50_000.0, is_buy=False)
    assert sell.brokerage == pytest.approx(15.0)  # 0.03% below the cap
    assert sell.stt == pytest.approx(12.5)
    assert sell.stamp == 0.0
    assert sell.total == pytest.approx(15.0 + 12.5 + 1.485 + 0.05 + 0.18 * (15.0 + 1.485 + 0.05))


def test_flat_model_and_slippage_direction() -> None:
    m = CostModel(CostSettings(model="flat"))
    assert m.charge_total(200_000.0, True) == pytest.approx(60.0)
    assert m.charge_total(200_000.0, False) == pytest.approx(60.0)
    assert m.adverse(100.0, True) == pytest.approx(100.05)
    assert m.adverse(100.0, False) == pytest.approx(99.95)
