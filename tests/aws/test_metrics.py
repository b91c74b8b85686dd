"""CloudWatch embedded metric format lines, checked against the EMF specification.

The specification: a JSON object per line whose ``_aws`` member holds ``Timestamp`` (epoch
milliseconds) and ``CloudWatchMetrics``, a list of directives ``{Namespace, Dimensions,
Metrics: [{Name, Unit}]}``; every metric named in a directive has its value (a number) at the
root, as does every dimension key; other root members are free-form properties.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tfl.aws.metrics import EmfMetrics, NullMetrics
from tfl.live.runtime import Metrics

UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}
NOW = 1_733_463_000.123


def check_emf(doc: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """Validate one document against the EMF rules; returns {metric: (value, unit)}."""
    meta = doc["_aws"]
    assert set(meta) == {"Timestamp", "CloudWatchMetrics"}
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 10**12  # milliseconds
    out: dict[str, tuple[float, str]] = {}
    assert isinstance(meta["CloudWatchMetrics"], list) and meta["CloudWatchMetrics"]
    for directive in meta["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 255
        assert isinstance(directive["Dimensions"], list)
        for dim_set in directive["Dimensions"]:
            assert isinstance(dim_set, list) and len(dim_set) <= 30
            for dim in dim_set:
                assert isinstance(doc[dim], str)
        assert 1 <= len(directive["Metrics"]) <= 100
        for m in directive["Metrics"]:
            assert set(m) <= {"Name", "Unit", "StorageResolution"}
            assert m["Unit"] in UNITS
            value = doc[m["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool)
            out[m["Name"]] = (value, m["Unit"])
    return out


def lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_heartbeat_pnl_and_latency_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    m = EmfMetrics(path, clock=lambda: NOW)
    m.heartbeat(session="2024-12-06", ticks=12)
    m.pnl("2024-12-06", -1234.5, 2)
    m.order_latency(87.25, "ENTRY")
    docs = lines(path)
    assert len(docs) == 3
    assert check_emf(docs[0]) == {"Heartbeat": (1, "Count")}
    assert check_emf(docs[1]) == {"NetPnL": (-1234.5, "None"), "OpenPositions": (2, "Count")}
    assert check_emf(docs[2]) == {"OrderLatency": (87.25, "Milliseconds")}
    for d in docs:
        assert d["_aws"]["Timestamp"] == 1_733_463_000_123
        (directive,) = d["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "TFL"
        assert directive["Dimensions"] == [[]]  # dimension-less: the alarms name the metric alone
    assert docs[0]["session"] == "2024-12-06" and docs[0]["ticks"] == 12
    assert docs[1]["session"] == "2024-12-06"
    assert docs[2]["leg"] == "ENTRY"


def test_lines_are_appended_and_visible_at_once(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    path.write_text('{"older": "line"}\n', encoding="utf-8")
    m = EmfMetrics(path, namespace="TFL-Test")
    m.heartbeat()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2  # on disk before anything is closed
    m.heartbeat()
    docs = lines(path)
    assert docs[0] == {"older": "line"}
    assert [d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in docs[1:]] == ["TFL-Test", "TFL-Test"]


def test_a_property_cannot_overwrite_a_metric(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    EmfMetrics(path).heartbeat(Heartbeat=0, _aws="x", when=object())
    (doc,) = lines(path)
    assert check_emf(doc) == {"Heartbeat": (1, "Count")}
    assert doc["prop_Heartbeat"] == 0 and doc["prop__aws"] == "x"
    assert isinstance(doc["when"], str)  # not JSON: written as text, never an exception


def test_a_write_failure_warns_once_and_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    m = EmfMetrics(blocker / "metrics.log")
    with caplog.at_level(logging.WARNING, logger="tfl.aws.metrics"):
        m.heartbeat()
        m.pnl("2024-12-06", 1.0, 0)
        m.order_latency(5.0, "EXIT")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "metrics write failed" in warnings[0].getMessage()


def test_recovery_after_a_failure_writes_again_and_warns_again_next_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "logs"
    m = EmfMetrics(folder / "metrics.log")
    with caplog.at_level(logging.WARNING, logger="tfl.aws.metrics"):
        m.heartbeat()  # the folder is missing
        folder.mkdir()
        m.heartbeat()
        folder.joinpath("metrics.log").unlink()
        folder.rmdir()
        m.heartbeat()
    assert len(lines_in(caplog)) == 2
    folder.mkdir()
    m.heartbeat()
    assert len((folder / "metrics.log").read_text(encoding="utf-8").splitlines()) == 1


def lines_in(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def test_non_finite_values_are_not_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "metrics.log"
    m = EmfMetrics(path)
    with caplog.at_level(logging.WARNING, logger="tfl.aws.metrics"):
        m.pnl("2024-12-06", float("nan"), 1)
        m.order_latency(float("inf"), "ENTRY")
    assert not path.exists()
    assert len(lines_in(caplog)) == 2


def test_stdout_when_no_file(capsys: pytest.CaptureFixture[str]) -> None:
    EmfMetrics(None, clock=lambda: NOW).order_latency(3.0, "STOP")
    (line,) = capsys.readouterr().out.splitlines()
    assert check_emf(json.loads(line)) == {"OrderLatency": (3.0, "Milliseconds")}


@pytest.mark.parametrize("namespace", ["", "x" * 256, ":TFL"])
def test_invalid_namespace_is_refused_at_construction(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        EmfMetrics(None, namespace=namespace)


def test_null_metrics_and_emf_fit_the_runtime_protocol(tmp_path: Path) -> None:
    sinks: list[Metrics] = [NullMetrics(), EmfMetrics(tmp_path / "m.log")]
    for sink in sinks:
        sink.heartbeat(session="2024-12-06")
        sink.pnl("2024-12-06", 0.0, 0)
        sink.order_latency(1.0, "ENTRY")
    assert len(lines(tmp_path / "m.log")) == 3


def test_lambda_safe_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tfl.aws.metrics, tfl.aws.dynamo_journal; "
        "print([m for m in ('numpy','pandas','pyarrow','requests','pandas_market_calendars','exchange_calendars') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
