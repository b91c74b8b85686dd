"""FYERS order, trade and position rows (REST books and order-socket messages) read strictly.

A row that cannot be read (a missing field, a non-numeric value, an unknown status code, a
time in no format we know) raises :class:`PayloadError` naming the field, never a bare
ValueError or KeyError: the adapter logs it once per kind and skips the row.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from tfl.core.orders import broker_fill_id
from tfl.fyers.symbols import SymbolMap
from tfl.live.broker import BrokerOrder, Fill
from tfl.timeutil import IST

# FYERS order status codes (API v3 orderbook and the order socket's org_ord_status).
STATUS = {1: "CANCELLED", 2: "FILLED", 4: "PENDING", 5: "REJECTED", 6: "PENDING", 7: "EXPIRED"}
TYPE_NAME = {1: "LIMIT", 2: "MARKET", 3: "STOP", 4: "STOP"}
TIME_FORMATS = ("%d-%b-%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S")


class PayloadError(ValueError):
    """A row FYERS sent that we cannot read; ``kind`` is e.g. ``trade:time``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def strip_tag(raw: Any) -> str:
    """FYERS returns tags as '1:<ours>' (user) or '2:...' (internal)."""
    text = str(raw or "")
    head, sep, tail = text.partition(":")
    return tail if sep and head in ("1", "2") else text


def parse_time(text: Any) -> int:
    """'09-Mar-2023 09:34:38' (REST) or '09-03-2023 09:34:38' (order socket), IST; or epoch."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return int(text)
    s = str(text).strip()
    for fmt in TIME_FORMATS:
        try:
            return int(dt.datetime.strptime(s, fmt).replace(tzinfo=IST).timestamp())
        except ValueError:
            continue
    if s.isdigit():
        return int(s)
    raise ValueError(f"unrecognised FYERS time '{s[:30]}'")


def _need(row: dict[str, Any], key: str, kind: str) -> Any:
    value = row.get(key)
    if value is None or value == "":
        raise PayloadError(f"{kind}:missing", f"no {key}")
    return value


def _int(value: Any, field: str, kind: str) -> int:
    """A whole number, also when FYERS sends it as 10.0 or "10"."""
    if isinstance(value, bool):
        raise PayloadError(f"{kind}:number", f"{field} is {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PayloadError(f"{kind}:number", f"{field} is {str(value)[:20]!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise PayloadError(f"{kind}:number", f"{field} is {str(value)[:20]!r}")
    return int(number)


def _float(value: Any, field: str, kind: str) -> float:
    if isinstance(value, bool):
        raise PayloadError(f"{kind}:number", f"{field} is {value!r}")
    try:
        number = float(value if value not in (None, "") else 0.0)
    except (TypeError, ValueError):
        raise PayloadError(f"{kind}:number", f"{field} is {str(value)[:20]!r}") from None
    if not math.isfinite(number):
        raise PayloadError(f"{kind}:number", f"{field} is {str(value)[:20]!r}")
    return number


def _symbol(row: dict[str, Any], symbols: SymbolMap, kind: str) -> str:
    ticker = str(_need(row, "symbol", kind))
    return symbols.symbol(ticker) or ticker


def read_order(row: Any, symbols: SymbolMap) -> BrokerOrder:
    """An orderbook row or an order-socket message as a :class:`BrokerOrder`."""
    kind = "order"
    if not isinstance(row, dict):
        raise PayloadError(f"{kind}:shape", f"a {type(row).__name__}, not an object")
    oid = str(_need(row, "id", kind))
    code = _int(_need(row, "status", kind), "status", kind)
    status = STATUS.get(code)
    if status is None:
        raise PayloadError(f"{kind}:status", f"unknown status code {code}")
    filled = _int(row.get("filledQty") or 0, "filledQty", kind)
    if status == "PENDING" and filled > 0:
        status = "PARTIAL"
    typ = TYPE_NAME.get(_int(row.get("type", 2), "type", kind))
    if typ is None:
        raise PayloadError(f"{kind}:type", f"unknown order type {row.get('type')!r}")
    side = _int(_need(row, "side", kind), "side", kind)
    if side not in (1, -1):
        raise PayloadError(f"{kind}:side", f"side {side}")
    return BrokerOrder(
        oid,
        strip_tag(row.get("orderTag")),
        _symbol(row, symbols, kind),
        side,
        typ,
        _int(_need(row, "qty", kind), "qty", kind),
        _float(row.get("stopPrice"), "stopPrice", kind) or None,
        _float(row.get("limitPrice"), "limitPrice", kind) or None,
        status,
        filled,
        _float(row.get("tradedPrice"), "tradedPrice", kind),
        str(row.get("message", ""))[:200],
    )


def read_fill(row: Any, symbols: SymbolMap) -> Fill:
    """A tradebook row or an order-socket trade message as a :class:`Fill`, identified by its
    FYERS order id and trade number together (the trade number alone is the exchange's)."""
    kind = "trade"
    if not isinstance(row, dict):
        raise PayloadError(f"{kind}:shape", f"a {type(row).__name__}, not an object")
    trade = str(_need(row, "tradeNumber", kind))
    oid = str(_need(row, "orderNumber", kind))
    qty = _int(_need(row, "tradedQty", kind), "tradedQty", kind)
    price = _float(_need(row, "tradePrice", kind), "tradePrice", kind)
    if qty <= 0 or price <= 0:
        raise PayloadError(f"{kind}:number", f"{qty} at {price}")
    side = _int(_need(row, "side", kind), "side", kind)
    if side not in (1, -1):
        raise PayloadError(f"{kind}:side", f"side {side}")
    try:
        ts = parse_time(_need(row, "orderDateTime", kind))
    except ValueError as exc:
        raise PayloadError(f"{kind}:time", str(exc)) from None
    return Fill(
        broker_fill_id(oid, trade),
        oid,
        strip_tag(row.get("orderTag")),
        _symbol(row, symbols, kind),
        side,
        qty,
        price,
        ts,
    )


def read_position(row: Any, symbols: SymbolMap) -> tuple[str, int]:
    """A net-positions row as (our symbol, signed net quantity)."""
    kind = "position"
    if not isinstance(row, dict):
        raise PayloadError(f"{kind}:shape", f"a {type(row).__name__}, not an object")
    return _symbol(row, symbols, kind), _int(row.get("netQty") or 0, "netQty", kind)
