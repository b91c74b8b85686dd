"""The journal boundary: typed events to (kind, JSON payload) and back.

Payloads keep the field names the journal has always used, so journals written before
the events were typed load unchanged; fields added since are optional when decoding.
A payload that does not decode is a :class:`CodecError` naming the field, never a
silently wrong event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from tfl.core.events import (
    AlertRaised,
    Allocated,
    CancelRequested,
    ClosedByBroker,
    Event,
    Filled,
    Halted,
    LevelsSet,
    Lifted,
    Marked,
    OrderPlaced,
    OrderReported,
    ReconcileDifference,
    ReduceOnly,
    SessionClosed,
    SessionOpened,
    SignalRejected,
    SlotClosed,
    SquareOffStarted,
    StopConfirmed,
    StopMoved,
    StrayCorrected,
    Unrecognised,
)
from tfl.core.orders import Leg, OrderType, Report
from tfl.domain import Bias, ExitReason, HaltReason, RejectReason, Side
from tfl.settings import Settings, SettingsError

Payload = dict[str, Any]
E = TypeVar("E")


class CodecError(ValueError):
    """A journal payload that does not decode into its event."""


# ----------------------------------------------------------------------------- encoding


def _opt(x: object) -> object:
    return None if x is None else x


def encode(ev: Event) -> tuple[str, Payload]:
    """The journal kind and the JSON-ready payload of ``ev``."""
    return ev.KIND, _ENCODERS[type(ev)](ev)


def _enc_open(e: SessionOpened) -> Payload:
    d: Payload = {
        "bias": e.bias.value,
        "bias_reason": e.bias_reason,
        "capital": e.capital,
        "marks": dict(e.marks),
    }
    if e.settings is not None:
        d["settings"] = e.settings.to_dict()
    if e.cash is not None:
        d["cash"] = str(e.cash)
    return d


def _enc_alloc(e: Allocated) -> Payload:
    return {
        "cid": e.cid,
        "symbol": e.symbol,
        "side": int(e.side),
        "trigger": e.trigger,
        "stop": e.stop,
        "qty": e.qty,
        "planned": e.planned,
        "planned_risk": e.planned_risk,
        "rsi": e.rsi,
        "setup_ts": e.setup_ts,
        "entry_ts": e.entry_ts,
        "reject": e.reject.value if e.reject is not None else "",
    }


def _enc_reject(e: SignalRejected) -> Payload:
    return {"ts": e.ts, "symbol": e.symbol, "side": int(e.side), "reason": e.reason.value, "rsi": e.rsi, "cid": e.cid}


def _enc_intent(e: OrderPlaced) -> Payload:
    d: Payload = {
        "cid": e.cid,
        "leg": e.leg.value,
        "symbol": e.symbol,
        "side": e.side,
        "type": e.type.value,
        "qty": e.qty,
        "trigger": e.trigger,
        "limit": e.limit,
        "oco": e.oco,
        "setup_ts": e.setup_ts,
    }
    if e.reason is not None:
        d["reason"] = e.reason.value
    if e.exit_ts is not None:
        d["exit_ts"] = e.exit_ts
    return d


def _enc_order(e: OrderReported) -> Payload:
    d: Payload = {"cid": e.cid, "state": e.report.value}
    if e.n:
        d["n"] = e.n
    if e.broker_id:
        d["broker_id"] = e.broker_id
    if e.reason:
        d["reason"] = e.reason
    return d


def _enc_modify(e: StopMoved) -> Payload:
    d: Payload = {"cid": e.cid, "n": e.n, "trigger": e.trigger}
    if e.qty is not None:
        d["qty"] = e.qty
    return d


def _enc_fill(e: Filled) -> Payload:
    d: Payload = {"fill_id": e.fill_id, "cid": e.cid, "qty": e.qty, "price": e.price, "ts": e.ts, "slot": e.slot}
    if e.symbol:
        d["symbol"] = e.symbol
        d["side"] = e.side
    return d


_ENCODERS: dict[type, Callable[[Any], Payload]] = {
    SessionOpened: _enc_open,
    Allocated: _enc_alloc,
    SignalRejected: _enc_reject,
    OrderPlaced: _enc_intent,
    CancelRequested: lambda e: {"cid": e.cid, "n": e.n, "reason": e.reason},
    StopMoved: _enc_modify,
    StopConfirmed: lambda e: {"cid": e.cid, "n": e.n},
    OrderReported: _enc_order,
    Filled: _enc_fill,
    LevelsSet: lambda e: {"symbol": e.symbol, "stop": e.stop, "best": e.best, "mark": e.mark, "bar": e.bar},
    Marked: lambda e: {"marks": dict(e.marks), "bar": e.bar},
    SlotClosed: lambda e: {"slot": e.slot, "equity": e.equity},
    Halted: lambda e: {"reason": e.reason.value, **({"n": e.n} if e.n else {})},
    ReduceOnly: lambda e: {
        "reason": e.reason,
        **({"n": e.n} if e.n else {}),
        **({"operator": True} if e.operator else {}),
    },
    Lifted: lambda e: {"reason": e.reason, "n": e.n},
    SessionClosed: lambda e: {"flat": e.flat, "equity": e.equity, "trades": e.trades},
    ReconcileDifference: lambda e: {"difference": e.difference, "at": e.at},
    StrayCorrected: lambda e: {"symbol": e.symbol, "qty": e.qty, "reason": e.reason, "n": e.n},
    ClosedByBroker: lambda e: {
        "symbol": e.symbol,
        "setup_ts": e.setup_ts,
        "qty": e.qty,
        "price": e.price,
        "slot": e.slot,
        "ref": e.ref,
        "reason": e.reason.value,
        "estimated": e.estimated,
    },
    SquareOffStarted: lambda e: {"at": e.at},
    AlertRaised: lambda e: {"level": e.level, "cause": e.cause, "message": e.message, "ref": e.ref},
    Unrecognised: lambda e: {"kind": e.kind, "text": e.text},
}

# ----------------------------------------------------------------------------- decoding


class _P:
    """Typed reads from one payload, with errors that name the field."""

    __slots__ = ("d", "kind")

    def __init__(self, kind: str, d: Mapping[str, Any]) -> None:
        self.kind = kind
        self.d = d

    def _get(self, name: str) -> Any:
        try:
            return self.d[name]
        except KeyError:
            raise CodecError(f"{self.kind} event without '{name}'") from None

    def bad(self, name: str, want: str) -> CodecError:
        return CodecError(f"{self.kind} event: '{name}' is not {want} ({str(self.d.get(name))[:40]!r})")

    def text(self, name: str, default: str | None = None) -> str:
        v = self.d.get(name, default) if default is not None else self._get(name)
        if not isinstance(v, str):
            raise self.bad(name, "text")
        return v

    def whole(self, name: str, default: int | None = None) -> int:
        v = self.d.get(name, default) if default is not None else self._get(name)
        if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
            raise self.bad(name, "a whole number")
        return int(v)

    def num(self, name: str) -> float:
        v = self._get(name)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.bad(name, "a number")
        return float(v)

    def opt_num(self, name: str) -> float | None:
        v = self.d.get(name)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.bad(name, "a number")
        return float(v)

    def opt_text(self, name: str) -> str | None:
        v = self.d.get(name)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.bad(name, "text")
        return v

    def flag(self, name: str) -> bool:
        v = self._get(name)
        if not isinstance(v, bool):
            raise self.bad(name, "true or false")
        return v

    def prices(self, name: str) -> tuple[tuple[str, float], ...]:
        v = self.d.get(name, {})
        if not isinstance(v, dict) or not all(isinstance(p, int | float) for p in v.values()):
            raise self.bad(name, "a map of prices")
        return tuple((str(k), float(p)) for k, p in sorted(v.items()))

    def enum(self, name: str, cls: Callable[[Any], E], raw: object | None = None) -> E:
        v = self._get(name) if raw is None else raw
        try:
            return cls(v)
        except ValueError:
            raise self.bad(name, f"a valid {getattr(cls, '__name__', 'value')}") from None


def settings_from_payload(raw: object) -> Settings | None:
    """The settings a session opened with. Keys this version no longer has are skipped, so
    an old journal still opens; a value that is not valid is an error."""
    if not isinstance(raw, dict):
        return None
    defaults = Settings()
    known = {
        f.name: {g.name for g in dataclasses.fields(getattr(defaults, f.name))} for f in dataclasses.fields(Settings)
    }
    flat = {
        f"{sec}.{k}": v
        for sec, vals in raw.items()
        if isinstance(vals, dict) and sec in known
        for k, v in vals.items()
        if k in known[sec]
    }
    try:
        return Settings().replace(flat)
    except SettingsError as exc:
        raise CodecError(f"SESSION_OPEN event: recorded settings are not valid ({exc})") from None


def _dec_open(p: _P, session: str) -> SessionOpened:
    cash: Decimal | None = None
    if "cash" in p.d:
        try:
            cash = Decimal(p.text("cash"))
        except InvalidOperation:
            raise p.bad("cash", "an amount") from None
    return SessionOpened(
        session,
        p.enum("bias", Bias),
        p.text("bias_reason", ""),
        p.num("capital") if "capital" in p.d else 0.0,
        p.prices("marks"),
        settings_from_payload(p.d.get("settings")),
        cash,
    )


def _reject_reason(p: _P) -> RejectReason | None:
    raw = p.text("reject", "")
    return p.enum("reject", RejectReason, raw) if raw else None


def _dec_alloc(p: _P, session: str) -> Allocated:
    return Allocated(
        p.text("cid"),
        p.text("symbol"),
        p.enum("side", Side, p.whole("side")),
        p.num("trigger"),
        p.num("stop"),
        p.whole("qty"),
        p.num("planned"),
        p.num("planned_risk"),
        p.num("rsi"),
        p.whole("setup_ts"),
        p.whole("entry_ts"),
        _reject_reason(p),
    )


def _dec_reject(p: _P, session: str) -> SignalRejected:
    return SignalRejected(
        p.whole("ts"),
        p.text("symbol"),
        p.enum("side", Side, p.whole("side")),
        p.enum("reason", RejectReason),
        p.num("rsi"),
        p.text("cid", ""),
    )


def _dec_intent(p: _P, session: str) -> OrderPlaced:
    reason = p.opt_text("reason")
    exit_ts = p.d.get("exit_ts")
    return OrderPlaced(
        p.text("cid"),
        p.enum("leg", Leg),
        p.text("symbol"),
        p.whole("side"),
        p.enum("type", OrderType),
        p.whole("qty"),
        p.opt_num("trigger"),
        p.opt_num("limit"),
        p.opt_text("oco"),
        p.whole("setup_ts", 0),
        p.enum("reason", ExitReason, reason) if reason else None,
        p.whole("exit_ts") if exit_ts is not None else None,
    )


# What journals written before the state machine knew fills as facts called an order's state.
_LEGACY_STATE = {"PARTIALLY_FILLED": Report.PARTIAL_FILL, "FILLED": Report.FULL_FILL}


def _dec_order(p: _P, session: str) -> OrderReported:
    raw = p.text("state")
    report = _LEGACY_STATE.get(raw) or p.enum("state", Report, raw)
    return OrderReported(p.text("cid"), report, p.text("broker_id", ""), p.text("reason", ""), p.whole("n", 0))


def _dec_fill(p: _P, session: str) -> Filled:
    return Filled(
        p.text("fill_id"),
        p.text("cid"),
        p.whole("qty"),
        p.num("price"),
        p.whole("ts"),
        p.whole("slot"),
        p.text("symbol", ""),
        p.whole("side", 0),
    )


_DECODERS: dict[str, Callable[[_P, str], Event]] = {
    "SESSION_OPEN": _dec_open,
    "ALLOC": _dec_alloc,
    "REJECT": _dec_reject,
    "INTENT": _dec_intent,
    "CANCEL": lambda p, s: CancelRequested(p.text("cid"), p.whole("n"), p.text("reason", "")),
    "MODIFY": lambda p, s: StopMoved(
        p.text("cid"), p.whole("n"), p.num("trigger"), p.whole("qty") if "qty" in p.d else None
    ),
    "MODIFIED": lambda p, s: StopConfirmed(p.text("cid"), p.whole("n")),
    "ORDER": _dec_order,
    "FILL": _dec_fill,
    "LEVELS": lambda p, s: LevelsSet(p.text("symbol"), p.num("stop"), p.num("best"), p.num("mark"), p.whole("bar", 0)),
    "MARKS": lambda p, s: Marked(p.prices("marks"), p.whole("bar", 0)),
    "SLOT": lambda p, s: SlotClosed(p.whole("slot"), p.num("equity")),
    "HALT": lambda p, s: Halted(p.enum("reason", HaltReason), p.whole("n", 0)),
    "REDUCE_ONLY": lambda p, s: ReduceOnly(p.text("reason"), p.whole("n", 0), "operator" in p.d and p.flag("operator")),
    "LIFT": lambda p, s: Lifted(p.text("reason"), p.whole("n")),
    "SESSION_CLOSE": lambda p, s: SessionClosed(s, p.flag("flat"), p.num("equity"), p.whole("trades")),
    "RECONCILE": lambda p, s: ReconcileDifference(p.text("difference"), p.whole("at", 0)),
    "CORRECT": lambda p, s: StrayCorrected(p.text("symbol"), p.whole("qty"), p.text("reason", ""), p.whole("n", 0)),
    "BROKER_CLOSE": lambda p, s: ClosedByBroker(
        p.text("symbol"),
        p.whole("setup_ts"),
        p.whole("qty"),
        p.num("price"),
        p.whole("slot"),
        p.text("ref"),
        p.enum("reason", ExitReason),
        p.flag("estimated"),
    ),
    "SQUARE_OFF": lambda p, s: SquareOffStarted(p.whole("at")),
    "ALERT": lambda p, s: AlertRaised(p.text("level"), p.text("cause"), p.text("message"), p.text("ref", "")),
    "NOTE": lambda p, s: Unrecognised(p.text("kind", "NOTE"), p.text("text", "")),
}


def decode(kind: str, session: str, payload: Mapping[str, Any]) -> Event:
    """The typed event of one journal record; a kind this code does not know decodes to
    :class:`Unrecognised` (kept, never applied)."""
    fn = _DECODERS.get(kind)
    if fn is None:
        return Unrecognised(kind, str(dict(payload))[:200])
    if not isinstance(payload, Mapping):
        raise CodecError(f"{kind} event: the payload is not an object")
    return fn(_P(kind, payload), session)
