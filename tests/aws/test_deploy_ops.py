"""`tfl deploy`, `tfl ssh-allow` and the Lambda bundle, against moto through real boto3 clients.

moto cannot create the full stack (it has no AWS::Lambda::Url), so the deploy mechanics run
on a small template with the same parameter names; the real template is checked by
cfn-lint, checkov and tests/aws/test_template.py.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from tfl.aws.deploy import (
    DeployError,
    DeployPlan,
    deploy,
    stack_parameters,
    template_parameters,
    wait_for_stack,
)
from tfl.aws.package import CALENDAR_ENTRY, HANDLERS, build_bundle
from tfl.aws.ssh_access import allow_ssh_from, find_group, normalise_cidr, update_stack_ip
from tfl.cli.main import main

REGION = "ap-south-1"
REPO = Path(__file__).resolve().parents[2]
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))

MINI_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  MyIPAddress:
    Type: String
  GitRepositoryUrl:
    Type: String
  TradingMode:
    Type: String
    Default: paper
  LambdaCodeBucket:
    Type: String
  LambdaCodeKey:
    Type: String
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: TFL-Notifications
  Data:
    Type: AWS::S3::Bucket
  SG:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupName: TFL-SG
      GroupDescription: TFL trading server
      SecurityGroupIngress:
        - IpProtocol: tcp
          FromPort: 22
          ToPort: 22
          CidrIp: !Ref MyIPAddress
          Description: SSH from the operator
Outputs:
  TopicArn:
    Value: !Ref Topic
  DataBucket:
    Value: !Ref Data
  SecurityGroupId:
    Value: !GetAtt SG.GroupId
  Mode:
    Value: !Ref TradingMode
  CodeKey:
    Value: !Ref LambdaCodeKey
"""


@pytest.fixture(scope="module")
def calendar_json() -> bytes:
    return (REPO / "src" / "tfl" / "aws" / "nse_calendar.json").read_bytes()


@pytest.fixture(scope="module")
def bundle(calendar_json: bytes) -> Any:
    return build_bundle(calendar_json)


# --------------------------------------------------------------------------- the bundle


def test_the_bundle_is_reproducible_and_holds_only_light_modules(bundle: Any, calendar_json: bytes) -> None:
    again = build_bundle(calendar_json)
    assert again.sha256 == bundle.sha256 and again.data == bundle.data
    assert bundle.key == f"lambda/tfl-{bundle.sha256[:16]}.zip"
    names = set(bundle.files)
    for handler in HANDLERS:
        assert handler.replace(".", "/") + ".py" in names
    assert CALENDAR_ENTRY in names and "tfl/__init__.py" in names
    # nothing that needs NumPy/pandas is inside
    assert not {"tfl/data/market.py", "tfl/backtest/simulator.py", "tfl/fyers/rest.py"} & names


def test_the_handlers_run_from_the_bundle_alone(bundle: Any, tmp_path: Path) -> None:
    with zipfile.ZipFile(__import__("io").BytesIO(bundle.data)) as zf:
        zf.extractall(tmp_path)
    probe = f"""
import importlib, importlib.abc, sys, datetime as dt
sys.path.insert(0, {str(tmp_path)!r})
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "pandas", "pyarrow", "requests", "pandas_market_calendars"):
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
for mod in {list(HANDLERS)!r}:
    m = importlib.import_module(mod)
    assert m.__file__.startswith({str(tmp_path)!r}), m.__file__
    assert callable(m.handler)
from tfl.aws.calendar_table import load_table
print(load_table().session(dt.date(2024, 1, 20)) is not None, load_table().session(dt.date(2024, 1, 26)) is None)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]  # the special Saturday and Republic Day, from the zip's table


# --------------------------------------------------------------------------- deploy


def test_template_parameters_are_read_locally() -> None:
    params = template_parameters((REPO / "infra" / "tfl-infrastructure.yaml").read_text())
    assert {"InstanceTypeParameter", "MyIPAddress", "SSHKeyName", "LambdaCodeBucket", "LambdaCodeKey"} <= set(params)
    assert params["InstanceTypeParameter"]["Default"] == "t3.large"
    with pytest.raises(DeployError, match="Parameters"):
        template_parameters("Resources: {}\n")


def test_parameters_on_create_and_update() -> None:
    tp = {"MyIPAddress": {}, "GitRepositoryUrl": {}, "TradingMode": {"Default": "paper"}}
    with pytest.raises(DeployError, match="MyIPAddress"):
        stack_parameters(tp, {"GitRepositoryUrl": "https://x/y.git"}, update=False)
    with pytest.raises(DeployError, match="Nope"):
        stack_parameters(tp, {"Nope": "1"}, update=True)
    created = stack_parameters(tp, {"MyIPAddress": "1.2.3.4/32", "GitRepositoryUrl": "u"}, update=False)
    assert {p["ParameterKey"] for p in created} == {"MyIPAddress", "GitRepositoryUrl"}  # defaults stay defaults
    updated = stack_parameters(tp, {"TradingMode": "live"}, update=True)
    assert {"ParameterKey": "MyIPAddress", "UsePreviousValue": True} in updated
    assert {"ParameterKey": "TradingMode", "ParameterValue": "live"} in updated


def test_deploy_creates_then_updates_the_stack(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    template = tmp_path / "mini.yaml"
    template.write_text(MINI_TEMPLATE)
    universe = tmp_path / "universe.csv"
    universe.write_text("Symbol\nSBIN\nTCS\n")
    cfn = boto3.client("cloudformation", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    lines: list[str] = []
    plan = DeployPlan(
        "TFL-Test",
        template,
        "tfl-artifacts-test",
        {"MyIPAddress": "1.2.3.4/32", "GitRepositoryUrl": "https://example.com/tfl.git"},
        universe,
    )
    tp = template_parameters(MINI_TEMPLATE)
    out = deploy(plan, bundle, cfn=cfn, s3=s3, region=REGION, progress=lines.append, template_params=tp, poll_seconds=0)
    assert out["CodeKey"] == bundle.key and out["Mode"] == "paper"
    assert s3.get_object(Bucket="tfl-artifacts-test", Key=bundle.key)["Body"].read() == bundle.data
    assert s3.get_object(Bucket=out["DataBucket"], Key="config/universe.csv")["Body"].read() == universe.read_bytes()
    assert any("creating stack" in line for line in lines)
    assert s3.get_bucket_versioning(Bucket="tfl-artifacts-test")["Status"] == "Enabled"
    # a redeploy with only the mode changed keeps the operator's IP
    lines.clear()
    plan2 = DeployPlan("TFL-Test", template, "tfl-artifacts-test", {"TradingMode": "live"})
    out2 = deploy(
        plan2, bundle, cfn=cfn, s3=s3, region=REGION, progress=lines.append, template_params=tp, poll_seconds=0
    )
    assert out2["Mode"] == "live"
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName="TFL-Test")["Stacks"][0]["Parameters"]
    }
    assert params["MyIPAddress"] == "1.2.3.4/32"
    assert any("already uploaded" in line for line in lines)


def test_a_stack_that_failed_to_create_must_be_deleted_first(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    class FailedCfn:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
            return {"Stacks": [{"StackStatus": "ROLLBACK_COMPLETE"}]}

    template = tmp_path / "mini.yaml"
    template.write_text(MINI_TEMPLATE)
    s3 = boto3.client("s3", region_name=REGION)
    plan = DeployPlan("TFL-Test", template, "tfl-artifacts-test", {"MyIPAddress": "1.2.3.4/32"})
    with pytest.raises(DeployError, match="delete it"):
        deploy(
            plan,
            bundle,
            cfn=FailedCfn(),
            s3=s3,
            region=REGION,
            progress=lambda _: None,
            template_params=template_parameters(MINI_TEMPLATE),
        )


def test_waiting_prints_new_events_and_times_out() -> None:
    class SlowCfn:
        def __init__(self) -> None:
            self.calls = 0

        def describe_stack_events(self, StackName: str) -> dict[str, Any]:  # noqa: N803
            self.calls += 1
            events = [
                {"EventId": f"e{i}", "LogicalResourceId": f"R{i}", "ResourceStatus": "CREATE_IN_PROGRESS"}
                for i in range(self.calls)
            ]
            return {"StackEvents": list(reversed(events))}

        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
            return {"Stacks": [{"StackStatus": "CREATE_IN_PROGRESS" if self.calls < 4 else "CREATE_COMPLETE"}]}

    lines: list[str] = []
    assert wait_for_stack(SlowCfn(), "s", lines.append, poll_seconds=0, sleep=lambda s: None) == "CREATE_COMPLETE"
    assert [line.split()[0] for line in lines] == ["R1", "R2", "R3"]  # e0 predates this deployment
    t = [0.0]

    def clock() -> float:
        t[0] += 100.0
        return t[0]

    class Stuck(SlowCfn):
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
            return {"Stacks": [{"StackStatus": "UPDATE_IN_PROGRESS"}]}

    with pytest.raises(DeployError, match="still UPDATE_IN_PROGRESS"):
        wait_for_stack(
            Stuck(), "s", lines.append, poll_seconds=0, timeout_seconds=250, sleep=lambda s: None, clock=clock
        )


def test_tfl_deploy_command_end_to_end(mocked_aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = tmp_path / "mini.yaml"
    template.write_text(MINI_TEMPLATE)
    rc = main(
        [
            "deploy",
            "--template",
            str(template),
            "--stack-name",
            "TFL-Cli",
            "--my-ip",
            "103.55.21.11",
            "--git-url",
            "https://example.com/tfl.git",
            "--force",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "TopicArn" in out and "lambda/tfl-" in out
    params = boto3.client("cloudformation", region_name=REGION).describe_stacks(StackName="TFL-Cli")["Stacks"][0]
    assert {"ParameterKey": "MyIPAddress", "ParameterValue": "103.55.21.11/32"} in params["Parameters"]
    # a bad IP is refused before anything is uploaded
    rc = main(["deploy", "--template", str(template), "--stack-name", "TFL-Cli", "--my-ip", "300.1.1.1", "--force"])
    assert rc == 2 and "not an IPv4" in capsys.readouterr().err


def test_deploy_refuses_market_hours_unless_forced() -> None:
    from tfl.cli.aws_cmds import _guard_market_hours

    session_morning = dt.datetime(2024, 5, 16, 10, 0, tzinfo=IST)
    with pytest.raises(ValueError, match="trading day"):
        _guard_market_hours(session_morning, force=False)
    _guard_market_hours(session_morning, force=True)
    _guard_market_hours(dt.datetime(2024, 5, 16, 16, 0, tzinfo=IST), force=False)  # after the close
    _guard_market_hours(dt.datetime(2024, 1, 26, 10, 0, tzinfo=IST), force=False)  # Republic Day


# --------------------------------------------------------------------------- ssh-allow


def test_cidr_normalisation() -> None:
    assert normalise_cidr("103.55.21.11") == "103.55.21.11/32"
    assert normalise_cidr("103.55.21.0/24") == "103.55.21.0/24"
    for bad in ("103.55.21.11/8", "0.0.0.0/0", "::1", "hello", "103.55.21.11/33"):
        with pytest.raises(ValueError):
            normalise_cidr(bad)


def test_ssh_allow_direct_replaces_every_ssh_rule(mocked_aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    sg = ec2.create_security_group(GroupName="TFL-SG", Description="t", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "1.1.1.1/32"}, {"CidrIp": "2.2.2.2/32"}],
            },
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]},
        ],
    )
    assert find_group(ec2, None) == sg
    removed = allow_ssh_from(ec2, sg, "103.55.21.11/32")
    assert sorted(removed) == ["1.1.1.1/32", "2.2.2.2/32"]
    perms = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
    ssh = [p for p in perms if p["FromPort"] == 22]
    assert [r["CidrIp"] for p in ssh for r in p["IpRanges"]] == ["103.55.21.11/32"]
    assert ssh[0]["IpRanges"][0]["Description"]
    assert any(p["FromPort"] == 443 for p in perms)  # other rules untouched


def test_ssh_allow_updates_the_stack_parameter(
    mocked_aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName="TFL-Ssh",
        TemplateBody=MINI_TEMPLATE,
        Parameters=[
            {"ParameterKey": "MyIPAddress", "ParameterValue": "1.1.1.1/32"},
            {"ParameterKey": "GitRepositoryUrl", "ParameterValue": "u"},
            {"ParameterKey": "LambdaCodeBucket", "ParameterValue": "b"},
            {"ParameterKey": "LambdaCodeKey", "ParameterValue": "k"},
            {"ParameterKey": "TradingMode", "ParameterValue": "paper"},  # moto: no UsePreviousValue for defaults
        ],
    )
    rc = main(["ssh-allow", "--ip", "103.55.21.11", "--stack-name", "TFL-Ssh", "--poll-seconds", "0"])
    assert rc == 0, capsys.readouterr()
    stack = cfn.describe_stacks(StackName="TFL-Ssh")["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["MyIPAddress"] == "103.55.21.11/32" and params["GitRepositoryUrl"] == "u"
    ec2 = boto3.client("ec2", region_name=REGION)
    sg = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["SecurityGroupId"]
    perms = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
    assert [r["CidrIp"] for p in perms if p["FromPort"] == 22 for r in p["IpRanges"]] == ["103.55.21.11/32"]
    with pytest.raises(ValueError, match="MyIPAddress"):
        cfn.create_stack(StackName="Other", TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}))
        update_stack_ip(cfn, "Other", "1.2.3.4/32")
