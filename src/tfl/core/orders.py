"""Orders: deterministic client ids and an order state machine that admits real brokers.

A client id is derived from (session, symbol, setup bar, leg, attempt) and fits a broker
order tag (alphanumeric, at most 30 characters), so a restarted process finds its own
orders at the broker instead of sending them twice.

The state machine is an explicit table from (current status, reported fact) to the next
status, in the manner of NautilusTrader's order FSM, with one deliberate difference: a
fill that arrives after a cancel or an expiry was acknowledged is booked (the shares are
real) but does not re-open the order, because the rest of its quantity is dead at the
broker. A fact the table does not admit is never an exception: :func:`transition` returns
the status unchanged together with an :class:`Oddity` saying what was odd, and the
reducer records it so that the trader can alert and act safely.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum

from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY

MAX_TAG = 30
FILL_ID_SEP = "/"  # between a broker's order id and its trade number in a fill id


def broker_fill_id(order_id: str, trade: str) -> str:
    """A fill's identity at a broker whose trade numbers are unique only per order (FYERS:
    the exchange's trade number, not promised unique across symbols): the pair, as text."""
    return f"{order_id}{FILL_ID_SEP}{trade}"


def legacy_fill_id(fill_id: str) -> str | None:
    """The id the same fill had in journals written before fill ids named their order (the
    bare trade number), or None for an id that never had another form."""
    head, sep, tail = fill_id.rpartition(FILL_ID_SEP)
    return tail if sep and head and tail else None


class OrderStatus(StrEnum):
    INTENT = "INTENT"  # journalled, not yet sent
    SUBMITTED = "SUBMITTED"  # sent, no answer yet
    ACCEPTED = "ACCEPTED"  # resting at the broker
    PENDING_CANCEL = "PENDING_CANCEL"  # a cancel was requested; fills may still arrive
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"  # the broker ended it (end of day, validity)
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"  # sent, outcome not known: resolve by tag, never re-send blind


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED})


class Report(StrEnum):
    """A fact about an order, from the broker or from our own request."""

    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    PARTIAL_FILL = "PARTIAL_FILL"
    FULL_FILL = "FULL_FILL"


class Oddity(StrEnum):
    """Why a fact did not fit what we expected (recorded; never raised)."""

    STALE = "STALE"  # an old status arriving after a newer one: ignored, nothing to do
    LATE_FILL = "LATE_FILL"  # a fill after the cancel or expiry was acknowledged: booked, alert
    CONTRADICTION = "CONTRADICTION"  # e.g. a rejection after a fill: cannot tell what is true
    OVERFILL = "OVERFILL"  # more filled than ordered: the excess is not booked to the order


S, R = OrderStatus, Report
_LIVE = (S.INTENT, S.SUBMITTED, S.UNKNOWN, S.ACCEPTED)

# (current status, reported fact) -> next status. Anything missing is an oddity (below).
TRANSITIONS: dict[tuple[OrderStatus, Report], OrderStatus] = {}
for _s in _LIVE:
    TRANSITIONS.update(
        {
            (_s, R.ACCEPTED): S.ACCEPTED,
            (_s, R.REJECTED): S.REJECTED,
            (_s, R.CANCEL_REQUESTED): S.PENDING_CANCEL,
            (_s, R.CANCELLED): S.CANCELLED,
            (_s, R.EXPIRED): S.EXPIRED,
            (_s, R.PARTIAL_FILL): S.PARTIALLY_FILLED,
            (_s, R.FULL_FILL): S.FILLED,
        }
    )
TRANSITIONS.update(
    {
        (S.INTENT, R.SUBMITTED): S.SUBMITTED,
        (S.INTENT, R.UNKNOWN): S.UNKNOWN,
        (S.SUBMITTED, R.SUBMITTED): S.SUBMITTED,
        (S.SUBMITTED, R.UNKNOWN): S.UNKNOWN,
        (S.UNKNOWN, R.UNKNOWN): S.UNKNOWN,
        (S.ACCEPTED, R.SUBMITTED): S.ACCEPTED,
        # A cancel was asked for: the broker may still fill (all or part) before it acts.
        (S.PENDING_CANCEL, R.CANCEL_REQUESTED): S.PENDING_CANCEL,
        (S.PENDING_CANCEL, R.CANCELLED): S.CANCELLED,
        (S.PENDING_CANCEL, R.EXPIRED): S.EXPIRED,
        (S.PENDING_CANCEL, R.PARTIAL_FILL): S.PENDING_CANCEL,
        (S.PENDING_CANCEL, R.FULL_FILL): S.FILLED,
        (S.PENDING_CANCEL, R.REJECTED): S.REJECTED,
        (S.PARTIALLY_FILLED, R.PARTIAL_FILL): S.PARTIALLY_FILLED,
        (S.PARTIALLY_FILLED, R.FULL_FILL): S.FILLED,
        (S.PARTIALLY_FILLED, R.CANCEL_REQUESTED): S.PENDING_CANCEL,
        (S.PARTIALLY_FILLED, R.CANCELLED): S.CANCELLED,
        (S.PARTIALLY_FILLED, R.EXPIRED): S.EXPIRED,
        # Real-world possibilities: a fill crosses the cancel acknowledgement on the wire.
        (S.CANCELLED, R.PARTIAL_FILL): S.CANCELLED,
        (S.CANCELLED, R.FULL_FILL): S.FILLED,
        (S.EXPIRED, R.PARTIAL_FILL): S.EXPIRED,
        (S.EXPIRED, R.FULL_FILL): S.FILLED,
    }
)
_LATE = {
    (S.CANCELLED, R.PARTIAL_FILL),
    (S.CANCELLED, R.FULL_FILL),
    (S.EXPIRED, R.PARTIAL_FILL),
    (S.EXPIRED, R.FULL_FILL),
}
_STALE_STATUS = {R.SUBMITTED, R.ACCEPTED, R.UNKNOWN, R.CANCEL_REQUESTED, R.CANCELLED, R.EXPIRED}


def transition(current: OrderStatus, fact: Report) -> tuple[OrderStatus, Oddity | None]:
    """The next status after ``fact``, and what was odd about it (None when nothing was).

    Never raises: a status report older than what we know is STALE (ignored); a fill on a
    filled or rejected order, or a rejection after a fill, is a CONTRADICTION.
    """
    nxt = TRANSITIONS.get((current, fact))
    if nxt is not None:
        return nxt, (Oddity.LATE_FILL if (current, fact) in _LATE else None)
    if current is S.PARTIALLY_FILLED and fact in (R.ACCEPTED, R.SUBMITTED, R.UNKNOWN):
        return current, Oddity.STALE
    if current in TERMINAL and (fact in _STALE_STATUS or (current is S.REJECTED and fact is R.REJECTED)):
        return current, Oddity.STALE  # (a rejection told twice: in the answer and on the order socket)
    if current is S.PENDING_CANCEL and fact in (R.ACCEPTED, R.SUBMITTED, R.UNKNOWN):
        return current, Oddity.STALE
    return current, Oddity.CONTRADICTION


class Leg(StrEnum):
    ENTRY = "E"
    STOP = "S"
    TARGET = "T"
    EXIT = "X"  # square-off, kill switch, manual flatten
    FLATTEN = "F"  # closes stray shares that no position accounts for (an over-fill, an orphan fill)


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"  # stop-market (SL-M)


_ALNUM = re.compile(r"[^A-Z0-9]")
_ATTEMPTS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_ATTEMPTS = len(_ATTEMPTS)


@functools.lru_cache(maxsize=8192)  # pure; the core asks for the same ids many times in a session
def client_id(session: dt.date, symbol: str, setup_ts: int, leg: Leg, attempt: int = 0) -> str:
    """e.g. ``2403061000ERELIANCE3F2A0``: date, setup bar HHMM (IST), leg, symbol, hash, attempt.

    The 4-hex hash of the full symbol keeps ids unique when the alphanumeric part is
    shortened or collides (``M&M`` vs ``MM``).
    """
    if not 0 <= attempt < MAX_ATTEMPTS:
        raise ValueError(f"attempt {attempt} out of range")
    minute = ((setup_ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
    cid = _date_part(session) + _hhmm_part(minute) + _LEG_CODE[leg] + _symbol_part(symbol) + _ATTEMPTS[attempt]
    assert len(cid) <= MAX_TAG
    return cid


# Each leg's letter, read once (an enum's ``.value`` is a Python-level property, and nearly
# every client id the core asks for is new, so the cache above does not spare the work).
_LEG_CODE: dict[str, str] = {leg: leg.value for leg in Leg}


@functools.lru_cache(maxsize=2048)
def _hhmm_part(minute: int) -> str:
    """HHMM of a minute of the day (IST)."""
    return f"{minute // 60:02d}{minute % 60:02d}"


@functools.lru_cache(maxsize=4096)
def _symbol_part(symbol: str) -> str:
    sym = _ALNUM.sub("", symbol.upper())[:12]
    return sym + hashlib.sha1(symbol.encode()).hexdigest()[:4].upper()


@functools.lru_cache(maxsize=512)
def _date_part(session: dt.date) -> str:
    return f"{session:%y%m%d}"


def attempt_of(cid: str) -> int:
    """The attempt number a client id ends with."""
    return _ATTEMPTS.index(cid[-1])


def first_attempt(cid: str) -> str:
    """The client id of the first attempt of the same order (a replacement's original)."""
    return cid[:-1] + _ATTEMPTS[0] if cid else cid


def is_client_id(tag: str) -> bool:
    """Whether a broker order tag has the form :func:`client_id` gives (one of ours, placed by
    this process or an earlier one): date, HHMM, a leg, the symbol part, an attempt."""
    if len(tag) < 16 or len(tag) > MAX_TAG or not tag.isalnum() or not tag[:10].isdigit():
        return False
    return tag[10] in {leg.value for leg in Leg} and tag[-1] in _ATTEMPTS and tag == tag.upper()


def oco_group(session: dt.date, symbol: str, setup_ts: int) -> str:
    """The one-cancels-other group of a position's stop and target."""
    return client_id(session, symbol, setup_ts, Leg.STOP)[:-1] + "G"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_id: str
    symbol: str
    side: int  # +1 buy, -1 sell
    type: OrderType
    qty: int
    trigger: float | None = None  # stop orders
    limit: float | None = None  # limit orders
    oco: str | None = None  # one-cancels-other group (stop + target of one position)


@dataclass(slots=True)
class OrderRecord:
    """The trader's view of one order, rebuilt from the journal."""

    request: OrderRequest
    leg: Leg
    setup_ts: int
    status: OrderStatus = OrderStatus.INTENT
    broker_id: str | None = None
    filled: int = 0
    fill_ids: set[str] = field(default_factory=set)
    modifications: int = 0
    confirmed: int = 0  # the last modification the broker confirmed
    cancel_requests: int = 0
    reports: int = 0  # status reports journalled about it

    @property
    def open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def working(self) -> bool:
        """Resting at the broker as far as we know (a requested cancel may still lose the race)."""
        return self.status in (S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.UNKNOWN, S.PENDING_CANCEL)

    def has_fill(self, fill_id: str) -> bool:
        """Booked already, under this id or (a journal of older code) its bare trade number."""
        old = legacy_fill_id(fill_id)
        return fill_id in self.fill_ids or (old is not None and old in self.fill_ids)

    @property
    def remaining(self) -> int:
        return max(0, self.request.qty - self.filled)
