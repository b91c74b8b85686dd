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
