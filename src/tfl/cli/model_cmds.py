"""`tfl compare`: a session of the journal against the backtest of that day, and the running table."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfl.timeutil import IST

if TYPE_CHECKING:
    from tfl.settings import Settings

log = logging.getLogger("tfl.cli.compare")


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def default_table(journal: str, state_dir: Path | None) -> Path:
    """Beside the journal: ``J.model-check.csv`` (for DynamoDB, in the state folder)."""
    from tfl.cli.wiring import is_dynamo, side_base
    from tfl.live.model_table import TABLE_SUFFIX

    if is_dynamo(journal) and state_dir is None:
        from tfl.cli.wiring import DEFAULT_STATE_DIR

        state_dir = DEFAULT_STATE_DIR
    base = side_base(journal, state_dir)
    return base.with_name(base.name + TABLE_SUFFIX)


def cmd_compare(args: argparse.Namespace) -> int:
    from tfl.cli.wiring import is_dynamo, open_journal_read
    from tfl.core.events import SessionOpened
    from tfl.data.market import load_market
    from tfl.live.journal import read_events
    from tfl.live.model_check import compare_day, comparison_lines, session_symbols
    from tfl.live.model_table import day_row, read_table, table_lines, upsert
    from tfl.live.report import settings_from_events
    from tfl.settings import load_settings

    spec: str = args.journal
    if not is_dynamo(spec) and not Path(spec).is_file():
        raise ValueError(f"no journal at {spec}")  # never create an empty one
    if not args.data.is_dir():
        raise ValueError(f"no data folder {args.data}")
    table: Path | None = None if args.no_table else (args.table or default_table(spec, args.state_dir))
    if table is not None and not table.parent.is_dir():
        raise ValueError(f"--table {table}: its folder {table.parent} does not exist")
    if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
        raise ValueError(f"--out {args.out}: not a file in an existing folder")
    day: dt.date = args.date or dt.datetime.now(IST).date()
    env = load_settings()  # where things are (AWS); the model uses the journal's own settings
    if args.notify and not env.aws.topic_arn:
        raise ValueError("--notify: no SNS topic (set aws.topic_arn, TFL_AWS__TOPIC_ARN)")
    if args.upload and not env.aws.data_bucket:
        raise ValueError("--upload: no bucket (set aws.data_bucket, TFL_AWS__DATA_BUCKET)")
    journal = open_journal_read(spec, env)
    try:
        sid = day.isoformat()
        sessions = [s for s in journal.sessions() if s <= sid]
        if sid not in sessions:
            raise ValueError(f"the journal {spec} has no session {sid}")
        events = list(read_events(journal, sid))
        opened = next((ev for _, ev in events if isinstance(ev, SessionOpened)), None)
        if opened is None or opened.cash is None:  # the opening cash comes from the sessions before
            events = [pair for s in sessions for pair in read_events(journal, s)]
    finally:
        journal.close()
    settings = settings_from_events(events)
    symbols = args.symbols or session_symbols(events, day) or None
    market = load_market(args.data, settings, symbols)
    comparison = compare_day(events, market, day, symbols=symbols)
    lines = comparison_lines(comparison)
    row = day_row(comparison)
    log.info(
        "live vs model",
        extra={
            "fields": {
                "session": row.session,
                "live_trades": row.live_trades,
                "model_trades": row.model_trades,
                "missing": row.missing,
                "extra": row.extra,
                "fills": row.fills,
                "mean_excess_bps": row.mean_excess_bps,
            }
        },
    )
    text = "\n".join(lines) + "\n"
    for line in lines:
        _out(line)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    if table is not None:
        rows = upsert(table, row)
        _out(f"running table {table}: {len(rows)} day(s)")
        for line in table_lines(rows):
            _out(f"  {line}")
    if args.upload:
        _upload(env, sid, text, table)
    if args.notify:
        _notify(env, sid, lines + (table_lines(read_table(table)) if table is not None else []))
    return 0


def _upload(settings: Settings, sid: str, text: str, table: Path | None) -> None:
    """Put the comparison where the post-market report job looks for it, and the running
    table where the status page on AWS reads it."""
    from tfl.aws.clients import client
    from tfl.live.model_table import TABLE_KEY, export_key

    bucket = settings.aws.data_bucket
    s3 = client("s3", settings.aws.region)
    key = export_key(sid)
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType="text/plain")
    _out(f"uploaded s3://{bucket}/{key}")
    if table is not None and table.is_file():
        s3.put_object(Bucket=bucket, Key=TABLE_KEY, Body=table.read_bytes(), ContentType="text/csv")
        _out(f"uploaded s3://{bucket}/{TABLE_KEY}")


def _notify(settings: Settings, sid: str, lines: list[str]) -> None:
    """The comparison by e-mail (the SNS topic): the 16:00 report cannot carry it, as the
    day's bars are stored after it."""
    from tfl.aws.clients import client
    from tfl.aws.notify import SnsNotifier

    if not settings.aws.topic_arn:
        raise ValueError("--notify: no SNS topic (set aws.topic_arn, TFL_AWS__TOPIC_ARN)")
    if not SnsNotifier(client("sns", settings.aws.region), settings.aws.topic_arn).publish(
        f"TFL live vs model {sid}", "\n".join(lines)
    ):
        raise ValueError("--notify: SNS did not take the message (see the log)")
    _out("sent to the SNS topic")


def add_parsers(sub: Any, date_type: Any, symbols_type: Any) -> None:
    cp = sub.add_parser(
        "compare",
        help="a journal's session against the backtest of that day (live vs model), and the running table",
        description=(
            "Backtest the session's day with the journal's settings, the bias the session opened with and "
            "its opening cash, then match trades by symbol, side and setup bar: trades missing or extra "
            "(and why, from the journal), each fill against the modelled fill (slippage against "
            "costs.slippage_pct), exit timing and charges. The day's row goes into a running table "
            "(CSV, one row per session, replaced when the day is compared again)."
        ),
    )
    cp.add_argument("--journal", required=True, help="the SQLite journal file, or dynamodb://TABLE")
    cp.add_argument(
        "--date", type=date_type, help="the session to compare (YYYY-MM-DD; default: today in IST, for the server)"
    )
    cp.add_argument("--data", type=Path, required=True, help="data directory holding the day's stored bars")
    cp.add_argument(
        "--symbols",
        type=symbols_type,
        default=None,
        help="what the trader traded (default: the session's symbols, from its journal)",
    )
    cp.add_argument("--table", type=Path, help="the running table (default: JOURNAL.model-check.csv)")
    cp.add_argument("--no-table", action="store_true", help="print the comparison only")
    cp.add_argument("--state-dir", type=Path, help="for dynamodb:// journals: where the table goes")
    cp.add_argument("--out", type=Path, help="also write the day's comparison text to this file")
    cp.add_argument(
        "--upload",
        action="store_true",
        help="put the text at s3://aws.data_bucket/exports/DATE/model-check.txt for the post-market report",
    )
    cp.add_argument(
        "--notify", action="store_true", help="send the comparison and the running table's verdict to the SNS topic"
    )
    cp.set_defaults(func=cmd_compare)
