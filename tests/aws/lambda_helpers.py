"""Shared pieces of the Lambda tests: the function's environment and the mocked stack's views.

Not fixtures: each test module composes only the resources its handler needs (moto's SSM
backend alone costs half a second per test), then calls :func:`lambda_env`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
import pytest

REGION = "ap-south-1"
ALARM = "TFL-Heartbeat-Missing"
LOGIN_CALLBACK = "https://abcdefgh.lambda-url.ap-south-1.on.aws/"
Messages = Callable[[], list[dict[str, str]]]


@dataclass
class Aws:
    """The mocked stack, by the names the Lambdas get through their environment."""

    topic_arn: str
    messages: Messages
    credentials_secret: str
    token_secret: str
    bias_parameter: str = "/tfl/bias"
    bucket: str = "tfl-data-not-created"
    table: str = "TFL-Journal"

    @cached_property
    def ssm(self) -> Any:
        return boto3.client("ssm", region_name=REGION)

    @cached_property
    def s3(self) -> Any:
        return boto3.client("s3", region_name=REGION)

    @cached_property
    def ddb(self) -> Any:
        return boto3.client("dynamodb", region_name=REGION)

    @cached_property
    def sm(self) -> Any:
        return boto3.client("secretsmanager", region_name=REGION)

    def bias_record(self) -> dict[str, Any]:
        return dict(json.loads(self.ssm.get_parameter(Name=self.bias_parameter)["Parameter"]["Value"]))

    def token_secret_value(self) -> dict[str, str]:
        return dict(json.loads(self.sm.get_secret_value(SecretId=self.token_secret)["SecretString"]))

    def set_token_secret(self, **values: str) -> None:
        self.sm.put_secret_value(SecretId=self.token_secret, SecretString=json.dumps(values))

    def set_credentials(self, **values: str) -> None:
        self.sm.put_secret_value(SecretId=self.credentials_secret, SecretString=json.dumps(values))


def lambda_env(
    monkeypatch: pytest.MonkeyPatch,
    sns_topic: tuple[Any, str, Messages],
    fyers_secrets: tuple[str, str],
    **names: str,
) -> Aws:
    """Set the environment the template gives every function (and nothing else from the caller's)."""
    for name in list(os.environ):
        if name.startswith("TFL_"):
            monkeypatch.delenv(name)
    _, topic_arn, messages = sns_topic
    aws = Aws(topic_arn, messages, *fyers_secrets, **names)
    env = {
        "TFL_AWS__BIAS_PARAMETER": aws.bias_parameter,
        "TFL_AWS__TOPIC_ARN": topic_arn,
        "TFL_AWS__DATA_BUCKET": aws.bucket,
        "TFL_AWS__JOURNAL_TABLE": aws.table,
        "TFL_AWS__CREDENTIALS_SECRET": aws.credentials_secret,
        "TFL_AWS__TOKEN_SECRET": aws.token_secret,
        "TFL_HEARTBEAT_ALARM": ALARM,
        "TFL_LOGIN_URL": LOGIN_CALLBACK,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return aws


class ApiCalls:
    """Every AWS call made through boto3's default session, as (service, operation) pairs.

    The handlers make their clients with ``boto3.client``; a hook on the session's
    ``before-call`` event sees each real call, so nothing of the code under test is replaced.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, model: Any, **kwargs: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name))

    def of(self, service: str) -> list[str]:
        return [op for svc, op in self.calls if svc == service]


def record_api_calls(monkeypatch: pytest.MonkeyPatch) -> ApiCalls:
    """Route boto3's default session through :class:`ApiCalls` for this test."""
    session = boto3.Session()
    calls = ApiCalls()
    session.events.register("before-call", calls)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return calls


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record with its structured fields, unredacted (to look for leaks)."""
    return "\n".join(f"{r.levelname} {r.name} {r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
