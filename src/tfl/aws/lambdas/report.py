"""The post-market report job (16:00 IST): the day's P&L from the DynamoDB journal, by SNS.

The report is the one ``tfl report`` prints from a local journal, built from the same events.
One Query (never a Scan) reads the day's session: its SESSION_OPEN records the opening cash,
so the work does not grow with the journal's history. A journal written before it did needs
every session up to the day, each read with a Query.
The day's trades also go to S3 as ``exports/<date>/trades.csv`` in the backtester's format.
Positions left open after the close are reported at CRITICAL: there must be none.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.calendar_table import CalendarTableError, load_table, next_year_missing
from tfl.aws.clients import aws_code
from tfl.aws.dynamo_journal import DynamoJournal
from tfl.aws.lambdas.common import (
    ConfigError,
    LambdaConfig,
    alert,
    decide,
    entry,
    event_date,
    publish,
)
from tfl.live.journal import JournalError
from tfl.live.model_table import export_key
from tfl.live.report import DayReport, journal_day_report
from tfl.trade_csv import trades_csv

log = logging.getLogger("tfl.aws.lambdas.report")


def subject(report: DayReport) -> str:
    """One ASCII line (SNS subjects): 'TFL P&L 2024-05-16: +Rs 1,234 (5 trades)'."""
    n = len(report.trades)
    net = round(report.net_pnl)
    money = f"{'-' if net < 0 else '+'}Rs {abs(net):,}"
    trades = f"{n} trade{'' if n == 1 else 's'}"
    if report.open_positions:
        return f"TFL CRITICAL: {len(report.open_positions)} open position(s) after {report.session}: {money} ({trades})"
    return f"TFL P&L {report.session}: {money} ({trades})"


def message(report: DayReport) -> str:
    text = report.text()
    if not report.open_positions:
        return text
    first = (
        f"CRITICAL: OPEN POSITIONS LEFT after the {report.session} session: {', '.join(report.open_positions)} "
        "(there must be none): check and close them in the FYERS terminal"
    )
    return f"{first}\n\n{text}"


def run(event: dict[str, Any], cfg: LambdaConfig, now: dt.datetime | None = None) -> dict[str, Any]:
    notifier = cfg.notifier()
    try:
        day = event_date(event, now)
    except ValueError as exc:
        decide(log, "report not run: bad event", logging.ERROR, reason=str(exc))
        alert(notifier, "ERROR", f"TFL report job: {exc}")
        return {"status": "error", "reason": str(exc)}
    sid = day.isoformat()
    calendar_note = next_year = ""
    try:
        calendar = load_table()
        next_year = next_year_missing(calendar.last_year, day)
        is_session: bool | None = calendar.session(day) is not None
    except CalendarTableError as exc:  # unknown: report whatever the journal holds
        is_session = None
        calendar_note = str(exc)
    try:
        table = cfg.require(cfg.settings.aws.journal_table, "TFL_AWS__JOURNAL_TABLE")
        journal = DynamoJournal(cfg.client("dynamodb"), table)
        report = journal_day_report(journal, day)
    except (ConfigError, JournalError) as exc:
        decide(log, "report failed: journal unreadable", logging.ERROR, session=sid, reason=str(exc))
        alert(notifier, "ERROR", f"TFL report for {sid}: cannot read the journal: {exc}")
        return {"status": "error", "session": sid, "reason": str(exc)}
    if report is None:
        if is_session is False:
            decide(log, "no NSE session and no journal events: report skipped", session=sid)
            return {"status": "skipped", "session": sid, "reason": "no NSE session"}
        reason = f"no journal events for {sid}: did the trader run?"
        if calendar_note:
            reason += f" ({calendar_note})"
        decide(log, "report: no journal events", logging.ERROR, session=sid, reason=reason)
        alert(notifier, "ERROR", reason)
        return {"status": "error", "session": sid, "reason": reason}
    text = message(report) + _model_check(cfg, sid)
    published = publish(notifier, subject(report), f"{next_year}\n\n{text}" if next_year else text)
    export, export_error = _export(cfg, sid, report)
    if export_error:
        alert(notifier, "ERROR", f"TFL report for {sid}: could not write the trades export ({export_error})")
    if report.open_positions:
        level, what, status = logging.CRITICAL, "report: open positions left after the close", "critical"
    elif not published:  # the operator expects the report: not receiving it is a failure
        level, what, status = logging.ERROR, "report not delivered: SNS publish failed", "error"
    elif export_error:
        level, what, status = logging.ERROR, "report published; export failed", "error"
    else:
        level, what, status = logging.INFO, "report published", "ok"
    decide(
        log,
        what,
        level,
        session=sid,
        trades=len(report.trades),
        net_pnl=round(report.net_pnl, 2),
        charges=round(report.charges, 2),
        open_positions=report.open_positions,
        notified=published,
        export=export,
        export_error=export_error,
    )
    return {
        "status": status,
        "session": sid,
        "trades": len(report.trades),
        "net_pnl": round(report.net_pnl, 2),
        "charges": round(report.charges, 2),
        "win_rate": None if report.win_rate is None else round(report.win_rate, 1),
        "open_positions": list(report.open_positions),
        "published": published,
        "export": export,
        "export_error": export_error,
    }


def _model_check(cfg: LambdaConfig, sid: str) -> str:
    """The day's live-vs-model comparison that ``tfl compare --upload`` stored once the day's bars
    were (exports/<date>/model-check.txt), as a section of the report; "" when there is none yet."""
    bucket, key = cfg.settings.aws.data_bucket, export_key(sid)
    if not bucket:
        return ""
    try:
        body = cfg.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read(64 * 1024)
    except (ClientError, BotoCoreError) as exc:
        code = aws_code(exc)
        if code in ("NoSuchKey", "404", "AccessDenied", "403"):  # without s3:ListBucket a missing key is a 403
            logging.getLogger(f"{log.name}.model_check").info(
                "no live-vs-model comparison", extra={"fields": {"key": key, "code": code}}
            )
            return ""
        return f"\n\nlive vs model: cannot read s3://{bucket}/{key} ({code})"
    return "\n\n" + bytes(body).decode("utf-8", errors="replace").rstrip("\n")


def _export(cfg: LambdaConfig, sid: str, report: DayReport) -> tuple[str, str]:
    """Write exports/<date>/trades.csv; (its s3:// URL, "") or ("", the error)."""
    bucket = cfg.settings.aws.data_bucket
    if not bucket:
        return "", "TFL_AWS__DATA_BUCKET is not set"
    key = f"exports/{sid}/trades.csv"
    try:
        cfg.client("s3").put_object(
            Bucket=bucket, Key=key, Body=trades_csv(report.trades).encode("utf-8"), ContentType="text/csv"
        )
    except ClientError as exc:
        return "", f"s3://{bucket}/{key}: {exc.response.get('Error', {}).get('Code', 'error')}"
    except BotoCoreError as exc:
        return "", f"s3://{bucket}/{key}: {type(exc).__name__}"
    return f"s3://{bucket}/{key}", ""


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler, 16:00 IST; ``{"date": "YYYY-MM-DD"}`` to rerun a day)."""
    return entry("report", log, run, event)  # the operator expects a report: never die silently
