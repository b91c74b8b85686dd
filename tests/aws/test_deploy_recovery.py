"""`tfl deploy` after a failure: the cause named from the stack's events, a rolled-back first create
replaced, a kept journal table refused with what to do, the journal protected once created.

moto creates, updates and deletes stacks for real but never fails a resource or rolls back,
so a rollback is SIMULATED: :class:`RolledBack` wraps a real moto client and, for one stack
id until it is deleted, reports ROLLBACK_COMPLETE and prepends the events a real rollback
writes (CREATE_FAILED, cancellations, DELETE_SKIPPED). Everything else (the stack, its
deletion, the new create, the DynamoDB table, the uploads) is moto's real API.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from tfl.aws.deploy import (
    JOURNAL_TABLE,
    DeployError,
    DeployPlan,
    architecture,
    check_architecture,
    deploy,
    template_parameters,
)
from tfl.aws.dynamo_journal import create_table
from tfl.aws.git_credentials import GIT_TOKEN_SECRET, GitTokenError, read_token, store_token
from tfl.aws.package import build_bundle
from tfl.aws.stack_failure import StackDiagnosis, first_failure, kept_resources
from tfl.cli.main import main

REGION = "ap-south-1"
REPO = Path(__file__).resolve().parents[2]
SIGNAL_REASON = "Failed to receive 1 resource signal(s) within the specified duration"

# The deploy mechanics on resources moto can create: the journal's protection parameter as the
# real template has it, a git token parameter, the instance type (for the architecture check).
TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  MyIPAddress:
    Type: String
  GitRepositoryUrl:
    Type: String
  GitTokenSecret:
    Type: String
    Default: ""
  InstanceTypeParameter:
    Type: String
    Default: t3.large
  JournalDeletionProtection:
    Type: String
    Default: "true"
  LambdaCodeBucket:
    Type: String
  LambdaCodeKey:
    Type: String
Conditions:
  ProtectJournal: !Equals [!Ref JournalDeletionProtection, "true"]
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: TFL-Notifications
  JournalTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: TFL-Journal
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - AttributeName: session
          AttributeType: S
      KeySchema:
        - AttributeName: session
          KeyType: HASH
      DeletionProtectionEnabled: !If [ProtectJournal, true, false]
Outputs:
  TopicArn:
    Value: !Ref Topic
  TokenSecret:
    Value: !Ref GitTokenSecret
"""
# Every parameter is given: moto cannot UsePreviousValue a parameter that kept its default (AWS can).
GIVEN = {
    "MyIPAddress": "1.2.3.4/32",
    "GitRepositoryUrl": "https://example.com/tfl.git",
    "GitTokenSecret": "",
    "InstanceTypeParameter": "t3.large",
}


def event(n: int, logical: str, rtype: str, status: str, reason: str = "", physical: str = "") -> dict[str, Any]:
    e: dict[str, Any] = {
        "EventId": f"sim-{n}",
        "StackName": "TFL-Rb",
        "LogicalResourceId": logical,
        "ResourceType": rtype,
        "ResourceStatus": status,
        "Timestamp": dt.datetime(2026, 12, 1, 12, 0, n, tzinfo=dt.UTC),
    }
    if reason:
        e["ResourceStatusReason"] = reason
    if physical:
        e["PhysicalResourceId"] = physical
    return e


# What a real rollback of the first create writes, oldest first: the server's signal timed out, the
# resources waiting on it were cancelled, the stack rolled back and kept what had a Retain policy.
ROLLBACK_EVENTS = [
    event(1, "TradingServer", "AWS::EC2::Instance", "CREATE_IN_PROGRESS"),
    event(2, "TradingServer", "AWS::EC2::Instance", "CREATE_FAILED", SIGNAL_REASON),
    event(3, "ElasticIPAssociation", "AWS::EC2::EIPAssociation", "CREATE_FAILED", "Resource creation cancelled"),
    event(
        4,
        "TFL-Rb",
        "AWS::CloudFormation::Stack",
        "ROLLBACK_IN_PROGRESS",
        "The following resource(s) failed to create: [TradingServer, ElasticIPAssociation].",
    ),
    event(5, "TradingServer", "AWS::EC2::Instance", "DELETE_COMPLETE"),
    event(6, "JournalTable", "AWS::DynamoDB::Table", "DELETE_SKIPPED", physical="TFL-Journal"),
    event(7, "TFLKey", "AWS::KMS::Key", "DELETE_SKIPPED", physical="1234abcd-12ab-34cd-56ef-1234567890ab"),
    event(8, "DataBucket", "AWS::S3::Bucket", "DELETE_SKIPPED", physical="tfl-rb-databucket-1a2b3c"),
    event(9, "TFL-Rb", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"),
]


class RolledBack:
    """A real moto CloudFormation client whose stack ``stack_id`` looks rolled back until it is deleted."""

    def __init__(self, real: Any, stack_id: str, events: list[dict[str, Any]]) -> None:
        self.real = real
        self.stack_id = stack_id
        self.events = events
        self.deleted = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _ours(self, name: str) -> bool:
        if self.deleted:
            return False
        stacks = self.real.describe_stacks(StackName=name)["Stacks"]
        return bool(stacks) and stacks[0]["StackId"] == self.stack_id

    def describe_stacks(self, **kw: Any) -> dict[str, Any]:
        out = self.real.describe_stacks(**kw)
        if self._ours(kw["StackName"]):
            out["Stacks"][0]["StackStatus"] = "ROLLBACK_COMPLETE"
        return dict(out)

    def describe_stack_events(self, **kw: Any) -> dict[str, Any]:
        out = self.real.describe_stack_events(**kw)
        if self._ours(kw["StackName"]):
            out["StackEvents"] = list(reversed(self.events)) + out["StackEvents"]  # newest first, like AWS
        return dict(out)

    def delete_stack(self, **kw: Any) -> Any:
        self.deleted = True
        return self.real.delete_stack(**kw)


@pytest.fixture(scope="module")
def bundle() -> Any:
    return build_bundle((REPO / "src" / "tfl" / "aws" / "nse_calendar.json").read_bytes())


def run_deploy(plan: DeployPlan, bundle: Any, cfn: Any, lines: list[str], **kw: Any) -> dict[str, str]:
    return deploy(
        plan,
        bundle,
        cfn=cfn,
        s3=boto3.client("s3", region_name=REGION),
        ec2=boto3.client("ec2", region_name=REGION),
        region=REGION,
        progress=lines.append,
        template_params=template_parameters(TEMPLATE),
        poll_seconds=0,
        ddb=boto3.client("dynamodb", region_name=REGION),
        **kw,
    )


def write_template(tmp_path: Path) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(TEMPLATE)
    return path


# --------------------------------------------------------------------------- reading the events


def test_the_first_real_failure_is_named_not_the_cancellations() -> None:
    failure = first_failure(ROLLBACK_EVENTS)
    assert failure is not None
    assert (failure.logical_id, failure.resource_type, failure.status) == (
        "TradingServer",
        "AWS::EC2::Instance",
        "CREATE_FAILED",
    )
    assert failure.reason == SIGNAL_REASON and "first boot" in failure.hint()
    # only cancellations and the stack's own failure: the stack's reason is what is left
    stack_only = [ROLLBACK_EVENTS[2], event(10, "S", "AWS::CloudFormation::Stack", "CREATE_FAILED", "Template error")]
    got = first_failure(stack_only)
    assert got is not None and got.logical_id == "S" and got.reason == "Template error"
    assert first_failure([ROLLBACK_EVENTS[0], ROLLBACK_EVENTS[-1]]) is None


def test_kept_resources_are_named_each_with_what_to_do() -> None:
    kept = kept_resources([*ROLLBACK_EVENTS, ROLLBACK_EVENTS[5]])  # a repeated event counts once
    assert [(k.logical_id, k.physical_id) for k in kept] == [
        ("JournalTable", "TFL-Journal"),
        ("TFLKey", "1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("DataBucket", "tfl-rb-databucket-1a2b3c"),
    ]
    table, key, bucket = (k.advice() for k in kept)
    assert "blocks a new stack" in table and "--no-deletion-protection-enabled" in table
    assert "tfl journal export dynamodb://TFL-Journal" in table
    assert "schedule-key-deletion --key-id 1234abcd" in key and "does not block" in key
    assert "does not block" in bucket
    lines = StackDiagnosis("TFL-Rb", "ROLLBACK_COMPLETE", first_failure(ROLLBACK_EVENTS), kept).lines()
    assert lines[1].startswith("the first failure: TradingServer (AWS::EC2::Instance) CREATE_FAILED: Failed")
    assert sum(line.startswith("kept: ") for line in lines) == 3


# --------------------------------------------------------------------------- recovery through moto


def test_a_rolled_back_first_create_is_explained_deleted_and_created_again(
    mocked_aws: None, bundle: Any, tmp_path: Path
) -> None:
    real = boto3.client("cloudformation", region_name=REGION)
    old_id = real.create_stack(
        StackName="TFL-Rb",
        TemplateBody=TEMPLATE,
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {
                **GIVEN,
                "LambdaCodeBucket": "b",
                "LambdaCodeKey": "k",
                "JournalDeletionProtection": "false",
            }.items()
        ],
    )["StackId"]
    # A real rollback has already deleted the table it created (RetainExceptOnCreate); moto deletes it
    # with the stack instead, which the deploy does before it checks for a kept table: same end state.
    cfn = RolledBack(real, old_id, ROLLBACK_EVENTS)
    lines: list[str] = []
    # nothing given again: the retry takes what the failed create was given
    plan = DeployPlan("TFL-Rb", write_template(tmp_path), "tfl-artifacts-test", {})
    out = run_deploy(plan, bundle, cfn, lines)
    assert lines[0] == "stack TFL-Rb is ROLLBACK_COMPLETE"
    assert f"the first failure: TradingServer (AWS::EC2::Instance) CREATE_FAILED: {SIGNAL_REASON}" in lines
    assert any(line.startswith("  what to do: the server's first boot") for line in lines)
    assert any(line.startswith("deleting the rolled-back stack TFL-Rb") for line in lines)
    order = [i for i, line in enumerate(lines) if "deleting the rolled-back" in line or "creating stack" in line]
    assert len(order) == 2 and order[0] < order[1]
    new = real.describe_stacks(StackName="TFL-Rb")["Stacks"][0]
    assert new["StackId"] != old_id and new["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    assert real.describe_stacks(StackName=old_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    assert out["TopicArn"].endswith(":TFL-Notifications")
    params = {p["ParameterKey"]: p["ParameterValue"] for p in new["Parameters"]}
    assert {k: params[k] for k in GIVEN} == GIVEN
    assert params["LambdaCodeKey"] == bundle.key and params["JournalDeletionProtection"] == "true"


def test_a_kept_journal_table_refuses_the_create_before_anything_is_uploaded(
    mocked_aws: None, bundle: Any, tmp_path: Path
) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    create_table(ddb, JOURNAL_TABLE)
    ddb.update_table(TableName=JOURNAL_TABLE, DeletionProtectionEnabled=True)
    plan = DeployPlan("TFL-Kept", write_template(tmp_path), "tfl-artifacts-test", dict(GIVEN))
    with pytest.raises(DeployError) as err:
        run_deploy(plan, bundle, boto3.client("cloudformation", region_name=REGION), [])
    message = str(err.value)
    assert message.startswith("table TFL-Journal exists (created ")
    assert "aws dynamodb update-table --table-name TFL-Journal --no-deletion-protection-enabled" in message
    assert "tfl journal export dynamodb://TFL-Journal" in message
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []
    assert boto3.client("cloudformation", region_name=REGION).describe_stacks()["Stacks"] == []


def test_a_create_that_rolls_back_says_why_in_one_line(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    real = boto3.client("cloudformation", region_name=REGION)

    class FailsOnCreate(RolledBack):
        def create_stack(self, **kw: Any) -> Any:
            out = self.real.create_stack(**kw)
            self.stack_id = out["StackId"]
            return out

    cfn = FailsOnCreate(real, "not-yet", ROLLBACK_EVENTS)
    lines: list[str] = []
    plan = DeployPlan("TFL-Rb", write_template(tmp_path), "tfl-artifacts-test", dict(GIVEN))
    with pytest.raises(DeployError) as err:
        run_deploy(plan, bundle, cfn, lines)
    assert str(err.value) == (
        f"stack TFL-Rb ended ROLLBACK_COMPLETE (TradingServer: {SIGNAL_REASON}). "
        "Fix the cause and run tfl deploy again: it replaces the rolled-back stack."
    )
    assert "kept: JournalTable: table TFL-Journal keeps its items" in "\n".join(lines)
    assert "\n" not in str(err.value)


def test_the_journal_is_created_unprotected_then_protected(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    seen: dict[str, bool] = {}
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("turning on the deletion protection"):  # between the create and the update
            seen["during"] = ddb.describe_table(TableName=JOURNAL_TABLE)["Table"]["DeletionProtectionEnabled"]

    cfn = boto3.client("cloudformation", region_name=REGION)
    plan = DeployPlan("TFL-Prot", write_template(tmp_path), "tfl-artifacts-test", dict(GIVEN))
    deploy(
        plan,
        bundle,
        cfn=cfn,
        s3=boto3.client("s3", region_name=REGION),
        ec2=None,
        region=REGION,
        progress=progress,
        template_params=template_parameters(TEMPLATE),
        poll_seconds=0,
        ddb=ddb,
    )
    assert seen == {"during": False}  # a rollback of the create could have deleted it
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName="TFL-Prot")["Stacks"][0]["Parameters"]
    }
    assert params["JournalDeletionProtection"] == "true"
    assert params["MyIPAddress"] == GIVEN["MyIPAddress"]  # the second update kept every other value
    # (moto does not apply a table property change on a stack update: the parameter is what is checked)
    # a later deploy leaves it on and does not repeat the second update
    lines.clear()
    deploy(
        DeployPlan("TFL-Prot", plan.template, "tfl-artifacts-test", {}),
        bundle,
        cfn=cfn,
        s3=boto3.client("s3", region_name=REGION),
        ec2=None,
        region=REGION,
        progress=lines.append,
        template_params=template_parameters(TEMPLATE),
        poll_seconds=0,
        ddb=ddb,
    )
    assert not any("deletion protection" in line for line in lines)


# --------------------------------------------------------------------------- Graviton


@pytest.mark.parametrize(
    ("instance_type", "arch"),
    [
        ("t4g.small", "arm64"),
        ("t4g.medium", "arm64"),
        ("m7g.large", "arm64"),
        ("c7gn.xlarge", "arm64"),
        ("m6gd.large", "arm64"),
        ("t3.large", "x86_64"),
        ("t3a.small", "x86_64"),
        ("m6i.large", "x86_64"),
        ("m7i-flex.large", "x86_64"),
    ],
)
def test_architecture_of_an_instance_type(instance_type: str, arch: str) -> None:
    assert architecture(instance_type) == arch


def test_moving_between_x86_and_graviton_needs_refresh_ami() -> None:
    stack = {"Parameters": [{"ParameterKey": "InstanceTypeParameter", "ParameterValue": "t3.large"}]}
    with pytest.raises(DeployError, match=r"t4g\.small is arm64 but the server \(t3\.large\) runs an x86_64 image"):
        check_architecture(stack, {"InstanceTypeParameter": "t4g.small"}, refresh_ami=False)
    check_architecture(stack, {"InstanceTypeParameter": "t4g.small"}, refresh_ami=True)
    check_architecture(stack, {"InstanceTypeParameter": "t3.medium"}, refresh_ami=False)  # same architecture
    check_architecture(None, {"InstanceTypeParameter": "t4g.small"}, refresh_ami=False)  # a create picks its image


# --------------------------------------------------------------------------- private repository


def test_the_git_token_is_stored_then_replaced_in_secrets_manager(mocked_aws: None, tmp_path: Path) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    first = store_token(sm, "github_pat_11AAAA")
    assert first.secret_name == GIT_TOKEN_SECRET and first.created
    assert json.loads(sm.get_secret_value(SecretId=GIT_TOKEN_SECRET)["SecretString"]) == {
        "username": "x-access-token",
        "token": "github_pat_11AAAA",
    }
    again = store_token(sm, "glpat-BBBB", user="gitlab+deploy-token-7")
    assert not again.created
    assert json.loads(sm.get_secret_value(SecretId=GIT_TOKEN_SECRET)["SecretString"])["token"] == "glpat-BBBB"
    with pytest.raises(GitTokenError, match="must be one word"):
        store_token(sm, "t", user="two words")


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("  \n", "is empty"), ("tokA tokB\n", "one token on one line"), ("tokA\ntokB\n", "one token")],
)
def test_a_bad_token_file_is_refused_without_echoing_it(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(GitTokenError, match=message) as err:
        read_token(path)
    assert "tokA" not in str(err.value) and "tokB" not in str(err.value)
    with pytest.raises(GitTokenError, match="cannot read"):
        read_token(tmp_path / "missing")
    good = tmp_path / "good"
    good.write_text("ghp_secretvalue\n")
    assert read_token(good) == "ghp_secretvalue"


def test_tfl_deploy_with_a_git_token_file(
    mocked_aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    token = tmp_path / "token"
    token.write_text("github_pat_SECRETSECRET\n")
    args = ["deploy", "--template", str(write_template(tmp_path)), "--stack-name", "TFL-Git", "--force"]
    rc = main([*args, "--my-ip", "103.55.21.11", "--git-url", "https://github.com/me/private-tfl.git",
               "--instance-type", "t3.large", "--git-token-file", str(token)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"git token stored in the new secret {GIT_TOKEN_SECRET}" in captured.out
    sm = boto3.client("secretsmanager", region_name=REGION)
    assert json.loads(sm.get_secret_value(SecretId=GIT_TOKEN_SECRET)["SecretString"])["token"] == (
        "github_pat_SECRETSECRET"
    )
    cfn = boto3.client("cloudformation", region_name=REGION)
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName="TFL-Git")["Stacks"][0]["Parameters"]
    }
    assert params["GitTokenSecret"] == GIT_TOKEN_SECRET  # the name goes to the stack, never the token
    everything = captured.out + captured.err + caplog.text + json.dumps(params)
    assert "SECRETSECRET" not in everything
    # a token file that does not exist: one line, exit 2, nothing stored
    rc = main([*args, "--git-token-file", str(tmp_path / "nope")])
    assert rc == 2 and "cannot read the git token file" in capsys.readouterr().err


def test_tfl_deploy_passes_the_disk_size(mocked_aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = write_template(tmp_path)
    text = template.read_text()
    template.write_text(
        text.replace("  LambdaCodeBucket:", "  RootVolumeSize:\n    Type: Number\n    Default: 20\n  LambdaCodeBucket:")
    )
    token = tmp_path / "token"  # every parameter given: moto cannot reuse a default (see GIVEN)
    token.write_text("github_pat_X\n")
    args = [
        "deploy",
        "--template",
        str(template),
        "--stack-name",
        "TFL-Disk",
        "--force",
        "--git-token-file",
        str(token),
    ]
    rc = main(
        [
            *args,
            "--my-ip",
            "103.55.21.11",
            "--git-url",
            "https://github.com/me/tfl.git",
            "--root-volume-gb",
            "10",
            "--instance-type",
            "t3.large",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    cfn = boto3.client("cloudformation", region_name=REGION)
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName="TFL-Disk")["Stacks"][0]["Parameters"]
    }
    assert params["RootVolumeSize"] == "10"
    with pytest.raises(SystemExit) as refused:  # below the floor: refused before AWS is asked
        main([*args, "--root-volume-gb", "8"])
    assert refused.value.code == 2 and "8: expected 10..200 GiB" in capsys.readouterr().err


def test_an_update_mends_a_protection_step_that_never_ran(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    """A first create whose second (protection) update was refused or interrupted leaves the
    parameter at "false": the next deploy, an update, turns it on."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    kw: dict[str, Any] = {
        "cfn": cfn, "s3": s3, "ec2": None, "region": REGION, "progress": lambda line: None,
        "template_params": template_parameters(TEMPLATE), "poll_seconds": 0,
    }  # fmt: skip
    unprotected = {**GIVEN, "JournalDeletionProtection": "false"}  # what the create leaves when the step fails
    deploy(DeployPlan("TFL-Mend", write_template(tmp_path), "tfl-artifacts-test", unprotected), bundle, **kw)

    def protection() -> str:
        stack = cfn.describe_stacks(StackName="TFL-Mend")["Stacks"][0]
        return next(
            p["ParameterValue"] for p in stack["Parameters"] if p["ParameterKey"] == "JournalDeletionProtection"
        )

    assert protection() == "false"
    deploy(DeployPlan("TFL-Mend", write_template(tmp_path), "tfl-artifacts-test", dict(GIVEN)), bundle, **kw)
    assert protection() == "true"
