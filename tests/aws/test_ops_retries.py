"""The ops Lambda's start under retries, against moto: one login link a day however often the
start runs, and EC2's capacity shortage retried with bounded pauses.

moto never runs out of capacity: InsufficientInstanceCapacity is INJECTED at the transport
(a ``before-call`` hook on boto3's default session answers the first N StartInstances calls
with EC2's error), so the handler's own client, retry loop and every later call are real.
The pauses are recorded, not slept.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from lambda_helpers import LOGIN_CALLBACK, REGION, Aws, Messages, lambda_env

from tfl.aws.lambdas import ops
from tfl.aws.lambdas.common import IST, LambdaConfig
from tfl.aws.lambdas.once import ONCE_PARTITION, STALE_CLAIM

DAY = "2024-05-16"  # a Thursday session
MORNING = dt.datetime(2024, 5, 16, 8, 30, 5, tzinfo=IST)


@pytest.fixture
def aws(
    monkeypatch: pytest.MonkeyPatch,
    sns_topic: tuple[Any, str, Messages],
    fyers_secrets: tuple[str, str],
    ddb_table: tuple[Any, str],
) -> Aws:
    aws = lambda_env(monkeypatch, sns_topic, fyers_secrets, table=ddb_table[1])
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    ec2 = boto3.client("ec2", region_name=REGION)
    iid = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[iid])
    monkeypatch.setenv("TFL_INSTANCE_ID", iid)
    monkeypatch.setenv("TFL_FYERS__API_URL", "https://api-t1.fyers.in/api/v3")
    aws.set_credentials(client_id="ABCD1234-100", secret_key="app-secret-xyz", redirect_uri=LOGIN_CALLBACK)
    return aws


def state(iid: str) -> str:
    res = boto3.client("ec2", region_name=REGION).describe_instances(InstanceIds=[iid])["Reservations"]
    return str(res[0]["Instances"][0]["State"]["Name"])


def links(aws: Aws) -> list[dict[str, str]]:
    return [m for m in aws.messages() if m["Subject"].startswith("TFL: log in to FYERS")]


def start(now: dt.datetime = MORNING, pauses: list[float] | None = None) -> dict[str, Any]:
    sleep = (pauses if pauses is not None else []).append
    return ops.run({"action": "start", "date": DAY}, LambdaConfig.from_environ(), now=now, sleep=sleep)


def no_capacity(monkeypatch: pytest.MonkeyPatch, refusals: int) -> list[str]:
    """Answer the first ``refusals`` StartInstances calls with EC2's capacity error; every call is recorded."""
    session = boto3.Session()
    calls: list[str] = []

    def answer(model: Any, **kwargs: Any) -> Any:
        calls.append(model.name)
        if len(calls) > refusals:
            return None  # on to moto
        body = {
            "Error": {
                "Code": "InsufficientInstanceCapacity",
                "Message": "We currently do not have sufficient capacity",
            },
            "ResponseMetadata": {"HTTPStatusCode": 500},
        }
        return AWSResponse("https://ec2.ap-south-1.amazonaws.com/", 500, {}, None), body

    session.events.register("before-call.ec2.StartInstances", answer)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return calls


# --------------------------------------------------------------------------- one link a day


def test_a_retried_start_sends_no_second_login_link(aws: Aws) -> None:
    first = ops.handler({"action": "start", "date": DAY}, None)
    assert first["status"] == "ok" and first["link"] is True and "duplicate_link" not in first
    state_after_first = aws.token_secret_value()
    second = ops.handler({"action": "start", "date": DAY}, None)  # the scheduler's (or Lambda's) retry
    assert second["status"] == "ok" and second["started"] is True and second["duplicate_link"] is True
    assert len(links(aws)) == 1
    assert aws.token_secret_value() == state_after_first  # the first link's state is still the valid one
    item = aws.ddb.get_item(
        TableName=aws.table, Key={"session": {"S": ONCE_PARTITION}, "key": {"S": f"start-link:{DAY}"}}
    )["Item"]
    assert item["state"]["S"] == "done"
    # the next session day gets its own link; an explicit "link" always sends a new one
    assert ops.handler({"action": "start", "date": "2024-05-17"}, None)["link"] is True
    assert ops.handler({"action": "link", "date": DAY}, None)["link"] is True
    assert [m["Subject"] for m in links(aws)] == [
        f"TFL: log in to FYERS for {DAY}",
        "TFL: log in to FYERS for 2024-05-17",
        f"TFL: log in to FYERS for {DAY}",
    ]


def test_a_start_whose_link_failed_sends_it_on_the_retry(aws: Aws) -> None:
    aws.set_credentials(client_id="ABCD1234-100", secret_key="REPLACE_ME", redirect_uri=LOGIN_CALLBACK)
    assert start()["link"] is False  # placeholders: no link, the claim is released
    aws.set_credentials(client_id="ABCD1234-100", secret_key="app-secret-xyz", redirect_uri=LOGIN_CALLBACK)
    out = start(MORNING + dt.timedelta(seconds=60))
    assert out["status"] == "ok" and out["link"] is True and "duplicate_link" not in out
    assert len(links(aws)) == 1


@pytest.mark.parametrize(
    ("age", "sent"),
    [
        (dt.timedelta(seconds=30), False),  # a concurrent run is sending it now
        (STALE_CLAIM - dt.timedelta(seconds=1), False),
        (STALE_CLAIM + dt.timedelta(seconds=1), True),  # a run that died half-way: taken over
    ],
)
def test_a_claim_left_by_another_run(aws: Aws, age: dt.timedelta, sent: bool) -> None:
    claimed_at = MORNING - age
    aws.ddb.put_item(
        TableName=aws.table,
        Item={
            "session": {"S": ONCE_PARTITION},
            "key": {"S": f"start-link:{DAY}"},
            "state": {"S": "claimed"},
            "at": {"N": str(int(claimed_at.timestamp()))},
        },
    )
    out = start()
    assert len(links(aws)) == (1 if sent else 0)
    assert out["link"] is True and out.get("duplicate_link", False) is not sent


def test_without_the_marker_table_the_link_still_goes_out(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("TFL_AWS__JOURNAL_TABLE", "TFL-No-Such-Table")
    assert start()["link"] is True and start()["link"] is True  # unguarded: two links rather than none
    assert len(links(aws)) == 2
    warned = [r for r in caplog.records if r.getMessage() == "login link marker unavailable: sending anyway"]
    assert warned and "ResourceNotFoundException" in warned[0].fields["reason"]  # type: ignore[attr-defined]


def test_the_marker_never_enters_a_journal_session(aws: Aws) -> None:
    from tfl.aws.dynamo_journal import DynamoJournal

    start()
    journal = DynamoJournal(aws.ddb, aws.table)
    assert journal.sessions() == [] and list(journal.records(DAY)) == []


# --------------------------------------------------------------------------- capacity


def test_no_capacity_is_retried_with_growing_pauses_then_starts(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = no_capacity(monkeypatch, refusals=2)
    pauses: list[float] = []
    out = start(pauses=pauses)
    assert out["status"] == "ok" and out["started"] is True
    assert calls == ["StartInstances"] * 3 and pauses == list(ops.START_RETRY_PAUSES[:2])
    assert state(LambdaConfig.from_environ().instance_id) in ("pending", "running")
    assert [m for m in aws.messages() if "CRITICAL" in m["Subject"]] == []


def test_capacity_that_does_not_return_is_critical_and_bounded(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = no_capacity(monkeypatch, refusals=100)
    pauses: list[float] = []
    out = start(pauses=pauses)
    assert out["status"] == "error" and out["started"] is False and out["link"] is True
    assert len(calls) == len(ops.START_RETRY_PAUSES) + 1 and pauses == list(ops.START_RETRY_PAUSES)
    assert state(LambdaConfig.from_environ().instance_id) == "stopped"
    (critical,) = [m for m in aws.messages() if "CRITICAL" in m["Subject"]]
    assert (
        "EC2 has no capacity" in critical["Message"]
        and "aws ec2 start-instances --instance-ids i-" in critical["Message"]
    )


def test_the_retry_budget_fits_the_functions_timeout() -> None:
    from test_template import TEMPLATE, load, props

    timeout = props(load(TEMPLATE.read_text(encoding="utf-8")), "OpsFunction")["Timeout"]
    # the pauses, one 60 s client timeout for the link (SNS) and 20 s for the calls themselves
    assert sum(ops.START_RETRY_PAUSES) + 60 + 20 <= timeout


def test_another_start_error_is_not_retried(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFL_INSTANCE_ID", "i-0123456789abcdef0")
    pauses: list[float] = []
    out = start(pauses=pauses)
    assert out["reason"] == "start_instances failed (InvalidInstanceID.NotFound)" and pauses == []
