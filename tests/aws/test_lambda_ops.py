"""The ops Lambda against moto: holiday-aware start with the login link, heartbeat alarm arm/disarm."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from lambda_helpers import ALARM, LOGIN_CALLBACK, REGION, Aws, Messages, lambda_env, record_api_calls

from tfl.aws.calendar_table import load_table
from tfl.aws.lambdas import ops
from tfl.aws.lambdas.common import IST, LambdaConfig


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, sns_topic: tuple[Any, str, Messages], fyers_secrets: tuple[str, str]) -> Aws:
    return lambda_env(monkeypatch, sns_topic, fyers_secrets)


@dataclass
class Ops:
    ec2: Any
    instance: str
    cw: Any

    def state(self) -> str:
        res = self.ec2.describe_instances(InstanceIds=[self.instance])["Reservations"]
        return str(res[0]["Instances"][0]["State"]["Name"])

    def alarm_enabled(self) -> bool:
        return bool(self.cw.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]["ActionsEnabled"])


@pytest.fixture
def ops_env(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Ops:
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # seconds per test otherwise
    ec2 = boto3.client("ec2", region_name=REGION)
    iid = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[iid])
    cw = boto3.client("cloudwatch", region_name=REGION)
    cw.put_metric_alarm(
        AlarmName=ALARM,
        Namespace="TFL",
        MetricName="Heartbeat",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=5,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching",
        ActionsEnabled=False,
        AlarmActions=[aws.topic_arn],
    )
    monkeypatch.setenv("TFL_INSTANCE_ID", iid)
    monkeypatch.setenv("TFL_FYERS__API_URL", "https://api-t1.fyers.in/api/v3")
    aws.set_credentials(client_id="ABCD1234-100", secret_key="app-secret-xyz", redirect_uri=LOGIN_CALLBACK)
    ops_state = Ops(ec2, iid, cw)
    assert ops_state.state() == "stopped" and not ops_state.alarm_enabled()
    return ops_state


@pytest.mark.parametrize("day", ["2024-05-16", "2024-01-20"], ids=["thursday", "special-saturday"])
def test_start_on_a_session_day_starts_and_sends_the_login_link(aws: Aws, ops_env: Ops, day: str) -> None:
    out = ops.handler({"action": "start", "date": day}, None)
    assert out["status"] == "ok" and out["started"] is True and out["link"] is True
    assert ops_env.state() in ("pending", "running")
    token = aws.token_secret_value()
    assert token["login_state_date"] == day and len(token["login_state"]) >= 20
    (msg,) = aws.messages()
    assert msg["Subject"] == f"TFL: log in to FYERS for {day}"
    url = next(line for line in msg["Message"].splitlines() if line.startswith("https://"))
    assert url.startswith("https://api-t1.fyers.in/api/v3/generate-authcode?")
    assert f"state={token['login_state']}" in url and "client_id=ABCD1234-100" in url
    assert "redirect_uri=https%3A%2F%2Fabcdefgh.lambda-url" in url
    assert "app-secret-xyz" not in msg["Message"]


def test_start_on_a_day_without_session_does_nothing(aws: Aws, ops_env: Ops) -> None:
    for day in ("2024-01-22", "2024-05-19"):  # a weekday holiday, a Sunday
        out = ops.handler({"action": "start", "date": day}, None)
        assert out["status"] == "skipped"
        assert ops_env.state() == "stopped"
    assert "login_state" not in aws.token_secret_value()
    assert aws.messages() == []


def test_past_the_calendar_table_nothing_starts_and_it_is_critical(aws: Aws, ops_env: Ops) -> None:
    last = load_table().last_year
    out = ops.handler({"action": "start", "date": f"{last + 1}-01-05"}, None)
    assert out["status"] == "error"
    assert ops_env.state() == "stopped"
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL CRITICAL: TFL did not start")
    assert f"the NSE calendar table ends in {last}: regenerate it (tfl deploy)" in msg["Message"]
    assert f"after adding NSE's {last + 1} holidays (tfl calendar add-year)" in msg["Message"]  # how


def test_placeholders_alert_but_the_instance_starts(aws: Aws, ops_env: Ops) -> None:
    aws.set_credentials(client_id="ABCD1234-100", secret_key="REPLACE_ME", redirect_uri="REPLACE_ME")
    out = ops.handler({"action": "start", "date": "2024-05-16"}, None)
    assert out["status"] == "error" and out["started"] is True and out["link"] is False
    assert ops_env.state() in ("pending", "running")
    (msg,) = aws.messages()
    assert msg["Subject"].startswith("TFL ERROR: replace the placeholders in tfl/fyers_credentials")
    assert "secret_key, redirect_uri" in msg["Message"]
    assert "login_state" not in aws.token_secret_value()


def test_a_failed_start_is_critical_and_the_link_still_goes_out(
    aws: Aws, ops_env: Ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TFL_INSTANCE_ID", "i-0123456789abcdef0")
    out = ops.handler({"action": "start", "date": "2024-05-16"}, None)
    assert out["status"] == "error" and out["started"] is False and out["link"] is True
    first, second = aws.messages()
    assert first["Subject"].startswith("TFL CRITICAL: TFL: the trading instance did not start for 2024-05-16")
    assert "start_instances failed (InvalidInstanceID.NotFound)" in first["Message"]
    assert second["Subject"] == "TFL: log in to FYERS for 2024-05-16"


def test_redirect_uri_other_than_the_callback_is_pointed_out(aws: Aws, ops_env: Ops) -> None:
    other = "https://trade.fyers.in/api-login/redirect-uri/index.html"
    aws.set_credentials(client_id="ABCD1234-100", secret_key="app-secret-xyz", redirect_uri=other)
    out = ops.handler({"action": "link", "date": "2024-05-16"}, None)
    assert out["status"] == "ok"
    assert f"is not the login callback ({LOGIN_CALLBACK})" in aws.messages()[0]["Message"]


def test_arm_and_disarm_flip_the_alarm_actions(aws: Aws, ops_env: Ops) -> None:
    assert ops.handler({"action": "arm", "date": "2024-05-19"}, None)["status"] == "skipped"  # Sunday
    assert not ops_env.alarm_enabled()
    # overnight the alarm sits in ALARM (no heartbeat); arming resets it, so today's silence alarms anew
    ops_env.cw.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="overnight")
    out = ops.handler({"action": "arm", "date": "2024-05-16"}, None)
    assert out == {"status": "ok", "action": "arm", "session": "2024-05-16", "alarm": ALARM}
    assert ops_env.alarm_enabled()
    assert ops_env.cw.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]["StateValue"] == "OK"
    out = ops.handler({"action": "disarm", "date": "2024-05-19"}, None)  # always, even on a Sunday
    assert out["status"] == "ok" and not ops_env.alarm_enabled()
    last = load_table().last_year
    assert ops.handler({"action": "arm", "date": f"{last + 1}-01-05"}, None)["status"] == "error"
    assert not ops_env.alarm_enabled()
    assert aws.messages() == []  # arming and disarming are silent


def test_arm_failure_and_unknown_action_alert(aws: Aws, ops_env: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    out = ops.handler({"action": "reboot"}, None)
    assert out["status"] == "error" and "unknown action 'reboot'" in out["reason"]
    assert aws.messages()[-1]["Subject"].startswith("TFL ERROR: TFL ops job: unknown action 'reboot'")
    monkeypatch.delenv("TFL_HEARTBEAT_ALARM")
    out = ops.handler({"action": "disarm", "date": "2024-05-19"}, None)  # a Sunday: nothing keeps it armed
    assert out["status"] == "error" and out["reason"] == "environment variable TFL_HEARTBEAT_ALARM is not set"
    assert "could not disarm the heartbeat alarm" in aws.messages()[-1]["Message"]


def test_a_bug_is_an_error_result_and_an_alert(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Any = None) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ops, "load_table", broken)
    out = ops.handler({"action": "start", "date": "2024-05-16"}, None)
    assert out == {"status": "error", "reason": "unexpected error (RuntimeError)"}
    assert aws.messages()[0]["Subject"].startswith("TFL ERROR: TFL ops job failed")


def at(day: str, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(hhmm), IST)


@pytest.mark.parametrize(
    ("day", "hhmm", "disarmed"),
    [
        ("2024-05-16", "12:35", False),  # a regular session is still open at the first run
        ("2024-05-16", "15:34", False),  # closed, but its last heartbeats are due
        ("2024-05-16", "15:35", True),
        ("2024-05-18", "12:35", True),  # a special session that closed at 12:30
        ("2024-05-19", "12:35", True),  # Sunday: no session
        ("2024-01-22", "10:00", True),  # a weekday holiday
    ],
)
def test_disarm_waits_for_the_session_to_close(ops_env: Ops, day: str, hhmm: str, disarmed: bool) -> None:
    ops_env.cw.enable_alarm_actions(AlarmNames=[ALARM])
    out = ops.run({"action": "disarm"}, LambdaConfig.from_environ(), now=at(day, hhmm))
    assert out["session"] == day and ops_env.alarm_enabled() is not disarmed
    if disarmed:
        assert out == {"status": "ok", "action": "disarm", "session": day, "alarm": ALARM}
    else:
        assert out == {"status": "skipped", "action": "disarm", "session": day, "reason": "still open: kept armed"}


def test_disarm_past_the_calendar_table_still_disarms(ops_env: Ops) -> None:
    ops_env.cw.enable_alarm_actions(AlarmNames=[ALARM])
    last = load_table().last_year
    out = ops.run({"action": "disarm"}, LambdaConfig.from_environ(), now=at(f"{last + 1}-01-05", "15:35"))
    assert out["status"] == "ok" and not ops_env.alarm_enabled()
    assert f"the NSE calendar table ends in {last}" in out["note"]


def test_the_login_state_and_its_date_are_one_write(aws: Aws, ops_env: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_api_calls(monkeypatch)
    out = ops.handler({"action": "link", "date": "2024-05-16"}, None)
    assert out["status"] == "ok" and out["link"] is True
    assert calls.of("secretsmanager").count("PutSecretValue") == 1
    token = aws.token_secret_value()
    assert token["login_state_date"] == "2024-05-16" and len(token["login_state"]) >= 20


def test_sns_failure_makes_the_start_an_error(aws: Aws, ops_env: Ops, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    boto3.client("sns", region_name=REGION).delete_topic(TopicArn=aws.topic_arn)
    out = ops.handler({"action": "start", "date": "2024-05-16"}, None)
    assert out["started"] is True and ops_env.state() in ("pending", "running")  # the instance still starts
    assert out["status"] == "error" and out["link"] is False
    assert out["reason"].startswith("the login link could not be sent by SNS")
    assert aws.token_secret_value()["login_state_date"] == "2024-05-16"
    failed = [r for r in caplog.records if r.getMessage() == "SNS publish failed"]
    assert failed and failed[0].fields["error"] == "NotFound"  # type: ignore[attr-defined]
    assert any(r.levelno == logging.ERROR and r.getMessage() == "login link not delivered" for r in caplog.records)
    link = ops.handler({"action": "link", "date": "2024-05-16"}, None)
    assert link["status"] == "error" and link["published"] is False


def test_unset_instance_id_is_critical_and_the_link_still_goes_out(
    aws: Aws, ops_env: Ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TFL_INSTANCE_ID")
    out = ops.handler({"action": "start", "date": "2024-05-16"}, None)
    assert out["status"] == "error" and out["started"] is False and out["link"] is True
    assert out["reason"] == "environment variable TFL_INSTANCE_ID is not set"
    assert ops_env.state() == "stopped"
    first, second = aws.messages()
    assert first["Subject"].startswith("TFL CRITICAL: TFL: the trading instance did not start for 2024-05-16")
    assert "TFL_INSTANCE_ID is not set" in first["Message"]
    assert second["Subject"] == "TFL: log in to FYERS for 2024-05-16"
