"""The alert policy: what is worth waking the operator for, what they should do, and how often.

Each alert has a typed cause, a subject (a symbol, an order, the feed, the token) and a
message that ends with what to do. The trader journals every alert it sends
(``AlertRaised``), so a restart never sends one twice; on top of that a throttle lets one
alert per cause and subject through per ``alerts.repeat_minutes`` of market time. A
condition that lasts (a stale feed, bare shares, a refused token) is alerted again once
the interval has passed; one that flaps is alerted once. The throttle's clock is the
market time the caller passes in: a replay, a restart (which seeds the throttle from the
journal) and a test all see the same alerts.

The channels (SNS, Telegram) sit behind one ``(level, message)`` sink; a channel that
fails is logged and skipped, never raised into the trading loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger("tfl.alerts")

AlertSink = Callable[[str, str], None]  # (level, message): the runtime's alert channel


class Cause(StrEnum):
    """Why an alert was raised (journalled as ``AlertRaised.cause``; the values predate the enum)."""

    REJECTED = "REJECTED"  # a protective order (stop, exit, flatten) was rejected
    ENTRY_REJECTED = "ENTRY_REJECTED"  # an entry order was rejected (nothing at risk)
    UNCOVERED = "UNCOVERED"  # shares without a stop or exit the broker has taken
    STOP_NOT_AT_BROKER = "STOP_NOT_AT_BROKER"  # the journal's working stop is not in the broker's book
    NO_STOP_LEFT = "NO_STOP_LEFT"
    STOP_REFUSED = "STOP_REFUSED"
    STOP_CROSSED = "STOP_CROSSED"
    ENDED_BY_BROKER = "ENDED_BY_BROKER"
    EXIT_UNFILLED = "EXIT_UNFILLED"
    EXIT_STANDING = "EXIT_STANDING"
    LOSS_LIMIT = "LOSS_LIMIT"  # the day's loss reached 50%, 80% or 100% of the limit
    FEED_STALE = "FEED_STALE"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_EXPIRING = "TOKEN_EXPIRING"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    JOURNAL_DIFFERS = "JOURNAL_DIFFERS"  # reconciliation found the journal and the broker apart
    STRAY_CORRECTED = "STRAY_CORRECTED"
    NOT_FLAT = "NOT_FLAT"  # the book is not flat after the close
    REDUCE_ONLY = "REDUCE_ONLY"  # no new entries until the next session (sent, not journalled: the state is)
    BROKER_SQUARED_OFF = "BROKER_SQUARED_OFF"
    CLOSED_OUTSIDE = "CLOSED_OUTSIDE"
    AFTER_BROKER_SQUARE_OFF = "AFTER_BROKER_SQUARE_OFF"
    CARRIED_HELD = "CARRIED_HELD"
    CARRIED_CLOSED = "CARRIED_CLOSED"
    LATE_FILL = "LATE_FILL"
    OVERFILL = "OVERFILL"
    ORPHAN_FILL = "ORPHAN_FILL"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    CONTRADICTION = "CONTRADICTION"


_CHECK_BOOK = "Open the broker's order book and positions"
ACTIONS: Mapping[Cause, str] = {
    Cause.REJECTED: "TFL covers the shares again by itself; read the broker's reason, and if it is funds, margin "
    "or an RMS block, fix it at the broker, or run `tfl halt` to close everything",
    Cause.ENTRY_REJECTED: "nothing is at risk (no position opened); if the reason is funds or margin, add funds "
    "before the next bar. Further entry rejections within the interval are only logged",
    Cause.UNCOVERED: f"{_CHECK_BOOK}: if these shares have no SL-M order, place one at the position's stop by "
    "hand, or run `tfl halt` to close them",
    Cause.STOP_NOT_AT_BROKER: f"{_CHECK_BOOK}: if the stop is gone, place an SL-M at the position's stop by hand "
    "or run `tfl halt`; then restart the trader so it reads the broker's book again",
    Cause.NO_STOP_LEFT: f"{_CHECK_BOOK}: make sure the exit fills; if it does not, close the position by hand",
    Cause.STOP_REFUSED: f"{_CHECK_BOOK}: the old stop still protects the shares; nothing else is needed unless this "
    "repeats for the whole day",
    Cause.STOP_CROSSED: "nothing: the position is closed at market, as the backtest closes it",
    Cause.ENDED_BY_BROKER: f"nothing unless it repeats; {_CHECK_BOOK.lower()} for the broker's reason",
    Cause.EXIT_UNFILLED: "watch the stock: if it is locked at a circuit limit, the exit fills when it trades",
    Cause.EXIT_STANDING: "check the stock (a circuit limit?) and the broker; close the position by hand if you can",
    Cause.LOSS_LIMIT: "review the open positions; at 100% TFL closes them all and stops for the day by itself, and "
    "`tfl halt` stops it earlier",
    Cause.FEED_STALE: "no new entries until ticks return; stops rest at the broker. If it lasts, check the "
    "server's network and FYERS' status, and restart the trader if the socket does not reconnect",
    Cause.TOKEN_INVALID: "log in again (`tfl auth login`, or the morning's link); entries resume by themselves once "
    "the new token works",
    Cause.TOKEN_EXPIRING: "log in again before it expires (`tfl auth login`); stops rest at the broker either way",
    Cause.TOKEN_EXPIRED: "log in again now (`tfl auth login`); until then nothing can be sent or cancelled",
    Cause.JOURNAL_DIFFERS: "compare the broker's positions and order book with `tfl journal show`; close by hand what "
    "TFL does not know about. No new entries until the next session",
    Cause.STRAY_CORRECTED: "compare the broker's position with `tfl journal show`; nothing was sent",
    Cause.NOT_FLAT: "close these positions at the broker now (intraday positions left open may be converted or "
    "squared off at a penalty) and check the contract note",
    Cause.REDUCE_ONLY: f"{_CHECK_BOOK} and compare them with `tfl journal show`; exits and stops keep working, "
    "entries resume at the next session's reconciliation",
    Cause.BROKER_SQUARED_OFF: "check the log for refused or unfilled exits, and the broker's square-off charge",
    Cause.CLOSED_OUTSIDE: "find out who traded on the account; TFL takes no new entries today",
    Cause.AFTER_BROKER_SQUARE_OFF: "check the position at the broker and close it by hand if it is still open",
    Cause.CARRIED_HELD: "if you converted them to delivery, cancel TFL's orders for them by hand",
    Cause.CARRIED_CLOSED: "check the contract note for the broker's square-off price",
    Cause.LATE_FILL: "nothing: the fill is booked and protected",
    Cause.OVERFILL: f"{_CHECK_BOOK}: the excess is flattened if the broker holds it",
    Cause.ORPHAN_FILL: f"{_CHECK_BOOK}: the shares are flattened if the broker holds them",
    Cause.UNKNOWN_ORDER: f"{_CHECK_BOOK}: find who placed the order; TFL takes no new entries today",
    Cause.CONTRADICTION: f"{_CHECK_BOOK}; TFL takes no new entries today",
}

# The loss levels alerted once each per session, in percent of ``risk.daily_loss_limit_pct``.
LOSS_LEVELS_PCT = (50, 80, 100)
# Throttled alerts are journalled as ``<subject>@<market time>``: the subject is what the throttle keys on.
_AT = "@"


def with_action(cause: str, message: str) -> str:
    """The message, followed by what the operator should do (when the cause has advice)."""
    try:
        action = ACTIONS[Cause(cause)]
    except ValueError:
        return message
    return f"{message.rstrip('. ')}. What to do: {action}."


def throttled_ref(subject: str, ts: int) -> str:
    """The journal reference of an alert that may be sent again later: unique per sending."""
    return f"{subject}{_AT}{ts}"


def subject_of(ref: str) -> str:
    """The subject a journalled alert's reference names (its part before ``@``)."""
    return ref.rsplit(_AT, 1)[0] if _AT in ref else ref


@dataclass(frozen=True)
class Alert:
    """One alert as the operator gets it."""

    cause: Cause
    subject: str
    level: str  # WARNING, ERROR, CRITICAL
    message: str

    @property
    def text(self) -> str:
        return with_action(self.cause, self.message)


class AlertThrottle:
    """One alert per (cause, subject) per ``repeat_seconds``: the de-duplicator.

    Time is whatever the caller passes as ``now`` (the trader passes market time), so
    nothing here reads a clock and a test steps time by hand."""

    def __init__(self, repeat_seconds: float) -> None:
        if repeat_seconds <= 0:
            raise ValueError(f"an alert repeat interval must be positive, not {repeat_seconds}")
        self.repeat_seconds = repeat_seconds
        self._last: dict[tuple[str, str], float] = {}

    def due(self, cause: str, subject: str, now: float) -> bool:
        """Whether an alert of ``cause`` about ``subject`` would go out at ``now`` (nothing recorded)."""
        last = self._last.get((cause, subject))
        return last is None or now - last >= self.repeat_seconds

    def admit(self, cause: str, subject: str, now: float) -> bool:
        """Whether an alert of ``cause`` about ``subject`` may go out at ``now``; if so, it counts as sent."""
        if not self.due(cause, subject, now):
            return False
        self._last[(cause, subject)] = now
        return True

    def sent(self, cause: str, subject: str, at: float) -> None:
        """Record an alert sent earlier (read back from the journal after a restart)."""
        key = (cause, subject)
        self._last[key] = max(at, self._last.get(key, at))


class Channel(Protocol):
    """A place alerts go to (SNS, Telegram). ``send`` reports failure by returning False
    and logging it; it should not raise, and :class:`FanOut` makes sure it cannot."""

    name: str

    def send(self, level: str, message: str) -> bool: ...


def log_alert(level: str, message: str) -> None:
    """Every alert is a log line too (the CloudWatch alarm on ERROR lines sees it even if every channel is down)."""
    logging.getLogger("tfl.alert").log(
        logging.getLevelName(level if level != "FATAL" else "CRITICAL"), f"ALERT: {message}"
    )


class FanOut:
    """The alert sink that sends to every configured channel: a log line, then each channel in turn.

    A failing channel (refused, unreachable, or a bug that raises) is logged and the next one
    is tried; nothing is raised to the caller, the trading loop."""

    def __init__(self, channels: Sequence[Channel], *, first: AlertSink = log_alert) -> None:
        self.channels = list(channels)
        self.first = first

    def __call__(self, level: str, message: str) -> None:
        try:
            self.first(level, message)
        except Exception as exc:  # a sink must never stop the trading loop
            log.error("alert sink failed", extra={"fields": {"error": type(exc).__name__}})
        for ch in self.channels:
            try:
                ok = ch.send(level, message)
            except Exception as exc:  # as above; the exception's text may hold what the channel was sent
                log.error("alert channel raised", extra={"fields": {"channel": ch.name, "error": type(exc).__name__}})
                continue
            if not ok:
                log.warning("alert not delivered", extra={"fields": {"channel": ch.name, "level": level}})
