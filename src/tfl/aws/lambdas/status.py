"""The status page on AWS: a Lambda function URL (auth type NONE: the page authenticates
itself with one-time links and a signed cookie, see :mod:`tfl.status.auth`).

The same handler as ``tfl status --serve`` (:class:`tfl.status.app.StatusApp`), fed from
the DynamoDB journal and its ``#ops`` partition. The log file lives on the trading server,
so the page shows the journal's alerts instead; the bias record's inputs come from the SSM
parameter when one is configured. Environment: ``TFL_AWS__JOURNAL_TABLE``,
``TFL_STATUS_KEY_SECRET`` (the signing key's secret), optionally ``TFL_AWS__BIAS_PARAMETER``.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from tfl.aws.lambdas.common import ConfigError, LambdaConfig, setup_logging

log = logging.getLogger("tfl.aws.lambdas.status")

KEY_SECRET_VAR = "TFL_STATUS_KEY_SECRET"
URL_VAR = "TFL_STATUS_URL"


@functools.lru_cache(maxsize=4)
def _signing_key(region: str, secret_id: str) -> bytes:
    """Read once per warm container: every page refresh would otherwise pay a Secrets Manager call."""
    from tfl.aws.clients import client
    from tfl.status.auth import secret_key

    return secret_key(client("secretsmanager", region), secret_id)


def request_of(event: Mapping[str, Any]) -> Any:
    """A function URL event (payload format 2.0) as the handler's request."""
    from tfl.status.app import Request

    http = event.get("requestContext", {}).get("http", {})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    cookies = event.get("cookies") or []
    if cookies:
        headers["cookie"] = "; ".join(str(c) for c in cookies)
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode()
    return Request(
        str(http.get("method", "GET")),
        str(event.get("rawPath") or "/"),
        str(event.get("rawQueryString") or ""),
        headers,
        body,
    )


def response_of(resp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "statusCode": resp.status,
        "headers": dict(resp.all_headers()),
        "body": resp.body.decode("utf-8"),
        "isBase64Encoded": False,
    }
    if resp.cookies:
        out["cookies"] = list(resp.cookies)
    return out


def app_for(cfg: LambdaConfig, environ: Mapping[str, str], now: Any = None) -> Any:
    from tfl.aws.dynamo_journal import DynamoJournal
    from tfl.aws.dynamo_ops import DynamoOpsStore
    from tfl.live.model_table import TABLE_KEY
    from tfl.status.app import StatusApp
    from tfl.status.auth import Signer
    from tfl.status.facts import Sources
    from tfl.status.sources import s3_text, ssm_bias

    table = cfg.require(cfg.settings.aws.journal_table, "TFL_AWS__JOURNAL_TABLE")
    secret = cfg.require(environ.get(KEY_SECRET_VAR, "").strip(), KEY_SECRET_VAR)
    ddb = cfg.client("dynamodb")
    clock = now or (lambda: int(time.time()))
    bias_param = cfg.settings.aws.bias_parameter
    bias = ssm_bias(cfg.client("ssm"), bias_param) if bias_param else None
    bucket = cfg.settings.aws.data_bucket
    model = s3_text(cfg.client("s3"), bucket, TABLE_KEY) if bucket else None
    sources = Sources(f"dynamodb://{table}", None, bias, model)
    signer = Signer(_signing_key(cfg.region, secret), clock)
    return StatusApp(DynamoJournal(ddb, table), DynamoOpsStore(ddb, table), sources, signer)


def morning_link(cfg: LambdaConfig, environ: Mapping[str, str], now: int) -> str:
    """A fresh one-time login link for the morning e-mail, or "" when the status page is not
    configured or its key cannot be read (logged: the bias e-mail goes out regardless)."""
    from tfl.status.auth import Signer, login_link

    url = environ.get(URL_VAR, "").strip()
    secret = environ.get(KEY_SECRET_VAR, "").strip()
    if not url or not secret:
        return ""
    try:
        return login_link(url, Signer(_signing_key(cfg.region, secret), lambda: now))
    except Exception as exc:  # a missing or unreadable key must not stop the bias e-mail
        log.error("status link not made", extra={"fields": {"error": type(exc).__name__}})
        return ""


def _plain(status: int, text: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
        "body": text + "\n",
        "isBase64Encoded": False,
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point for the function URL; never raises (a bug is a 500 and a log line)."""
    setup_logging()
    ev = event if isinstance(event, Mapping) else {}
    try:
        cfg = LambdaConfig.from_environ()
        app = app_for(cfg, os.environ)
    except ConfigError as exc:
        log.error("status page not configured", extra={"fields": {"reason": str(exc)}})
        return _plain(503, "the status page is not configured")
    try:
        return response_of(app.handle(request_of(ev)))
    except Exception as exc:
        log.error("status page failed", exc_info=exc, extra={"fields": {"path": str(ev.get("rawPath", ""))}})
        return _plain(500, "error")
