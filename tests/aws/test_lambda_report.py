"""The post-market report Lambda against moto: a replayed trader's journal in DynamoDB -> SNS and S3.

The report must be the one ``tfl report`` prints from the local journal, and the export the
backtester's trades.csv, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from lambda_helpers import REGION, Aws, Messages, lambda_env, record_api_calls

from tfl.aws.dynamo_journal import DynamoJournal
from tfl.aws.lambdas import report
from tfl.core.state import CoreState, apply
from tfl.data.market import load_market
from tfl.live.journal import Record, SqliteJournal, to_event
from tfl.live.report import day_report
from tfl.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))

from live_helpers import replay

REPLAY_SYMBOLS = ["ADANIENT", "GAIL", "NMDC", "SAIL", "TATASTEEL"]
REPLAY_DAYS = (dt.date(2020, 12, 7), dt.date(2020, 12, 8))


@pytest.fixture
def aws(
    monkeypatch: pytest.MonkeyPatch,
    sns_topic: tuple[Any, str, Messages],
    fyers_secrets: tuple[str, str],
    ddb_table: tuple[Any, str],
    data_bucket: tuple[Any, str],
) -> Aws:
    return lambda_env(monkeypatch, sns_topic, fyers_secrets, table=ddb_table[1], bucket=data_bucket[1])


@pytest.fixture(scope="module")
def replayed(nse_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Record]:
    """Two sessions of the trader, replayed on real bars, in a local SQLite journal."""
    settings = Settings()
    market = load_market(nse_dir, settings, REPLAY_SYMBOLS, load_universe_daily=False)
    tmp = tmp_path_factory.mktemp("replay")
    for day in REPLAY_DAYS:
        replay(tmp, market, REPLAY_SYMBOLS, day, settings, bias="LONGS")
    journal = SqliteJournal(tmp / "journal.sqlite")
    events = list(journal.records())
    journal.close()
    return events


def write_journal(aws: Aws, events: list[Record]) -> None:
    journal = DynamoJournal(aws.ddb, aws.table)
    for ev in events:
        journal.append(ev)
    journal.close()


def test_report_equals_the_local_report_and_exports_the_trades(
    aws: Aws, replayed: list[Record], tmp_path: Path
) -> None:
    write_journal(aws, replayed)
    for day in REPLAY_DAYS:
        local = day_report([(r, to_event(r)) for r in replayed], day)
        assert local.trades, day
        out = report.handler({"date": day.isoformat()}, None)
        assert out["status"] == "ok", out
        assert out["trades"] == len(local.trades) and out["open_positions"] == []
        assert out["net_pnl"] == round(local.net_pnl, 2)
        msg = aws.messages()[-1]
        assert msg["Message"] == local.text()  # the same report as `tfl report` on the local journal
        net = round(local.net_pnl)
        sign = "-" if net < 0 else "+"
        n = len(local.trades)
        assert msg["Subject"] == f"TFL P&L {day}: {sign}Rs {abs(net):,} ({n} trade{'s' if n > 1 else ''})"
        # the export is the backtester's trades.csv, byte for byte (the backtester writes it with this module)
        from tfl.trade_csv import TRADE_COLUMNS, trade_rows, write_csv

        want = tmp_path / f"{day}.csv"
        write_csv(want, TRADE_COLUMNS, trade_rows(local.trades))
        got = aws.s3.get_object(Bucket=aws.bucket, Key=f"exports/{day}/trades.csv")["Body"].read()
        assert got == want.read_bytes()
        assert out["export"] == f"s3://{aws.bucket}/exports/{day}/trades.csv"
    assert "equity: 1,000,000.00 -> " not in aws.messages()[-1]["Message"]  # day 2 starts from day 1's result


def test_open_positions_are_critical(aws: Aws, replayed: list[Record], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    day = REPLAY_DAYS[0]
    state = CoreState.fresh(Settings())
    prefix: list[Record] = []
    for ev in replayed:  # the journal of a trader that died with a position open
        prefix.append(ev)
        apply(state, to_event(ev))
        if state.book.positions and ev.session == day.isoformat():
            break
    write_journal(aws, prefix)
    out = report.handler({"date": day.isoformat()}, None)
    local = day_report([(r, to_event(r)) for r in prefix], day)
    assert local.open_positions and out["status"] == "critical"
    assert out["open_positions"] == local.open_positions
    (msg,) = aws.messages()
    assert msg["Subject"].startswith(f"TFL CRITICAL: {len(local.open_positions)} open position(s) after {day}")
    first, _, rest = msg["Message"].partition("\n\n")
    assert first.startswith("CRITICAL: OPEN POSITIONS LEFT") and "(there must be none)" in first
    assert rest == local.text()
    assert any(r.levelno == logging.CRITICAL and r.name == "tfl.aws.lambdas.report" for r in caplog.records)


def test_no_events_on_a_session_day_alerts(aws: Aws) -> None:
    out = report.handler({"date": "2024-05-16"}, None)
    assert out["status"] == "error"
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: no journal events for 2024-05-16: did the trader run?")


def test_no_events_on_a_holiday_is_skipped(aws: Aws, replayed: list[Record]) -> None:
    write_journal(aws, replayed[:5])  # the journal has sessions, just not this day
    out = report.handler({"date": "2024-01-22"}, None)
    assert out == {"status": "skipped", "session": "2024-01-22", "reason": "no NSE session"}
    assert aws.messages() == []


def test_unreadable_journal_and_failed_export_alert(
    aws: Aws, replayed: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TFL_AWS__JOURNAL_TABLE", "No-Such-Table")
    out = report.handler({"date": "2020-12-07"}, None)
    assert out["status"] == "error" and "ResourceNotFoundException" in out["reason"]
    assert "cannot read the journal" in aws.messages()[-1]["Message"]
    monkeypatch.setenv("TFL_AWS__JOURNAL_TABLE", aws.table)
    first_fill = next(i for i, ev in enumerate(replayed) if ev.kind == "FILL")
    write_journal(aws, replayed[:first_fill])  # the start of a session is enough for a report
    monkeypatch.setenv("TFL_AWS__DATA_BUCKET", "no-such-bucket-tfl")
    out = report.handler({"date": "2020-12-07"}, None)
    assert out["status"] == "error" and out["published"] is True and out["open_positions"] == []
    assert out["export_error"] == "s3://no-such-bucket-tfl/exports/2020-12-07/trades.csv: NoSuchBucket"
    subjects = [m["Subject"] for m in aws.messages()]
    assert subjects[-2].startswith("TFL P&L 2020-12-07") and subjects[-1].startswith("TFL ERROR: TFL report")


def test_a_report_sns_refuses_is_an_error(aws: Aws, replayed: list[Record], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    write_journal(aws, replayed)
    boto3.client("sns", region_name=REGION).delete_topic(TopicArn=aws.topic_arn)
    out = report.handler({"date": REPLAY_DAYS[0].isoformat()}, None)
    assert out["status"] == "error" and out["published"] is False and out["export_error"] == ""
    failed = [r for r in caplog.records if r.getMessage() == "SNS publish failed"]
    assert failed and failed[0].fields["error"] == "NotFound"  # type: ignore[attr-defined]
    (decision,) = [r for r in caplog.records if r.name == "tfl.aws.lambdas.report"]
    assert decision.levelno == logging.ERROR and decision.getMessage() == "report not delivered: SNS publish failed"


def test_unset_journal_table_is_an_error_and_an_alert(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TFL_AWS__JOURNAL_TABLE")
    out = report.handler({"date": "2020-12-07"}, None)
    assert out == {
        "status": "error",
        "session": "2020-12-07",
        "reason": "environment variable TFL_AWS__JOURNAL_TABLE is not set",
    }
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: TFL report for 2020-12-07: cannot read the journal")
    assert "TFL_AWS__JOURNAL_TABLE is not set" in msg["Message"]


def test_the_report_queries_and_never_scans(aws: Aws, replayed: list[Record], monkeypatch: pytest.MonkeyPatch) -> None:
    write_journal(aws, replayed)
    calls = record_api_calls(monkeypatch)
    out = report.handler({"date": REPLAY_DAYS[1].isoformat()}, None)
    assert out["status"] == "ok", out
    dynamodb = calls.of("dynamodb")
    # One Query, of the day's session, however long the journal's history: the session records
    # its opening cash. The hook sees the real calls.
    assert dynamodb.count("Query") == 1
    assert "Scan" not in dynamodb and set(dynamodb) == {"GetItem", "Query"}
    assert out["net_pnl"] == round(day_report([(r, to_event(r)) for r in replayed], REPLAY_DAYS[1]).net_pnl, 2)


def test_a_journal_without_the_opening_cash_reads_every_session(
    aws: Aws, replayed: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Journals written before SESSION_OPEN carried the cash: the day's equity needs all earlier sessions."""
    import dataclasses

    older = [
        dataclasses.replace(ev, data={k: v for k, v in ev.data.items() if k != "cash"})
        if ev.kind == "SESSION_OPEN"
        else ev
        for ev in replayed
    ]
    write_journal(aws, older)
    calls = record_api_calls(monkeypatch)
    day = REPLAY_DAYS[1]
    out = report.handler({"date": day.isoformat()}, None)
    local = day_report([(r, to_event(r)) for r in older], day)
    assert out["status"] == "ok" and out["net_pnl"] == round(local.net_pnl, 2)
    assert aws.messages()[-1]["Message"] == local.text()
    assert calls.of("dynamodb").count("Query") >= 3  # the day, then every session up to it


def test_from_1_december_the_evening_report_warns_that_next_years_holidays_are_missing(
    aws: Aws, replayed: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfl.aws.calendar_table import CalendarTable, load_table

    cut = load_table().to_dict()  # as if NSE's 2021 holidays were not published yet
    cut.update(
        last_year=2020,
        closed=[d for d in cut["closed"] if d < "2021"],
        sessions={d: s for d, s in cut["sessions"].items() if d < "2021"},
    )
    monkeypatch.setattr(report, "load_table", lambda: CalendarTable.from_dict(cut))
    write_journal(aws, replayed)
    day = REPLAY_DAYS[0]
    local = day_report([(r, to_event(r)) for r in replayed], day)
    out = report.handler({"date": day.isoformat()}, None)
    assert out["status"] == "ok"
    (msg,) = aws.messages()
    warning, _, rest = msg["Message"].partition("\n\n")
    assert warning.startswith("WARNING: the NSE calendar ends on 2020-12-31 and has no 2021 holidays")
    assert "tfl calendar add-year --year 2021" in warning
    assert rest == local.text()  # the report itself is unchanged
