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
