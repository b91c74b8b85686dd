"""Late and odd broker reports, through the replayed live runtime and a restart.

Each scenario asks the paper broker for one real-world behaviour on one order of a busy day
(chosen from an undisturbed run of the same day), lets the trader meet it, kills the trader
right after (a crash at the next broker poll) and restarts it on the same journal and broker
store. Every scenario must end with no exception, a journal that reloads, the position
protected and then flat, the broker and the journal agreeing, and the right alert (once).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tfl.core.events import AlertRaised, Filled, OrderPlaced, ReduceOnly
from tfl.core.orders import Leg, OrderStatus
from tfl.core.state import AnomalyKind, CoreState
from tfl.data.market import load_market
from tfl.live.broker import BrokerEvent, Fill
from tfl.live.journal import SqliteJournal, read_events
from tfl.live.paper import LateFill, PaperBroker
from tfl.live.report import rebuild
from tfl.settings import Settings

from live_helpers import replay

DAY = dt.date(2020, 12, 7)  # a busy LONGS day for these symbols
SYMBOLS = ["ADANIENT", "BEL", "BHEL", "BPCL", "CANBK", "DLF", "GAIL", "IOC", "JSWSTEEL", "NMDC", "SAIL", "TATASTEEL"]
S = Settings()


class CrashedError(Exception):
    """The trader process dying (raised from inside the trading loop)."""


class CrashAfter:
    """Forwards to the paper broker; once the watched order's fill has been reported, the
    next poll kills the trader."""

    def __init__(self, inner: PaperBroker, tag: str) -> None:
        self.inner = inner
        self.tag = tag
        self.seen = 0  # fill reports of the watched order
        self.armed = False

    def poll(self) -> list[BrokerEvent]:
        if self.armed:
            raise CrashedError(self.tag)
        events = self.inner.poll()
        got = sum(1 for e in events if isinstance(e, Fill) and e.tag == self.tag)
        self.seen += got
        self.armed = got > 0
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def market(nse_dir: Path):  # type: ignore[no-untyped-def]
    return load_market(nse_dir, S, SYMBOLS)


@pytest.fixture(scope="module")
def clean(market, tmp_path_factory: pytest.TempPathFactory) -> CoreState:  # type: ignore[no-untyped-def]
    state, res = replay(tmp_path_factory.mktemp("clean"), market, SYMBOLS, DAY, S)
    assert res.flat and len(state.book.trades) >= 4
    return state


def unfilled_entry(clean: CoreState) -> str:
    """An entry order the clean run cancelled unfilled at the end of its bar (qty >= 4)."""
    return next(
        cid
        for cid, r in clean.orders.items()
        if r.leg is Leg.ENTRY and r.status is OrderStatus.CANCELLED and r.filled == 0 and r.request.qty >= 4
    )


def filled_entry(clean: CoreState) -> str:
    return next(cid for cid, r in clean.orders.items() if r.leg is Leg.ENTRY and r.status is OrderStatus.FILLED)


def key(state: CoreState) -> list[tuple]:  # type: ignore[type-arg]
    return sorted(
        (t.symbol, t.entry_ts, t.qty, t.entry_price, t.exit_ts, t.exit_price, t.exit_reason) for t in state.book.trades
    )


Setup = Callable[[PaperBroker, CoreState], str]  # arms the quirk; returns the watched order's tag


def late(fraction: float, status: str, after_ack: bool) -> Setup:
    def arm(b: PaperBroker, clean: CoreState) -> str:
        cid = unfilled_entry(clean)
        b.quirks.late_fill[cid] = LateFill(fraction, status, after_ack)
        return cid

    return arm


def twice(b: PaperBroker, clean: CoreState) -> str:
    cid = filled_entry(clean)
    b.quirks.duplicate_fills.add(cid)
    return cid


def overfill(b: PaperBroker, clean: CoreState) -> str:
    cid = filled_entry(clean)
    b.quirks.overfill[cid] = 7
    return cid


SCENARIOS: dict[str, tuple[Setup, AnomalyKind | None]] = {
    "cancel then partial fill": (late(0.5, "CANCELLED", True), AnomalyKind.LATE_FILL),
    "cancel then full fill": (late(1.0, "CANCELLED", True), AnomalyKind.LATE_FILL),
    "fill after expiry": (late(1.0, "EXPIRED", True), AnomalyKind.LATE_FILL),
    "partial fill after a cancel request": (late(0.5, "CANCELLED", False), None),
    "the same fill twice": (twice, None),
    "an over-fill": (overfill, AnomalyKind.OVERFILL),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_an_odd_report_is_recorded_alerted_and_answered_safely(
    name: str,
    market,
    clean: CoreState,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    arm, anomaly = SCENARIOS[name]
    watched: list[CrashAfter] = []

    def hook(b: PaperBroker) -> CrashAfter:
        watched.append(CrashAfter(b, arm(b, clean)))
        return watched[0]

    with pytest.raises(CrashedError):  # the trader dies right after it met the odd report
        replay(tmp_path, market, SYMBOLS, DAY, S, broker_hook=hook)
    tag = watched[0].tag
    assert watched[0].seen >= 1, "the broker reported the odd fill"
    if name == "the same fill twice":
        assert watched[0].seen == 2  # the same report, twice
    _, res = replay(tmp_path, market, SYMBOLS, DAY, S)  # the restart, on the same journal and broker
    assert res.flat

    journal = SqliteJournal(tmp_path / "journal.sqlite")
    events = [ev for _, ev in read_events(journal)]  # the journal reloads, odd facts and all
    again = rebuild(journal)
    journal.close()
    broker = PaperBroker(tmp_path / "broker.sqlite")
    assert broker.positions() == {} and not again.book.positions and not again.book.stray
    assert {f.fill_id for f in broker.fills()} == again.fills_seen  # every fill booked once, none invented
    broker.close()

    rec = again.orders[tag]
    assert rec.filled > 0
    alerts = [ev for ev in events if isinstance(ev, AlertRaised)]
    kinds = {a.kind for a in again.anomalies}
    if anomaly is None:
        assert not again.anomalies and not alerts
    else:
        assert anomaly in kinds
        assert [a.cause for a in alerts] == [anomaly.value], [
            (a.cause, a.message, a.ref) for a in alerts
        ]  # one alert, and the right one
    if name == "the same fill twice":
        assert key(again) == key(clean)  # a repeated report changes nothing
        assert sum(1 for ev in events if isinstance(ev, Filled) and ev.cid == tag) == 1
    if name == "an over-fill":
        assert any(isinstance(ev, ReduceOnly) for ev in events)  # it cannot tell what is true: no entries
        flatten = [ev for ev in events if isinstance(ev, OrderPlaced) and ev.leg is Leg.FLATTEN]
        assert flatten and flatten[0].qty == 7  # the excess went, once the broker confirmed it holds it
        at = next(i for i, ev in enumerate(events) if isinstance(ev, ReduceOnly))
        assert not [ev for ev in events[at:] if isinstance(ev, OrderPlaced) and ev.leg is Leg.ENTRY]
    if rec.leg is Leg.ENTRY and name != "the same fill twice":
        # The late shares were protected at once: a stop for exactly the position's quantity.
        fill_at = next(i for i, ev in enumerate(events) if isinstance(ev, Filled) and ev.cid == tag)
        stops = [
            ev
            for ev in events[fill_at:]
            if isinstance(ev, OrderPlaced) and ev.leg is Leg.STOP and ev.symbol == rec.request.symbol
        ]
        assert stops and stops[0].qty == min(rec.filled, rec.request.qty)
        assert any(t.symbol == rec.request.symbol and t.setup_ts == rec.setup_ts for t in again.book.trades)
