"""The post-market report carries the day's live-vs-model comparison once `tfl compare --upload`
has stored it (after the day's bars), on moto: a replayed journal in DynamoDB, the comparison
read from that same journal, the report's message the local report plus the comparison."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest
from lambda_helpers import Aws, Messages, lambda_env

from tfl.aws.dynamo_journal import DynamoJournal
from tfl.aws.lambdas import report
from tfl.cli.main import main
from tfl.data.market import load_market
from tfl.live.journal import Record, SqliteJournal, to_event
from tfl.live.model_table import export_key
from tfl.live.report import day_report
from tfl.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))

from live_helpers import replay

SYMBOLS = ["ADANIENT", "GAIL", "NMDC", "SAIL", "TATASTEEL"]
DAY = dt.date(2020, 12, 7)


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
    settings = Settings()
    tmp = tmp_path_factory.mktemp("replay")
    replay(tmp, load_market(nse_dir, settings, SYMBOLS), SYMBOLS, DAY, settings, bias="LONGS")
    journal = SqliteJournal(tmp / "journal.sqlite")
    events = list(journal.records())
    journal.close()
    return events


def test_the_report_adds_the_uploaded_comparison(
    aws: Aws, replayed: list[Record], nse_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = DynamoJournal(aws.ddb, aws.table)
    for r in replayed:
        journal.append(r)
    journal.close()
    local = day_report([(r, to_event(r)) for r in replayed], DAY).text()
    assert report.handler({"date": DAY.isoformat()}, None)["status"] == "ok"
    assert aws.messages()[-1]["Message"] == local  # nothing compared yet: the report as before

    args = ["compare", "--journal", f"dynamodb://{aws.table}", "--date", DAY.isoformat()]
    args += ["--data", str(nse_dir), "--symbols", ",".join(SYMBOLS), "--no-table", "--upload"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    stored = aws.s3.get_object(Bucket=aws.bucket, Key=export_key(DAY.isoformat()))["Body"].read().decode()
    assert stored.startswith(f"Live vs model {DAY}") and "missing 0, extra 0" in stored
    assert stored in printed

    assert report.handler({"date": DAY.isoformat()}, None)["status"] == "ok"
    assert aws.messages()[-1]["Message"] == local + "\n\n" + stored.rstrip("\n")


def test_compare_sends_the_table_and_the_status_page_reads_it(
    aws: Aws, replayed: list[Record], nse_dir: Path, tmp_path: Path
) -> None:
    """The server's end-of-day step: `tfl compare --upload --notify` e-mails the comparison with
    the running table's verdict and puts the table where the status Lambda reads it."""
    from tfl.live.model_table import TABLE_KEY, read_table, table_lines
    from tfl.status.facts import Sources, model_facts
    from tfl.status.sources import local_sources, s3_text

    journal = DynamoJournal(aws.ddb, aws.table)
    for r in replayed:
        journal.append(r)
    journal.close()
    table = tmp_path / "j.model-check.csv"
    assert model_facts(Sources("x", None, None, s3_text(aws.s3, aws.bucket, TABLE_KEY))) == ("", ())  # not yet
    args = ["compare", "--journal", f"dynamodb://{aws.table}", "--date", DAY.isoformat(), "--data", str(nse_dir)]
    args += ["--symbols", ",".join(SYMBOLS), "--table", str(table), "--upload", "--notify"]
    assert main(args) == 0
    want = tuple(table_lines(read_table(table)))
    assert len(want) == 3 and "no matched fills yet" not in want[0]
    sent = aws.messages()[-1]
    assert sent["Subject"] == f"TFL live vs model {DAY}"
    assert sent["Message"].startswith(f"Live vs model {DAY}") and sent["Message"].endswith(want[-1])
    source, lines = model_facts(Sources("x", None, None, s3_text(aws.s3, aws.bucket, TABLE_KEY)))
    assert source == f"s3://{aws.bucket}/{TABLE_KEY}" and lines == want
    # on the trader's own machine the page reads the table beside a SQLite journal
    local = tmp_path / "j"
    local.write_bytes(b"")
    assert model_facts(local_sources(str(local), Settings()))[1] == want


def test_notify_without_a_topic_is_refused_before_any_work(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, nse_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TFL_AWS__TOPIC_ARN")
    j = tmp_path / "j.sqlite"
    SqliteJournal(j).close()
    args = ["compare", "--journal", str(j), "--date", DAY.isoformat(), "--data", str(nse_dir), "--notify"]
    assert main(args) == 2
    assert "--notify: no SNS topic" in capsys.readouterr().err
    assert not (tmp_path / "j.sqlite.model-check.csv").exists()
