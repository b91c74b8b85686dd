"""Before the open, live world only: does FYERS take order calls from this machine?

Since 1 April 2026 FYERS accepts order calls only from the static IP registered for the app
(SEBI's retail-algo rules); data calls work from anywhere, so a trader on the wrong address
would see nothing wrong until its first order. The check asks FYERS to cancel an order id
that cannot exist (one not in today's order book), which can never trade:

- "no such order" (FYERS documents code -51, invalid order id) or a success: FYERS looked
  the order up, so order calls from this IP are taken;
- a refusal that speaks of the IP, or HTTP 403: order calls are refused (:data:`Access.REFUSED`);
- any other answer: FYERS' answer to a non-whitelisted IP is not documented, so the safe
  reading is that order calls may be refused (:data:`Access.DOUBTFUL`);
- no answer at all (network, timeout, a dead token, the day block): :data:`Access.UNKNOWN`,
  which says nothing about the IP.

A refused or doubtful check means no entries today (the session trades NO_TRADES) and a
CRITICAL alert naming the fix; see docs/fyers.md, "Before the open: order calls from this IP".
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from tfl.fyers.errors import FyersAmbiguous, FyersAuthError, FyersDayBlocked, FyersError, FyersIpRefused
from tfl.fyers.rest import FyersRest

log = logging.getLogger("tfl.fyers.preflight")

PROBE_ORDER_ID = "999999999999999"  # an order number FYERS has not issued today (checked against the book)
NOT_FOUND_CODES = {-51}  # FYERS: "invalid Order ID is passed while fetching Orders or Order Modification"
NOT_FOUND_WORDS = re.compile(r"invalid order|not found|does not exist|no such order", re.IGNORECASE)
PROBE_ATTEMPTS = 3  # a check that gets no answer is asked again, this many times in all
IP_FIX = (
    "register this machine's public IP (on AWS: the instance's Elastic IP) as the static IP of the "
    "app in the FYERS API dashboard (myapi.fyers.in), and check the app has the Order Placement permission"
)


class Access(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    DOUBTFUL = "doubtful"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OrderAccess:
    access: Access
    detail: str  # FYERS' words (never a secret: errors carry the endpoint and the code only)

    @property
    def blocks_entries(self) -> bool:
        return self.access in (Access.REFUSED, Access.DOUBTFUL)


def check_order_access(rest: FyersRest, *, pause: Callable[[float], None] | None = None) -> OrderAccess:
    """Ask FYERS to cancel an order that cannot exist and read its answer (see the module)."""
    last = OrderAccess(Access.UNKNOWN, "not asked")
    for attempt in range(PROBE_ATTEMPTS):
        if attempt and pause is not None:
            pause(2.0 * attempt)
        last = _probe(rest)
        if last.access is not Access.UNKNOWN:
            return last
    return last


def _probe(rest: FyersRest) -> OrderAccess:
    try:
        ours = {str(o.get("id")) for o in rest.orderbook()}
    except FyersError as exc:  # never cancel blind: the id must not be one of today's orders
        return OrderAccess(Access.UNKNOWN, f"order book unreadable: {exc}")
    probe = PROBE_ORDER_ID
    while probe in ours:
        probe = str(int(probe) - 1)
    try:
        rest.cancel(probe)
    except FyersIpRefused as exc:
        return OrderAccess(Access.REFUSED, str(exc))
    except (FyersAuthError, FyersAmbiguous, FyersDayBlocked) as exc:
        return OrderAccess(Access.UNKNOWN, str(exc))
    except FyersError as exc:
        if exc.code in NOT_FOUND_CODES or NOT_FOUND_WORDS.search(str(exc)):
            return OrderAccess(Access.ACCEPTED, str(exc))
        return OrderAccess(Access.DOUBTFUL, str(exc))
    return OrderAccess(Access.ACCEPTED, "cancel accepted")


def order_access_gate(
    rest: FyersRest, alert: Callable[[str, str], None], *, pause: Callable[[float], None] | None = None
) -> str | None:
    """The pre-open check with its alert. Returns why entries must not be made today, or None."""
    got = check_order_access(rest, pause=pause)
    fields = {"access": got.access.value, "detail": got.detail[:200]}
    if got.access is Access.ACCEPTED:
        log.info("FYERS takes order calls from this IP", extra={"fields": fields})
        return None
    if got.access is Access.UNKNOWN:
        log.error("could not check whether FYERS takes order calls from this IP", extra={"fields": fields})
        alert(
            "ERROR",
            f"TFL could not check before the open whether FYERS takes order calls from this machine's IP "
            f"({got.detail[:120]}). Trading goes on; a refused order is alerted. If orders are refused: {IP_FIX}.",
        )
        return None
    if got.access is Access.REFUSED:
        why = "FYERS refuses order calls from this machine's IP"
        message = f"TFL: {why} ({got.detail[:120]}). No entries today. Fix: {IP_FIX}."
    else:
        why = "FYERS' answer to the pre-open order check suggests order calls may be refused"
        message = (
            f"TFL: {why}: it answered a cancel of a non-existent order with '{got.detail[:120]}', not "
            f"'invalid order id'. No entries today, as order calls may be refused from this IP. Check: {IP_FIX}."
        )
    log.critical("order calls may be refused: no entries today", extra={"fields": fields})
    alert("CRITICAL", message)
    return why
