"""What all Lambda handlers share: only light imports, and JSON log lines in the Lambda runtime.

The import checks run in a fresh interpreter, since this test process has NumPy and pandas
loaded. The handlers themselves are tested in test_lambda_bias/report/ops/login.py.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError

from tfl.aws.clients import aws_code
from tfl.aws.lambdas.common import (
    IST,
    ConfigError,
    LambdaConfig,
    decide,
    entry,
    event_date,
    ist_today,
    setup_logging,
)
from tfl.logs import JsonFormatter

HEAVY = ("numpy", "pandas", "pyarrow", "requests", "pandas_market_calendars", "exchange_calendars")
HANDLERS = (
    "tfl.aws.lambdas.bias",
    "tfl.aws.lambdas.report",
    "tfl.aws.lambdas.ops",
    "tfl.aws.lambdas.login",
    "tfl.aws.lambdas.status",
)
HELPERS = ("tfl.aws.calendar_table", "tfl.aws.daily_bars", "tfl.fyers.login", "tfl.aws.lambdas.common")


def heavy_modules_after_import(module: str) -> str:
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("module", HANDLERS + HELPERS)
def test_module_imports_no_heavy_library(module: str) -> None:
    assert heavy_modules_after_import(module) == "", f"{module} imports a library the Lambda runtime lacks"


def test_the_check_can_fail() -> None:
    assert heavy_modules_after_import("tfl.fyers.auth") != ""  # imports requests through tfl.fyers.rest


def test_json_log_lines_in_lambda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(root, "handlers", [handler])
    level = root.level
    try:
        setup_logging({})
        assert handler.formatter is None  # outside Lambda the CLI configures logging, not us
        setup_logging({"AWS_LAMBDA_FUNCTION_NAME": "TFL-Bias"})
        assert isinstance(handler.formatter, JsonFormatter)
        decide(logging.getLogger("tfl.aws.lambdas.bias"), "bias published", session="2024-05-16", bias="LONGS")
    finally:
        root.setLevel(level)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["event"] == "bias published" and line["level"] == "INFO"
    assert line["session"] == "2024-05-16" and line["bias"] == "LONGS" and line["logger"] == "tfl.aws.lambdas.bias"


def test_dates_are_ist_and_the_event_date_is_strict() -> None:
    import datetime as dt

    late_utc = dt.datetime(2024, 5, 15, 19, 0, tzinfo=dt.UTC)  # 00:30 IST on the 16th
    assert ist_today(late_utc) == dt.date(2024, 5, 16)
    assert IST.utcoffset(None) == dt.timedelta(hours=5, minutes=30)
    assert event_date({}, late_utc) == dt.date(2024, 5, 16)
    assert event_date({"date": "2024-01-20"}, late_utc) == dt.date(2024, 1, 20)
    for bad in ("20-01-2024", 20240120, "2024-02-30"):
        with pytest.raises(ValueError, match="event date"):
            event_date({"date": bad})


def test_configuration_comes_from_the_environment() -> None:
    cfg = LambdaConfig.from_environ(
        {"TFL_AWS__TOPIC_ARN": "arn:t", "TFL_INSTANCE_ID": " i-1 ", "TFL_FYERS__API_URL": "http://x/api/v3"}
    )
    assert cfg.settings.aws.topic_arn == "arn:t" and cfg.instance_id == "i-1"
    assert cfg.settings.fyers.api_url == "http://x/api/v3" and cfg.region == "ap-south-1"
    with pytest.raises(ConfigError, match=r"settings are invalid: unknown setting 'risk\.nope'"):
        LambdaConfig.from_environ({"TFL_RISK__NOPE": "1"})


def test_aws_code_names_the_code_never_the_message() -> None:
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "arn:aws:iam::1:role/x"}}, "GetObject")
    assert aws_code(denied) == "AccessDenied"
    assert aws_code(ClientError({"Error": {}}, "GetObject")) == "ClientError"
    assert aws_code(ConnectTimeoutError(endpoint_url="https://x")) == "ConnectTimeoutError"


def test_a_failing_failure_handler_still_returns_the_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The frame never lets an exception escape, not even from the job's own failure handling."""
    monkeypatch.setenv("TFL_RISK__NOPE", "1")
    log = logging.getLogger("tfl.aws.lambdas.test")

    def run(ev: dict[str, object], cfg: LambdaConfig) -> dict[str, object]:
        raise AssertionError("not reached: the settings are invalid")

    def on_config_error(ev: dict[str, object], reason: str) -> dict[str, object]:
        assert ev == {"date": "2024-05-16"}  # the handler sees the event
        raise RuntimeError("the fallback broke too")

    out = entry("test", log, run, {"date": "2024-05-16"}, on_config_error=on_config_error)
    assert out["status"] == "error" and str(out["reason"]).startswith("the function's settings are invalid")
    assert any(r.getMessage() == "test failure handling failed" for r in caplog.records)
