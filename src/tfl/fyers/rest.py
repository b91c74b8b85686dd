"""Our own FYERS REST client: timeouts, keep-alive, one rate limiter, honest errors.

The official SDK sets no timeout, never raises, hides the HTTP status and Retry-After, and
writes log files into the working directory, so the trader talks HTTP itself (``requests``
with a keep-alive session). Every answer is classified:

- :class:`FyersAuthError`: the token is expired or invalid (codes -8/-15/-16/-17, HTTP 401).
- :class:`FyersRejected`: a definite refusal (bad parameters, invalid symbol, ...).
- :class:`FyersAmbiguous`: we cannot know whether the request took effect (timeout, network
  failure, 5xx, code 201 "no acknowledgement", code -99): the caller resolves by order tag.
- :class:`FyersRateLimited`: HTTP 429 / code -429 after retrying within the limiter.
- :class:`FyersDayBlocked`: FYERS blocked the app for the day after repeated per-minute
  breaches (see :mod:`tfl.fyers.dayblock`); requests are then not sent at all.
- :class:`FyersIpRefused`: an order call refused because this machine's IP is not the
  app's whitelisted static IP (or the app may not place orders).

Messages name the endpoint and the code, never the token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import requests

from tfl.fyers.dayblock import DayBlock
from tfl.fyers.errors import FyersAmbiguous, FyersAuthError, FyersIpRefused, FyersRateLimited, FyersRejected
from tfl.fyers.ratelimit import RateLimiter

log = logging.getLogger("tfl.fyers")

AUTH_CODES = {-8, -15, -16, -17}
AMBIGUOUS_CODES = {201, -99}
# An order call refused for where it came from: FYERS' exact words are not documented, so any
# refusal of an order call that speaks of the IP (or HTTP 403, "permission error") counts.
IP_WORDS = re.compile(r"\bip\b|ip address|whitelist|white list|white-list|static ip|unregistered", re.IGNORECASE)
ORDER_PATHS = ("/orders", "/multi-order", "/positions")


class FyersRest:
    def __init__(
        self,
        api_url: str,
        data_url: str,
        client_id: str,
        token: Callable[[], str | None],
        limiter: RateLimiter,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        rate_limit_backoff: float = 5.0,
        max_rate_retries: int = 2,
        day_block: DayBlock | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.data_url = data_url.rstrip("/")
        self.client_id = client_id
        self._token = token
        self.limiter = limiter
        self.timeout = timeout
        self._session = session or requests.Session()
        self._backoff = rate_limit_backoff
        self._retries = max_rate_retries
        self.day_block = day_block or DayBlock()

    # ------------------------------------------------------------------ transport

    def _headers(self, auth: bool) -> dict[str, str]:
        h = {"Content-Type": "application/json", "version": "3"}
        if auth:
            tok = self._token()
            if not tok:
                raise FyersAuthError("auth", "no access token: run `tfl auth login`")
            h["Authorization"] = f"{self.client_id}:{tok}"
        return h

    def call(
        self,
        method: str,
        path: str,
        *,
        data: bool = False,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        auth: bool = True,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One request, rate-limited and classified. Non-idempotent calls are never retried
        after anything but a 429 (which FYERS answers before doing the work)."""
        url = (self.data_url if data else self.api_url) + path
        endpoint = f"{method} {path}"
        for attempt in range(self._retries + 1):
            self.day_block.before(endpoint)  # blocked for the day: not sent at all
            self.limiter.acquire()
            try:
                resp = self._session.request(
                    method, url, params=params, json=body, headers=self._headers(auth), timeout=self.timeout
                )
            except requests.Timeout:
                raise FyersAmbiguous(endpoint, f"no answer within {self.timeout} s") from None
            except requests.RequestException as exc:
                raise FyersAmbiguous(endpoint, f"network failure ({type(exc).__name__})") from None
            try:
                payload = resp.json()
            except ValueError:
                payload = {}
            if not isinstance(payload, dict):
                payload = {"s": "error", "message": "unexpected response"}
            code = payload.get("code")
            if resp.status_code == 429 or code == -429:
                self.day_block.limited(endpoint, str(payload.get("message", "")))  # raises once it is the day block
                wait = _retry_after(resp.headers.get("Retry-After"), self._backoff)
                self.limiter.retry_after(wait)
                log.warning(
                    "FYERS rate limit: backing off",
                    extra={"fields": {"endpoint": endpoint, "seconds": wait, "attempt": attempt + 1}},
                )
                if attempt < self._retries:
                    continue
                raise FyersRateLimited(endpoint, "rate limited", code, resp.status_code)
            self.day_block.answered()
            return self._classify(endpoint, resp.status_code, payload, idempotent)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _classify(endpoint: str, status: int, payload: dict[str, Any], idempotent: bool) -> dict[str, Any]:
        code = payload.get("code")
        message = str(payload.get("message", ""))[:200]
        if payload.get("s") != "ok" and _refused_for_ip(endpoint, status, message):  # the static-IP rule
            raise FyersIpRefused(endpoint, message or f"order calls refused (HTTP {status})", code, status)
        if status == 401 or code in AUTH_CODES:
            raise FyersAuthError(endpoint, message or "token expired or invalid", code, status)
        if status >= 500:
            raise FyersAmbiguous(endpoint, f"server error HTTP {status}", code, status)
        if code in AMBIGUOUS_CODES and not idempotent:
            raise FyersAmbiguous(endpoint, message or "no acknowledgement", code, status)
        if payload.get("s") != "ok":
            raise FyersRejected(endpoint, message or f"HTTP {status}", code, status)
        return payload

    # ------------------------------------------------------------------ endpoints

    def profile(self) -> dict[str, Any]:
        return dict(self.call("GET", "/profile").get("data") or {})

    def funds(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/funds").get("fund_limit") or [])

    def positions(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/positions").get("netPositions") or [])

    def orderbook(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/orders").get("orderBook") or [])

    def tradebook(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/tradebook").get("tradeBook") or [])

    def place(self, order: dict[str, Any]) -> str:
        """Returns the broker order id; FyersAmbiguous when the outcome is unknown."""
        payload = self.call("POST", "/orders/sync", body=order, idempotent=False)
        oid = payload.get("id")
        if not oid:
            raise FyersAmbiguous("POST /orders/sync", "accepted without an order id", payload.get("code"))
        return str(oid)

    def modify(self, order_id: str, **changes: Any) -> None:
        self.call("PATCH", "/orders/sync", body={"id": order_id, **changes}, idempotent=False)

    def cancel(self, order_id: str) -> None:
        self.call("DELETE", "/orders/sync", body={"id": order_id}, idempotent=False)

    def quotes(self, tickers: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in range(0, len(tickers), 50):
            payload = self.call("GET", "/quotes", data=True, params={"symbols": ",".join(tickers[i : i + 50])})
            for item in payload.get("d") or []:
                v = item.get("v") or {}
                if item.get("s") == "ok" and "lp" in v:
                    out[str(item.get("n"))] = float(v["lp"])
        return out

    def history(self, ticker: str, resolution: str, range_from: int, range_to: int) -> list[list[float]]:
        payload = self.call(
            "GET",
            "/history",
            data=True,
            params={
                "symbol": ticker,
                "resolution": resolution,
                "date_format": 0,
                "range_from": range_from,
                "range_to": range_to,
                "cont_flag": 1,
            },
        )
        return [list(c) for c in payload.get("candles") or []]

    def validate_authcode(self, app_id_hash: str, code: str) -> dict[str, Any]:
        return self.call(
            "POST",
            "/validate-authcode",
            auth=False,
            idempotent=False,
            body={"grant_type": "authorization_code", "appIdHash": app_id_hash, "code": code},
        )


def _refused_for_ip(endpoint: str, status: int, message: str) -> bool:
    """An order call (place, modify, cancel, exit) refused because of where it came from."""
    method, _, path = endpoint.partition(" ")
    if method not in ("POST", "PATCH", "DELETE") or not path.startswith(ORDER_PATHS):
        return False
    return status == 403 or bool(IP_WORDS.search(message))


def _retry_after(header: str | None, default: float) -> float:
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    return default
