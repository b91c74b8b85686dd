"""The pre-market bias Lambda against moto: real daily bars in S3 -> the SSM record -> SNS.

The happy path runs on the real NSE data and must give the backtester's record exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest
from lambda_helpers import REGION, Aws, Messages, lambda_env, log_text

from tfl.aws.calendar_table import load_table
from tfl.aws.daily_bars import daily_key, format_daily_csv
from tfl.aws.data_sync import daily_rows
from tfl.aws.lambdas import bias
from tfl.data.market import Market, load_market
from tfl.regime import parse_bias_record
from tfl.settings import Settings


@pytest.fixture
def aws(
    monkeypatch: pytest.MonkeyPatch,
    sns_topic: tuple[Any, str, Messages],
    fyers_secrets: tuple[str, str],
    ssm_bias_param: tuple[Any, str],
    data_bucket: tuple[Any, str],
) -> Aws:
    return lambda_env(monkeypatch, sns_topic, fyers_secrets, bias_parameter=ssm_bias_param[1], bucket=data_bucket[1])


@pytest.fixture(scope="module")
def daily_market(nse_dir: Path) -> Market:
    return load_market(nse_dir, Settings(), [], load_intraday=False)


@pytest.fixture(scope="module")
def daily_lines(daily_market: Market) -> dict[str, list[str]]:
    """Every symbol's whole daily history as the CSV lines `tfl data sync` writes (header first)."""
    out = {}
    for sym, series in daily_market.daily.items():
        rows = daily_rows(series)
        out[sym] = format_daily_csv(rows).splitlines()
    return out


def upload_daily(
    aws: Aws,
    lines: dict[str, list[str]],
    last: dt.date,
    symbols: list[str] | None = None,
    *,
    indices: bool = True,
    keep: int | None = 150,
) -> None:
    """What `tfl data sync` leaves in the bucket after the close of ``last`` (the universe, the index, VIX).

    ``keep`` rows only, by default: the rules read the last 100 closes at most, and parsing
    every file's whole history in every test would be slow.
    """
    s = Settings().bias
    wanted = sorted(lines) if symbols is None else list(symbols)
    if indices:
        wanted = list(dict.fromkeys([*wanted, s.benchmark_symbol, s.vix_symbol]))
    cut = last.isoformat()
    for sym in wanted:
        header, *rows = lines[sym]
        kept = [r for r in rows if r[:10] <= cut]
        kept = kept[-keep:] if keep is not None else kept
        if kept:
            body = "\n".join([header, *kept]) + "\n"
            aws.s3.put_object(Bucket=aws.bucket, Key=daily_key(sym), Body=body.encode())


def expected_record(market: Market, day: dt.date) -> dict[str, Any]:
    from tfl.data.bias_inputs import bias_records

    return dict(json.loads(bias_records(market, [day], Settings())[0].to_json()))


@pytest.mark.parametrize(
    ("day", "previous", "keep"),
    [(dt.date(2024, 5, 16), dt.date(2024, 5, 15), None), (dt.date(2024, 1, 20), dt.date(2024, 1, 19), 150)],
    ids=["thursday-whole-history", "special-saturday"],
)
def test_bias_on_real_data_equals_the_backtester(
    aws: Aws,
    daily_market: Market,
    daily_lines: dict[str, list[str]],
    day: dt.date,
    previous: dt.date,
    keep: int | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    upload_daily(aws, daily_lines, previous, keep=keep)
    out = bias.handler({"date": day.isoformat()}, None)
    want = expected_record(daily_market, day)
    assert want["bias"] == "LONGS" and want["breadth_count"] == 163  # a real decision, on every stock
    assert aws.bias_record() == want  # JSON-equal to the backtester's record, to the bit
    assert out["status"] == "ok" and out["record"] == want and out["published"] is True
    assert parse_bias_record(json.dumps(aws.bias_record()), day)[1] == ""  # the trader accepts it
    (msg,) = aws.messages()
    assert msg["Subject"] == f"TFL bias for {day}: LONGS"
    assert f"previous session: {previous}" in msg["Message"]
    assert json.dumps(want, sort_keys=True) in msg["Message"]
    decisions = [r for r in caplog.records if r.name == "tfl.aws.lambdas.bias"]
    assert [r.getMessage() for r in decisions] == ["bias published"]
    assert decisions[0].fields["bias"] == "LONGS"  # type: ignore[attr-defined]


def test_bias_on_a_day_without_session_does_nothing(aws: Aws) -> None:
    before = aws.bias_record()
    for day in ("2024-01-22", "2024-05-19"):  # a weekday holiday, a Sunday
        out = bias.handler({"date": day}, None)
        assert out == {"status": "skipped", "session": day, "reason": "no NSE session"}
    assert aws.bias_record() == before  # still the stale 1970 record
    assert aws.messages() == []


def small_universe(lines: dict[str, list[str]]) -> list[str]:
    return sorted(s for s in lines if s not in Settings().backtest.index_symbols)[:20]


def assert_no_trades(aws: Aws, day: dt.date, out: dict[str, Any], reason_part: str, level: str = "ERROR") -> None:
    rec = aws.bias_record()
    assert rec["bias"] == "NO_TRADES" and rec["session"] == day.isoformat()
    assert reason_part in rec["reason"]
    assert out["status"] == "error" and out["bias"] == "NO_TRADES" and out["written"] is True
    msgs = aws.messages()
    assert len(msgs) == 1
    assert msgs[0]["Subject"].startswith(f"TFL {level}: TFL bias for {day}: NO_TRADES")
    assert reason_part in msgs[0]["Message"]


def test_stale_data_gives_no_trades_and_an_error_alert(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 14), small_universe(daily_lines))  # sync missed 15 May
    out = bias.handler({"date": day.isoformat()}, None)
    assert_no_trades(aws, day, out, "NIFTY200_INDEX ends on 2024-05-14, not on the previous session 2024-05-15")


def test_too_few_fresh_universe_files_is_stale_data(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    symbols = small_universe(daily_lines)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 14), symbols[:3], indices=False)  # 3 of 20 not updated: 85% < 90%
    out = bias.handler({"date": day.isoformat()}, None)
    assert_no_trades(aws, day, out, "only 17 of 20 universe files end on the previous session 2024-05-15")


def test_missing_index_file_gives_no_trades(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    aws.s3.delete_object(Bucket=aws.bucket, Key="daily/INDIAVIX.csv")
    out = bias.handler({"date": day.isoformat()}, None)
    assert_no_trades(aws, day, out, f"no daily file for the volatility index INDIAVIX (s3://{aws.bucket}/daily/")


def test_a_malformed_line_is_named_with_its_object_and_line(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    symbols = small_universe(daily_lines)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols)
    key = "daily/NIFTY200_INDEX.csv"
    lines = aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read().decode().splitlines()
    lines[5] = lines[5].replace(",", ";", 2)
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
    out = bias.handler({"date": day.isoformat()}, None)
    assert_no_trades(aws, day, out, f"s3://{aws.bucket}/{key} line 6: expected 6 fields, found 4")


def test_a_malformed_universe_file_is_left_out_and_reported(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    symbols = small_universe(daily_lines)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols)
    aws.s3.put_object(Bucket=aws.bucket, Key=daily_key(symbols[0]), Body=b"date,open,high,low,close,volume\nx\n")
    out = bias.handler({"date": day.isoformat()}, None)
    assert out["status"] == "ok" and out["record"]["breadth_count"] == 19
    assert out["problems"] == [f"s3://{aws.bucket}/daily/{symbols[0]}.csv line 2: expected 6 fields, found 1: 'x'"]
    assert out["problems"][0] in aws.messages()[0]["Message"]


def test_ssm_write_failure_is_an_error_result_and_an_alert(
    aws: Aws, daily_lines: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    monkeypatch.setenv("TFL_AWS__BIAS_PARAMETER", "/aws/tfl-bias")  # a reserved name: AWS refuses the write
    out = bias.handler({"date": "2024-05-16"}, None)
    assert out["status"] == "error" and out["written"] is False
    assert out["reason"] == "could not write the bias record to SSM /aws/tfl-bias (AccessDeniedException)"
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: TFL bias for 2024-05-16: could not write")
    assert "the trader will not trade today" in msg["Message"]


def test_sns_failure_still_returns_and_logs(
    aws: Aws, daily_lines: dict[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    boto3.client("sns", region_name=REGION).delete_topic(TopicArn=aws.topic_arn)
    out = bias.handler({"date": "2024-05-16"}, None)
    assert out["status"] == "ok" and out["published"] is False
    assert aws.bias_record()["session"] == "2024-05-16"  # the record that matters was written
    assert "SNS publish failed" in log_text(caplog)


def test_any_unexpected_error_gives_no_trades(
    aws: Aws, daily_lines: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(bias, "compute_bias", broken)
    out = bias.handler({"date": "2024-05-16"}, None)
    assert_no_trades(aws, dt.date(2024, 5, 16), out, "unexpected error (ZeroDivisionError: boom)")


def test_past_the_calendar_table_the_bias_is_no_trades_and_critical(aws: Aws) -> None:
    day = dt.date(load_table().last_year + 1, 1, 6)
    out = bias.handler({"date": day.isoformat()}, None)
    assert_no_trades(aws, day, out, f"the NSE calendar table ends in {load_table().last_year}", level="CRITICAL")


def test_bad_event_date_and_missing_bucket(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    out = bias.handler({"date": "16/05/2024"}, None)
    assert out["status"] == "error" and "not YYYY-MM-DD" in out["reason"]
    monkeypatch.delenv("TFL_AWS__DATA_BUCKET")
    out = bias.handler({"date": "2024-05-16"}, None)
    assert out["status"] == "error" and "TFL_AWS__DATA_BUCKET is not set" in out["reason"]
    assert aws.bias_record()["bias"] == "NO_TRADES" and aws.bias_record()["session"] == "2024-05-16"


def test_a_bug_outside_the_data_path_still_ends_in_no_trades(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Any = None) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bias, "load_table", broken)
    out = bias.handler({"date": "2024-05-16"}, None)
    assert out["status"] == "error" and out["reason"] == "unexpected error (RuntimeError)"
    rec = aws.bias_record()
    assert rec["bias"] == "NO_TRADES" and rec["session"] == "2024-05-16"
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: TFL bias job failed: unexpected error (RuntimeError)")
