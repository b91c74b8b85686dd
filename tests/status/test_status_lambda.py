"""The status page's Lambda on moto: function URL events (payload 2.0) through the same
handler as the local server, the DynamoDB journal and its ``#ops`` partition, the signing
key from Secrets Manager; every write the page makes lands in ``#ops`` (what the role's
``dynamodb:LeadingKeys`` condition allows), and the template grants nothing more."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from status_helpers import Journals

from tfl.aws.dynamo_journal import DynamoJournal, create_table
from tfl.aws.dynamo_ops import OPS_PARTITION, DynamoOpsStore
from tfl.aws.lambdas import status as status_lambda
from tfl.aws.lambdas.common import LambdaConfig
from tfl.live.journal import SqliteJournal
from tfl.status.app import REFUSED_BODY
from tfl.status.auth import LOGIN, Signer, key_from_text

REGION = "ap-south-1"
TABLE = "TFL-Journal"
SECRET = "tfl/status_link_key"
KEY_TEXT = "Zq7" * 21 + "x"  # 64 characters, as CloudFormation generates it (no punctuation)
TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "tfl-infrastructure.yaml"
WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")


class Recording:
    """A DynamoDB client that records the partition of every write, then makes it."""

    def __init__(self, inner: Any, seen: list[tuple[str, str]]) -> None:
        self._inner = inner
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in WRITES:
            return attr

        def call(**kw: Any) -> Any:
            item = kw.get("Item") or kw.get("Key") or {}
            self._seen.append((name, item.get("session", {}).get("S", "?")))
            return attr(**kw)

        return call


@pytest.fixture
def aws(journals: Journals, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[tuple[str, str]]]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("TFL_AWS__REGION", REGION)
    monkeypatch.setenv("TFL_AWS__JOURNAL_TABLE", TABLE)
    monkeypatch.setenv(status_lambda.KEY_SECRET_VAR, SECRET)
    status_lambda._signing_key.cache_clear()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, TABLE)
        boto3.client("secretsmanager", region_name=REGION).create_secret(Name=SECRET, SecretString=KEY_TEXT)
        src = SqliteJournal(journals.midday)
        dj = DynamoJournal(ddb, TABLE)
        for rec in src.records():
            dj.append(rec)
        dj.flush()
        src.close()
        seen: list[tuple[str, str]] = []
        real = LambdaConfig.client
        monkeypatch.setattr(
            LambdaConfig,
            "client",
            lambda self, service: (
                Recording(real(self, service), seen) if service == "dynamodb" else real(self, service)
            ),
        )
        yield seen
    status_lambda._signing_key.cache_clear()


def _event(method: str, path: str, query: str = "", body: str = "", cookies: list[str] | None = None,
           headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    ev: dict[str, Any] = {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "abc.lambda-url.ap-south-1.on.aws", **(headers or {})},
        "requestContext": {"http": {"method": method, "path": path}},
        "isBase64Encoded": bool(body),
    }
    if body:
        ev["body"] = base64.b64encode(body.encode()).decode()
    if cookies:
        ev["cookies"] = cookies
    return ev


def _signer() -> Signer:
    return Signer(key_from_text(KEY_TEXT, "test"), lambda: int(time.time()))


def _call(ev: dict[str, Any]) -> dict[str, Any]:
    return status_lambda.handler(ev, None)


def test_login_facts_and_a_command_through_function_url_events(aws: list[tuple[str, str]]) -> None:
    token = _signer().login_token()
    form = _call(_event("GET", "/login", f"t={token}"))
    assert form["statusCode"] == 200 and 'action="/login"' in form["body"]
    signed = _call(_event("POST", "/login", body=f"t={token}"))
    assert signed["statusCode"] == 303 and signed["headers"]["Location"] == "/"
    [set_cookie] = signed["cookies"]
    assert {"HttpOnly", "Secure", "SameSite=Strict"} <= {p.strip() for p in set_cookie.split(";")}
    cookie = set_cookie.split(";")[0]
    facts = json.loads(_call(_event("GET", "/api/status", cookies=[cookie]))["body"])
    assert {p["symbol"] for p in facts["positions"]} == {"TRENT", "ICICIBANK", "DLF"}
    assert facts["journal"] == f"dynamodb://{TABLE}" and "journal's alerts" in facts["log_source"]
    hdr = {"x-tfl-page": "1", "content-type": "application/json"}
    link = json.loads(
        _call(_event("POST", "/api/link", body=json.dumps({"kind": "stop_entries"}), cookies=[cookie], headers=hdr))[
            "body"
        ]
    )
    sent = _call(
        _event("POST", "/api/command", body=json.dumps({"token": link["token"], "confirm": "stop"}), cookies=[cookie],
               headers=hdr)
    )  # fmt: skip
    assert sent["statusCode"] == 200
    [cmd] = DynamoOpsStore(boto3.client("dynamodb", region_name=REGION), TABLE).pending()
    assert (cmd.kind.value, cmd.source, cmd.id) == ("stop_entries", "page", json.loads(sent["body"])["id"])
    again = _call(_event("POST", "/login", body=f"t={token}"))
    assert (again["statusCode"], again["body"], "cookies" in again) == (403, REFUSED_BODY.decode(), False)
    assert aws and {part for _, part in aws} == {OPS_PARTITION}  # used links and the command, nothing else


def test_expired_forged_and_missing_credentials_are_refused_alike(aws: list[tuple[str, str]]) -> None:
    expired = _signer().issue(LOGIN, int(time.time()) - 1)
    forged = Signer(bytes(32), lambda: int(time.time())).login_token()
    answers = [
        _call(_event("GET", "/login", f"t={expired}")),
        _call(_event("POST", "/login", body=f"t={forged}")),
        _call(_event("GET", "/api/status")),
        _call(_event("GET", "/", cookies=["tfl_status=" + forged])),
    ]
    assert {(a["statusCode"], a["body"]) for a in answers} == {(403, REFUSED_BODY.decode())}
    assert aws == []  # a refusal writes nothing


def test_missing_configuration_is_a_plain_503(aws: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(status_lambda.KEY_SECRET_VAR)
    got = _call(_event("GET", "/api/status"))
    assert got["statusCode"] == 503 and SECRET not in got["body"]


def test_morning_link_is_a_working_one_time_link(aws: list[tuple[str, str]]) -> None:
    env = {status_lambda.URL_VAR: "https://abc.lambda-url.ap-south-1.on.aws/", status_lambda.KEY_SECRET_VAR: SECRET}
    cfg = LambdaConfig.from_environ()
    link = status_lambda.morning_link(cfg, env, int(time.time()))
    assert link.startswith("https://abc.lambda-url.ap-south-1.on.aws/login?t=")
    token = link.split("t=", 1)[1]
    assert _call(_event("POST", "/login", body=f"t={token}"))["statusCode"] == 303
    assert status_lambda.morning_link(cfg, {}, int(time.time())) == ""  # not configured: no link, no failure
    bad = {**env, status_lambda.KEY_SECRET_VAR: "no/such/secret"}
    assert status_lambda.morning_link(cfg, bad, int(time.time())) == ""


def _statements(role: str) -> list[dict[str, Any]]:
    class Loader(yaml.SafeLoader):
        pass

    for tag in ("!Ref", "!GetAtt", "!Sub", "!If", "!Equals", "!Not", "!And", "!Or", "!Join", "!Select", "!Split",
                "!FindInMap", "!Base64", "!GetAZs", "!ImportValue", "!Condition", "!Cidr"):  # fmt: skip
        Loader.add_constructor(tag, lambda loader, node: loader.construct_scalar(node)
                               if isinstance(node, yaml.ScalarNode) else loader.construct_sequence(node))  # fmt: skip
    tpl = yaml.load(TEMPLATE.read_text(), Loader=Loader)
    [policy] = tpl["Resources"][role]["Properties"]["Policies"]
    return list(policy["PolicyDocument"]["Statement"])


def test_the_role_writes_only_operator_items_and_reads_only_its_key() -> None:
    stmts = _statements("StatusFunctionRole")
    actions = {a for s in stmts for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
        "ssm:GetParameter",
        "s3:GetObject",
        "kms:Decrypt",
    }
    (read,) = [s for s in stmts if s["Action"] == "s3:GetObject"]
    assert read["Resource"] == "${DataBucket.Arn}/exports/model-check.csv"  # the live-vs-model table, nothing else
    writes = [s for s in stmts if {"dynamodb:PutItem", "dynamodb:UpdateItem"} & set(s["Action"])]
    assert len(writes) == 1
    assert writes[0]["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [OPS_PARTITION]}}
    assert next(s for s in stmts if s["Action"] == "secretsmanager:GetSecretValue")["Resource"] == "StatusKeySecret"
    assert all(s["Resource"] != "*" for s in stmts)
