"""FYERS' binary market-data protocol (HSM), server side, as SDK 3.2.0 speaks it.

Read from ``fyers_apiv3/FyersWebsocket/data_ws.py`` (the client): every frame starts with a
2-byte length and a 1-byte type; requests then carry a field count and fields of
``id (1) | length (2, big-endian) | value``. The client sends: 1 auth (field 1 the
``hsm_key`` of the access token), 12 mode (field 2: 70 full, 76 lite), 4 subscribe (field
1: count (2) then ``len (1) | topic`` for each ``sf|nse_cm|<exchange token>``; field 2 the
channel), 5 unsubscribe, 3 acknowledgement, 7/8 channel pause/resume, and ``00 01 0b`` as
its ping every 10 s. Its declared lengths are not always right (the subscribe length counts
the access token), so the server parses fields, not lengths.

The server answers 1/4/5/7/8/12 with a "K" field, and sends market data as type 6 frames:
``message number (4) | scrip count (2)`` then per scrip a snapshot (83: topic id, topic
name, 21 int32 fields in the order of the SDK's ``data_val``, multiplier, precision,
exchange, token, symbol), a full-mode update (85: topic id and the 21 fields; the SDK
merges the changed ones into its snapshot and emits the merged dict) or a lite-mode update
(76: topic id and the LTP). Prices are integers scaled by ``10**precision * multiplier``.
Exactly what FYERS sends in fields the SDK ignores, and when, is not documented: the
snapshot on every subscription and the acknowledgement window are the SDK's reading.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

AUTH, SUBSCRIBE, UNSUBSCRIBE, DATA, PAUSE, RESUME, MODE, ACK, PING = 1, 4, 5, 6, 7, 8, 12, 3, 11
SNAPSHOT, FULL_UPDATE, LITE_UPDATE = 83, 85, 76
FULL_MODE, LITE_MODE = 70, 76
MISSING = -2147483648  # the SDK skips a field with this value
PRECISION, MULTIPLIER = 2, 1
# The scrip fields in wire order (the SDK's map.json "data_val", up to the previous close).
FIELDS = (
    "ltp",
    "vol_traded_today",
    "last_traded_time",
    "exch_feed_time",
    "bid_size",
    "ask_size",
    "bid_price",
    "ask_price",
    "last_traded_qty",
    "tot_buy_qty",
    "tot_sell_qty",
    "avg_trade_price",
    "OI",
    "low_price",
    "high_price",
    "Yhigh",
    "Ylow",
    "lower_ckt",
    "upper_ckt",
    "open_price",
    "prev_close_price",
)
PRICES = frozenset(
    {
        "ltp",
        "bid_price",
        "ask_price",
        "avg_trade_price",
        "low_price",
        "high_price",
        "lower_ckt",
        "upper_ckt",
        "open_price",
        "prev_close_price",
    }
)


@dataclass
class Request:
    kind: int
    fields: dict[int, bytes] = field(default_factory=dict)


def parse_request(data: bytes) -> Request:
    """A client frame: its type and fields (a ping has neither count nor fields)."""
    if len(data) < 3:
        raise ValueError("short frame")
    req = Request(data[2])
    if len(data) < 4:
        return req
    offset = 4
    for _ in range(data[3]):
        if offset + 3 > len(data):
            raise ValueError("truncated field header")
        fid = data[offset]
        (size,) = struct.unpack("!H", data[offset + 1 : offset + 3])
        offset += 3
        if offset + size > len(data):
            raise ValueError("truncated field")
        req.fields[fid] = bytes(data[offset : offset + size])
        offset += size
    return req


def topics_of(req: Request) -> list[str]:
    """The topics of a subscribe or unsubscribe request."""
    raw = req.fields.get(1, b"")
    (count,) = struct.unpack("!H", raw[:2])
    out, offset = [], 2
    for _ in range(count):
        n = raw[offset]
        out.append(raw[offset + 1 : offset + 1 + n].decode("ascii"))
        offset += 1 + n
    return out


def _frame(kind: int, body: bytes) -> bytes:
    return struct.pack("!HB", len(body) + 1, kind) + body


def _field(fid: int, value: bytes) -> bytes:
    return bytes([fid]) + struct.pack("!H", len(value)) + value


def auth_answer(ok: bool, ack_every: int) -> bytes:
    """Auth response: field 1 "K" (or not), field 2 how many data frames per acknowledgement."""
    return _frame(AUTH, bytes([2]) + _field(1, b"K" if ok else b"N") + _field(2, struct.pack(">I", ack_every)))


def ok_answer(kind: int) -> bytes:
    """The "K" answer to subscribe, unsubscribe, pause, resume and mode requests."""
    return _frame(kind, bytes([1]) + _field(1, b"K"))


def scaled(name: str, value: float) -> int:
    return round(value * 10**PRECISION * MULTIPLIER) if name in PRICES else int(value)


def values_of(quote: dict[str, float]) -> list[int]:
    return [scaled(n, quote[n]) if n in quote else MISSING for n in FIELDS]


def data_frame(number: int, scrips: Sequence[bytes]) -> bytes:
    return _frame(DATA, struct.pack(">IH", number, len(scrips)) + b"".join(scrips))


def snapshot(topic_id: int, topic: str, quote: dict[str, float], token: str, symbol: str) -> bytes:
    name = topic.encode()
    out = struct.pack("!BHB", SNAPSHOT, topic_id, len(name)) + name
    out += bytes([len(FIELDS)]) + b"".join(struct.pack(">i", v) for v in values_of(quote))
    out += b"\x00\x00" + struct.pack(">HB", MULTIPLIER, PRECISION)
    for text in ("NSE", token, symbol):
        raw = text.encode()
        out += bytes([len(raw)]) + raw
    return out


def full_update(topic_id: int, quote: dict[str, float]) -> bytes:
    return struct.pack("!BHB", FULL_UPDATE, topic_id, len(FIELDS)) + b"".join(
        struct.pack(">i", v) for v in values_of(quote)
    )


def lite_update(topic_id: int, ltp: float) -> bytes:
    return struct.pack("!BH", LITE_UPDATE, topic_id) + struct.pack(">i", scaled("ltp", ltp))
