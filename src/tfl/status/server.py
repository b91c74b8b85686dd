"""The local status server: plain HTTP on 127.0.0.1 only, the same handler as the Lambda.

The cookie keeps its ``Secure`` flag: browsers send Secure cookies over https only, but
treat ``http://127.0.0.1`` and ``http://localhost`` as secure contexts (Chromium does;
the browser tests check it), so the page works locally without a certificate and the
flag stays honest on AWS.
"""

from __future__ import annotations

import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tfl.status.app import MAX_BODY, Request, StatusApp

log = logging.getLogger(__name__)
LOCALHOST = "127.0.0.1"


def make_server(app: StatusApp, port: int = 0, host: str = LOCALHOST) -> ThreadingHTTPServer:
    """A server bound to ``host`` (127.0.0.1 unless a test says otherwise); port 0 picks a free one."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "tfl-status"
        sys_version = ""

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY + 1)
            body = self.rfile.read(length) if length > 0 else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            resp = app.handle(Request(self.command, parts.path, parts.query, headers, body))
            self.send_response(resp.status)
            for k, v in resp.all_headers():
                self.send_header(k, v)
            for c in resp.cookies:
                self.send_header("Set-Cookie", c)
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            self.wfile.write(resp.body)

        do_GET = _serve  # noqa: N815 - the names http.server calls
        do_POST = _serve  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            # the query string goes: a one-time link's token must not reach a log
            line = format % args
            log.debug("status request", extra={"fields": {"line": re.sub(r"\?\S*", "", line)}})

    return ThreadingHTTPServer((host, port), Handler)
