"""FYERS' order-update socket (``wss://socket.fyers.in/trade/v3``), server side, as SDK 3.2.0
speaks it (``fyers_apiv3/FyersWebsocket/order_ws.py``).

The client connects with an ``authorization: <app id>:<access token>`` header, sends the text
``ping`` every 10 s and ``{"T": "SUB_ORD", "SLIST": ["orders", "trades", "positions"],
"SUB_T": 1}`` to subscribe. The server sends JSON text frames ``{"s": "ok", "orders": {...}}``
(or ``"trades"``, ``"positions"``) with FYERS' raw field names; the SDK renames them with
its ``map.json`` (``org_ord_status`` becomes ``status``, ``id_fill`` ``tradeNumber``...) and
drops every field its map lacks. Anything else goes to ``on_general``.

The raw names below are FYERS' wire names as the SDK's map reads them; the fake exchange
speaks the mapped names (what the SDK hands its callbacks), so the server translates back.
"""

from __future__ import annotations

from typing import Any

# raw (on the wire) -> mapped (what the SDK's callbacks get)
ORDER_FIELDS = {
    "client_id": "clientId",
    "id": "id",
    "id_parent": "parentId",
    "id_exchange": "exchOrdId",
    "qty": "qty",
    "qty_remaining": "remainingQuantity",
    "qty_filled": "filledQty",
    "price_limit": "limitPrice",
    "price_stop": "stopPrice",
    "price_traded": "tradedPrice",
    "ord_type": "type",
    "fy_token": "fyToken",
    "exchange": "exchange",
    "segment": "segment",
    "symbol": "symbol",
    "instrument": "instrument",
    "oms_msg": "message",
    "offline_flag": "offlineOrder",
    "time_oms": "orderDateTime",
    "validity": "orderValidity",
    "product_type": "productType",
    "tran_side": "side",
    "org_ord_status": "status",
    "ord_source": "source",
    "ordertag": "orderTag",
}
TRADE_FIELDS = {
    "id_fill": "tradeNumber",
    "id": "orderNumber",
    "qty_traded": "tradedQty",
    "price_traded": "tradePrice",
    "traded_val": "tradeValue",
    "product_type": "productType",
    "client_id": "clientId",
    "id_exchange": "exchangeOrderNo",
    "ord_type": "orderType",
    "tran_side": "side",
    "symbol": "symbol",
    "fill_time": "orderDateTime",
    "fy_token": "fyToken",
    "exchange": "exchange",
    "segment": "segment",
    "ordertag": "orderTag",
}
POSITION_FIELDS = {
    "symbol": "symbol",
    "id": "id",
    "net_qty": "netQty",
    "net_avg": "netAvg",
    "tran_side": "side",
    "qty": "qty",
    "product_type": "productType",
    "pl_realized": "realized_profit",
    "pl_unrealized": "unrealized_profit",
    "pl_total": "pl",
}
RAW = {"orders": ORDER_FIELDS, "trades": TRADE_FIELDS, "positions": POSITION_FIELDS}
SUBSCRIBED = {"s": "ok", "code": 1605, "message": "Successfully subscribed"}


def to_wire(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The fake exchange's report (mapped names) as FYERS sends it (raw names)."""
    back = {mapped: raw for raw, mapped in RAW[kind].items()}
    return {"s": "ok", kind: {back[k]: v for k, v in body.items() if k in back}}


def topics(msg: dict[str, Any]) -> set[str] | None:
    """The topics a SUB_ORD message subscribes (None: not a subscription)."""
    if msg.get("T") != "SUB_ORD" or msg.get("SUB_T") != 1:
        return None
    return {str(t) for t in msg.get("SLIST") or []}
