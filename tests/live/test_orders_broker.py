"""Client ids, the order state machine, and the paper broker's fill model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tfl.core.orders import Leg, OrderRequest, OrderType, client_id
from tfl.live.broker import BrokerError, Fill, OrderUpdate
from tfl.live.paper import PaperBroker
from tfl.timeutil import epoch_of_ist

DAY = dt.date(2024, 3, 6)
T0 = epoch_of_ist(DAY, 10 * 60)  # the 10:00 bar


def test_client_ids_are_deterministic_tags() -> None:
    a = client_id(DAY, "BAJAJ-AUTO", T0, Leg.ENTRY)
    assert a == client_id(DAY, "BAJAJ-AUTO", T0, Leg.ENTRY)
    assert a.isalnum() and len(a) <= 30 and a.startswith("2403061000E")
    ids = {client_id(DAY, s, T0, leg) for s in ("M&M", "MM", "M-M", "SUPERLONGSYMBOLNAMEXYZ") for leg in Leg}
    assert len(ids) == 20 and all(i.isalnum() and len(i) <= 30 for i in ids)
    assert client_id(DAY, "X", T0, Leg.STOP, 1) != client_id(DAY, "X", T0, Leg.STOP, 0)


@pytest.fixture
def broker(tmp_path: Path) -> PaperBroker:
    return PaperBroker(tmp_path / "b.sqlite", slippage_pct=0.05)


def req(tag: str, side: int, typ: OrderType, qty: int = 10, **kw: float | str) -> OrderRequest:
    return OrderRequest(tag, "X", side, typ, qty, **kw)  # type: ignore[arg-type]


def test_stop_fills_at_its_level_inside_a_bar_and_at_the_open_on_a_gap(broker: PaperBroker) -> None:
    broker.on_tick("X", T0 - 60, 99.0, 1)  # last tick of the previous bar
    broker.place(req("BUY1", 1, OrderType.STOP, trigger=100.0), T0)
    broker.on_tick("X", T0, 99.5, 2)  # the bar's open: below the trigger
    broker.on_tick("X", T0 + 180, 101.0, 3)  # crosses inside the bar
    fills = [e for e in broker.poll() if isinstance(e, Fill)]
    assert [(f.qty, f.price) for f in fills] == [(10, pytest.approx(100.0 * 1.0005))]
    broker.place(req("BUY2", 1, OrderType.STOP, trigger=100.0), T0 + 600)
    broker.on_tick("X", T0 + 900, 103.0, 4)  # next bar opens above the trigger: a gap
    fills = [e for e in broker.poll() if isinstance(e, Fill)]
    assert [f.price for f in fills] == [pytest.approx(103.0 * 1.0005)]


def test_limit_has_no_slippage_and_oco_cancels_the_partner(broker: PaperBroker) -> None:
    broker.on_tick("X", T0, 100.0, 1)
    broker.place(req("STOP", -1, OrderType.STOP, trigger=95.0, oco="G"), T0)
    broker.place(req("TGT", -1, OrderType.LIMIT, limit=110.0, oco="G"), T0)
    broker.on_tick("X", T0 + 60, 111.0, 2)
    events = broker.poll()
    fills = [e for e in events if isinstance(e, Fill)]
    assert [(f.tag, f.price) for f in fills] == [("TGT", 110.0)]
    assert OrderUpdate("STOP", broker.order_by_tag("STOP").broker_id, "CANCELLED", 0, "oco") in events  # type: ignore[union-attr]
    broker.on_tick("X", T0 + 120, 90.0, 3)
    assert not [e for e in broker.poll() if isinstance(e, Fill)]


def test_market_fills_at_the_next_tick_or_the_close(broker: PaperBroker) -> None:
    broker.on_tick("X", T0, 100.0, 1)
    broker.place(req("MKT", -1, OrderType.MARKET), T0 + 10)
    broker.on_tick("X", T0 + 20, 101.0, 2)
    assert [f.price for f in broker.poll() if isinstance(f, Fill)] == [pytest.approx(101.0 * 0.9995)]
    broker.place(req("MKT2", -1, OrderType.MARKET), T0 + 30)
    broker.close_session(T0 + 4000, 3)
    assert [f.price for f in broker.poll() if isinstance(f, Fill)] == [pytest.approx(101.0 * 0.9995)]


def test_tags_are_unique_and_state_survives_a_restart(tmp_path: Path) -> None:
    b = PaperBroker(tmp_path / "b.sqlite")
    b.on_tick("X", T0, 100.0, 1)
    first = b.place(req("E1", 1, OrderType.STOP, trigger=101.0), T0)
    assert b.place(req("E1", 1, OrderType.STOP, trigger=101.0), T0 + 5) == first  # no second order
    b.on_tick("X", T0 + 60, 102.0, 2)
    b.close()
    b2 = PaperBroker(tmp_path / "b.sqlite")
    assert b2.watermark == 2
    b2.on_tick("X", T0 + 60, 102.0, 2)  # a re-fed tick after a restart changes nothing
    assert b2.poll() == []
    assert b2.positions() == {"X": 10}
    assert [o.status for o in b2.orders()] == ["FILLED"]


def test_rejections_and_bad_requests(broker: PaperBroker) -> None:
    broker.rejections.add("X")
    with pytest.raises(BrokerError, match="rejected"):
        broker.place(req("R1", 1, OrderType.MARKET), T0)
    assert broker.order_by_tag("R1").status == "REJECTED"  # type: ignore[union-attr]
    broker.rejections.clear()
    with pytest.raises(BrokerError, match="trigger"):
        broker.place(req("R2", 1, OrderType.STOP), T0)
    with pytest.raises(BrokerError, match="quantity"):
        broker.place(req("R3", 1, OrderType.MARKET, qty=0), T0)
