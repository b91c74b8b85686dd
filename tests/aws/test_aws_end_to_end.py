"""One trading day on (mocked) AWS, end to end, through the real commands and handlers.

After the previous close `tfl data sync` puts the daily bars in S3; at 08:45 the bias
Lambda turns them into the day's record in SSM; the trader replays the session with the
DynamoDB journal, the SSM bias, SNS alerts and EMF metrics; at 16:00 the report Lambda
reads the journal and publishes the P&L. The same session replayed locally (SQLite
journal, same bias) must give the same trades and the same P&L. The next session the
operator's kill switch halts the trader, whose alert must reach the SNS topic.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tfl.aws.data_sync import sync_daily
from tfl.cli.main import main
from tfl.data.bias_inputs import bias_records
from tfl.data.market import load_market
from tfl.live.journal import SqliteJournal, read_events
from tfl.live.report import day_report
from tfl.settings import Settings

DAY = dt.date(2020, 12, 7)  # a busy LONGS session
SYMBOLS = ["AXISBANK", "BPCL", "HINDALCO", "ICICIBANK", "JSWSTEEL", "SBIN", "TATASTEEL", "VEDL"]
_EPOCH = dt.date(1970, 1, 1)


def _until(market: Any, last: dt.date) -> Any:
    """The market as it stood after ``last``'s close (the job must not see later bars)."""
    cut = (last - _EPOCH).days
    daily = {}
    for name, s in market.daily.items():
        keep = s.day <= cut
        daily[name] = dataclasses.replace(
            s,
            ts=s.ts[keep],
            open=s.open[keep],
            high=s.high[keep],
            low=s.low[keep],
            close=s.close[keep],
            volume=s.volume[keep],
        )
    return dataclasses.replace(market, daily=daily)


def _lambda_env(monkeypatch: pytest.MonkeyPatch, topic: str, bucket: str) -> None:
    for name, value in {
        "TFL_AWS__JOURNAL_TABLE": "TFL-Journal",
        "TFL_AWS__BIAS_PARAMETER": "/tfl/bias",
        "TFL_AWS__TOPIC_ARN": topic,
        "TFL_AWS__DATA_BUCKET": bucket,
    }.items():
        monkeypatch.setenv(name, value)


def test_a_day_on_aws_equals_the_same_day_locally(
    ddb_table: tuple[Any, str],
    sns_topic: tuple[Any, str, Any],
    ssm_bias_param: tuple[Any, str],
    data_bucket: tuple[Any, str],
    nse_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tfl.aws.lambdas import bias as bias_job
    from tfl.aws.lambdas import report as report_job

    _, topic, messages = sns_topic
    s3, bucket = data_bucket
    ssm, parameter = ssm_bias_param
    settings = Settings()

    # The evening before: the daily bars go to S3 (only what existed then).
    full = load_market(nse_dir, settings)
    friday = DAY - dt.timedelta(days=3)
    synced = sync_daily(_until(full, friday), settings, s3, bucket)
    listed_later = {n for n, s in full.daily.items() if int(s.day[0]) > (friday - _EPOCH).days}
    assert len(synced.uploaded) >= 150 and set(synced.missing) == listed_later

    # 08:45: the bias job computes the record the backtester would, and publishes it.
    _lambda_env(monkeypatch, topic, bucket)
    out = bias_job.handler({"date": DAY.isoformat(), "write": True}, None)  # a past day: write it as if today
    assert out["status"] == "ok", out
    expected = bias_records(full, [DAY], settings)[0]
    stored = json.loads(ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
    assert stored == json.loads(expected.to_json())
    assert stored["bias"] == "LONGS"

    # The session: the real `tfl trade` with the AWS adapters chosen by settings.
    metrics = tmp_path / "metrics.log"
    monkeypatch.setenv("TFL_AWS__METRICS_FILE", str(metrics))
    symbols = ",".join(SYMBOLS)
    rc = main(
        ["trade", "--world", "replay", "--data", str(nse_dir), "--date", DAY.isoformat(), "--symbols", symbols,
         "--journal", "dynamodb://TFL-Journal", "--state-dir", str(tmp_path / "state")]
    )  # fmt: skip
    assert rc == 0
    log_lines = [json.loads(line) for line in (tmp_path / "state" / "TFL-Journal.log").read_text().splitlines()]
    assert any("read from SSM parameter /tfl/bias" in json.dumps(r) for r in log_lines)

    # The same session locally, with the bias given explicitly.
    for name in ("TFL_AWS__JOURNAL_TABLE", "TFL_AWS__BIAS_PARAMETER", "TFL_AWS__TOPIC_ARN", "TFL_AWS__METRICS_FILE"):
        monkeypatch.delenv(name)
    local = tmp_path / "local.sqlite"
    rc = main(
        ["trade", "--world", "replay", "--data", str(nse_dir), "--date", DAY.isoformat(), "--symbols", symbols,
         "--journal", str(local), "--bias", "LONGS"]
    )  # fmt: skip
    assert rc == 0
    local_report = day_report(list(read_events(SqliteJournal(local))), DAY)
    assert local_report.trades, "the session traded"

    # 16:00: the report job reads the DynamoDB journal and publishes the P&L.
    _lambda_env(monkeypatch, topic, bucket)
    result = report_job.handler({"date": DAY.isoformat()}, None)
    assert result["status"] == "ok", result
    assert result["trades"] == len(local_report.trades)
    assert result["net_pnl"] == round(local_report.net_pnl, 2)
    assert result["charges"] == round(local_report.charges, 2)
    assert result["open_positions"] == []
    published = messages()
    sent = [m["Message"] for m in published if m["Subject"].startswith("TFL P&L")]
    # word for word the local report, except where each run's bias came from
    local_text = local_report.text().replace("(set by --bias LONGS)", "(read from SSM parameter /tfl/bias)")
    assert sent == [local_text]
    assert any(stored["bias"] in m["Subject"] for m in published)  # the morning's bias message

    # The trades export equals `tfl journal export` of the local journal.
    export = s3.get_object(Bucket=bucket, Key=f"exports/{DAY}/trades.csv")["Body"].read().decode()
    assert main(["journal", "export", str(local), "--out", str(tmp_path / "local.csv")]) == 0
    assert export == (tmp_path / "local.csv").read_text()

    # EMF metrics: an order latency per order sent, and the closing P&L equal to the report's.
    docs = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TFL" for d in docs)
    assert sum(1 for d in docs if "OrderLatency" in d) >= len(local_report.trades)
    assert round([d for d in docs if "NetPnL" in d][-1]["NetPnL"], 2) == round(local_report.net_pnl, 2)
    assert [d for d in docs if "NetPnL" in d][-1]["OpenPositions"] == 0
    assert len(list(csv.DictReader(io.StringIO(export)))) == len(local_report.trades)

    # The next morning the operator pulls the kill switch: the trader's own alert reaches the topic.
    nxt = dt.date(2020, 12, 8)
    assert main(["halt", "--journal", "dynamodb://TFL-Journal", "--state-dir", str(tmp_path / "state")]) == 0
    before = len(messages())
    rc = main(
        ["trade", "--world", "replay", "--data", str(nse_dir), "--date", nxt.isoformat(), "--symbols", symbols,
         "--journal", "dynamodb://TFL-Journal", "--state-dir", str(tmp_path / "state")]
    )  # fmt: skip
    assert rc == 0
    alerts = [m for m in messages()[before:] if m["Subject"].startswith("TFL CRITICAL: TFL halted (kill switch)")]
    assert [m["Message"] for m in alerts] == ["TFL halted (kill switch): positions are being flattened"]
