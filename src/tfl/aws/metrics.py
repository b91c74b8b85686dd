"""Operational metrics as CloudWatch embedded metric format (EMF) lines.

The trader appends one JSON document per measurement to a file; the CloudWatch agent ships
the file to the log group, where CloudWatch Logs extracts the metrics. Nothing here calls an
AWS API, so a metrics problem costs no latency in the trading loop, and a write that fails
(disk full, bad path) is logged once as a WARNING and never raised: metrics never decide
anything and must not stop trading.

Every metric is dimension-less (``"Dimensions": [[]]``) so the template's alarms reference
them by namespace and name alone; context (session, order leg, ...) goes into the document as
properties, which CloudWatch Logs Insights can still query.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("tfl.aws.metrics")

_RESERVED = frozenset({"_aws", "Heartbeat", "NetPnL", "OpenPositions", "OrderLatency"})


class EmfMetrics:
    """EMF lines appended to ``path`` (one per call), or written to stdout when ``path`` is None (Lambda)."""

    def __init__(self, path: Path | None, namespace: str = "TFL", clock: Callable[[], float] = time.time) -> None:
        if not 1 <= len(namespace) <= 255 or namespace.startswith(":"):
            raise ValueError(f"metrics namespace {namespace!r}: 1 to 255 characters, not starting with ':'")
        self.path = path
        self.namespace = namespace
        self._clock = clock
        self._lock = threading.Lock()
        self._failing = False  # warn once per run of failures, not once per line

    def heartbeat(self, **properties: object) -> None:
        """``Heartbeat`` = 1: the missing-heartbeat alarm fires when these stop during market hours."""
        self._emit({"Heartbeat": (1, "Count")}, properties)

    def pnl(self, session: str, net_pnl: float, open_positions: int) -> None:
        """The session's net P&L so far (rupees) and the number of open positions."""
        self._emit({"NetPnL": (net_pnl, "None"), "OpenPositions": (open_positions, "Count")}, {"session": session})

    def order_latency(self, ms: float, leg: str) -> None:
        """Wall-clock time from sending an order to the broker's answer."""
        self._emit({"OrderLatency": (ms, "Milliseconds")}, {"leg": leg})

    def document(self, metrics: dict[str, tuple[float, str]], properties: dict[str, object]) -> dict[str, object]:
        """One EMF document: metadata under ``_aws``, metric values and properties at the root."""
        doc: dict[str, object] = {f"prop_{k}" if k in _RESERVED else k: v for k, v in properties.items()}
        doc["_aws"] = {
            "Timestamp": int(self._clock() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": self.namespace,
                    "Dimensions": [[]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }
            ],
        }
        for name, (value, _) in metrics.items():
            doc[name] = value
        return doc

    def _emit(self, metrics: dict[str, tuple[float, str]], properties: dict[str, object]) -> None:
        try:
            bad = [name for name, (value, _) in metrics.items() if not math.isfinite(float(value))]
            if bad:
                log.warning("metric value not finite: not sent", extra={"fields": {"metrics": bad}})
                return
            line = json.dumps(self.document(metrics, properties), default=str, separators=(",", ":")) + "\n"
            with self._lock:
                self._write(line)
                self._failing = False
        except Exception as exc:  # a metric must never stop the trading loop
            with self._lock:
                if not self._failing:
                    log.warning(
                        "metrics write failed: metrics are lost until it recovers",
                        extra={"fields": {"file": str(self.path), "error": type(exc).__name__}},
                    )
                self._failing = True

    def _write(self, line: str) -> None:
        if self.path is None:
            sys.stdout.write(line)
            sys.stdout.flush()
            return
        # Opened per line (a few lines a minute): log rotation or a deleted file never strands a handle.
        with self.path.open("a", encoding="utf-8", buffering=1) as fh:
            fh.write(line)
            fh.flush()


class NullMetrics:
    """Metrics switched off: the same calls, doing nothing."""

    def heartbeat(self, **properties: object) -> None:
        return None

    def pnl(self, session: str, net_pnl: float, open_positions: int) -> None:
        return None

    def order_latency(self, ms: float, leg: str) -> None:
        return None
