"""How a FYERS request failed (no HTTP library here: the CLI imports these for its error
handling without paying for ``requests``)."""

from __future__ import annotations

import re

INVALID_INPUT_CODE = -50  # FYERS: "one or more invalid parameters", details in the message
_TICK_WORDS = re.compile(r"tick|multiple of", re.IGNORECASE)
_TRIGGER_WORDS = re.compile(r"trigger|stop ?price|stop ?loss", re.IGNORECASE)
_MARKET_WORDS = re.compile(r"\bltp\b|last traded|market price|current price", re.IGNORECASE)


class FyersError(RuntimeError):
    def __init__(self, endpoint: str, message: str, code: int | None = None, status: int | None = None) -> None:
        super().__init__(f"FYERS {endpoint}: {message}" + (f" (code {code})" if code is not None else ""))
        self.endpoint, self.code, self.status = endpoint, code, status
        self.reason = message  # FYERS' own words (never the token)


class FyersAuthError(FyersError):
    pass


class FyersRejected(FyersError):  # noqa: N818 - a refusal, named for what it is
    pass


class FyersStopCrossed(FyersRejected):
    """A stop order (or its modification) refused because the price has already crossed its
    trigger: retrying the same trigger cannot succeed; exit at market instead."""


class FyersInvalidInput(FyersRejected):
    """Code -50: FYERS found a parameter of ours invalid. It is our bug, never retried."""


class FyersTickError(FyersInvalidInput):
    """A price that is not a multiple of the instrument's tick: the tick table is wrong."""


class FyersAmbiguous(FyersError):  # noqa: N818
    pass


class FyersRateLimited(FyersError):  # noqa: N818
    pass


def rejection(endpoint: str, message: str, code: int | None, status: int | None) -> FyersRejected:
    """The refusal class for FYERS' answer, decided by its code and message (FYERS gives no
    dedicated code for a crossed trigger or an off-tick price: see docs/fyers.md)."""
    if _TRIGGER_WORDS.search(message) and _MARKET_WORDS.search(message):
        return FyersStopCrossed(endpoint, message, code, status)
    if code == INVALID_INPUT_CODE:
        if _TICK_WORDS.search(message):
            return FyersTickError(endpoint, message, code, status)
        return FyersInvalidInput(endpoint, message, code, status)
    return FyersRejected(endpoint, message, code, status)


class FyersIpRefused(FyersRejected):
    """FYERS refused an order call because it did not come from the app's whitelisted static IP
    (SEBI's retail-algo rules, in force from 1 April 2026): nothing was done, and no order call
    from this machine will succeed until its IP is registered in the FYERS API dashboard."""


class FyersDayBlocked(FyersError):  # noqa: N818 - a state, named for what it is
    """FYERS has blocked the app for the rest of the day after repeated per-minute rate-limit
    breaches: not a 429 to wait out. The request was not done (FYERS answers before the work)."""
