"""Structured logging: one JSON object per line (time, level, event, fields) or short text.

Library code logs events with ``extra={"fields": {...}}``; nothing prints. Values are
passed through :func:`redact` so a secret handed to a log call by mistake never lands.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

_SECRET_WORDS = ("token", "secret", "password", "auth_code", "authcode", "apikey", "api_key", "appidhash")


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    """Mask values whose key names a secret."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        out[k] = "***" if any(w in k.lower() for w in _SECRET_WORDS) else v
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": "FATAL" if record.levelno >= logging.CRITICAL else record.levelname,
            "event": record.getMessage(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            obj.update(redact(fields))
        if record.exc_info and record.exc_info[0] is not None:
            obj["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(obj, default=str, sort_keys=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        tail = ""
        if isinstance(fields, dict) and fields:
            tail = " " + " ".join(f"{k}={v}" for k, v in redact(fields).items())
        return f"{record.levelname.lower()}: {record.getMessage()}{tail}"


def configure(
    level: str = "INFO",
    fmt: str = "text",
    stream: TextIO | None = None,
    files: Iterable[str] = (),
) -> None:
    """Configure the root logger once per process (the CLI's job, never the library's)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    for path in files:
        fh = logging.FileHandler(path, encoding="utf-8")
        fh.setFormatter(JsonFormatter())
        root.addHandler(fh)
    root.setLevel(level.upper())
