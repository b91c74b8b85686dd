"""`tfl doctor` against a mocked deployment: everything ready, then one thing broken at a time."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest

from tfl.aws.doctor import SCHEDULE_NAMES, Check, Clients, calendar_expiry, run_checks
from tfl.cli.main import main
from tfl.regime import BiasRecord
from tfl.settings import BiasSettings

REGION = "ap-south-1"
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
DAY = dt.date(2024, 5, 16)  # a Thursday session
MORNING = dt.datetime(2024, 5, 16, 9, 30, tzinfo=IST)
CALLBACK = "https://abc.lambda-url.ap-south-1.on.aws/"


def _client(name: str) -> Any:
    return boto3.client(name, region_name=REGION)


@pytest.fixture
def deployed(mocked_aws: None) -> dict[str, str]:
    """The resources a deployed stack has, made one by one, and a stack whose outputs name them."""
    sm = _client("secretsmanager")
    sm.create_secret(
        Name="tfl/fyers_credentials",
        SecretString=json.dumps({"client_id": "ABCD1234-100", "secret_key": "s3cr3t", "redirect_uri": CALLBACK}),
    )
    sm.create_secret(
        Name="tfl/fyers_access_token", SecretString=json.dumps({"access_token": "tok", "token_date": DAY.isoformat()})
    )
    record = BiasRecord.no_trades(DAY, "test", BiasSettings())
    _client("ssm").put_parameter(Name="/tfl/bias", Value=record.to_json(), Type="String")
    sns = _client("sns")
    topic = sns.create_topic(Name="TFL-Notifications")["TopicArn"]
    sqs = _client("sqs")
    q = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    ec2 = _client("ec2")
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    iid = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    sched = _client("scheduler")
    for name in SCHEDULE_NAMES:
        sched.create_schedule(
            Name=name,
            ScheduleExpression="cron(30 8 ? * MON-FRI *)",
            ScheduleExpressionTimezone="Asia/Kolkata",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": topic, "RoleArn": "arn:aws:iam::123456789012:role/x"},
        )
    _client("cloudwatch").put_metric_data(
        Namespace="TFL",
        MetricData=[
            {"MetricName": "Heartbeat", "Value": 1, "Unit": "Count", "Timestamp": MORNING - dt.timedelta(minutes=2)}
        ],
    )
    outputs = {
        "InstanceId": iid,
        "TopicArn": topic,
        "BiasParameter": "/tfl/bias",
        "CredentialsSecret": "tfl/fyers_credentials",
        "TokenSecret": "tfl/fyers_access_token",
        "LoginCallbackUrl": CALLBACK,
        "ElasticIP": "13.200.1.2",
    }
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    _client("cloudformation").create_stack(StackName="TFL-Trading-System-Prod", TemplateBody=json.dumps(template))
    return outputs


def checks(at: dt.datetime = MORNING, session: bool | None = True) -> dict[str, Check]:
    clients = Clients(
        *(_client(s) for s in ("cloudformation", "secretsmanager", "ssm", "sns", "scheduler", "ec2", "cloudwatch"))
    )
    return {c.name: c for c in run_checks(clients, "TFL-Trading-System-Prod", at, lambda d: session)}


def failing(result: dict[str, Check]) -> set[str]:
    return {name for name, c in result.items() if c.status == "FAIL"}


def test_a_ready_deployment_passes_every_check(deployed: dict[str, str]) -> None:
    result = checks()
    assert failing(result) == set(), result
    assert result["static IP"].detail.startswith("13.200.1.2")
    assert len([n for n in result if n.startswith("schedule ")]) == len(SCHEDULE_NAMES)


def test_each_broken_part_is_named(deployed: dict[str, str]) -> None:
    sm = _client("secretsmanager")
    sm.put_secret_value(
        SecretId="tfl/fyers_credentials",
        SecretString=json.dumps({"client_id": "REPLACE_ME", "secret_key": "s", "redirect_uri": CALLBACK}),
    )
    sm.put_secret_value(
        SecretId="tfl/fyers_access_token", SecretString=json.dumps({"access_token": "t", "token_date": "2024-05-15"})
    )
    _client("ssm").put_parameter(
        Name="/tfl/bias",
        Value=BiasRecord.no_trades(dt.date(2024, 5, 15), "x", BiasSettings()).to_json(),
        Overwrite=True,
    )
    _client("scheduler").update_schedule(
        Name="TFL-Stop",
        ScheduleExpression="cron(0 17 ? * MON-FRI *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": deployed["TopicArn"], "RoleArn": "arn:aws:iam::123456789012:role/x"},
        State="DISABLED",
    )
    _client("ec2").stop_instances(InstanceIds=[deployed["InstanceId"]])
    result = checks(MORNING + dt.timedelta(minutes=30))
    assert failing(result) == {"credentials", "token", "bias", "schedule TFL-Stop", "instance", "heartbeat"}
    assert "client_id" in result["credentials"].detail and "s3cr3t" not in str(result)
    assert "2024-05-15" in result["bias"].detail


def test_before_the_morning_steps_missing_token_and_bias_are_not_failures(deployed: dict[str, str]) -> None:
    _client("secretsmanager").put_secret_value(SecretId="tfl/fyers_access_token", SecretString="{}")
    early = dt.datetime(2024, 5, 16, 8, 40, tzinfo=IST)
    _client("ssm").put_parameter(
        Name="/tfl/bias",
        Value=BiasRecord.no_trades(dt.date(2024, 5, 15), "x", BiasSettings()).to_json(),
        Overwrite=True,
    )
    result = checks(early)
    assert result["token"].status == "WARN" and result["bias"].status == "PASS"
    holiday = checks(MORNING, session=False)
    assert holiday["token"].status == "PASS" and holiday["instance"].status == "PASS"
    assert checks(MORNING, session=None)["calendar"].status == "FAIL"


def test_a_pending_subscription_and_a_missing_stack(deployed: dict[str, str]) -> None:
    sns = _client("sns")
    for sub in sns.list_subscriptions_by_topic(TopicArn=deployed["TopicArn"])["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    assert checks()["alerts"].status == "FAIL"
    _client("cloudformation").delete_stack(StackName="TFL-Trading-System-Prod")
    only = checks()
    assert list(only) == ["stack"] and only["stack"].status == "FAIL"


def test_the_doctor_command(deployed: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["doctor", "--at", "2024-05-16T09:30+05:30"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "0 failed" in out and "PASS  stack" in out
    _client("ec2").stop_instances(InstanceIds=[deployed["InstanceId"]])
    rc = main(["doctor", "--at", "2024-05-16T10:30+05:30"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL  instance" in out


def test_the_calendar_table_expiry_is_announced() -> None:
    assert calendar_expiry(2026, dt.date(2026, 6, 1)).status == "PASS"
    soon = calendar_expiry(2026, dt.date(2026, 11, 25))
    assert soon.status == "WARN" and "36 days" in soon.detail
    assert calendar_expiry(2026, dt.date(2027, 1, 2)).status == "FAIL"
