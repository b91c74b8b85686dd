"""The status page's request handler: a pure function of a request, shared by the local
server (:mod:`tfl.status.server`) and the Lambda function URL (:mod:`tfl.aws.lambdas.status`).

Routes: ``GET /`` the page, ``GET /api/status`` the facts as JSON (both need the session
cookie), ``GET /login?t=`` a one-button form and ``POST /login`` that exchanges a one-time
login link for the cookie, ``POST /api/link`` a fresh one-time action link, and
``POST /api/command`` the action link with its typed confirmation, which writes a command
to the operator store. The two POST APIs also need the header ``X-TFL-Page`` (a page on
another site cannot send it without a CORS preflight, which is never granted).

Every refusal is the same: 403 with the body ``refused``; why goes to the log.
"""

from __future__ import annotations

import binascii
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from tfl.live.journal import Journal
from tfl.live.ops_store import CommandKind, OpsStore, OpsStoreError, confirm_word, new_command
from tfl.status.auth import LOGIN, Refused, Signer, unb64
from tfl.status.facts import Sources, StatusFacts, gather
from tfl.status.page import login_page, status_page

log = logging.getLogger(__name__)

REFUSED_BODY = b"refused\n"
PAGE_HEADER = "x-tfl-page"
MAX_BODY = 4096
SYMBOL = re.compile(r"[A-Z0-9&_-]{1,30}")
_COMMON = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
)
_LABELS = {
    CommandKind.STOP_ENTRIES: "Stop new entries (positions keep their stops and targets)",
    CommandKind.FLATTEN_HALT: "Flatten every position and halt for the day",
    CommandKind.EXIT_POSITION: "Exit {symbol} at market",
    CommandKind.LIFT_HALT: "Lift the operator's halt (entries again; never the loss limit's)",
}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    cookies: tuple[str, ...] = ()  # Set-Cookie values

    def all_headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type), *_COMMON, *self.headers]


def _refused() -> Response:
    return Response(403, "text/plain; charset=utf-8", REFUSED_BODY)


def _json(status: int, data: object) -> Response:
    return Response(status, "application/json", json.dumps(data, sort_keys=True).encode())


def _html(text: str) -> Response:
    return Response(200, "text/html; charset=utf-8", text.encode())


class StatusApp:
    """The handler, holding the journal, the operator store, the signer and the clock."""

    def __init__(
        self,
        journal: Journal,
        ops: OpsStore,
        sources: Sources,
        signer: Signer,
        *,
        secure_cookie: bool = True,
        facts: Callable[[], StatusFacts] | None = None,
    ) -> None:
        self.journal = journal
        self.ops = ops
        self.sources = sources
        self.signer = signer
        self.secure_cookie = secure_cookie
        self._facts = facts

    def facts(self) -> StatusFacts:
        if self._facts is not None:
            return self._facts()
        return gather(self.journal, self.ops, self.sources, self.signer.clock())

    def handle(self, req: Request) -> Response:
        try:
            return self._route(req)
        except Refused as exc:
            log.warning("status page: refused", extra={"fields": {"path": req.path, "why": str(exc)}})
            return _refused()
        except OpsStoreError as exc:
            log.error("status page: operator store failed", extra={"fields": {"error": str(exc)}})
            return Response(503, "text/plain; charset=utf-8", b"the journal is not available\n")

    def _route(self, req: Request) -> Response:
        method, path = req.method.upper(), req.path
        if path == "/login" and method == "GET":
            token = _first(parse_qs(req.query), "t")
            self.signer.check(token, LOGIN)  # not used up by a GET (mail scanners fetch links)
            return _html(login_page(token))
        if path == "/login" and method == "POST":
            token = _first(parse_qs(req.body[:MAX_BODY].decode("utf-8", "replace")), "t")
            self.signer.use(token, LOGIN, self.ops)
            cookie = self.signer.session_cookie(self.secure_cookie)
            return Response(303, "text/plain; charset=utf-8", b"signed in\n", (("Location", "/"),), (cookie,))
        if path in ("/", "/api/status", "/api/link", "/api/command"):
            self.signer.check_cookie(req.headers.get("cookie", ""))
        else:
            return Response(404, "text/plain; charset=utf-8", b"not found\n")
        if path == "/" and method == "GET":
            return _html(status_page())
        if path == "/api/status" and method == "GET":
            return Response(200, "application/json", self.facts().to_json().encode())
        if method != "POST":
            return Response(405, "text/plain; charset=utf-8", b"method not allowed\n")
        if req.headers.get(PAGE_HEADER) != "1":
            raise Refused("a POST without the page's header")
        data = _body_json(req.body)
        if path == "/api/link":
            kind, symbol = _kind(data)
            token, exp = self.signer.action_token(kind, symbol)
            label = _LABELS[kind].format(symbol=symbol)
            return _json(
                200, {"token": token, "expires_at": exp, "confirm": confirm_word(kind, symbol), "label": label}
            )
        return self._command(data)

    def _command(self, data: dict[str, str]) -> Response:
        token = data.get("token", "")
        purpose = self.signer.check(token, _purpose_of(token)).purpose
        _, kind_text, symbol = purpose.split(":", 2)
        kind = CommandKind(kind_text)
        typed = data.get("confirm", "").strip().upper()
        if typed != confirm_word(kind, symbol):
            return Response(
                400, "text/plain; charset=utf-8", f"type {confirm_word(kind, symbol)} to confirm\n".encode()
            )
        self.signer.use(token, purpose, self.ops)
        cmd = new_command(kind, "page", self.signer.clock(), reason=data.get("reason", ""), symbol=symbol)
        self.ops.send(cmd)
        log.warning("status page: command sent", extra={"fields": {"id": cmd.id, "kind": kind.value, "symbol": symbol}})
        return _json(200, {"id": cmd.id, "kind": kind.value, "symbol": symbol})


def _first(q: dict[str, list[str]], name: str) -> str:
    got = q.get(name)
    if not got:
        raise Refused(f"no {name}")
    return got[0]


def _body_json(body: bytes) -> dict[str, str]:
    if len(body) > MAX_BODY:
        raise Refused("body too large")
    try:
        data = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Refused("body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused("body is not a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def _kind(data: dict[str, str]) -> tuple[CommandKind, str]:
    try:
        kind = CommandKind(data.get("kind", ""))
    except ValueError:
        raise Refused("unknown control") from None
    if kind is CommandKind.UNREADABLE:
        raise Refused("unknown control")
    symbol = data.get("symbol", "").strip().upper()
    if (kind is CommandKind.EXIT_POSITION) != bool(symbol) or (symbol and not SYMBOL.fullmatch(symbol)):
        raise Refused("a symbol goes with exit_position only")
    return kind, symbol


def _purpose_of(token: str) -> str:
    """The action a token claims (its signature is checked against it by the caller)."""
    try:
        purpose = unb64(token.split(".", 1)[0]).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Refused("malformed token") from None
    parts = purpose.split(":")
    if len(parts) != 3 or parts[0] != "act" or parts[1] not in {k.value for k in CommandKind}:
        raise Refused("not an action link")
    return purpose
