"""The CloudFormation template, parsed: every runbook resource, parameter, schedule, alarm and output
is there with the shared names; IAM has no unconditioned wildcard; the server boots the trader.

The template is read with cfn-lint's own loader so the short intrinsic tags (!Ref, !Sub, ...)
become the same dicts CloudFormation sees.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint, lint_file
from cfnlint.decode import decode_str

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "tfl-infrastructure.yaml"
LINT_CONFIG = ManualArgs(include_checks=["I"], regions=["ap-south-1"])

Template = dict[str, Any]

# The schedule table of the shared contract: name -> (expression, target, input).
SCHEDULES = {
    "TFL-Start": ("cron(30 8 ? * MON-FRI *)", "OpsFunction", {"action": "start"}),
    "TFL-PreMarketBias": ("cron(45 8 ? * MON-FRI *)", "BiasFunction", None),
    "TFL-PostMarketReport": ("cron(0 16 ? * MON-FRI *)", "ReportFunction", None),
    "TFL-Stop": ("cron(0 17 ? * MON-FRI *)", "stop", None),
    "TFL-Start-Weekend": ("cron(30 8 ? * SAT,SUN *)", "OpsFunction", {"action": "start"}),
    "TFL-PreMarketBias-Weekend": ("cron(45 8 ? * SAT,SUN *)", "BiasFunction", None),
    "TFL-PostMarketReport-Weekend": ("cron(0 16 ? * SAT,SUN *)", "ReportFunction", None),
    "TFL-Stop-Weekend": ("cron(0 17 ? * SAT,SUN *)", "stop", None),
    "TFL-ArmHeartbeatAlarm": ("cron(15 9 ? * * *)", "OpsFunction", {"action": "arm"}),
    "TFL-DisarmHeartbeatAlarm": ("cron(35 12,15 ? * * *)", "OpsFunction", {"action": "disarm"}),
}

FUNCTIONS = {
    "TFL-PreMarketBias": "tfl.aws.lambdas.bias.handler",
    "TFL-PostMarketReport": "tfl.aws.lambdas.report.handler",
    "TFL-Ops": "tfl.aws.lambdas.ops.handler",
    "TFL-LoginCallback": "tfl.aws.lambdas.login.handler",
    "TFL-StatusPage": "tfl.aws.lambdas.status.handler",
}

# Actions that may have Resource "*" because the API has no resource-level permissions; each
# such statement must still carry a Condition.
STAR_ACTIONS_ALLOWED = {
    "cloudwatch:PutMetricData",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
}

OUTPUTS = {
    "InstanceId",
    "ElasticIP",
    "JournalTable",
    "TopicArn",
    "LogGroup",
    "LoginCallbackUrl",
    "DataBucket",
    "BiasParameter",
    "CredentialsSecret",
    "TokenSecret",
    "HeartbeatAlarm",
    "SecurityGroupId",
}


# --------------------------------------------------------------------------- helpers


def load(text: str) -> Template:
    tpl, matches = decode_str(text)
    assert not matches, [str(m) for m in matches]
    assert isinstance(tpl, dict)
    return tpl


@pytest.fixture(scope="module")
def tpl() -> Template:
    return load(TEMPLATE.read_text(encoding="utf-8"))


def of_type(tpl: Template, rtype: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in tpl["Resources"].items() if r["Type"] == rtype}


def props(tpl: Template, name: str) -> dict[str, Any]:
    return dict(tpl["Resources"][name].get("Properties", {}))


def find(tpl: Template, rtype: str, **where: Any) -> tuple[str, dict[str, Any]]:
    """The one resource of ``rtype`` whose properties match ``where``."""
    hits = [
        (name, r.get("Properties", {}))
        for name, r in of_type(tpl, rtype).items()
        if all(r.get("Properties", {}).get(k) == v for k, v in where.items())
    ]
    assert len(hits) == 1, f"{rtype} {where}: {len(hits)} matches"
    return hits[0]


def tag(properties: dict[str, Any], key: str) -> Any:
    return {t["Key"]: t["Value"] for t in properties.get("Tags", [])}.get(key)


def refs(expr: Any) -> set[str]:
    """Logical ids an expression refers to (Ref, Fn::GetAtt, ${X} / ${X.Attr} in Fn::Sub); no pseudo parameters."""
    out: set[str] = set()
    if isinstance(expr, dict):
        for k, v in expr.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add(v[0] if isinstance(v, list) else str(v).split(".")[0])
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                out |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if isinstance(v, list):
                    out |= refs(v[1])
            else:
                out |= refs(v)
    elif isinstance(expr, list):
        for item in expr:
            out |= refs(item)
    return {name for name in out if not name.startswith("AWS::")}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def unconditional(statements: list[Any]) -> Iterator[dict[str, Any]]:
    """The statements, with each ``Fn::If`` replaced by the statements of both its branches
    (``AWS::NoValue`` dropped): a conditional grant is checked as if its condition held."""
    for st in statements:
        if isinstance(st, dict) and "Fn::If" in st:
            _, yes, no = st["Fn::If"]
            yield from unconditional([b for b in (yes, no) if b != {"Ref": "AWS::NoValue"}])
        else:
            yield st


def iam_statements(tpl: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy: role inline policies, IAM policies, managed policies."""
    for name, r in tpl["Resources"].items():
        p = r.get("Properties", {})
        if r["Type"] in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            for pol in p.get("Policies", []):
                for st in unconditional(as_list(pol["PolicyDocument"]["Statement"])):
                    yield f"{name}/{pol['PolicyName']}", st
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            for st in unconditional(as_list(p["PolicyDocument"]["Statement"])):
                yield name, st


def wildcard_problems(statements: Iterator[tuple[str, dict[str, Any]]]) -> tuple[list[str], set[str]]:
    """(violations, actions granted on Resource "*" under a condition)."""
    bad: list[str] = []
    star_actions: set[str] = set()
    for where, st in statements:
        if st.get("Effect") != "Allow":
            continue
        actions = [str(a) for a in as_list(st.get("Action", []))]
        if "NotAction" in st or "NotResource" in st:
            bad.append(f"{where}: NotAction/NotResource")
        if any(a == "*" or a.endswith(":*") for a in actions):
            bad.append(f"{where}: wildcard action {actions}")
        if "*" in as_list(st.get("Resource", [])):
            if not st.get("Condition"):
                bad.append(f"{where}: Resource '*' without a Condition ({actions})")
            star_actions |= set(actions)
    return bad, star_actions


def render_sub(text: str, values: dict[str, str] | None = None) -> str:
    """Fn::Sub as CloudFormation renders it: ${X} -> a stand-in value, ${!X} -> literal ${X}."""
    values = values or {}

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        return values.get(name, f"<{name}>")

    return re.sub(r"\$\{([^}]*)\}", one, text)


@pytest.fixture(scope="module")
def user_data(tpl: Template) -> str:
    ud = props(tpl, "TradingServer")["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert isinstance(ud, str)
    return render_sub(ud, {"TradingMode": "paper", "JournalTable": "TFL-Journal", "AWS::Region": "ap-south-1"})


@pytest.fixture(scope="module")
def bootstrap(user_data: str) -> str:
    """The shell-script part of the MIME user data."""
    msg = email.message_from_string(user_data)
    assert msg.is_multipart()
    scripts = [p.get_payload() for p in msg.walk() if p.get_content_type() == "text/x-shellscript"]
    assert len(scripts) == 1
    return str(scripts[0])


def heredoc(script: str, path: str) -> str:
    """The body the script writes to ``path`` with a quoted heredoc."""
    m = re.search(re.escape(f"cat > {path} <<'EOF'\n") + r"(.*?)\nEOF\n", script, re.S)
    assert m, f"no heredoc writes {path}"
    return m.group(1)


# --------------------------------------------------------------------------- lint


def test_cfn_lint_clean_including_informational_checks() -> None:
    matches = lint_file(TEMPLATE, LINT_CONFIG)
    assert not matches, [str(m) for m in matches]


def test_cfn_lint_catches_a_broken_template() -> None:
    """The lint test above can fail: an unknown property is reported."""
    text = TEMPLATE.read_text(encoding="utf-8").replace(
        "      TableName: TFL-Journal\n", "      TableName: TFL-Journal\n      Bogus: 1\n"
    )
    assert any("Bogus" in str(m) for m in lint(text, config=LINT_CONFIG))


def test_every_checkov_suppression_has_a_reason(tpl: Template) -> None:
    skips = [
        (name, s)
        for name, r in tpl["Resources"].items()
        for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "expected the documented suppressions (e.g. the public login URL)"
    for name, s in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", s["id"]), (name, s)
        assert len(str(s.get("comment", "")).split()) >= 8, f"{name}: {s['id']} needs a written reason"


# --------------------------------------------------------------------------- parameters


def test_parameters_as_the_runbook_names_them(tpl: Template) -> None:
    params = tpl["Parameters"]
    assert params["InstanceTypeParameter"]["Default"] == "t3.large"
    assert {"t3.small", "t3.medium", "t3.large", "t3.xlarge"} <= set(params["InstanceTypeParameter"]["AllowedValues"])
    assert "Default" not in params["MyIPAddress"], "the operator's IP has no safe default"
    assert params["SSHKeyName"]["Default"] == ""
    assert tpl["Conditions"]["HasKeyName"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SSHKeyName"}, ""]}]}
    assert props(tpl, "TradingServer")["KeyName"] == {
        "Fn::If": ["HasKeyName", {"Ref": "SSHKeyName"}, {"Ref": "AWS::NoValue"}]
    }
    assert params["TradingMode"]["Default"] == "paper"
    assert set(params["TradingMode"]["AllowedValues"]) == {"paper", "live"}
    assert params["GitRef"]["Default"] == "main"
    assert params["AlertEmail"]["Default"] == ""
    assert params["LatestAmiId"]["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert params["LatestAmiId"]["Default"] == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    # The latest image at creation; afterwards the running one, pinned by tfl deploy / ssh-allow,
    # because CloudFormation re-reads an SSM-typed parameter at every update.
    # (a t4g size boots the arm64 image: test_template_deploy.py checks the Graviton choice)
    assert props(tpl, "TradingServer")["ImageId"] == {
        "Fn::If": [
            "PinAmi",
            {"Ref": "PinnedAmiId"},
            {"Fn::If": ["Graviton", {"Ref": "LatestArm64AmiId"}, {"Ref": "LatestAmiId"}]},
        ]
    }
    assert params["PinnedAmiId"]["Default"] == ""
    assert tpl["Conditions"]["PinAmi"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "PinnedAmiId"}, ""]}]}
    assert props(tpl, "TradingServer")["InstanceType"] == {"Ref": "InstanceTypeParameter"}
    for name in ("LambdaCodeBucket", "LambdaCodeKey", "GitRepositoryUrl"):
        assert name in params


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("103.55.21.11/32", True),
        ("10.0.0.0/8", True),
        ("203.0.113.0/24", True),
        ("103.55.21.11", False),
        ("999.1.1.1/32", False),
        ("256.1.1.1/32", False),
        ("103.55.21.11/33", False),
        ("0.0.0.0/0", False),  # SSH from the whole internet is refused outright
        ("103.55.21/32", False),
        (" 103.55.21.11/32", False),
        ("103.55.21.11/32; rm -rf /", False),
    ],
)
def test_my_ip_pattern(tpl: Template, value: str, ok: bool) -> None:
    pattern = tpl["Parameters"]["MyIPAddress"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is ok


@pytest.mark.parametrize(
    ("param", "value", "ok"),
    [
        ("AlertEmail", "", True),
        ("AlertEmail", "ops@example.com", True),
        ("AlertEmail", "not an email", False),
        ("GitRepositoryUrl", "https://github.com/example/tfl.git", True),
        ("GitRepositoryUrl", "git@github.com:example/tfl.git", False),
        ("GitRepositoryUrl", "https://github.com/x/y';reboot;'", False),
        ("GitRef", "main", True),
        ("GitRef", "v1.2.0", True),
        ("GitRef", "main; reboot", False),
        ("SSHKeyName", "", True),
        ("SSHKeyName", "tfl-key", True),
    ],
)
def test_parameter_patterns_keep_the_user_data_safe(tpl: Template, param: str, value: str, ok: bool) -> None:
    """Parameters that land in the bootstrap script cannot carry shell syntax."""
    pattern = tpl["Parameters"][param]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is ok


def test_the_stack_is_pinned_to_mumbai(tpl: Template) -> None:
    (rule,) = tpl["Rules"].values()
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "ap-south-1"]}


# --------------------------------------------------------------------------- runbook resources


def test_trading_server(tpl: Template) -> None:
    (name, server) = next(iter(of_type(tpl, "AWS::EC2::Instance").items()))
    assert len(of_type(tpl, "AWS::EC2::Instance")) == 1
    assert tag(server["Properties"], "Name") == "TFL-Trading-Server"
    p = server["Properties"]
    assert p["MetadataOptions"]["HttpTokens"] == "required"
    assert p["MetadataOptions"].get("HttpEndpoint", "enabled") == "enabled"
    (root,) = p["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True
    assert root["Ebs"]["VolumeType"] == "gp3"
    assert refs(p["IamInstanceProfile"]) == {"InstanceProfile"}
    assert refs(p["SecurityGroupIds"]) == {"TraderSecurityGroup"}
    # The Elastic IP FYERS whitelists is attached to this instance.
    (_, assoc) = find(tpl, "AWS::EC2::EIPAssociation")
    assert assoc["InstanceId"] == {"Ref": name}
    assert refs(assoc["AllocationId"]) == {"ElasticIP"}


def test_security_group_allows_ssh_only_from_my_ip(tpl: Template) -> None:
    _, sg = find(tpl, "AWS::EC2::SecurityGroup", GroupName="TFL-SG")
    (rule,) = sg["SecurityGroupIngress"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    assert rule["CidrIp"] == {"Ref": "MyIPAddress"}
    assert "CidrIpv6" not in rule
    for r in sg["SecurityGroupIngress"] + sg.get("SecurityGroupEgress", []):
        assert r.get("Description"), r
    # No rule added to it elsewhere.
    assert not of_type(tpl, "AWS::EC2::SecurityGroupIngress")
    assert {e["FromPort"] for e in sg["SecurityGroupEgress"]} <= {80, 443}


def test_secrets(tpl: Template) -> None:
    _, creds = find(tpl, "AWS::SecretsManager::Secret", Name="tfl/fyers_credentials")
    assert json.loads(creds["SecretString"]) == {
        "client_id": "REPLACE_ME",
        "secret_key": "REPLACE_ME",
        "redirect_uri": "REPLACE_ME",
    }
    _, token = find(tpl, "AWS::SecretsManager::Secret", Name="tfl/fyers_access_token")
    assert json.loads(token["SecretString"]) == {}
    for s in (creds, token):
        assert refs(s["KmsKeyId"]) == {"TFLKey"}


def test_bias_parameter_starts_stale_no_trades(tpl: Template) -> None:
    from tfl.domain import Bias
    from tfl.regime import BiasRecord, parse_bias_record

    _, param = find(tpl, "AWS::SSM::Parameter", Name="/tfl/bias")
    assert param["Type"] == "String"
    record = json.loads(param["Value"])
    assert record["bias"] == "NO_TRADES"
    assert record["session"] == "1970-01-01"
    assert set(record) == {f.name for f in dataclasses.fields(BiasRecord)}
    assert BiasRecord(**record).to_json() == json.dumps(record, sort_keys=True)
    bias, why = parse_bias_record(param["Value"], dt.date.today())
    assert bias is Bias.NO_TRADES
    assert "1970-01-01" in why


def test_journal_table_matches_the_adapter_schema(tpl: Template) -> None:
    from tfl.aws.dynamo_journal import TABLE_SCHEMA

    _, table = find(tpl, "AWS::DynamoDB::Table", TableName="TFL-Journal")
    schema: dict[str, Any] = dict(TABLE_SCHEMA)

    def attrs(defs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(d["AttributeName"], d["AttributeType"]) for d in defs}

    def keys(ks: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(k["AttributeName"], k["KeyType"]) for k in ks]

    def lsis(items: list[dict[str, Any]]) -> dict[str, tuple[list[tuple[str, str]], str]]:
        return {i["IndexName"]: (keys(i["KeySchema"]), i["Projection"]["ProjectionType"]) for i in items}

    assert attrs(table["AttributeDefinitions"]) == attrs(schema["AttributeDefinitions"])
    assert keys(table["KeySchema"]) == keys(schema["KeySchema"])
    assert lsis(table["LocalSecondaryIndexes"]) == lsis(schema["LocalSecondaryIndexes"])
    if "BillingMode" in schema:
        assert table["BillingMode"] == schema["BillingMode"]
    if "TableName" in schema:
        assert schema["TableName"] == "TFL-Journal"


def test_journal_table_is_protected(tpl: Template) -> None:
    name, table = find(tpl, "AWS::DynamoDB::Table", TableName="TFL-Journal")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert keys_of(table["KeySchema"]) == [("session", "HASH"), ("key", "RANGE")]
    (lsi,) = table["LocalSecondaryIndexes"]
    assert lsi["IndexName"] == "by_seq"
    assert keys_of(lsi["KeySchema"]) == [("session", "HASH"), ("seq", "RANGE")]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert refs(table["SSESpecification"]["KMSMasterKeyId"]) == {"TFLKey"}
    # protected except while the first create runs (tfl deploy turns it on right after)
    assert table["DeletionProtectionEnabled"] == {"Fn::If": ["ProtectJournal", True, False]}
    assert tpl["Parameters"]["JournalDeletionProtection"]["Default"] == "true"
    r = tpl["Resources"][name]
    assert r["DeletionPolicy"] == "RetainExceptOnCreate" and r["UpdateReplacePolicy"] == "Retain"


def keys_of(ks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in ks]


def test_data_bucket_is_private_encrypted_versioned(tpl: Template) -> None:
    bucket = props(tpl, "DataBucket")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (enc,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert enc["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    assert refs(bucket["LoggingConfiguration"]) == {"AccessLogBucket"}
    (_, policy) = find(tpl, "AWS::S3::BucketPolicy", Bucket={"Ref": "DataBucket"})
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_topic_and_subscription(tpl: Template) -> None:
    _, topic = find(tpl, "AWS::SNS::Topic", TopicName="TFL-Notifications")
    assert refs(topic["KmsMasterKeyId"]) == {"TFLKey"}
    sub_name, sub = find(tpl, "AWS::SNS::Subscription", Protocol="email")
    assert sub["Endpoint"] == {"Ref": "AlertEmail"}
    assert tpl["Resources"][sub_name]["Condition"] == "HasAlertEmail"
    # CloudWatch alarms may publish (the topic uses a customer managed key).
    (_, tp) = find(tpl, "AWS::SNS::TopicPolicy")
    principals = [s["Principal"].get("Service") for s in tp["PolicyDocument"]["Statement"]]
    assert "cloudwatch.amazonaws.com" in principals
    key_services = [
        s["Principal"].get("Service")
        for s in props(tpl, "TFLKey")["KeyPolicy"]["Statement"]
        if "Service" in s["Principal"]
    ]
    assert "cloudwatch.amazonaws.com" in key_services


def test_kms_key_rotates_and_encrypts_everything(tpl: Template) -> None:
    assert props(tpl, "TFLKey")["EnableKeyRotation"] is True
    for name in of_type(tpl, "AWS::Logs::LogGroup"):
        assert refs(props(tpl, name)["KmsKeyId"]) == {"TFLKey"}, name
        assert props(tpl, name)["RetentionInDays"] >= 30
    for name in of_type(tpl, "AWS::Lambda::Function"):
        assert refs(props(tpl, name)["KmsKeyArn"]) == {"TFLKey"}, name
    assert refs(props(tpl, "DeadLetterQueue")["KmsMasterKeyId"]) == {"TFLKey"}


# --------------------------------------------------------------------------- logs and alarms


def test_trader_log_group_and_error_filter(tpl: Template) -> None:
    name, group = find(tpl, "AWS::Logs::LogGroup", LogGroupName="/tfl/trader")
    assert group["RetentionInDays"] == 90
    filters = [
        r["Properties"]
        for r in of_type(tpl, "AWS::Logs::MetricFilter").values()
        if r["Properties"]["LogGroupName"] == {"Ref": name}
    ]
    assert {f["FilterName"] for f in filters} == {"TFL-ErrorLines", "TFL-CrashLines"}
    for mf in filters:
        (t,) = mf["MetricTransformations"]
        got = (t["MetricNamespace"], t["MetricName"], t["MetricValue"], t["DefaultValue"])
        assert got == ("TFL", "ErrorLines", "1", 0)
    (_, alarm) = find(tpl, "AWS::CloudWatch::Alarm", Namespace="TFL", MetricName="ErrorLines")
    assert alarm["Statistic"] == "Sum"
    assert alarm["Period"] == 300
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]


@pytest.mark.parametrize(
    ("metric", "action"), [("StatusCheckFailed_System", "recover"), ("StatusCheckFailed_Instance", "reboot")]
)
def test_status_check_alarms_recover_or_reboot(tpl: Template, metric: str, action: str) -> None:
    (_, alarm) = find(tpl, "AWS::CloudWatch::Alarm", MetricName=metric)
    assert alarm["Namespace"] == "AWS/EC2"
    assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": {"Ref": "TradingServer"}}]
    assert alarm["TreatMissingData"] == "notBreaching"  # stopped overnight
    assert {"Fn::Sub": f"arn:${{AWS::Partition}}:automate:${{AWS::Region}}:ec2:{action}"} in alarm["AlarmActions"]
    assert {"Ref": "NotificationTopic"} in alarm["AlarmActions"]


def test_heartbeat_alarm_is_disarmed_until_market_hours(tpl: Template) -> None:
    name, alarm = find(tpl, "AWS::CloudWatch::Alarm", AlarmName="TFL-HeartbeatMissing")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("TFL", "Heartbeat", "Sum")
    assert "Dimensions" not in alarm  # the trader's EMF metrics are dimension-less
    assert alarm["Period"] == 300
    assert alarm["EvaluationPeriods"] == 2
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["ActionsEnabled"] is False
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]
    assert props(tpl, "OpsFunction")["Environment"]["Variables"]["TFL_HEARTBEAT_ALARM"] == {"Ref": name}


def test_every_alarm_notifies(tpl: Template) -> None:
    alarms = of_type(tpl, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 5
    for name, a in alarms.items():
        assert {"Ref": "NotificationTopic"} in a["Properties"]["AlarmActions"], name
        assert a["Properties"]["AlarmName"].startswith("TFL-"), "the topic policy admits alarms named TFL-*"


# --------------------------------------------------------------------------- jobs


def test_lambdas(tpl: Template) -> None:
    functions = {
        r["Properties"]["FunctionName"]: r["Properties"] for r in of_type(tpl, "AWS::Lambda::Function").values()
    }
    assert set(functions) == set(FUNCTIONS)
    roles = set()
    for fname, p in functions.items():
        assert p["Handler"] == FUNCTIONS[fname]
        assert p["Runtime"] == "python3.12"
        assert p["Architectures"] == ["arm64"]
        assert p["Code"] == {"S3Bucket": {"Ref": "LambdaCodeBucket"}, "S3Key": {"Ref": "LambdaCodeKey"}}
        assert 30 <= p["Timeout"] <= 180  # TFL-Ops: 180, room for its capacity retries (test_template_deploy.py)
        assert 256 <= p["MemorySize"] <= 1024  # the bias job parses ~165 CSV objects: it gets 512
        assert "ReservedConcurrentExecutions" in p
        (group,) = refs(p["LoggingConfig"]["LogGroup"])
        assert props(tpl, group)["LogGroupName"] == f"/aws/lambda/{fname}"
        roles |= refs(p["Role"])
    assert len(roles) == len(FUNCTIONS), "one role per function"


def test_lambda_environment_uses_the_settings_names(tpl: Template) -> None:
    from tfl.settings import AwsSettings

    fields = {f.name for f in dataclasses.fields(AwsSettings)}
    extra = {"TFL_INSTANCE_ID", "TFL_HEARTBEAT_ALARM", "TFL_LOGIN_URL", "TFL_FYERS__API_URL"}
    extra |= {"TFL_STATUS_URL", "TFL_STATUS_KEY_SECRET"}  # the status page (tests/aws/test_lambda_status.py)
    for name in of_type(tpl, "AWS::Lambda::Function"):
        env = props(tpl, name)["Environment"]["Variables"]
        for var in env:
            if var.startswith("TFL_AWS__"):
                assert var.removeprefix("TFL_AWS__").lower() in fields, var
            else:
                assert var in extra, var
    assert set(props(tpl, "OpsFunction")["Environment"]["Variables"]) >= {
        "TFL_INSTANCE_ID",
        "TFL_HEARTBEAT_ALARM",
        "TFL_LOGIN_URL",
        "TFL_AWS__CREDENTIALS_SECRET",
        "TFL_AWS__TOKEN_SECRET",
        "TFL_AWS__TOPIC_ARN",
    }
    assert set(props(tpl, "BiasFunction")["Environment"]["Variables"]) >= {
        "TFL_AWS__BIAS_PARAMETER",
        "TFL_AWS__DATA_BUCKET",
        "TFL_AWS__TOPIC_ARN",
    }
    assert set(props(tpl, "ReportFunction")["Environment"]["Variables"]) >= {
        "TFL_AWS__JOURNAL_TABLE",
        "TFL_AWS__TOPIC_ARN",
    }
    assert set(props(tpl, "LoginFunction")["Environment"]["Variables"]) >= {
        "TFL_AWS__CREDENTIALS_SECRET",
        "TFL_AWS__TOKEN_SECRET",
        "TFL_AWS__TOPIC_ARN",
    }


def test_login_callback_is_a_public_function_url(tpl: Template) -> None:
    name, url = find(tpl, "AWS::Lambda::Url", TargetFunctionArn={"Fn::GetAtt": ["LoginFunction", "Arn"]})
    assert url["AuthType"] == "NONE"
    assert refs(url["TargetFunctionArn"]) == {"LoginFunction"}
    perms = [p for p in (r["Properties"] for r in of_type(tpl, "AWS::Lambda::Permission").values())]
    perms = [p for p in perms if refs(p["FunctionName"]) == {"LoginFunction"}]
    assert {p["Action"] for p in perms} == {
        "lambda:InvokeFunctionUrl",
        "lambda:InvokeFunction",
    }
    invoke = next(p for p in perms if p["Action"] == "lambda:InvokeFunction")
    assert invoke["InvokedViaFunctionUrl"] is True  # only through the URL, never a direct Invoke
    url_perm = next(p for p in perms if p["Action"] == "lambda:InvokeFunctionUrl")
    assert url_perm["FunctionUrlAuthType"] == "NONE"
    assert tpl["Outputs"]["LoginCallbackUrl"]["Value"] == {"Fn::GetAtt": [name, "FunctionUrl"]}
    ops_env = props(tpl, "OpsFunction")["Environment"]["Variables"]
    assert ops_env["TFL_LOGIN_URL"] == {"Fn::GetAtt": [name, "FunctionUrl"]}


def test_schedules_exactly_as_the_contract(tpl: Template) -> None:
    schedules = {r["Properties"]["Name"]: r["Properties"] for r in of_type(tpl, "AWS::Scheduler::Schedule").values()}
    assert set(schedules) == set(SCHEDULES)
    for name, (expression, target, payload) in SCHEDULES.items():
        s = schedules[name]
        assert s["ScheduleExpression"] == expression, name
        assert s["ScheduleExpressionTimezone"] == "Asia/Kolkata", name
        assert s["FlexibleTimeWindow"] == {"Mode": "OFF"}, name
        assert s.get("State", "ENABLED") == "ENABLED", name
        t = s["Target"]
        assert refs(t["RoleArn"]) == {"SchedulerRole"}
        assert t["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        if target == "stop":
            assert t["Arn"] == "arn:aws:scheduler:::aws-sdk:ec2:stopInstances"
            body = json.loads(render_sub(t["Input"]["Fn::Sub"], {"TradingServer": "i-0abc"}))
            assert body == {"InstanceIds": ["i-0abc"]}
        else:
            assert refs(t["Arn"]) == {target}, name
            body = json.loads(t["Input"])
            if payload is not None:
                assert body == payload, name


# --------------------------------------------------------------------------- IAM


def test_iam_has_no_unconditioned_wildcard_resource(tpl: Template) -> None:
    bad, star_actions = wildcard_problems(iam_statements(tpl))
    assert not bad, bad
    # Only APIs without resource-level permissions get "*" (each under a condition).
    assert star_actions == STAR_ACTIONS_ALLOWED


def test_log_group_arns_in_iam_are_built_from_names(tpl: Template) -> None:
    """A log group's GetAtt Arn already ends in ":*"; "${Group.Arn}:*" would match nothing."""
    groups = set(of_type(tpl, "AWS::Logs::LogGroup"))
    for where, st in iam_statements(tpl):
        text = json.dumps(st["Resource"])
        for g in groups:
            assert f"{g}.Arn" not in text and f'["{g}", "Arn"]' not in text, where


def test_the_wildcard_check_can_fail() -> None:
    statements = iter(
        [
            ("Role/p", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}),
            ("Role/q", {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}),
            ("Role/r", {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}),
        ]
    )
    bad, _ = wildcard_problems(statements)
    assert len(bad) == 3


def test_iam_walk_sees_every_policy(tpl: Template) -> None:
    where = {w.split("/")[0] for w, _ in iam_statements(tpl)}
    assert where == set(of_type(tpl, "AWS::IAM::Role"))


def role_grants(tpl: Template, role: str) -> dict[str, set[str]]:
    """action -> logical ids its resources refer to, for one role."""
    out: dict[str, set[str]] = {}
    for where, st in iam_statements(tpl):
        if where.split("/")[0] != role:
            continue
        for action in as_list(st["Action"]):
            out.setdefault(action, set()).update(refs(st["Resource"]))
    return out


def test_roles_are_scoped_to_the_stacks_resources(tpl: Template) -> None:
    ops = role_grants(tpl, "OpsFunctionRole")
    assert ops["ec2:StartInstances"] == {"TradingServer"}
    for action in ("EnableAlarmActions", "DisableAlarmActions", "SetAlarmState"):
        assert ops[f"cloudwatch:{action}"] == {"HeartbeatAlarm"}
    assert ops["secretsmanager:PutSecretValue"] == {"TokenSecret"}
    assert ops["secretsmanager:GetSecretValue"] == {"CredentialsSecret", "TokenSecret"}
    bias = role_grants(tpl, "BiasFunctionRole")
    assert bias["ssm:PutParameter"] == {"BiasParameter"}
    assert bias["s3:GetObject"] == {"DataBucket"}
    report = role_grants(tpl, "ReportFunctionRole")
    assert report["dynamodb:Query"] == {"JournalTable"}
    assert "dynamodb:Scan" not in report
    assert report["s3:PutObject"] == {"DataBucket"}
    login = role_grants(tpl, "LoginFunctionRole")
    assert login["secretsmanager:PutSecretValue"] == {"TokenSecret"}
    scheduler = role_grants(tpl, "SchedulerRole")
    assert scheduler["lambda:InvokeFunction"] == {"BiasFunction", "ReportFunction", "OpsFunction"}
    assert scheduler["ec2:StopInstances"] == {"TradingServer"}
    trader = role_grants(tpl, "InstanceRole")
    assert trader["dynamodb:PutItem"] == {"JournalTable"}
    assert trader["ssm:GetParameter"] == {"BiasParameter"}
    assert "ssm:PutParameter" not in trader, "only the bias job writes the bias"
    assert trader["sns:Publish"] == {"NotificationTopic"}
    for role in of_type(tpl, "AWS::IAM::Role"):
        grants = role_grants(tpl, role)
        if any(a.startswith("kms:") for a in grants):
            assert all(grants[a] == {"TFLKey"} for a in grants if a.startswith("kms:")), role


# --------------------------------------------------------------------------- the server's bootstrap


def test_user_data_is_valid_bash(bootstrap: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    proc = subprocess.run([bash, "-n"], input=bootstrap, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_user_data_runs_at_every_boot(user_data: str) -> None:
    msg = email.message_from_string(user_data)
    (config,) = [p.get_payload() for p in msg.walk() if p.get_content_type() == "text/cloud-config"]
    assert "- [scripts-user, always]" in config


def test_user_data_installs_the_project(bootstrap: str) -> None:
    assert "dnf install -y git python3.11" in bootstrap
    assert "amazon-cloudwatch-agent" in bootstrap
    assert "useradd --system" in bootstrap
    assert "pip install" in bootstrap
    assert '-c "$SRC/constraints.txt"' in bootstrap
    assert "REPO='<GitRepositoryUrl>'" in bootstrap
    assert "REF='<GitRef>'" in bootstrap


def test_user_data_env_file_matches_settings(bootstrap: str) -> None:
    from tfl.settings import AwsSettings

    env = dict(line.split("=", 1) for line in heredoc(bootstrap, "/etc/tfl/tfl.env").splitlines())
    assert env["TFL_WORLD"] == "paper"
    assert env["TFL_AWS__METRICS_FILE"] == "/var/log/tfl/metrics.log"
    fields = {f.name for f in dataclasses.fields(AwsSettings)}
    aws = {k.removeprefix("TFL_AWS__").lower() for k in env if k.startswith("TFL_AWS__")}
    assert aws <= fields
    assert {"region", "journal_table", "bias_parameter", "credentials_secret", "token_secret", "topic_arn"} <= aws
    assert {"data_bucket", "metrics_file"} <= aws
    assert "chmod 0640 /etc/tfl/tfl.env" in bootstrap
    # the optional Telegram chat: an empty parameter is an empty setting (no Telegram), a set one is used
    from tfl.settings import load_settings

    assert env["TFL_ALERTS__TELEGRAM_CHAT_ID"] == "<TelegramChatId>"
    for value in ("", "-1001234567890"):
        got = load_settings(environ={"TFL_ALERTS__TELEGRAM_CHAT_ID": value}).alerts.telegram_chat_id
        assert got == value


def test_user_data_trader_service(bootstrap: str) -> None:
    unit = heredoc(bootstrap, "/etc/systemd/system/tfl-trader.service")
    lines = set(unit.splitlines())
    assert "User=tfl" in lines
    assert "EnvironmentFile=/etc/tfl/tfl.env" in lines
    assert "Restart=on-failure" in lines
    assert "RestartSec=60" in lines
    assert "RestartPreventExitStatus=2 3 4" in lines
    assert {"StartLimitIntervalSec=3600", "StartLimitBurst=30"} <= lines, "a crash loop must end"
    assert "StandardError=append:/var/log/tfl/trader-console.log" in lines
    assert "WantedBy=multi-user.target" in lines
    (exec_start,) = [line for line in lines if line.startswith("ExecStart=")]
    assert exec_start == (
        "ExecStart=/opt/tfl/venv/bin/tfl trade --world ${TFL_WORLD} --data /var/lib/tfl/data"
        " --journal dynamodb://${TFL_AWS__JOURNAL_TABLE} --state-dir /var/lib/tfl/state"
        " --log-file /var/log/tfl/trader.log"
    )
    assert "systemctl enable tfl-trader.service tfl-trader.timer tfl-eod.timer" in bootstrap
    timer = heredoc(bootstrap, "/etc/systemd/system/tfl-trader.timer").splitlines()
    assert "OnCalendar=*-*-* 08:31:00 Asia/Kolkata" in timer and "Unit=tfl-trader.service" in timer
    # the services' append: logs exist before systemd opens them as root (logrotate runs as tfl)
    assert "for f in trader.log trader-console.log eod.log metrics.log; do" in bootstrap
    assert 'install -m 0640 -o tfl -g tfl /dev/null "/var/log/tfl/$f"' in bootstrap
    assert "00 9 * * 1-5" in bootstrap, "the runbook's cron line is documented as the alternative"


def test_user_data_eod_timer(bootstrap: str) -> None:
    timer = heredoc(bootstrap, "/etc/systemd/system/tfl-eod.timer")
    # After FYERS has the day's final daily candle (16:00), before the 17:00 stop.
    assert "OnCalendar=*-*-* 16:10:00 Asia/Kolkata" in timer.splitlines()
    assert "Persistent=false" in timer.splitlines()
    service = heredoc(bootstrap, "/etc/systemd/system/tfl-eod.service")
    assert "Type=oneshot" in service.splitlines()
    assert "ExecStart=/opt/tfl/venv/bin/tfl --log-format json data eod --data /var/lib/tfl/data" in service.splitlines()


def test_user_data_cloudwatch_agent(bootstrap: str) -> None:
    path = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
    config = json.loads(heredoc(bootstrap, path))
    files = {f["file_path"]: f for f in config["logs"]["logs_collected"]["files"]["collect_list"]}
    assert files["/var/log/tfl/trader.log"]["log_stream_name"] == "{instance_id}/trader"
    assert files["/var/log/tfl/metrics.log"]["log_stream_name"] == "{instance_id}/metrics"
    assert files["/var/log/tfl/trader-console.log"]["log_stream_name"] == "{instance_id}/console"
    assert {f["log_group_name"] for f in files.values()} == {"<TraderLogGroup>"}
    metrics = config["metrics"]
    assert metrics["namespace"] == "CWAgent"
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    assert metrics["metrics_collected"]["mem"]["measurement"] == ["mem_used_percent"]
    assert metrics["metrics_collected"]["disk"]["measurement"] == ["used_percent"]
    assert f"fetch-config -m ec2 -s \\\n  -c file:{path}" in bootstrap


def test_user_data_refers_only_to_known_names(tpl: Template) -> None:
    """Every ${X} the bootstrap substitutes is a parameter, a resource or a pseudo parameter."""
    ud = props(tpl, "TradingServer")["UserData"]["Fn::Base64"]["Fn::Sub"]
    names = {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", ud)}
    known = set(tpl["Parameters"]) | set(tpl["Resources"]) | {"AWS::Region", "AWS::StackName", "AWS::AccountId"}
    assert names <= known, names - known
    assert {"TradingMode", "JournalTable", "GitRepositoryUrl", "GitRef", "TraderLogGroup"} <= names


# --------------------------------------------------------------------------- outputs


def test_outputs(tpl: Template) -> None:
    outputs = tpl["Outputs"]
    assert set(outputs) >= OUTPUTS
    assert "whitelist" in outputs["ElasticIP"]["Description"].lower()
    assert outputs["ElasticIP"]["Value"] == {"Ref": "ElasticIP"}
    assert "redirect" in outputs["LoginCallbackUrl"]["Description"].lower()
    assert outputs["InstanceId"]["Value"] == {"Ref": "TradingServer"}
    assert outputs["JournalTable"]["Value"] == {"Ref": "JournalTable"}
    assert outputs["TopicArn"]["Value"] == {"Ref": "NotificationTopic"}
    assert outputs["LogGroup"]["Value"] == {"Ref": "TraderLogGroup"}


# --------------------------------------------------------------------------- the template agrees with the code


def json_filter_matches(pattern: str, event: dict[str, Any]) -> bool:
    """CloudWatch Logs JSON metric filter of the form ``{ ($.k = "v") || ($.k = "w") }``.

    Only that shape is understood; anything else fails the test rather than being guessed.
    """
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}"), pattern
    terms = [s.strip() for s in body[1:-1].split("||")]
    wanted = []
    for term in terms:
        m = re.fullmatch(r'\(\s*\$\.(\w+)\s*=\s*"([^"]*)"\s*\)', term)
        assert m, f"filter term not understood: {term!r}"
        wanted.append((m.group(1), m.group(2)))
    return any(event.get(k) == v for k, v in wanted)


def text_filter_matches(pattern: str, line: str) -> bool:
    """CloudWatch Logs text filter of OR-ed terms: ``?Term ?"a phrase"`` (case-sensitive)."""
    terms = re.findall(r'\?(?:"([^"]+)"|(\S+))', pattern)
    assert terms and all(a or b for a, b in terms), pattern
    return any((a or b) in line for a, b in terms)


def log_line(level: int, message: str) -> str:
    import logging

    from tfl.logs import JsonFormatter

    record = logging.LogRecord("tfl.runtime", level, __file__, 1, message, None, None)
    record.fields = {"session": "2024-05-16"}
    return JsonFormatter().format(record)


def test_error_filter_matches_the_traders_error_and_fatal_lines(tpl: Template) -> None:
    import logging

    (mf,) = [
        r["Properties"]
        for r in of_type(tpl, "AWS::Logs::MetricFilter").values()
        if r["Properties"]["FilterName"] == "TFL-ErrorLines"
    ]
    pattern = mf["FilterPattern"]
    for level, counted in (
        (logging.DEBUG, False),
        (logging.INFO, False),
        (logging.WARNING, False),
        (logging.ERROR, True),
        (logging.CRITICAL, True),
    ):
        event = json.loads(log_line(level, "x"))
        assert json_filter_matches(pattern, event) is counted, (level, event["level"])


def test_crash_filter_matches_tracebacks_and_cli_errors_only(tpl: Template) -> None:
    (mf,) = [
        r["Properties"]
        for r in of_type(tpl, "AWS::Logs::MetricFilter").values()
        if r["Properties"]["FilterName"] == "TFL-CrashLines"
    ]
    pattern = mf["FilterPattern"]
    assert text_filter_matches(pattern, "Traceback (most recent call last):")
    assert text_filter_matches(pattern, "tfl: error: journal dynamodb://TFL-Journal: PutItem failed (Throttling)")
    assert not text_filter_matches(pattern, log_line(20, "heartbeat"))
    assert not text_filter_matches(pattern, "tfl-bootstrap: done")


def test_heartbeat_alarm_watches_what_the_trader_emits(tpl: Template) -> None:
    from tfl.aws.metrics import EmfMetrics

    _, alarm = find(tpl, "AWS::CloudWatch::Alarm", AlarmName="TFL-HeartbeatMissing")
    doc = EmfMetrics(None, clock=lambda: 0.0).document({"Heartbeat": (1, "Count")}, {"session": "2024-05-16"})
    (directive,) = doc["_aws"]["CloudWatchMetrics"]  # type: ignore[index]
    assert directive["Namespace"] == alarm["Namespace"]
    assert alarm["MetricName"] in {m["Name"] for m in directive["Metrics"]}
    # An alarm without dimensions watches only the metric published with none.
    assert directive["Dimensions"] == [[]] and "Dimensions" not in alarm
    assert doc[alarm["MetricName"]] >= alarm["Threshold"], "one heartbeat keeps the alarm quiet"


def test_the_service_runs_a_real_tfl_trade_command(bootstrap: str) -> None:
    import shlex

    from tfl.cli.main import build_parser

    unit = heredoc(bootstrap, "/etc/systemd/system/tfl-trader.service")
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0] == "/opt/tfl/venv/bin/tfl"
    argv = [a.replace("${TFL_WORLD}", "paper").replace("${TFL_AWS__JOURNAL_TABLE}", "TFL-Journal") for a in argv[1:]]
    args = build_parser().parse_args(argv)
    assert (args.world, args.journal, str(args.data)) == ("paper", "dynamodb://TFL-Journal", "/var/lib/tfl/data")
    eod = heredoc(bootstrap, "/etc/systemd/system/tfl-eod.service")
    eod_start, compare_start = [line for line in eod.splitlines() if line.startswith("ExecStart=")]
    eod_args = build_parser().parse_args(shlex.split(eod_start.removeprefix("ExecStart="))[1:])
    assert (eod_args.command, eod_args.data_command) == ("data", "eod") and str(eod_args.data) == "/var/lib/tfl/data"
    # then live against the model; "-": its failure does not fail the unit (the bars are stored)
    compare = shlex.split(compare_start.removeprefix("ExecStart=-"))
    assert compare[0] == "/opt/tfl/venv/bin/tfl"
    cargs = build_parser().parse_args([a.replace("${TFL_AWS__JOURNAL_TABLE}", "TFL-Journal") for a in compare[1:]])
    assert (cargs.command, cargs.journal, str(cargs.data)) == ("compare", "dynamodb://TFL-Journal", "/var/lib/tfl/data")
    assert cargs.upload and cargs.notify and str(cargs.state_dir) == "/var/lib/tfl/state"


def test_no_aws_managed_policies(tpl: Template) -> None:
    """A managed policy is invisible to the wildcard check (AmazonSSMManagedInstanceCore grants
    ssm:GetParameter on every parameter of the account)."""
    for name, r in of_type(tpl, "AWS::IAM::Role").items():
        assert not r["Properties"].get("ManagedPolicyArns"), name


def test_session_manager_grants_are_pinned_to_the_stacks_vpc(tpl: Template) -> None:
    statements = [st for where, st in iam_statements(tpl) if where.startswith("InstanceRole/")]
    ssm = [
        st for st in statements if any(str(a).startswith(("ssmmessages:", "ssm:Update")) for a in as_list(st["Action"]))
    ]
    assert {a for st in ssm for a in as_list(st["Action"])} == {
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    }
    for st in ssm:
        assert st["Condition"] == {"StringEquals": {"aws:Ec2InstanceSourceVpc": {"Ref": "Vpc"}}}


def test_every_schedule_has_a_dead_letter_queue(tpl: Template) -> None:
    for name, r in of_type(tpl, "AWS::Scheduler::Schedule").items():
        assert refs(r["Properties"]["Target"]["DeadLetterConfig"]["Arn"]) == {"DeadLetterQueue"}, name


BUCKET_ARN = "arn:aws:s3:::tfl-data-bucket"


def s3_grants(tpl: Template, role: str) -> list[tuple[str, str, bool]]:
    """(action, resource ARN pattern, conditioned) for the role's S3 statements on the data bucket."""
    out = []
    for where, st in iam_statements(tpl):
        if where.split("/")[0] != role:
            continue
        for res in as_list(st["Resource"]):
            if isinstance(res, dict) and "Fn::Sub" in res:
                arn = render_sub(res["Fn::Sub"], {"DataBucket.Arn": BUCKET_ARN})
            elif res == {"Fn::GetAtt": ["DataBucket", "Arn"]}:
                arn = BUCKET_ARN
            else:
                continue
            for action in as_list(st["Action"]):
                out.append((str(action), arn, bool(st.get("Condition"))))
    return out


def allowed(grants: list[tuple[str, str, bool]], action: str, arn: str) -> bool:
    import fnmatch

    return any(a == action and fnmatch.fnmatchcase(arn, pattern) for a, pattern, _ in grants)


def test_each_role_may_touch_the_objects_its_code_uses(tpl: Template) -> None:
    """moto enforces no IAM: the keys the code reads and writes are checked against the grants here."""
    from tfl.aws.daily_bars import UNIVERSE_KEY, daily_key

    needs = {
        # the pre-market job: the daily bars and the deployed universe
        "BiasFunctionRole": [("s3:GetObject", daily_key("SBIN")), ("s3:GetObject", UNIVERSE_KEY)],
        # the post-market job: the day's trades export
        "ReportFunctionRole": [("s3:PutObject", "exports/2024-05-16/trades.csv")],
        # the server: the universe, and the end-of-day sync of the daily bars (HeadObject is GetObject)
        "InstanceRole": [
            ("s3:GetObject", UNIVERSE_KEY),
            ("s3:GetObject", daily_key("SBIN")),
            ("s3:PutObject", daily_key("SBIN")),
        ],
    }
    for role, wanted in needs.items():
        grants = s3_grants(tpl, role)
        for action, key in wanted:
            assert allowed(grants, action, f"{BUCKET_ARN}/{key}"), (role, action, key)
    assert not allowed(s3_grants(tpl, "BiasFunctionRole"), "s3:PutObject", f"{BUCKET_ARN}/{UNIVERSE_KEY}")
    assert not allowed(s3_grants(tpl, "InstanceRole"), "s3:PutObject", f"{BUCKET_ARN}/{UNIVERSE_KEY}")
    # Reading a key that may be missing needs an unconditioned ListBucket, or S3 answers 403, not 404.
    for role in ("BiasFunctionRole", "InstanceRole"):
        lists = [c for a, arn, c in s3_grants(tpl, role) if a == "s3:ListBucket" and arn == BUCKET_ARN]
        assert lists == [False], role
