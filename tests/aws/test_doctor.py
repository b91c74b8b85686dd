"""`tfl doctor` against a mocked deployment: everything ready, then one thing broken at a time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tfl.aws.calendar_table import CalendarTableExpired, SessionTimes, load_table
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
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com")  # moto confirms it at once
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


def clients(**replace: Any) -> Clients:
    names = {"cfn": "cloudformation", "secrets": "secretsmanager", "ssm": "ssm", "sns": "sns"}
    names |= {"scheduler": "scheduler", "ec2": "ec2", "cloudwatch": "cloudwatch"}
    return Clients(**{field: replace.get(field) or _client(service) for field, service in names.items()})


def session_of(session: bool | SessionTimes | None) -> Callable[[dt.date], SessionTimes | None]:
    """True: a regular session; False: none; None: the table has expired; or the session itself."""

    def of(day: dt.date) -> SessionTimes | None:
        if session is None:
            raise CalendarTableExpired(f"{day}: expired")
        if session is True:
            return SessionTimes(day, 9 * 60 + 15, 15 * 60 + 30)
        return session or None

    return of


def checks(at: dt.datetime = MORNING, session: bool | SessionTimes | None = True, **replace: Any) -> dict[str, Check]:
    return {c.name: c for c in run_checks(clients(**replace), "TFL-Trading-System-Prod", at, session_of(session))}


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


def test_no_subscription_and_a_missing_stack(deployed: dict[str, str]) -> None:
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


def test_the_calendar_table_expiry_is_announced_from_1_december() -> None:
    """NSE's circular for the next year comes in December: from the 1st the doctor says what to do."""
    assert calendar_expiry(2026, dt.date(2026, 6, 1)).status == "PASS"
    assert calendar_expiry(2026, dt.date(2026, 11, 30)).status == "PASS"
    soon = calendar_expiry(2026, dt.date(2026, 12, 1))
    assert soon.status == "WARN" and "30 days" in soon.detail
    assert "no 2027 holidays yet" in soon.detail and "tfl calendar add-year --year 2027" in soon.detail
    late = calendar_expiry(2026, dt.date(2027, 1, 2))
    assert late.status == "FAIL" and "tfl calendar add-year --year 2027" in late.detail


def test_only_a_confirmed_email_subscription_counts(deployed: dict[str, str]) -> None:
    sns = _client("sns")
    for sub in sns.list_subscriptions_by_topic(TopicArn=deployed["TopicArn"])["Subscriptions"]:
        if sub["Protocol"] == "email":
            sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    result = checks()["alerts"]  # the SQS subscription is still there, but it e-mails nobody
    assert result.status == "FAIL" and "e-mail" in result.detail


def test_a_pending_email_subscription_fails(deployed: dict[str, str]) -> None:
    """moto confirms e-mail subscriptions at once; real SNS answers like this until the link is clicked."""
    sns = _client("sns")
    topic = deployed["TopicArn"]
    pending = {
        "SubscriptionArn": "PendingConfirmation",
        "Owner": "123456789012",
        "Protocol": "email",
        "Endpoint": "ops@example.com",
        "TopicArn": topic,
    }
    confirmed_sqs = {**pending, "SubscriptionArn": f"{topic}:1b2c", "Protocol": "sqs", "Endpoint": "arn:aws:sqs:q"}
    with Stubber(sns) as stub:
        stub.add_response(
            "list_subscriptions_by_topic", {"Subscriptions": [confirmed_sqs, pending]}, {"TopicArn": topic}
        )
        result = checks(sns=sns)["alerts"]
        stub.assert_no_pending_responses()
    assert result.status == "FAIL" and "not confirmed" in result.detail


def test_a_secret_of_the_wrong_shape_is_a_failure_not_a_crash(deployed: dict[str, str]) -> None:
    sm = _client("secretsmanager")
    for value in ("[]", "null", '"text"', "12", json.dumps({"client_id": 12345, "secret_key": "s"})):
        sm.put_secret_value(SecretId="tfl/fyers_credentials", SecretString=value)
        sm.put_secret_value(SecretId="tfl/fyers_access_token", SecretString=value)
        _client("ssm").put_parameter(Name="/tfl/bias", Value=value, Overwrite=True)
        result = checks()
        assert {"credentials", "token", "bias"} <= failing(result), value
        assert "instance" in result and "heartbeat" in result  # the other checks still ran
        assert "12345" not in str(result)


def test_an_unexpected_error_names_its_check(deployed: dict[str, str]) -> None:
    class Broken:
        def describe_instances(self, **_: Any) -> Any:
            return {"Reservations": [{"Instances": [{"State": None}]}]}  # TypeError inside the check

    result = checks(ec2=Broken())
    assert result["instance"].status == "FAIL" and "TypeError" in result["instance"].detail
    assert result["heartbeat"].status == "PASS"


def test_the_heartbeat_age_counts_from_the_end_of_its_minute(deployed: dict[str, str]) -> None:
    """GetMetricStatistics stamps a datapoint with the START of its period (moto stamps the beat itself)."""
    cw = _client("cloudwatch")
    now = dt.datetime(2024, 5, 16, 9, 30, 30, tzinfo=IST)
    start_of_minute = dt.datetime(2024, 5, 16, 9, 20, tzinfo=IST)  # beats in 09:20:00-09:21:00, 9.5-10.5 min ago
    expected = {
        "Namespace": "TFL",
        "MetricName": "Heartbeat",
        "StartTime": now - dt.timedelta(hours=23),
        "EndTime": now,
        "Period": 60,
        "Statistics": ["Sum"],
    }
    with Stubber(cw) as stub:
        datapoint = {"Timestamp": start_of_minute, "Sum": 4.0, "Unit": "Count"}
        stub.add_response("get_metric_statistics", {"Label": "Heartbeat", "Datapoints": [datapoint]}, expected)
        result = checks(now, cloudwatch=cw)["heartbeat"]
    assert result.status == "PASS" and "10 minutes ago" in result.detail  # 9.5 min, not 10.5 (a FAIL)


def test_market_windows_follow_the_sessions_own_hours(deployed: dict[str, str]) -> None:
    short = SessionTimes(DAY, 9 * 60 + 15, 12 * 60 + 30, "short session")
    after_short = dt.datetime(2024, 5, 16, 13, 30, tzinfo=IST)  # the last heartbeat was at 09:28
    assert checks(after_short, short)["heartbeat"].status == "PASS"
    assert checks(after_short)["heartbeat"].status == "FAIL"  # a regular session is still on
    late = SessionTimes(DAY, 9 * 60 + 15, 18 * 60, "extended")
    evening = dt.datetime(2024, 5, 16, 17, 30, tzinfo=IST)
    assert checks(evening, late)["heartbeat"].status == "FAIL"
    _client("ec2").stop_instances(InstanceIds=[deployed["InstanceId"]])
    assert checks(evening, late)["instance"].status == "FAIL"
    assert checks(evening)["instance"].status == "PASS"  # after the 17:00 stop of a regular day
    assert "08:35-18:00" in checks(evening, late)["instance"].detail


def test_the_doctor_reads_the_table_the_next_deploy_ships(
    deployed: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tfl.aws.calendar_table as ct

    packaged = load_table()
    newer = {**packaged.to_dict(), "last_year": packaged.last_year + 1}
    monkeypatch.setattr(ct, "generate_table", lambda: newer)
    main(["doctor", "--at", "2024-05-16T09:30+05:30"])
    assert f"covers sessions up to {packaged.last_year + 1}-12-31" in capsys.readouterr().out

    def broken() -> dict[str, Any]:
        raise ImportError("no pandas_market_calendars")

    monkeypatch.setattr(ct, "generate_table", broken)
    main(["doctor", "--at", "2024-05-16T09:30+05:30"])
    out, err = capsys.readouterr()
    assert f"covers sessions up to {packaged.last_year}-12-31" in out and "using the packaged one" in err
