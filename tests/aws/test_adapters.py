"""The small AWS adapters the trader uses: Secrets Manager store, SSM bias, SNS notifier, wiring."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tfl.aws.notify import SnsNotifier, subject_line
from tfl.aws.secrets_store import SecretsManagerStore
from tfl.aws.ssm_bias import read_bias, write_bias
from tfl.domain import Bias
from tfl.regime import BiasRecord
from tfl.secrets import SecretError
from tfl.settings import BiasSettings, load_settings

REGION = "ap-south-1"
DAY = dt.date(2024, 5, 16)


def test_secrets_manager_store_round_trip(fyers_secrets: tuple[str, str]) -> None:
    creds, token = fyers_secrets
    sm = boto3.client("secretsmanager", region_name=REGION)
    t = [0.0]
    store = SecretsManagerStore(sm, creds, token, cache_seconds=10, clock=lambda: t[0])
    # the template's placeholders count as missing
    assert store.get("client_id") is None and store.get("secret_key") is None and store.get("access_token") is None
    store.put("access_token", "tok-1")
    store.put("token_date", DAY.isoformat())
    assert store.get("access_token") == "tok-1"
    assert json.loads(sm.get_secret_value(SecretId=token)["SecretString"]) == {
        "access_token": "tok-1",
        "token_date": DAY.isoformat(),
    }
    # credentials go to the other secret, and the token secret keeps its keys
    store.put("secret_key", "app-secret")
    assert json.loads(sm.get_secret_value(SecretId=creds)["SecretString"])["secret_key"] == "app-secret"
    assert json.loads(sm.get_secret_value(SecretId=token)["SecretString"])["access_token"] == "tok-1"
    # a login written by another process (the login Lambda) is seen once the cache expires
    sm.put_secret_value(SecretId=token, SecretString=json.dumps({"access_token": "tok-2"}))
    assert store.get("access_token") == "tok-1"  # cached
    t[0] = 11.0
    assert store.get("access_token") == "tok-2"


def test_secrets_manager_store_errors_name_the_secret_never_a_value(mocked_aws: None) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    store = SecretsManagerStore(sm, "tfl/creds", "tfl/token")
    assert store.get("access_token") is None  # a missing secret is empty ...
    store.put("access_token", "tok")  # ... and is created on the first write
    assert store.get("access_token") == "tok"
    sm.create_secret(Name="tfl/creds", SecretString="not json at all: hunter2")
    with pytest.raises(SecretError, match="tfl/creds: not a JSON object") as ei:
        store.get("client_id")
    assert "hunter2" not in str(ei.value)
    sm.delete_secret(SecretId="tfl/token", ForceDeleteWithoutRecovery=False)
    store_after = SecretsManagerStore(sm, "tfl/creds2", "tfl/token")
    with pytest.raises(SecretError, match="tfl/token: cannot read"):
        store_after.get("access_token")


def test_ssm_bias_is_no_trades_unless_a_valid_record_for_today(ssm_bias_param: tuple[Any, str]) -> None:
    ssm, name = ssm_bias_param
    bias, why = read_bias(ssm, name, DAY)
    assert bias is Bias.NO_TRADES and "1970-01-01" in why  # the template's initial value is stale
    record = BiasRecord.no_trades(DAY, "x", BiasSettings())
    write_bias(ssm, name, BiasRecord(**{**record.__dict__, "bias": "LONGS", "reason": "breadth ok"}))
    assert read_bias(ssm, name, DAY) == (Bias.LONGS, f"read from SSM parameter {name}")
    assert read_bias(ssm, name, DAY + dt.timedelta(days=1))[0] is Bias.NO_TRADES  # yesterday's record
    ssm.put_parameter(Name=name, Value="{broken", Overwrite=True)
    assert read_bias(ssm, name, DAY)[0] is Bias.NO_TRADES
    assert read_bias(ssm, "/tfl/nothing", DAY) == (Bias.NO_TRADES, "no bias parameter /tfl/nothing: NO_TRADES")


def test_ssm_bias_refused_read_is_no_trades_with_the_code(mocked_aws: None, caplog: pytest.LogCaptureFixture) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    message = "User: arn:aws:sts::123456789012:assumed-role/TFL/i-0abc is not authorized to perform: ssm:GetParameter"
    with Stubber(ssm) as stub:
        stub.add_client_error("get_parameter", "AccessDeniedException", message, expected_params={"Name": "/tfl/bias"})
        bias, why = read_bias(ssm, "/tfl/bias", DAY)
        stub.assert_no_pending_responses()
    assert bias is Bias.NO_TRADES
    assert why == "bias parameter /tfl/bias unreadable (AccessDeniedException): NO_TRADES"
    assert "arn:aws" not in why and "arn:aws" not in caplog.text


def test_put_many_is_one_write_of_one_secret(fyers_secrets: tuple[str, str]) -> None:
    creds, token = fyers_secrets
    sm = boto3.client("secretsmanager", region_name=REGION)
    store = SecretsManagerStore(sm, creds, token)
    store.put("login_state", "s1")
    versions = len(sm.list_secret_version_ids(SecretId=token)["Versions"])
    store.put_many({"access_token": "tok", "token_date": DAY.isoformat()})
    assert len(sm.list_secret_version_ids(SecretId=token)["Versions"]) == versions + 1  # one PutSecretValue
    assert json.loads(sm.get_secret_value(SecretId=token)["SecretString"]) == {
        "access_token": "tok",
        "login_state": "s1",
        "token_date": DAY.isoformat(),
    }
    with pytest.raises(ValueError, match="one secret at a time"):
        store.put_many({"access_token": "x", "client_id": "y"})
    assert store.get("access_token") == "tok"  # nothing of a refused call was written


def test_sns_notifier_logs_and_never_raises(sns_topic: tuple[Any, str, Any], caplog: pytest.LogCaptureFixture) -> None:
    sns, topic, messages = sns_topic
    notifier = SnsNotifier(sns, topic)
    caplog.set_level(logging.INFO)
    notifier.alert("CRITICAL", "book not flat\nafter the close: SBIN")
    (msg,) = messages()
    assert msg["Subject"] == "TFL CRITICAL: book not flat after the close: SBIN"
    assert msg["Message"] == "book not flat\nafter the close: SBIN"
    assert any(r.levelno == logging.CRITICAL and "book not flat" in r.getMessage() for r in caplog.records)
    sns.delete_topic(TopicArn=topic)
    assert notifier.publish("x", "y") is False  # refused: logged, not raised
    failed = [r for r in caplog.records if r.getMessage() == "SNS publish failed"]
    assert failed and failed[0].fields["error"] == "NotFound"  # type: ignore[attr-defined]  # AWS's code, not "ClientError"
    assert len(subject_line("x" * 300)) == 100 and subject_line("\n") == "TFL" and subject_line("café") == "caf"


def test_settings_choose_the_aws_adapters(fyers_secrets: tuple[str, str], tmp_path: Any) -> None:
    from tfl.aws.dynamo_journal import DynamoJournal, create_table
    from tfl.cli.wiring import open_journal, secret_store, side_base
    from tfl.live.journal import SqliteJournal
    from tfl.secrets import FileSecretStore

    local = load_settings(environ={"TFL_FYERS__SECRETS_FILE": str(tmp_path / "s.json")})
    assert isinstance(secret_store(local), FileSecretStore)
    on_aws = load_settings(
        environ={"TFL_AWS__CREDENTIALS_SECRET": fyers_secrets[0], "TFL_AWS__TOKEN_SECRET": fyers_secrets[1]}
    )
    assert isinstance(secret_store(on_aws), SecretsManagerStore)
    create_table(boto3.client("dynamodb", region_name=REGION), "TFL-Journal")
    assert isinstance(open_journal("dynamodb://TFL-Journal", on_aws), DynamoJournal)
    assert isinstance(open_journal(str(tmp_path / "j.sqlite"), on_aws), SqliteJournal)
    assert side_base("dynamodb://TFL-Journal", tmp_path / "state") == tmp_path / "state" / "TFL-Journal"
    with pytest.raises(ValueError, match="dynamodb://TABLE"):
        open_journal("dynamodb://", on_aws)
