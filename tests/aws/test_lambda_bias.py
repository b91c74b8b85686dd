"""The pre-market bias Lambda against moto: real daily bars in S3 -> the SSM record -> SNS.

The happy path runs on the real NSE data and must give the backtester's record exactly.
Events name a past day, so tests that expect the record in SSM say ``"write": true`` (a
rerun of another day than today writes nothing otherwise).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from lambda_helpers import REGION, Aws, Messages, lambda_env

from tfl.aws.calendar_table import load_table
from tfl.aws.daily_bars import UNIVERSE_KEY, DailyBarsError, daily_key, format_daily_csv, parse_universe_csv
from tfl.aws.data_sync import daily_rows
from tfl.aws.lambdas import bias
from tfl.aws.lambdas.common import IST, LambdaConfig, ist_today
from tfl.data.market import Market, load_market
from tfl.domain import Bias
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


def upload_universe(aws: Aws, symbols: list[str]) -> None:
    """What `tfl deploy --universe` leaves in the bucket (the shared nifty200.csv's format)."""
    body = "Symbol\n" + "".join(f"{s}\n" for s in symbols)
    aws.s3.put_object(Bucket=aws.bucket, Key=UNIVERSE_KEY, Body=body.encode())


def rewrite_rows(aws: Aws, symbol: str, edit: Any) -> None:
    """Replace a daily object's data rows by ``edit(rows)`` (header kept)."""
    key = daily_key(symbol)
    header, *rows = aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read().decode().splitlines()
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=("\n".join([header, *edit(rows)]) + "\n").encode())


def write(day: dt.date | str) -> dict[str, Any]:
    """The event of an operator's rerun that replaces the parameter's record."""
    return {"date": str(day), "write": True}


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
    nse_dir: Path,
    day: dt.date,
    previous: dt.date,
    keep: int | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    upload_daily(aws, daily_lines, previous, keep=keep)
    aws.s3.put_object(Bucket=aws.bucket, Key=UNIVERSE_KEY, Body=(nse_dir / "nifty200.csv").read_bytes())  # the deploy's
    out = bias.handler(write(day), None)
    want = expected_record(daily_market, day)
    assert want["bias"] == "LONGS" and want["breadth_count"] == 163  # a real decision, on every stock
    assert aws.bias_record() == want  # JSON-equal to the backtester's record, to the bit
    assert out["status"] == "ok" and out["record"] == want and out["published"] is True and out["written"] is True
    assert out["universe"] == f"s3://{aws.bucket}/{UNIVERSE_KEY}" and out["missing"] == out["stale"] == []
    assert parse_bias_record(json.dumps(aws.bias_record()), day)[1] == ""  # the trader accepts it
    (msg,) = aws.messages()
    assert msg["Subject"] == f"TFL bias for {day}: LONGS"
    assert f"previous session: {previous}" in msg["Message"]
    assert json.dumps(want, sort_keys=True) in msg["Message"]
    decisions = [r for r in caplog.records if r.name == "tfl.aws.lambdas.bias"]
    assert [r.getMessage() for r in decisions] == ["universe list read", "bias published"]
    assert decisions[1].fields["bias"] == "LONGS"  # type: ignore[attr-defined]


def test_a_quiet_day_is_a_normal_no_trades(
    aws: Aws, daily_market: Market, daily_lines: dict[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    day = dt.date(2024, 5, 15)  # every input there, no condition met
    upload_daily(aws, daily_lines, dt.date(2024, 5, 14))
    out = bias.handler(write(day), None)
    want = expected_record(daily_market, day)
    assert want["bias"] == "NO_TRADES" and want["reason"] == "no condition met" and want["breadth_count"] == 163
    assert out["status"] == "ok" and out["record"] == want and aws.bias_record() == want
    (msg,) = aws.messages()
    assert msg["Subject"] == f"TFL bias for {day}: NO_TRADES"  # the plain message, no ERROR alert
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_bias_on_a_day_without_session_does_nothing(aws: Aws) -> None:
    before = aws.bias_record()
    for day in ("2024-01-22", "2024-05-19"):  # a weekday holiday, a Sunday
        out = bias.handler(write(day), None)
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
    out = bias.handler(write(day), None)
    assert_no_trades(aws, day, out, "NIFTY200_INDEX ends on 2024-05-14, before the previous session 2024-05-15")


def test_too_few_fresh_universe_files_is_stale_data(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    symbols = small_universe(daily_lines)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 14), symbols[:3], indices=False)  # 3 of 20 not updated: 85% < 90%
    out = bias.handler(write(day), None)
    reason = "only 17 of 20 universe members have daily bars up to the previous session 2024-05-15"
    assert_no_trades(aws, day, out, reason)
    assert f"stale: {', '.join(symbols[:3])}" in out["reason"]


def _set_close(close: str) -> Any:
    def edit(rows: list[str]) -> list[str]:
        d, o, h, lo, _, v = rows[-1].split(",")
        return [*rows[:-1], ",".join([d, o, h, lo, close, v])]

    return edit


@pytest.mark.parametrize("close", ["0.0", "-1.5"], ids=["zero", "negative"])
def test_a_last_row_without_a_positive_close_is_stale(aws: Aws, daily_lines: dict[str, list[str]], close: str) -> None:
    day = dt.date(2024, 5, 16)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    rewrite_rows(aws, "INDIAVIX", _set_close(close))  # the loader drops the row: VIX ends on the 14th
    out = bias.handler(write(day), None)
    assert_no_trades(
        aws,
        day,
        out,
        "INDIAVIX ends on 2024-05-14, before the previous session 2024-05-15 "
        "(its rows after that, to 2024-05-15, have no positive close)",
    )


def test_a_universe_file_ending_in_a_bad_row_is_stale(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    symbols = small_universe(daily_lines)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols)
    rewrite_rows(aws, symbols[0], _set_close("0"))
    out = bias.handler(write("2024-05-16"), None)
    assert out["status"] == "ok" and out["stale"] == [symbols[0]] and out["record"]["breadth_count"] == 19


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("vix-gap", "INDIAVIX has no bar on 2024-05-15"),
        ("benchmark-history", "benchmark NIFTY200_INDEX lacks a bar or history on 2024-05-15"),
        ("no-stock-counted", "no universe stock has a bar and enough history on the previous session"),
    ],
)
def test_no_trades_for_missing_inputs_is_an_error_not_a_quiet_day(
    aws: Aws, daily_lines: dict[str, list[str]], case: str, reason: str
) -> None:
    """compute_bias's own NO_TRADES for an absent input (what the freshness check cannot see)."""
    day = dt.date(2024, 5, 16)
    symbols = small_universe(daily_lines)
    if case == "vix-gap":  # a rerun with later data, where VIX lacks the previous session's bar
        upload_daily(aws, daily_lines, dt.date(2024, 5, 17), symbols)
        rewrite_rows(aws, "INDIAVIX", lambda rows: [r for r in rows if not r.startswith("2024-05-15")])
    elif case == "benchmark-history":  # 60 bars: too few for its 100-day SMA
        upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols)
        rewrite_rows(aws, "NIFTY200_INDEX", lambda rows: rows[-60:])
    else:  # every stock too young for its 50-day SMA
        upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols, indices=False, keep=40)
        upload_daily(aws, daily_lines, dt.date(2024, 5, 15), [])
    out = bias.handler(write(day), None)
    assert_no_trades(aws, day, out, reason)
    assert aws.bias_record() == out["record"] and out["record"]["previous_session"] == "2024-05-15"  # with its inputs
    assert "breadth:" in aws.messages()[0]["Message"]  # the alert shows what the rules saw


def test_missing_index_file_gives_no_trades(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    aws.s3.delete_object(Bucket=aws.bucket, Key="daily/INDIAVIX.csv")
    out = bias.handler(write(day), None)
    assert_no_trades(aws, day, out, f"no daily file for the volatility index INDIAVIX (s3://{aws.bucket}/daily/")


def test_a_malformed_line_is_named_with_its_object_and_line(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    symbols = small_universe(daily_lines)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols)
    key = "daily/NIFTY200_INDEX.csv"
    lines = aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read().decode().splitlines()
    lines[5] = lines[5].replace(",", ";", 2)
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
    out = bias.handler(write(day), None)
    assert_no_trades(aws, day, out, f"s3://{aws.bucket}/{key} line 6: expected 6 fields, found 4")


def test_a_malformed_universe_file_is_left_out_and_reported(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    day = dt.date(2024, 5, 16)
    symbols = small_universe(daily_lines)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols)
    aws.s3.put_object(Bucket=aws.bucket, Key=daily_key(symbols[0]), Body=b"date,open,high,low,close,volume\nx\n")
    out = bias.handler(write(day), None)
    assert out["status"] == "ok" and out["record"]["breadth_count"] == 19
    assert out["problems"] == [f"s3://{aws.bucket}/daily/{symbols[0]}.csv line 2: expected 6 fields, found 1: 'x'"]
    assert out["problems"][0] in aws.messages()[0]["Message"]


# ---------------------------------------------------------------------- the universe list


def other_stocks(lines: dict[str, list[str]], n: int) -> list[str]:
    """Stocks outside :func:`small_universe`."""
    return sorted(s for s in lines if s not in Settings().backtest.index_symbols)[20 : 20 + n]


def test_the_universe_list_decides_who_counts(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    symbols = small_universe(daily_lines)
    dropped = other_stocks(daily_lines, 4)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols[:19])  # the 20th member has no file yet
    upload_daily(aws, daily_lines, dt.date(2024, 3, 28), dropped, indices=False)  # left the index: files stop
    upload_universe(aws, [*symbols, "NIFTY200_INDEX", "INDIAVIX"])  # the index rows are not stocks
    out = bias.handler(write("2024-05-16"), None)
    # 19 of 20 members are fresh (95%); the four stale files belong to no member and are ignored
    assert out["status"] == "ok" and out["record"]["breadth_count"] == 19, out
    assert out["stale"] == [] and out["missing"] == [symbols[19]]
    assert aws.bias_record()["session"] == "2024-05-16"
    (msg,) = aws.messages()
    assert f"universe: 20 members from s3://{aws.bucket}/{UNIVERSE_KEY}; 19 up to date" in msg["Message"]
    assert f"universe members without a daily file (not counted): {symbols[19]}" in msg["Message"]
    assert not any(s in msg["Message"] for s in dropped)


def test_members_without_a_file_count_as_not_fresh(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    symbols = small_universe(daily_lines)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), symbols[:17])
    upload_universe(aws, symbols)
    out = bias.handler(write("2024-05-16"), None)
    assert_no_trades(
        aws,
        dt.date(2024, 5, 16),
        out,
        "only 17 of 20 universe members have daily bars up to the previous session 2024-05-15 (at least 90% must); "
        f"no file for {', '.join(symbols[17:])}",
    )


def test_without_a_universe_list_every_file_counts_and_the_message_says_so(
    aws: Aws, daily_lines: dict[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    out = bias.handler(write("2024-05-16"), None)
    source = f"every file under s3://{aws.bucket}/daily/ (no s3://{aws.bucket}/{UNIVERSE_KEY}: deploy with --universe)"
    assert out["status"] == "ok" and out["universe"] == source and out["record"]["breadth_count"] == 20
    assert f"universe: 20 members from {source}" in aws.messages()[0]["Message"]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "tfl.aws.lambdas.bias"]
    assert [r.getMessage() for r in warned] == ["no universe list: every daily file counts"]


def test_an_unusable_universe_list_is_no_trades(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    aws.s3.put_object(Bucket=aws.bucket, Key=UNIVERSE_KEY, Body=b"Ticker\nSBIN\n")
    out = bias.handler(write("2024-05-16"), None)
    assert_no_trades(aws, dt.date(2024, 5, 16), out, f"s3://{aws.bucket}/{UNIVERSE_KEY}: no 'Symbol' column")


def test_the_universe_csv_parses_like_the_data_loader(nse_dir: Path) -> None:
    from tfl.data.loader import read_universe

    path = nse_dir / "nifty200.csv"
    assert parse_universe_csv(path.read_text(encoding="utf-8"), "u") == read_universe(path)
    assert parse_universe_csv("\ufeffSymbol,Name\nSBIN,State Bank\n TCS ,x\nSBIN,again\n", "u") == ["SBIN", "TCS"]
    with pytest.raises(DailyBarsError, match="u line 3: empty symbol"):
        parse_universe_csv('Symbol\nSBIN\n""\n', "u")
    with pytest.raises(DailyBarsError, match="u: lists no symbol"):
        parse_universe_csv("Symbol\n", "u")


# ---------------------------------------------------------------------- reruns and today


def test_a_rerun_of_a_past_day_publishes_its_record_and_leaves_ssm_alone(
    aws: Aws, daily_market: Market, daily_lines: dict[str, list[str]]
) -> None:
    day = dt.date(2024, 5, 16)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 22), keep=160)  # the bucket as it is days later
    before = aws.bias_record()
    out = bias.handler({"date": day.isoformat()}, None)
    want = expected_record(daily_market, day)
    assert out["status"] == "ok" and out["record"] == want and out["written"] is False, out
    assert aws.bias_record() == before  # today's record (here the initial one) is untouched
    (msg,) = aws.messages()
    assert msg["Subject"] == f"TFL bias for {day}: LONGS (rerun: not written to SSM)"
    out = bias.handler(write(day), None)  # on request it replaces the record
    assert out["written"] is True and aws.bias_record() == want


def test_a_failed_rerun_alerts_but_leaves_ssm_alone(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    upload_daily(aws, daily_lines, dt.date(2024, 5, 14), small_universe(daily_lines))
    before = aws.bias_record()
    out = bias.handler({"date": "2024-05-16"}, None)
    assert out["status"] == "error" and out["bias"] == "NO_TRADES" and out["written"] is False
    assert aws.bias_record() == before
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: TFL bias for 2024-05-16: NO_TRADES: the benchmark NIFTY200_INDEX")
    assert "(a rerun: SSM not written)" in msg["Message"]


def test_the_scheduled_run_writes_todays_record(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    now = dt.datetime(2024, 5, 16, 8, 45, tzinfo=IST)
    out = bias.run({}, LambdaConfig.from_environ(), now=now)  # the scheduler's event names no day
    assert out["status"] == "ok" and out["written"] is True and aws.bias_record()["session"] == "2024-05-16"
    assert aws.messages()[0]["Subject"] == f"TFL bias for 2024-05-16: {out['bias']}"
    with pytest.raises(ValueError, match="event write 'yes' is not true or false"):
        bias.wants_write({"write": "yes"}, dt.date(2024, 5, 16), now)


def test_the_morning_email_carries_a_one_time_status_link_when_configured(
    aws: Aws, daily_lines: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfl.aws.lambdas import status
    from tfl.status.auth import LOGIN, Signer, day_end, key_from_text

    key_text = "k" * 64
    aws.sm.create_secret(Name="tfl/status_link_key", SecretString=key_text)
    monkeypatch.setenv(status.URL_VAR, "https://status.lambda-url.ap-south-1.on.aws/")
    monkeypatch.setenv(status.KEY_SECRET_VAR, "tfl/status_link_key")
    status._signing_key.cache_clear()
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    now = dt.datetime(2024, 5, 16, 8, 45, tzinfo=IST)
    assert bias.run({}, LambdaConfig.from_environ(), now=now)["status"] == "ok"
    status._signing_key.cache_clear()
    (msg,) = aws.messages()
    line = next(x for x in msg["Message"].splitlines() if x.startswith("status page"))
    token = line.split("/login?t=", 1)[1]
    at = int(now.timestamp())
    assert Signer(key_from_text(key_text, "test"), lambda: at).check(token, LOGIN).expires_at == day_end(at)


# ---------------------------------------------------------------------- failures of the job itself


def test_ssm_write_failure_is_an_error_result_and_an_alert(
    aws: Aws, daily_lines: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    monkeypatch.setenv("TFL_AWS__BIAS_PARAMETER", "/aws/tfl-bias")  # a reserved name: AWS refuses the write
    out = bias.handler(write("2024-05-16"), None)
    assert out["status"] == "error" and out["written"] is False
    assert out["reason"] == "could not write the bias record to SSM /aws/tfl-bias (AccessDeniedException)"
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: TFL bias for 2024-05-16: could not write")
    assert "the trader will not trade today" in msg["Message"]


def test_unset_bias_parameter_alerts_and_writes_nothing(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    before = aws.bias_record()
    monkeypatch.delenv("TFL_AWS__BIAS_PARAMETER")
    out = bias.handler(write("2024-05-16"), None)
    assert out["status"] == "error" and out["written"] is False
    assert out["reason"] == "environment variable TFL_AWS__BIAS_PARAMETER is not set"
    assert aws.bias_record() == before
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: TFL bias for 2024-05-16: NO_TRADES: environment variable")
    assert "could not be written to SSM (unset)" in msg["Message"]


def test_invalid_settings_still_give_todays_no_trades_and_an_alert(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFL_RISK__NOPE", "1")
    out = bias.handler({}, None)
    today = ist_today().isoformat()
    assert out["status"] == "error" and out["written"] is True and out["session"] == today
    rec = aws.bias_record()
    assert rec["bias"] == "NO_TRADES" and rec["session"] == today
    assert rec["reason"].startswith("the bias job cannot run: the function's settings are invalid: unknown setting")
    (msg,) = aws.messages()
    assert msg["Subject"].startswith(f"TFL ERROR: TFL bias for {today}: NO_TRADES: the bias job cannot run")
    # a rerun of another day alerts too, but must not replace today's record
    aws.ssm.delete_parameter(Name=aws.bias_parameter)
    out = bias.handler({"date": "2024-05-16"}, None)
    assert out["status"] == "error" and out["written"] is False
    assert "(a rerun: SSM not written)" in aws.messages()[-1]["Message"]
    with pytest.raises(aws.ssm.exceptions.ParameterNotFound):
        aws.bias_record()


def test_sns_failure_still_returns_and_logs(
    aws: Aws, daily_lines: dict[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    boto3.client("sns", region_name=REGION).delete_topic(TopicArn=aws.topic_arn)
    out = bias.handler(write("2024-05-16"), None)
    assert out["status"] == "ok" and out["published"] is False
    assert aws.bias_record()["session"] == "2024-05-16"  # the record that matters was written
    failed = [r for r in caplog.records if r.getMessage() == "SNS publish failed"]
    assert failed and failed[0].fields["error"] == "NotFound"  # type: ignore[attr-defined]  # the code, not the class


def test_any_unexpected_error_gives_no_trades(
    aws: Aws, daily_lines: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("boom: secret-ish text")

    monkeypatch.setattr(bias, "compute_bias", broken)
    out = bias.handler(write("2024-05-16"), None)
    assert_no_trades(aws, dt.date(2024, 5, 16), out, "unexpected error (ZeroDivisionError)")
    assert "boom" not in aws.bias_record()["reason"] and "boom" not in aws.messages()[0]["Message"]  # type only


def test_past_the_calendar_table_the_bias_is_no_trades_and_critical(aws: Aws) -> None:
    day = dt.date(load_table().last_year + 1, 1, 6)
    out = bias.handler(write(day), None)
    assert_no_trades(aws, day, out, f"the NSE calendar table ends in {load_table().last_year}", level="CRITICAL")


def test_bad_event_date_and_missing_bucket(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    out = bias.handler({"date": "16/05/2024"}, None)
    assert out["status"] == "error" and "not YYYY-MM-DD" in out["reason"]
    monkeypatch.delenv("TFL_AWS__DATA_BUCKET")
    out = bias.handler(write("2024-05-16"), None)
    assert out["status"] == "error" and "TFL_AWS__DATA_BUCKET is not set" in out["reason"]
    assert aws.bias_record()["bias"] == "NO_TRADES" and aws.bias_record()["session"] == "2024-05-16"


def test_a_bug_outside_the_data_path_still_ends_in_no_trades(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Any = None) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bias, "load_table", broken)
    out = bias.handler(write("2024-05-16"), None)
    assert out["status"] == "error" and out["reason"] == "unexpected error (RuntimeError)"
    rec = aws.bias_record()
    assert rec["bias"] == "NO_TRADES" and rec["session"] == "2024-05-16"
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: TFL bias job failed: unexpected error (RuntimeError)")


def test_a_refused_listing_is_no_trades_with_the_code(aws: Aws, daily_lines: dict[str, list[str]]) -> None:
    """An S3 failure the moto bucket cannot produce, made by a Stubber on the job's own client."""
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    cfg = LambdaConfig.from_environ()
    s3 = cfg.client("s3")
    stub = Stubber(s3)
    stub.add_client_error("list_objects_v2", "AccessDenied", "User: arn:aws:sts::1:assumed-role/x is not authorized")
    stub.activate()

    class Cfg(LambdaConfig):
        def client(self, service: str) -> Any:
            return s3 if service == "s3" else super().client(service)

    out = bias.run(write("2024-05-16"), Cfg(cfg.settings, cfg.instance_id, cfg.heartbeat_alarm, cfg.login_url))
    assert_no_trades(aws, dt.date(2024, 5, 16), out, "reading the daily bars failed (AccessDenied)")
    assert "arn:aws" not in aws.messages()[0]["Message"]


def test_an_aws_failure_is_provisional_and_the_job_fails_for_a_retry(
    aws: Aws, daily_lines: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 did not answer: NO_TRADES now, marked provisional so the trader keeps waiting, and the
    handler fails so that Lambda runs it again (a retry that works replaces the record)."""
    day = dt.date(2024, 5, 16)
    upload_daily(aws, daily_lines, dt.date(2024, 5, 15), small_universe(daily_lines))
    monkeypatch.setenv("TFL_AWS__DATA_BUCKET", "tfl-no-such-bucket")
    with pytest.raises(bias.BiasRetryError, match="NoSuchBucket"):
        bias.handler(write(day), None)
    rec = aws.bias_record()
    assert rec["provisional"] is True and rec["bias"] == "NO_TRADES" and rec["session"] == day.isoformat()
    got, why = parse_bias_record(json.dumps(rec), day)
    assert got is Bias.NO_TRADES and "provisional" in why  # not accepted: the trader waits for a final one
    (msg,) = aws.messages()
    assert "provisional" in msg["Message"]
    monkeypatch.setenv("TFL_AWS__DATA_BUCKET", aws.bucket)  # the retry reaches S3
    out = bias.handler(write(day), None)
    assert out["status"] == "ok" and "provisional" not in aws.bias_record()
    assert parse_bias_record(json.dumps(aws.bias_record()), day)[1] == ""


def table_ending(last_year: int) -> Any:
    """The packaged calendar table cut after ``last_year``: as if NSE's next year were not published yet."""
    from tfl.aws.calendar_table import CalendarTable

    data = load_table().to_dict()
    data["last_year"] = last_year
    data["closed"] = [d for d in data["closed"] if int(d[:4]) <= last_year]
    data["sessions"] = {d: s for d, s in data["sessions"].items() if int(d[:4]) <= last_year}
    return CalendarTable.from_dict(data)


def test_from_1_december_the_morning_email_warns_that_next_years_holidays_are_missing(
    aws: Aws, daily_lines: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bias, "load_table", lambda: table_ending(2024))
    upload_daily(aws, daily_lines, dt.date(2024, 11, 28), small_universe(daily_lines))
    bias.run({}, LambdaConfig.from_environ(), now=dt.datetime(2024, 11, 29, 8, 45, tzinfo=IST))
    upload_daily(aws, daily_lines, dt.date(2024, 11, 29), small_universe(daily_lines))
    out = bias.run({}, LambdaConfig.from_environ(), now=dt.datetime(2024, 12, 2, 8, 45, tzinfo=IST))
    assert out["status"] == "ok" and out["session"] == "2024-12-02"
    before, after = aws.messages()
    assert before["Subject"].startswith("TFL bias for 2024-11-29") and "2025" not in before["Message"]
    assert after["Subject"].startswith("TFL bias for 2024-12-02")  # the subject stays the bias's
    first = after["Message"].splitlines()[0]
    assert first.startswith("WARNING: the NSE calendar ends on 2024-12-31 and has no 2025 holidays")
    assert "tfl calendar add-year --year 2025" in first
