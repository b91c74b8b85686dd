"""Our own FYERS REST client: timeouts, keep-alive, one rate limiter, honest errors.

The official SDK sets no timeout, never raises, hides the HTTP status and Retry-After, and
writes log files into the working directory, so the trader talks HTTP itself (``requests``
with a keep-alive session). Every answer is classified:

- :class:`FyersAuthError`: the token is expired or invalid (codes -8/-15/-16/-17, HTTP 401).
- :class:`FyersRejected`: a definite refusal, FYERS' answer with its reason (code -99 "order
  rejected", bad parameters, invalid symbol, ...); :class:`FyersStopCrossed` when the price
  has already crossed a stop's trigger, :class:`FyersTickError` for an off-tick price (-50).
- :class:`FyersAmbiguous`: we cannot know whether the request took effect: the transport
  failed (timeout, network failure, 5xx, a body that is not a JSON object) or FYERS said
  code 201 "no acknowledgement" to an order request. The caller resolves by order tag.
  (Only the SDK uses -99 for its own network failures; we do not use the SDK for REST.)
- :class:`FyersRateLimited`: HTTP 429 / code -429 after retrying within the limiter.
- :class:`FyersDayBlocked`: FYERS blocked the app for the day after repeated per-minute
  breaches (see :mod:`tfl.fyers.dayblock`); requests are then not sent at all.
- :class:`FyersIpRefused`: an order call refused because this machine's IP is not the
  app's whitelisted static IP (or the app may not place orders).

Answers of an unexpected shape (a list where a dict is expected, a short candle row, a
value that is not a number) are logged and skipped, never raised to the trading loop.
Messages name the endpoint and the code, never the token.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

import requests

from tfl.fyers.dayblock import DayBlock
from tfl.fyers.errors import FyersAmbiguous, FyersAuthError, FyersIpRefused, FyersRateLimited, rejection
from tfl.fyers.ratelimit import RateLimiter

log = logging.getLogger("tfl.fyers")

AUTH_CODES = {-8, -15, -16, -17}
AMBIGUOUS_CODES = {201}  # "request made, no acknowledgement received: check the orderbook"
NO_DATA = "no_data"  # a history answer for a range without candles
CANDLE_FIELDS = 6  # epoch, open, high, low, close, volume (a 7th, open interest, is ignored)
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

    def twin(self) -> FyersRest:
        """The same client on its own HTTP session (a ``requests`` session is not promised to be
        thread-safe), sharing the token and the one rate limiter: for a background thread."""
        return FyersRest(
            self.api_url,
            self.data_url,
            self.client_id,
            self._token,
            self.limiter,
            timeout=self.timeout,
            rate_limit_backoff=self._backoff,
            max_rate_retries=self._retries,
            day_block=self.day_block,  # one app, one day block: every thread sees it
        )

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
        empty_ok: bool = False,
    ) -> dict[str, Any]:
        """One request, rate-limited and classified. Non-idempotent calls are never retried
        after anything but a 429 (which FYERS answers before doing the work). With
        ``empty_ok`` an answer ``"s": "no_data"`` is returned, not refused."""
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
                payload = None
            if not isinstance(payload, dict):  # not FYERS' answer: a proxy, a cut body, ...
                if resp.status_code == 401:
                    raise FyersAuthError(endpoint, "token expired or invalid", None, 401)
                if resp.status_code != 429:
                    log.warning(
                        "FYERS answer is not a JSON object",
                        extra={"fields": {"endpoint": endpoint, "status": resp.status_code}},
                    )
                    raise FyersAmbiguous(
                        endpoint, f"unreadable answer (HTTP {resp.status_code})", None, resp.status_code
                    )
                payload = {}
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
            return self._classify(endpoint, resp.status_code, payload, idempotent, empty_ok)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _classify(
        endpoint: str, status: int, payload: dict[str, Any], idempotent: bool, empty_ok: bool = False
    ) -> dict[str, Any]:
        """Transport failures are ambiguous; FYERS' own refusals (-99 included) are rejections."""
        code = _int_or_none(payload.get("code"))
        message = str(payload.get("message", ""))[:200]
        if payload.get("s") != "ok" and _refused_for_ip(endpoint, status, message):  # the static-IP rule
            raise FyersIpRefused(endpoint, message or f"order calls refused (HTTP {status})", code, status)
        if status == 401 or code in AUTH_CODES:
            raise FyersAuthError(endpoint, message or "token expired or invalid", code, status)
        if status >= 500:
            raise FyersAmbiguous(endpoint, f"server error HTTP {status}", code, status)
        if code in AMBIGUOUS_CODES and not idempotent:
            raise FyersAmbiguous(endpoint, message or "no acknowledgement", code, status)
        if empty_ok and payload.get("s") == NO_DATA:
            return payload
        if payload.get("s") != "ok":
            raise rejection(endpoint, message or f"HTTP {status}", code, status)
        return payload

    # ------------------------------------------------------------------ endpoints

    def profile(self) -> dict[str, Any]:
        data = self.call("GET", "/profile").get("data")
        return dict(data) if isinstance(data, dict) else {}

    def funds(self) -> list[dict[str, Any]]:
        return _rows(self.call("GET", "/funds"), "fund_limit", "GET /funds")

    def positions(self) -> list[dict[str, Any]]:
        return _rows(self.call("GET", "/positions"), "netPositions", "GET /positions")

    def orderbook(self) -> list[dict[str, Any]]:
        return _rows(self.call("GET", "/orders"), "orderBook", "GET /orders")

    def tradebook(self) -> list[dict[str, Any]]:
        return _rows(self.call("GET", "/tradebook"), "tradeBook", "GET /tradebook")

    def place(self, order: dict[str, Any]) -> str:
        """Returns the broker order id; FyersAmbiguous when the outcome is unknown."""
        payload = self.call("POST", "/orders/sync", body=order, idempotent=False)
        oid = payload.get("id")
        if not oid:
            raise FyersAmbiguous("POST /orders/sync", "accepted without an order id", _int_or_none(payload.get("code")))
        return str(oid)

    def modify(self, order_id: str, **changes: Any) -> None:
        self.call("PATCH", "/orders/sync", body={"id": order_id, **changes}, idempotent=False)

    def cancel(self, order_id: str) -> None:
        self.call("DELETE", "/orders/sync", body={"id": order_id}, idempotent=False)

    def quotes(self, tickers: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in range(0, len(tickers), 50):
            payload = self.call("GET", "/quotes", data=True, params={"symbols": ",".join(tickers[i : i + 50])})
            for item in _rows(payload, "d", "GET /quotes"):
                v = item.get("v")
                if item.get("s") != "ok" or not isinstance(v, dict) or "lp" not in v:
                    continue
                lp = _number(v["lp"])
                if lp is None:
                    _skipped("GET /quotes", "last price is not a number", item.get("n"))
                    continue
                out[str(item.get("n"))] = lp
        return out

    def history(self, ticker: str, resolution: str, range_from: int, range_to: int) -> list[list[float]]:
        """Candles as [epoch, open, high, low, close, volume]; a range without candles
        (``"candles": []`` or ``"s": "no_data"``) is an empty list, not an error."""
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
            empty_ok=True,
        )
        if payload.get("s") == NO_DATA:
            return []
        raw = payload.get("candles")
        if raw is None:
            return []
        if not isinstance(raw, list):
            _skipped("GET /history", "candles is not a list", ticker)
            return []
        out: list[list[float]] = []
        for row in raw:
            candle = _candle(row)
            if candle is None:
                _skipped("GET /history", "candle row of an unexpected shape", ticker, str(row)[:80])
                continue
            out.append(candle)
        return out

    def market_status(self) -> list[dict[str, Any]]:
        """Each exchange segment's state now (``GET /data/marketStatus``; see :mod:`tfl.live.broker_session`)."""
        rows = self.call("GET", "/marketStatus", data=True).get("marketStatus")
        return [dict(r) for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []

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


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    """A finite float, or None (bools and non-numeric strings are not prices)."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _candle(row: Any) -> list[float] | None:
    if not isinstance(row, list | tuple) or len(row) < CANDLE_FIELDS:
        return None
    values = [_number(v) for v in row[:CANDLE_FIELDS]]
    if any(v is None for v in values):
        return None
    return [float(v) for v in values if v is not None]


def _skipped(endpoint: str, why: str, what: Any = None, sample: str = "") -> None:
    log.warning(
        "FYERS answer of an unexpected shape: skipped",
        extra={"fields": {"endpoint": endpoint, "problem": why, "item": str(what)[:40], "sample": sample}},
    )


def _rows(payload: dict[str, Any], key: str, endpoint: str) -> list[dict[str, Any]]:
    """The list under ``key``; an item that is not an object is logged and left out."""
    raw = payload.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        _skipped(endpoint, f"{key} is not a list", type(raw).__name__)
        return []
    rows = [r for r in raw if isinstance(r, dict)]
    if len(rows) != len(raw):
        _skipped(endpoint, f"{len(raw) - len(rows)} item(s) of {key} are not objects")
    return rows
