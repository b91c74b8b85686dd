"""How a FYERS request failed (no HTTP library here: the CLI imports these for its error
handling without paying for ``requests``)."""

from __future__ import annotations


class FyersError(RuntimeError):
    def __init__(self, endpoint: str, message: str, code: int | None = None, status: int | None = None) -> None:
        super().__init__(f"FYERS {endpoint}: {message}" + (f" (code {code})" if code is not None else ""))
        self.endpoint, self.code, self.status = endpoint, code, status


class FyersAuthError(FyersError):
    pass


class FyersRejected(FyersError):  # noqa: N818 - a refusal, named for what it is
    pass


class FyersAmbiguous(FyersError):  # noqa: N818
    pass


class FyersRateLimited(FyersError):  # noqa: N818
    pass


class FyersIpRefused(FyersRejected):
    """FYERS refused an order call because it did not come from the app's whitelisted static IP
    (SEBI's retail-algo rules, in force from 1 April 2026): nothing was done, and no order call
    from this machine will succeed until its IP is registered in the FYERS API dashboard."""


class FyersDayBlocked(FyersError):  # noqa: N818 - a state, named for what it is
    """FYERS has blocked the app for the rest of the day after repeated per-minute rate-limit
    breaches: not a 429 to wait out. The request was not done (FYERS answers before the work)."""
