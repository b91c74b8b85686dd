"""The paper broker: its own order book and fills, in its own SQLite file.

It behaves like a broker the trader does not control: orders are matched against the
market feed, fills and the last tick processed are committed together, and a restarted
trader has to ask it what happened (by tag) rather than share its state.

Fills follow the one fill model (:mod:`tfl.core.fills`), on ticks: market orders fill at
the next tick (or at the last price when the session closes); a stop or limit triggered by
the first tick of a 15-minute bar fills at that tick (a gap), later in the bar at its own
level; stops and market orders slip by ``slippage_pct``, limits do not. Orders of one OCO
group cancel each other when one fills; orders still resting at the close expire.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tfl.core.fills import adverse, at_the_close, match
from tfl.core.orders import OrderRequest, OrderType
from tfl.live.broker import BrokerError, BrokerEvent, BrokerOrder, Fill, OrderUpdate
from tfl.live.faults import CrashPoints
from tfl.timeutil import BAR_SECONDS, IST_OFFSET_S, REGULAR_OPEN

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    broker_id TEXT NOT NULL UNIQUE,
    tag TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL, side INTEGER NOT NULL, type TEXT NOT NULL, qty INTEGER NOT NULL,
    trigger REAL, lim REAL, oco TEXT,
    status TEXT NOT NULL, filled INTEGER NOT NULL DEFAULT 0, avg_price REAL NOT NULL DEFAULT 0,
    placed_ts INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY, broker_id TEXT NOT NULL, tag TEXT NOT NULL, symbol TEXT NOT NULL,
    side INTEGER NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL, ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


_TYPES = {t.value: t for t in OrderType}


@dataclass(frozen=True)
class LateFill:
    """A cancel that crosses a fill on the wire: ``fraction`` of what is left fills as the cancel
    arrives, and the order ends ``status``; ``after_ack``: the fill is reported after the
    broker acknowledged the cancel (else before it, while the cancel is still pending)."""

    fraction: float = 0.5
    status: str = "CANCELLED"  # or EXPIRED
    after_ack: bool = True


@dataclass
class Quirks:
    """Real broker behaviour the paper broker shows on request (fault scenarios), by order tag.
    Each is used once and then forgotten."""

    late_fill: dict[str, LateFill] = field(default_factory=dict)  # when the order is cancelled
    duplicate_fills: set[str] = field(default_factory=set)  # its fill reports arrive twice
    overfill: dict[str, int] = field(default_factory=dict)  # extra shares on its next fill


@dataclass
class _Open:
    broker_id: str
    tag: str
    symbol: str
    side: int
    type: str
    qty: int
    trigger: float | None
    limit: float | None
    oco: str | None
    filled: int
    seq: int


class PaperBroker:
    def __init__(
        self, path: str | Path, *, slippage_pct: float = 0.05, session_open_minute: int = REGULAR_OPEN
    ) -> None:
        self.path = Path(path)
        self._slip = slippage_pct / 100.0
        self._open_minute = session_open_minute
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (what the tests do to it); a simulator
            # need not pay an fsync per order for power-loss safety.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise BrokerError(f"paper broker store {self.path}: unusable ({exc})") from None
        self._events: list[BrokerEvent] = []
        self._last_price: dict[str, float] = {}
        self._last_slot: dict[str, int] = {}
        row = self._db.execute("SELECT v FROM meta WHERE k='marks'").fetchone()
        if row:
            self._last_price.update({k: float(v) for k, v in json.loads(row[0]).items()})
        wm = self._db.execute("SELECT v FROM meta WHERE k='watermark'").fetchone()
        self.watermark = int(wm[0]) if wm else 0  # the last tick (by feed sequence) whose effects are committed
        self._open: dict[str, list[_Open]] = {}
        for row in self._db.execute(
            "SELECT broker_id, tag, symbol, side, type, qty, trigger, lim, oco, filled, seq FROM orders "
            "WHERE status IN ('PENDING', 'PARTIAL') ORDER BY seq"
        ):
            o = _Open(*row)
            self._open.setdefault(o.symbol, []).append(o)
        self.rejections: set[str] = set()  # symbols whose orders are refused (fault scenarios)
        self.quirks = Quirks()
        self.crash: CrashPoints | None = None

    # ------------------------------------------------------------------ requests

    def place(self, req: OrderRequest, ts: int) -> BrokerOrder:
        existing = self.order_by_tag(req.client_id)
        if existing is not None:  # a tag is unique: placing it again returns the same order
            return existing
        if req.qty <= 0:
            raise BrokerError(f"order {req.client_id}: quantity must be positive")
        if req.type is OrderType.STOP and req.trigger is None:
            raise BrokerError(f"order {req.client_id}: a stop order needs a trigger price")
        if req.type is OrderType.LIMIT and req.limit is None:
            raise BrokerError(f"order {req.client_id}: a limit order needs a limit price")
        status, reason = "PENDING", ""
        if req.symbol in self.rejections:
            status, reason = "REJECTED", "RMS: order rejected by the broker"
        broker_id = f"P{ts}{req.client_id}"[-40:]
        self._db.execute(
            "INSERT INTO orders (broker_id, tag, symbol, side, type, qty, trigger, lim, oco, status, placed_ts, "
            "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                broker_id,
                req.client_id,
                req.symbol,
                req.side,
                req.type.value,
                req.qty,
                req.trigger,
                req.limit,
                req.oco,
                status,
                ts,
                reason,
            ),
        )
        seq = int(self._db.execute("SELECT seq FROM orders WHERE broker_id = ?", (broker_id,)).fetchone()[0])
        if status == "PENDING":
            self._open.setdefault(req.symbol, []).append(
                _Open(
                    broker_id,
                    req.client_id,
                    req.symbol,
                    req.side,
                    req.type.value,
                    req.qty,
                    req.trigger,
                    req.limit,
                    req.oco,
                    0,
                    seq,
                )
            )
        order = self.order_by_tag(req.client_id)
        assert order is not None
        if status == "REJECTED":
            raise BrokerError(f"order {req.client_id} rejected: {reason}")
        return order

    def modify(
        self, tag: str, ts: int, *, trigger: float | None = None, limit: float | None = None, qty: int | None = None
    ) -> BrokerOrder:
        o = self._find_open(tag)
        if o is None:
            raise BrokerError(f"order {tag}: not open, cannot modify")
        if qty is not None and qty <= o.filled:
            raise BrokerError(f"order {tag}: quantity {qty} is not above what has filled ({o.filled})")
        if trigger is not None:
            o.trigger = trigger
        if limit is not None:
            o.limit = limit
        if qty is not None:
            o.qty = qty
        self._db.execute(
            "UPDATE orders SET trigger = ?, lim = ?, qty = ? WHERE tag = ?", (o.trigger, o.limit, o.qty, tag)
        )
        order = self.order_by_tag(tag)
        assert order is not None
        return order

    def cancel(self, tag: str, ts: int) -> BrokerOrder:
        o = self._find_open(tag)
        if o is None:
            order = self.order_by_tag(tag)
            if order is None:
                raise BrokerError(f"order {tag}: unknown, cannot cancel")
            return order  # already terminal: cancelling is a no-op
        late = self.quirks.late_fill.pop(o.tag, None)
        if late is not None:
            return self._cancel_crossing_a_fill(o, late, ts)
        self._close_open(o, "CANCELLED")
        self._events.append(OrderUpdate(tag, o.broker_id, "CANCELLED", o.filled))
        order = self.order_by_tag(tag)
        assert order is not None
        return order

    def _cancel_crossing_a_fill(self, o: _Open, late: LateFill, ts: int) -> BrokerOrder:
        ack = self.order_by_tag(o.tag)
        assert ack is not None
        left = o.qty - o.filled
        qty = left if late.fraction >= 1.0 else max(1, int(left * late.fraction))
        level = o.trigger if o.trigger is not None else (o.limit if o.limit is not None else self._last_price[o.symbol])
        price = adverse(level, o.side > 0, self._slip) if o.type != OrderType.LIMIT.value else level
        before = len(self._events)
        self._fill(o, qty, price, ts)
        if o.filled < o.qty:
            self._close_open(o, late.status, reason="cancelled")
        update = OrderUpdate(o.tag, o.broker_id, late.status, o.filled if not late.after_ack else ack.filled)
        self._events.insert(before if late.after_ack else len(self._events), update)
        if late.after_ack:  # the answer to the cancel says what the broker knew then: cancelled, unfilled
            return dataclasses.replace(ack, status=late.status)
        order = self.order_by_tag(o.tag)
        assert order is not None
        return order

    # ------------------------------------------------------------------ queries

    def order_by_tag(self, tag: str) -> BrokerOrder | None:
        row = self._db.execute(
            "SELECT broker_id, tag, symbol, side, type, qty, trigger, lim, status, filled, avg_price, reason "
            "FROM orders WHERE tag = ?",
            (tag,),
        ).fetchone()
        return BrokerOrder(*row) if row else None

    def orders(self) -> list[BrokerOrder]:
        rows = self._db.execute(
            "SELECT broker_id, tag, symbol, side, type, qty, trigger, lim, status, filled, avg_price, reason "
            "FROM orders ORDER BY seq"
        ).fetchall()
        return [BrokerOrder(*r) for r in rows]

    def fills(self) -> list[Fill]:
        rows = self._db.execute(
            "SELECT fill_id, broker_id, tag, symbol, side, qty, price, ts FROM fills ORDER BY rowid"
        ).fetchall()
        return [Fill(*r) for r in rows]

    def positions(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for sym, net in self._db.execute("SELECT symbol, SUM(side * qty) FROM fills GROUP BY symbol"):
            if net:
                out[sym] = int(net)
        return out

    def poll(self) -> list[BrokerEvent]:
        ev, self._events = self._events, []
        return ev

    def on_token_rejected(self, callback: Callable[[str], None]) -> None:
        return None  # no access token to lose

    # ------------------------------------------------------------------ the market

    def on_tick(self, symbol: str, ts: int, price: float, seq: int) -> None:
        """Match resting orders of ``symbol`` against a trade at ``price``.

        ``seq`` is the feed's monotonic tick sequence; ticks at or below the committed
        watermark were already processed before a restart and are ignored.
        """
        slot = (ts + IST_OFFSET_S - self._open_minute * 60) // BAR_SECONDS
        bar_open = self._last_slot.get(symbol) != slot
        self._last_slot[symbol] = slot
        if seq <= self.watermark:
            return
        self._last_price[symbol] = price
        orders = self._open.get(symbol)
        if not orders:
            return
        filled_now: list[tuple[_Open, float]] = []
        for o in list(orders):
            px = self._match(o, price, bar_open)
            if px is not None:
                filled_now.append((o, px))
        if not filled_now:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for o, px in filled_now:
                if o not in self._open.get(symbol, []):
                    continue  # cancelled by an OCO partner on this very tick
                self._fill(o, o.qty - o.filled, px, ts)
            self._set_watermark(seq)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if self.crash is not None:
            self.crash.hit("fill")

    def _match(self, o: _Open, price: float, bar_open: bool) -> float | None:
        return match(_TYPES[o.type], o.side > 0, o.trigger, o.limit, price, bar_open, self._slip)

    def close_session(self, ts: int, seq: int) -> None:
        """The market closed: pending market orders fill at the last price, the rest expire."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for symbol, orders in list(self._open.items()):
                for o in list(orders):
                    px = at_the_close(_TYPES[o.type], o.side > 0, self._last_price.get(symbol), self._slip)
                    if px is not None:
                        self._fill(o, o.qty - o.filled, px, ts)
                    elif o in self._open.get(symbol, []):
                        self._close_open(o, "EXPIRED", reason="expired at the close")
                        self._events.append(
                            OrderUpdate(o.tag, o.broker_id, "EXPIRED", o.filled, "expired at the close")
                        )
            self._set_watermark(seq)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def checkpoint(self, seq: int) -> None:
        """Persist the tick watermark (the runtime calls it at bar boundaries)."""
        if seq > self.watermark:
            self._set_watermark(seq)

    # ------------------------------------------------------------------ internals

    def _fill(self, o: _Open, qty: int, price: float, ts: int) -> None:
        qty += self.quirks.overfill.pop(o.tag, 0)
        fill_id = f"{o.broker_id}-{o.filled + qty}"
        self._db.execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (fill_id, o.broker_id, o.tag, o.symbol, o.side, qty, price, ts),
        )
        o.filled += qty
        self._db.execute(
            "UPDATE orders SET filled = ?, avg_price = ?, status = ? WHERE broker_id = ?",
            (o.filled, price, "FILLED" if o.filled >= o.qty else "PARTIAL", o.broker_id),
        )
        fill = Fill(fill_id, o.broker_id, o.tag, o.symbol, o.side, qty, price, ts)
        self._events.append(fill)
        if o.tag in self.quirks.duplicate_fills:
            self._events.append(fill)  # the same report again
        if o.filled >= o.qty:
            self._open[o.symbol].remove(o)
            self._events.append(OrderUpdate(o.tag, o.broker_id, "FILLED", o.filled))
            if o.oco:
                for other in list(self._open.get(o.symbol, [])):
                    if other.oco == o.oco:
                        self._close_open(other, "CANCELLED", reason="OCO partner filled")
                        self._events.append(OrderUpdate(other.tag, other.broker_id, "CANCELLED", other.filled, "oco"))

    def _close_open(self, o: _Open, status: str, reason: str = "") -> None:
        self._db.execute("UPDATE orders SET status = ?, reason = ? WHERE broker_id = ?", (status, reason, o.broker_id))
        lst = self._open.get(o.symbol, [])
        if o in lst:
            lst.remove(o)

    def _find_open(self, tag: str) -> _Open | None:
        for lst in self._open.values():
            for o in lst:
                if o.tag == tag:
                    return o
        return None

    def _set_watermark(self, seq: int) -> None:
        self.watermark = max(self.watermark, seq)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('watermark', ?)", (str(self.watermark),))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('marks', ?)", (json.dumps(self._last_price),))

    def close(self) -> None:
        self._db.close()
