"""boto3 clients with timeouts and bounded retries.

boto3's defaults wait a minute per attempt; a trader must hear about a slow dependency in
seconds. ``AWS_ENDPOINT_URL`` (read by boto3 itself) points every client elsewhere, which is
how the tests reach moto's server.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 4, "mode": "standard"})


def client(service: str, region: str) -> Any:
    """A client for ``service`` in ``region`` with short timeouts."""
    return boto3.client(service, region_name=region, config=_CONFIG)


def aws_code(exc: Exception) -> str:
    """The AWS error code of a failed call (NotFound, AccessDenied, ...), never its message, which
    can echo request data; the exception's class for a failure without one (a timeout)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__
