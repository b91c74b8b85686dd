"""Fixtures for the AWS tests: moto in-process, real boto3 clients, the stack's resources by their real names.

Names are stable; every AWS test module uses them:

* ``aws_env``: dummy credentials and ``AWS_DEFAULT_REGION=ap-south-1``; ``AWS_PROFILE``,
  ``AWS_ENDPOINT_URL`` and session tokens unset, config files pointed at nothing, so no test
  can reach a real account.
* ``mocked_aws``: the test body runs inside ``moto.mock_aws()`` (implies ``aws_env``).
* ``ddb_table`` -> ``(dynamodb_client, "TFL-Journal")``: the journal table, made by
  :func:`tfl.aws.dynamo_journal.create_table`.
* ``sns_topic`` -> ``(sns_client, topic_arn, read_messages)``: the ``TFL-Notifications`` topic
  with an SQS queue subscribed; ``read_messages()`` returns every message published so far
  (cumulative, oldest first) as dicts with ``Subject`` and ``Message``.
* ``ssm_bias_param`` -> ``(ssm_client, "/tfl/bias")``: the parameter with its initial value, a
  NO_TRADES record dated 1970-01-01 (stale, so it means NO_TRADES).
* ``fyers_secrets`` -> ``("tfl/fyers_credentials", "tfl/fyers_access_token")``: the two
  secrets with their placeholder JSON, as the template creates them.
* ``data_bucket`` -> ``(s3_client, bucket_name)``: the private data bucket (empty).

All clients are for ap-south-1. moto keeps no state between tests: each ``mocked_aws`` is a
fresh account.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tfl.aws.dynamo_journal import create_table
from tfl.regime import BiasRecord
from tfl.settings import BiasSettings

REGION = "ap-south-1"
JOURNAL_TABLE = "TFL-Journal"
TOPIC_NAME = "TFL-Notifications"
BIAS_PARAMETER = "/tfl/bias"
CREDENTIALS_SECRET = "tfl/fyers_credentials"
TOKEN_SECRET = "tfl/fyers_access_token"
DATA_BUCKET = "tfl-data-123456789012-ap-south-1"
CREDENTIALS_PLACEHOLDER = {"client_id": "REPLACE_ME", "secret_key": "REPLACE_ME", "redirect_uri": "REPLACE_ME"}

Messages = Callable[[], list[dict[str, str]]]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials and region; nothing from the developer's own AWS setup leaks in."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def mocked_aws(aws_env: None) -> Iterator[None]:
    """Run the test inside moto's in-process mock of every AWS service."""
    with mock_aws():
        yield


@pytest.fixture
def ddb_table(mocked_aws: None) -> tuple[Any, str]:
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, JOURNAL_TABLE)
    return client, JOURNAL_TABLE


@pytest.fixture
def sns_topic(mocked_aws: None) -> tuple[Any, str, Messages]:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    queue_url = sqs.create_queue(QueueName="tfl-test-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    seen: list[dict[str, str]] = []

    def read_messages() -> list[dict[str, str]]:
        while True:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return list(seen)
            for m in got:
                body = json.loads(m["Body"])  # the SNS envelope (raw delivery is off)
                seen.append({"Subject": body.get("Subject", ""), "Message": body["Message"]})
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])

    return sns, topic_arn, read_messages


@pytest.fixture
def ssm_bias_param(mocked_aws: None) -> tuple[Any, str]:
    ssm = boto3.client("ssm", region_name=REGION)
    initial = BiasRecord.no_trades(dt.date(1970, 1, 1), "initial value: no bias published yet", BiasSettings())
    ssm.put_parameter(Name=BIAS_PARAMETER, Value=initial.to_json(), Type="String")
    return ssm, BIAS_PARAMETER


@pytest.fixture
def fyers_secrets(mocked_aws: None) -> tuple[str, str]:
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(Name=CREDENTIALS_SECRET, SecretString=json.dumps(CREDENTIALS_PLACEHOLDER))
    sm.create_secret(Name=TOKEN_SECRET, SecretString="{}")
    return CREDENTIALS_SECRET, TOKEN_SECRET


@pytest.fixture
def data_bucket(mocked_aws: None) -> tuple[Any, str]:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=DATA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_public_access_block(
        Bucket=DATA_BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    return s3, DATA_BUCKET
