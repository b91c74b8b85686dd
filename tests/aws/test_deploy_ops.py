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
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from tfl.aws.calendar_table import CalendarTable, load_table
from tfl.aws.deploy import (
    TERMINAL_BAD,
    DeployError,
    DeployPlan,
    check_updatable,
    deploy,
    latest_event_id,
    stack_parameters,
    template_parameters,
    wait_for_stack,
)
from tfl.aws.package import CALENDAR_ENTRY, HANDLERS, PackageError, build_bundle, lambda_modules
from tfl.aws.ssh_access import (
    allow_ssh_from,
    change_stack_ip,
    find_group,
    ip_parameters,
    normalise_cidr,
    unsafe_changes,
)
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
    Properties: {}  # moto adds it, then takes a template without it for a change
  TraderSecurityGroup:
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
    Value: !GetAtt TraderSecurityGroup.GroupId
  Mode:
    Value: !Ref TradingMode
  CodeKey:
    Value: !Ref LambdaCodeKey
"""

# The AMI pin as the real template has it, on the resources moto can update: LatestAmiId is a plain
# String here (moto cannot re-resolve an SSM-typed parameter on update) and the pin is only echoed.
PINNED_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  MyIPAddress:
    Type: String
  GitRepositoryUrl:
    Type: String
  LatestAmiId:
    Type: String
  PinnedAmiId:
    Type: String
    Default: ""
  LambdaCodeBucket:
    Type: String
  LambdaCodeKey:
    Type: String
Resources:
  TraderSecurityGroup:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupName: TFL-SG
      GroupDescription: TFL trading server
      SecurityGroupIngress:
        - IpProtocol: tcp
          FromPort: 22
          ToPort: 22
          CidrIp: !Ref MyIPAddress
  TradingServer:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: !Ref LatestAmiId
      InstanceType: t3.large
Outputs:
  InstanceId:
    Value: !Ref TradingServer
  Pin:
    Value: !Ref PinnedAmiId
"""


def _params(cfn: Any, stack: str) -> dict[str, str]:
    got = cfn.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]
    return {p["ParameterKey"]: p["ParameterValue"] for p in got}


def _image(ec2: Any, cfn: Any, stack: str) -> tuple[str, str]:
    iid = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="TradingServer")["StackResourceDetail"][
        "PhysicalResourceId"
    ]
    return iid, ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["ImageId"]


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


def test_a_handler_importing_anything_the_runtime_lacks_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tfl_probe_yaml.py").write_text("import yaml\n")  # light, but not in the Lambda runtime
    (tmp_path / "tfl_probe_guarded.py").write_text("try:\n    import yaml\nexcept ImportError:\n    yaml = None\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(PackageError, match="handler tfl_probe_yaml imports yaml, which the Lambda runtime"):
        lambda_modules(("tfl.aws.lambdas.ops", "tfl_probe_yaml"))
    with pytest.raises(PackageError, match=r"handler tfl\.fyers\.auth imports requests"):
        lambda_modules(("tfl.fyers.auth",))
    lambda_modules(("tfl_probe_guarded",))  # an optional import fails the same way in the Lambda: allowed


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
    with pytest.raises(DeployError, match="first deploy needs MyIPAddress"):
        stack_parameters(tp, {"GitRepositoryUrl": "https://x/y.git"}, None)
    with pytest.raises(DeployError, match="Nope"):
        stack_parameters(tp, {"Nope": "1"}, ["MyIPAddress"])
    created = stack_parameters(tp, {"MyIPAddress": "1.2.3.4/32", "GitRepositoryUrl": "u"}, None)
    assert {p["ParameterKey"] for p in created} == {"MyIPAddress", "GitRepositoryUrl"}  # defaults stay defaults
    updated = stack_parameters(tp, {"TradingMode": "live"}, ["MyIPAddress", "GitRepositoryUrl", "TradingMode"])
    assert {"ParameterKey": "MyIPAddress", "UsePreviousValue": True} in updated
    assert {"ParameterKey": "TradingMode", "ParameterValue": "live"} in updated


def test_an_update_keeps_only_parameters_the_stack_has() -> None:
    tp = {"MyIPAddress": {}, "AlertEmail": {"Default": ""}, "NewRequired": {}}
    with pytest.raises(DeployError, match="without a default: NewRequired"):
        stack_parameters(tp, {}, ["MyIPAddress"])
    got = stack_parameters(tp, {"NewRequired": "x"}, ["MyIPAddress", "Dropped"])
    # AlertEmail is new: its template default, not UsePreviousValue (CloudFormation rejects that)
    assert got == [
        {"ParameterKey": "MyIPAddress", "UsePreviousValue": True},
        {"ParameterKey": "NewRequired", "ParameterValue": "x"},
    ]


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
    ec2 = boto3.client("ec2", region_name=REGION)
    out = deploy(
        plan, bundle, cfn=cfn, s3=s3, ec2=ec2, region=REGION, progress=lines.append, template_params=tp, poll_seconds=0
    )
    assert out["CodeKey"] == bundle.key and out["Mode"] == "paper"
    assert s3.get_object(Bucket="tfl-artifacts-test", Key=bundle.key)["Body"].read() == bundle.data
    assert s3.get_object(Bucket=out["DataBucket"], Key="config/universe.csv")["Body"].read() == universe.read_bytes()
    assert any("creating stack" in line for line in lines)
    assert s3.get_bucket_versioning(Bucket="tfl-artifacts-test")["Status"] == "Enabled"
    # a redeploy with only the mode changed keeps the operator's IP
    lines.clear()
    plan2 = DeployPlan("TFL-Test", template, "tfl-artifacts-test", {"TradingMode": "live"})
    out2 = deploy(
        plan2, bundle, cfn=cfn, s3=s3, ec2=ec2, region=REGION, progress=lines.append, template_params=tp, poll_seconds=0
    )
    assert out2["Mode"] == "live"
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName="TFL-Test")["Stacks"][0]["Parameters"]
    }
    assert params["MyIPAddress"] == "1.2.3.4/32"
    assert any("already uploaded" in line for line in lines)


def test_a_stack_that_failed_to_roll_back_must_be_deleted_first(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    # (a ROLLBACK_COMPLETE stack is replaced by itself: tests/aws/test_deploy_recovery.py)
    class FailedCfn:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
            return {"Stacks": [{"StackStatus": "ROLLBACK_FAILED"}]}

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
            ec2=None,
            region=REGION,
            progress=lambda _: None,
            template_params=template_parameters(MINI_TEMPLATE),
        )
    assert s3.list_buckets()["Buckets"] == []  # refused before anything was uploaded


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
    cfn = SlowCfn()
    cfn.calls = 1  # e0 existed before the operation; e1, its first event, is already there at the first poll
    status = wait_for_stack(cfn, "s", lines.append, since="e0", poll_seconds=0, sleep=lambda s: None)
    assert status == "CREATE_COMPLETE"
    assert [line.split()[0] for line in lines] == ["R1", "R2", "R3"]
    t = [0.0]

    def clock() -> float:
        t[0] += 100.0
        return t[0]

    class Stuck(SlowCfn):
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
            return {"Stacks": [{"StackStatus": "UPDATE_IN_PROGRESS"}]}

    with pytest.raises(DeployError, match="still UPDATE_IN_PROGRESS"):
        wait_for_stack(
            Stuck(),
            "s",
            lines.append,
            since=None,
            poll_seconds=0,
            timeout_seconds=250,
            sleep=lambda s: None,
            clock=clock,
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


def test_deploy_refuses_from_the_morning_start_to_the_evening_stop_unless_forced() -> None:
    from tfl.cli.aws_cmds import _guard_market_hours

    table = load_table()
    session_morning = dt.datetime(2024, 5, 16, 10, 0, tzinfo=IST)
    with pytest.raises(ValueError, match="trading day"):
        _guard_market_hours(session_morning, False, table)
    _guard_market_hours(session_morning, True, table)
    for hhmm in ((8, 30), (15, 50), (16, 30), (16, 59)):  # boot, end-of-day job, until the 17:00 stop
        with pytest.raises(ValueError, match="after 17:00"):
            _guard_market_hours(dt.datetime(2024, 5, 16, *hhmm, tzinfo=IST), False, table)
    _guard_market_hours(dt.datetime(2024, 5, 16, 17, 0, tzinfo=IST), False, table)  # the server is stopping
    _guard_market_hours(dt.datetime(2024, 5, 16, 8, 29, tzinfo=IST), False, table)
    _guard_market_hours(dt.datetime(2024, 1, 26, 10, 0, tzinfo=IST), False, table)  # Republic Day


def test_the_guard_fails_closed_past_the_calendar_table() -> None:
    from tfl.cli.aws_cmds import _guard_market_hours

    old = CalendarTable(2020, 2020, [], {})
    with pytest.raises(ValueError, match="does not cover"):
        _guard_market_hours(dt.datetime(2031, 3, 5, 10, 0, tzinfo=IST), False, old)  # a Wednesday
    _guard_market_hours(dt.datetime(2031, 3, 8, 10, 0, tzinfo=IST), False, old)  # a Saturday
    _guard_market_hours(dt.datetime(2031, 3, 5, 10, 0, tzinfo=IST), True, old)


def test_deploy_guards_with_the_table_it_ships(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guard reads the freshly generated table; a stale checked-in one must not decide."""
    import tfl.aws.calendar_table as ct
    from tfl.cli.aws_cmds import fresh_calendar

    today = dt.datetime.now(IST).date()
    holiday = {**ct.CalendarTable(today.year, today.year, [], {}).to_dict(), "closed": [today.isoformat()]}
    monkeypatch.setattr(ct, "generate_table", lambda: holiday)
    table, data = fresh_calendar()
    assert data == holiday and table.session(today) is None
    template = tmp_path / "mini.yaml"
    template.write_text(MINI_TEMPLATE)

    def broken() -> dict[str, Any]:
        raise ImportError("pandas_market_calendars")

    monkeypatch.setattr(ct, "generate_table", broken)
    table, data = fresh_calendar()
    assert data is None and table.last_year == load_table().last_year  # the packaged fallback
    rc = main(["deploy", "--template", str(template), "--stack-name", "X", "--my-ip", "1.2.3.4", "--force"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot generate the NSE calendar table" in err and "freshly generated" in err
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []  # nothing was uploaded


def _deploy(plan: DeployPlan, bundle: Any, lines: list[str], template: str) -> dict[str, str]:
    return deploy(
        plan,
        bundle,
        cfn=boto3.client("cloudformation", region_name=REGION),
        s3=boto3.client("s3", region_name=REGION),
        ec2=boto3.client("ec2", region_name=REGION),
        region=REGION,
        progress=lines.append,
        template_params=template_parameters(template),
        poll_seconds=0,
    )


def test_an_update_pins_the_running_image_unless_refreshed(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    template = tmp_path / "pinned.yaml"
    template.write_text(PINNED_TEMPLATE)
    cfn = boto3.client("cloudformation", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    first = ec2.describe_images()["Images"][0]["ImageId"]
    base = {"MyIPAddress": "1.2.3.4/32", "GitRepositoryUrl": "u", "LatestAmiId": first}
    lines: list[str] = []
    _deploy(DeployPlan("TFL-Pin", template, "tfl-artifacts-test", base), bundle, lines, PINNED_TEMPLATE)
    assert _params(cfn, "TFL-Pin")["PinnedAmiId"] == ""  # a create resolves the latest image
    instance = _image(ec2, cfn, "TFL-Pin")
    assert instance[1] == first
    # a routine redeploy keeps the server on its own image, whatever LatestAmiId resolves to by then
    # (moto cannot re-resolve an SSM parameter on update: the value sent is what is checked)
    lines.clear()
    _deploy(DeployPlan("TFL-Pin", template, "tfl-artifacts-test", {}), bundle, lines, PINNED_TEMPLATE)
    assert _params(cfn, "TFL-Pin")["PinnedAmiId"] == first
    assert any(f"stays on its image {first}" in line for line in lines)
    assert _image(ec2, cfn, "TFL-Pin") == instance
    lines.clear()
    plan = DeployPlan("TFL-Pin", template, "tfl-artifacts-test", {}, refresh_ami=True)
    _deploy(plan, bundle, lines, PINNED_TEMPLATE)
    assert _params(cfn, "TFL-Pin")["PinnedAmiId"] == ""
    assert any("REPLACED" in line for line in lines)


def test_a_new_template_parameter_gets_its_default_on_update(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    template = tmp_path / "mini.yaml"
    template.write_text(MINI_TEMPLATE)
    lines: list[str] = []
    given = {"MyIPAddress": "1.2.3.4/32", "GitRepositoryUrl": "u", "TradingMode": "paper"}  # moto: see _create_mini
    _deploy(DeployPlan("TFL-New", template, "tfl-artifacts-test", given), bundle, lines, MINI_TEMPLATE)
    newer = MINI_TEMPLATE.replace("Parameters:\n", "Parameters:\n  AlertEmail:\n    Type: String\n    Default: ''\n")
    template.write_text(newer)
    _deploy(DeployPlan("TFL-New", template, "tfl-artifacts-test", {}), bundle, lines, newer)
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert _params(cfn, "TFL-New")["AlertEmail"] == "" and _params(cfn, "TFL-New")["MyIPAddress"] == "1.2.3.4/32"


def test_the_universe_is_uploaded_even_when_the_stack_has_no_changes(
    mocked_aws: None, bundle: Any, tmp_path: Path
) -> None:
    template = tmp_path / "mini.yaml"
    template.write_text(MINI_TEMPLATE)
    given = {"MyIPAddress": "1.2.3.4/32", "GitRepositoryUrl": "u"}
    lines: list[str] = []
    out = _deploy(DeployPlan("TFL-U", template, "tfl-artifacts-test", given), bundle, lines, MINI_TEMPLATE)
    universe = tmp_path / "universe.csv"
    universe.write_text("Symbol\nSBIN\n")
    lines.clear()
    _deploy(DeployPlan("TFL-U", template, "tfl-artifacts-test", given, universe), bundle, lines, MINI_TEMPLATE)
    assert any("no changes" in line for line in lines)
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.get_object(Bucket=out["DataBucket"], Key="config/universe.csv")["Body"].read() == b"Symbol\nSBIN\n"


def test_an_update_prints_its_own_events_from_the_first(mocked_aws: None, bundle: Any, tmp_path: Path) -> None:
    template = tmp_path / "mini.yaml"
    template.write_text(MINI_TEMPLATE)
    lines: list[str] = []
    given = {"MyIPAddress": "1.2.3.4/32", "GitRepositoryUrl": "u"}
    _deploy(DeployPlan("TFL-Ev", template, "tfl-artifacts-test", given), bundle, lines, MINI_TEMPLATE)
    assert [line.split() for line in lines if line.startswith("TFL-Ev ")] == [
        ["TFL-Ev", "CREATE_IN_PROGRESS", "(User", "Initiated)"],
        ["TFL-Ev", "CREATE_COMPLETE"],
    ]
    lines.clear()
    plan = DeployPlan("TFL-Ev", template, "tfl-artifacts-test", {"TradingMode": "live"})
    _deploy(plan, bundle, lines, MINI_TEMPLATE)
    assert [line.split()[1] for line in lines if line.startswith("TFL-Ev ")] == [
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE",
    ]
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert latest_event_id(cfn, "nope") is None


def test_waiting_stops_at_an_import_rollback(aws_env: None) -> None:
    assert {"IMPORT_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_FAILED"} <= TERMINAL_BAD
    cfn = boto3.client("cloudformation", region_name=REGION)
    stack = {"StackName": "s", "CreationTime": dt.datetime(2024, 5, 1, tzinfo=dt.UTC)}
    with Stubber(cfn) as stub:
        stub.add_response("describe_stack_events", {"StackEvents": []})
        stub.add_response("describe_stacks", {"Stacks": [{**stack, "StackStatus": "IMPORT_ROLLBACK_COMPLETE"}]})
        assert wait_for_stack(cfn, "s", lambda _: None, since=None, sleep=lambda _: None) == "IMPORT_ROLLBACK_COMPLETE"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("ROLLBACK_FAILED", "delete it"),
        ("UPDATE_ROLLBACK_FAILED", "continue-update-rollback --stack-name S"),
        ("REVIEW_IN_PROGRESS", "never executed"),
        ("UPDATE_IN_PROGRESS", "wait for it to finish"),
        ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "wait for it to finish"),
        ("DELETE_IN_PROGRESS", "wait for it to finish"),
    ],
)
def test_a_stack_that_cannot_be_updated_is_refused(status: str, message: str) -> None:
    with pytest.raises(DeployError, match=message):
        check_updatable("S", status)


def test_a_stack_under_review_is_refused_before_anything_is_uploaded(
    mocked_aws: None, bundle: Any, tmp_path: Path
) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_change_set(StackName="TFL-R", ChangeSetName="c1", ChangeSetType="CREATE", TemplateBody=MINI_TEMPLATE)
    assert cfn.describe_stacks(StackName="TFL-R")["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"
    template = tmp_path / "mini.yaml"
    template.write_text(MINI_TEMPLATE)
    with pytest.raises(DeployError, match="REVIEW_IN_PROGRESS"):
        _deploy(DeployPlan("TFL-R", template, "tfl-artifacts-test", {}), bundle, [], MINI_TEMPLATE)
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []


# --------------------------------------------------------------------------- ssh-allow


def test_cidr_normalisation() -> None:
    assert normalise_cidr("103.55.21.11") == "103.55.21.11/32"
    assert normalise_cidr("103.55.21.0/24") == "103.55.21.0/24"
    for bad in ("103.55.21.11/8", "0.0.0.0/0", "::1", "hello", "103.55.21.11/33"):
        with pytest.raises(ValueError):
            normalise_cidr(bad)


def _group_with_ssh_rules(ec2: Any) -> str:
    """TFL-SG with port 22 open to an old IPv4, an IPv6 range, a prefix list, another group, a port range
    that includes 22 and all traffic; plus HTTPS, which must stay."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    sg = ec2.create_security_group(GroupName="TFL-SG", Description="t", VpcId=vpc)["GroupId"]
    other = ec2.create_security_group(GroupName="other", Description="t", VpcId=vpc)["GroupId"]
    pl = ec2.create_managed_prefix_list(PrefixListName="office", MaxEntries=2, AddressFamily="IPv4")
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "1.1.1.1/32"}, {"CidrIp": "2.2.2.2/32"}],
                "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/64"}],
                "PrefixListIds": [{"PrefixListId": pl["PrefixList"]["PrefixListId"]}],
                "UserIdGroupPairs": [{"GroupId": other}],
            },
            {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 1024, "IpRanges": [{"CidrIp": "3.3.3.3/32"}]},
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "4.4.4.4/32"}]},
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]},
        ],
    )
    return str(sg)


def _ingress(ec2: Any, sg: str) -> list[dict[str, Any]]:
    return list(ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"])


def test_ssh_allow_direct_replaces_every_ssh_rule(mocked_aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    sg = _group_with_ssh_rules(ec2)
    assert find_group(ec2, None) == sg
    removed = allow_ssh_from(ec2, sg, "103.55.21.11/32")
    assert len(removed) == 7 and {"1.1.1.1/32", "2001:db8::/64", "3.3.3.3/32", "4.4.4.4/32"} <= set(removed)
    perms = _ingress(ec2, sg)
    ssh = [p for p in perms if p.get("FromPort") == 22]
    assert [r["CidrIp"] for p in ssh for r in p["IpRanges"]] == ["103.55.21.11/32"]
    assert not any(p["Ipv6Ranges"] or p["PrefixListIds"] or p["UserIdGroupPairs"] for p in ssh)
    assert [p for p in perms if p["IpProtocol"] == "-1" or p.get("ToPort") == 1024] == []
    assert any(p.get("FromPort") == 443 for p in perms)  # other rules untouched
    assert allow_ssh_from(ec2, sg, "103.55.21.11/32") == []  # already allowed: no duplicate, nothing removed


def test_ssh_allow_direct_keeps_the_old_rules_when_the_new_one_fails(mocked_aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    sg = _group_with_ssh_rules(ec2)
    before = _ingress(ec2, sg)

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "RulesPerSecurityGroupLimitExceeded"}}, "AuthorizeSecurityGroupIngress")

    ec2.meta.events.register("before-call.ec2.AuthorizeSecurityGroupIngress", refuse)
    with pytest.raises(ClientError, match="RulesPerSecurityGroupLimitExceeded"):
        allow_ssh_from(ec2, sg, "103.55.21.11/32")
    assert _ingress(ec2, sg) == before  # the operator is not locked out


def _create_mini(cfn: Any, name: str = "TFL-Ssh", ip: str = "1.1.1.1/32") -> None:
    cfn.create_stack(
        StackName=name,
        TemplateBody=MINI_TEMPLATE,
        Parameters=[
            {"ParameterKey": "MyIPAddress", "ParameterValue": ip},
            {"ParameterKey": "GitRepositoryUrl", "ParameterValue": "u"},
            {"ParameterKey": "LambdaCodeBucket", "ParameterValue": "b"},
            {"ParameterKey": "LambdaCodeKey", "ParameterValue": "k"},
            {"ParameterKey": "TradingMode", "ParameterValue": "paper"},  # moto: no UsePreviousValue for defaults
        ],
    )


def test_ssh_allow_updates_the_stack_parameter(mocked_aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    _create_mini(cfn)
    rc = main(["ssh-allow", "--ip", "103.55.21.11", "--stack-name", "TFL-Ssh", "--poll-seconds", "0"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "TFL-Ssh" in out and "UPDATE_COMPLETE" in out  # this update's own events
    params = _params(cfn, "TFL-Ssh")
    assert params["MyIPAddress"] == "103.55.21.11/32" and params["GitRepositoryUrl"] == "u"
    assert "PinnedAmiId" not in params  # an older stack without the pin: not sent
    ec2 = boto3.client("ec2", region_name=REGION)
    perms = _ingress(ec2, find_group(ec2, None))  # moto's outputs keep the replaced group's id
    assert [r["CidrIp"] for p in perms if p["FromPort"] == 22 for r in p["IpRanges"]] == ["103.55.21.11/32"]
    cfn.create_stack(StackName="Other", TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}))
    with pytest.raises(ValueError, match="MyIPAddress"):
        change_stack_ip(cfn, ec2, "Other", "1.2.3.4/32", lambda _: None, poll_seconds=0)


def test_ssh_allow_with_the_address_the_stack_has_is_a_success(
    mocked_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    _create_mini(cfn, ip="103.55.21.11/32")
    rc = main(["ssh-allow", "--ip", "103.55.21.11", "--stack-name", "TFL-Ssh", "--poll-seconds", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "already allowed" in out, out


def test_ssh_allow_pins_the_running_image(mocked_aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    cfn.create_stack(
        StackName="TFL-Pin",
        TemplateBody=PINNED_TEMPLATE,
        Parameters=[
            {"ParameterKey": "MyIPAddress", "ParameterValue": "1.1.1.1/32"},
            {"ParameterKey": "GitRepositoryUrl", "ParameterValue": "u"},
            {"ParameterKey": "LatestAmiId", "ParameterValue": image},
            {"ParameterKey": "PinnedAmiId", "ParameterValue": ""},
            {"ParameterKey": "LambdaCodeBucket", "ParameterValue": "b"},
            {"ParameterKey": "LambdaCodeKey", "ParameterValue": "k"},
        ],
    )
    instance = _image(ec2, cfn, "TFL-Pin")
    rc = main(["ssh-allow", "--ip", "103.55.21.11", "--stack-name", "TFL-Pin", "--poll-seconds", "0"])
    assert rc == 0, capsys.readouterr()
    params = _params(cfn, "TFL-Pin")
    assert params["PinnedAmiId"] == image and params["MyIPAddress"] == "103.55.21.11/32"
    assert _image(ec2, cfn, "TFL-Pin") == instance


_CHANGES_TOUCHING_THE_SERVER = [
    {
        "Type": "Resource",
        "ResourceChange": {
            "Action": "Modify",
            "LogicalResourceId": "TraderSecurityGroup",
            "PhysicalResourceId": "sg-0123456789abcdef0",
            "ResourceType": "AWS::EC2::SecurityGroup",
            "Replacement": "False",
            "Scope": ["Properties"],
        },
    },
    {
        "Type": "Resource",
        "ResourceChange": {
            "Action": "Modify",
            "LogicalResourceId": "TradingServer",
            "PhysicalResourceId": "i-0123456789abcdef0",
            "ResourceType": "AWS::EC2::Instance",
            "Replacement": "True",
            "Scope": ["Properties"],
        },
    },
]


def test_only_an_in_place_security_group_edit_is_safe() -> None:
    assert unsafe_changes(_CHANGES_TOUCHING_THE_SERVER[:1]) == []
    assert unsafe_changes(_CHANGES_TOUCHING_THE_SERVER) == ["TradingServer (Modify, replacement True)"]
    conditional = {**_CHANGES_TOUCHING_THE_SERVER[0]["ResourceChange"], "Replacement": "Conditional"}
    assert unsafe_changes([{"Type": "Resource", "ResourceChange": conditional}]) == [
        "TraderSecurityGroup (Modify, replacement Conditional)"
    ]
    assert ip_parameters(["A", "MyIPAddress", "PinnedAmiId"], "9.9.9.9/32", "ami-12345678") == [
        {"ParameterKey": "A", "UsePreviousValue": True},
        {"ParameterKey": "MyIPAddress", "ParameterValue": "9.9.9.9/32"},
        {"ParameterKey": "PinnedAmiId", "ParameterValue": "ami-12345678"},
    ]


def _stack_description(status: str = "UPDATE_COMPLETE") -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": "TFL-Trading-System-Prod",
                "CreationTime": dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
                "StackStatus": status,
                "Parameters": [{"ParameterKey": "MyIPAddress", "ParameterValue": "1.1.1.1/32"}],
            }
        ]
    }


def test_ssh_allow_refuses_a_change_set_that_touches_the_server(aws_env: None) -> None:
    """Real CloudFormation lists the instance when its image would change: nothing is executed."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    cs_id = "arn:aws:cloudformation:ap-south-1:123456789012:changeSet/tfl-ssh-allow/1"
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", _stack_description(), {"StackName": "TFL-Trading-System-Prod"})
        stub.add_response("create_change_set", {"Id": cs_id, "StackId": "arn:stack"})
        stub.add_response("describe_change_set", {"Status": "CREATE_IN_PROGRESS", "Changes": []})
        stub.add_response(
            "describe_change_set",
            {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE", "Changes": _CHANGES_TOUCHING_THE_SERVER},
        )
        stub.add_response("delete_change_set", {}, {"ChangeSetName": cs_id, "StackName": "TFL-Trading-System-Prod"})
        with pytest.raises(DeployError, match=r"TradingServer \(Modify, replacement True\).*--direct"):
            change_stack_ip(
                cfn, None, "TFL-Trading-System-Prod", "9.9.9.9/32", lambda _: None, poll_seconds=0, sleep=lambda _: None
            )
        stub.assert_no_pending_responses()  # deleted, never executed


def test_an_empty_change_set_means_already_allowed(aws_env: None) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cs_id = "arn:aws:cloudformation:ap-south-1:123456789012:changeSet/tfl-ssh-allow/2"
    reason = "The submitted information didn't contain changes. Submit different information to create a change set."
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", _stack_description())
        stub.add_response("create_change_set", {"Id": cs_id, "StackId": "arn:stack"})
        stub.add_response("describe_change_set", {"Status": "FAILED", "StatusReason": reason, "Changes": []})
        stub.add_response("delete_change_set", {}, {"ChangeSetName": cs_id, "StackName": "TFL-Trading-System-Prod"})
        assert not change_stack_ip(cfn, None, "TFL-Trading-System-Prod", "1.1.1.1/32", lambda _: None, poll_seconds=0)
        stub.assert_no_pending_responses()


def test_ssh_allow_refuses_a_busy_stack(aws_env: None) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", _stack_description("UPDATE_IN_PROGRESS"))
        with pytest.raises(DeployError, match="wait for it to finish"):
            change_stack_ip(cfn, None, "TFL-Trading-System-Prod", "1.1.1.1/32", lambda _: None)
