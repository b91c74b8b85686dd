"""Reconciliation: the journal against the broker's truth, at start-up and after a failure.

Adopt what is ours (by tag), book fills the journal lacks, send intents that never reached
the broker (an entry whose bar is over is dropped), put every resting stop back at the
level the journal holds, give every position a working stop, and compare positions.
External orders or quantity differences put the trader in reduce-only and alert. If the
broker cannot be asked, entries stay blocked and the next boundary tries again; exits and
protective stops are still attempted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tfl.core.events import OrderReported, ReconcileDifference
from tfl.core.orders import Leg, OrderStatus, Report
from tfl.core.state import allocation_of, fill_known
from tfl.live.broker import BrokerError, BrokerTimeoutError
from tfl.timeutil import BAR_SECONDS

if TYPE_CHECKING:
    from tfl.live.trader import Trader

log = logging.getLogger("tfl.reconcile")


def reconcile(trader: Trader, ts: int) -> list[str]:
    """Returns the differences found (each is journalled)."""
    try:
        return _reconcile(trader, ts)
    except (BrokerError, BrokerTimeoutError) as exc:
        trader.journal.flush()
        if not trader.reconcile_failed:
            log.error("cannot reconcile with the broker yet: no new entries", extra={"fields": {"error": str(exc)}})
            trader.alert("ERROR", f"TFL cannot reconcile with the broker: {exc}")
        trader.reconcile_failed = True
        return []


def _reconcile(trader: Trader, ts: int) -> list[str]:
    trader.settle_earlier(ts, {})  # an earlier session's positions and orders first (see its docstring)
    st = trader.state
    ex = trader.execution
    diffs: list[str] = []
    ours = set(st.orders)
    fills = ex.broker_fills()
    # First, fills by orders that are not ours that closed one of our positions while this
    # process was away (FYERS' own square-off, a hand-placed order): booked before anything
    # could protect or exit shares the broker no longer holds.
    closing = [
        f for f in fills if f.tag not in ours and f.symbol in st.book.positions and not fill_known(st, f.fill_id, f.tag)
    ]
    if closing:
        trader.facts([ex.fill_fact(f) for f in closing], ts)
    for order in ex.broker_orders():
        if order.tag not in ours:
            diffs.append(f"external order {order.tag or order.broker_id} ({order.symbol}, {order.status})")
    for rec in list(st.orders.values()):
        if rec.status is OrderStatus.INTENT:
            _resolve_intent(trader, rec.request.client_id, ts)
        elif rec.open:
            trader.look_up(rec, ts)
    for f in fills:
        if f.tag in ours and not fill_known(st, f.fill_id, f.tag):
            diffs.append(f"fill {f.fill_id} ({f.tag}) was not in the journal: booked now")
            trader.facts([ex.fill_fact(f)], ts)
    broker_pos = ex.broker_positions()
    mine = {s: int(p.side) * p.qty for s, p in st.book.positions.items()}
    for sym, (n, _) in st.book.stray.items():
        mine[sym] = mine.get(sym, 0) + n
    for sym, n in st.foreign.items():
        mine[sym] = mine.get(sym, 0) + n
    for sym in sorted(set(broker_pos) | set(mine)):
        if broker_pos.get(sym, 0) != mine.get(sym, 0):
            diffs.append(f"position {sym}: broker {broker_pos.get(sym, 0)}, journal {mine.get(sym, 0)}")
    for d in diffs:
        trader.record(ReconcileDifference(d, ts), ts)
        log.warning("reconciliation difference", extra={"fields": {"difference": d}})
    unexplained = [d for d in diffs if not d.startswith("fill ")]
    trader.journal_differs(diffs, bool(unexplained), ts)
    if unexplained:
        trader.set_reduce_only(ts, "; ".join(unexplained)[:200])
    trader.resolve_unknown(ts)  # cancels and stop moves journalled before a crash but not sent: send them
    trader.protect(ts)
    trader.after_restart(ts)
    trader.check_cover(ts)
    trader.gate.reconciled = True
    trader.journal.flush()
    log.info("reconciled with the broker", extra={"fields": {"differences": len(diffs)}})
    return diffs


def _resolve_intent(trader: Trader, cid: str, ts: int) -> None:
    """An intent the journal has but no answer for: the process died around the broker call.

    If the broker has it (by tag), adopt it; if not, it was never sent: send it now, unless
    it was an entry whose bar is already over.
    """
    rec = trader.state.orders[cid]
    if trader.look_up(rec, ts) is not None:
        return  # adopted, or the broker could not be asked: try again later
    if rec.leg is Leg.ENTRY:
        alloc = allocation_of(trader.state, cid)
        if alloc is None or alloc.entry_ts + BAR_SECONDS <= ts:
            trader.facts([OrderReported(cid, Report.CANCELLED, reason="not sent before its bar ended")], ts)
            return
    log.warning(
        "sending an order that was journalled but never reached the broker",
        extra={"fields": {"cid": cid, "leg": rec.leg.name}},
    )
    trader.loaded.discard(cid)
    trader.submit(cid, ts)
