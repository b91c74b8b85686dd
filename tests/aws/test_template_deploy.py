"""The template's answers to "a deploy that can be retried and kept": policies that let a failed
first create roll back cleanly, the first boot's signal, OS security updates, a private
repository's token (read at boot, never echoed), Graviton, the optional SMS subscription and
the ops job's once-a-day marker.

The bootstrap's shell functions are RUN here with bash, with stand-ins for ``aws`` and
``cfn-signal`` on the PATH (the only parts replaced): what they print, what they are passed,
whether they signal.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_template import Template, iam_statements, load, props, refs, render_sub

from tfl.aws.deploy import JOURNAL_TABLE, PROTECT_PARAMETER, TYPE_PARAMETER, architecture
from tfl.aws.lambdas.once import ONCE_PARTITION

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "tfl-infrastructure.yaml"
KEPT = ("TFLKey", "JournalTable", "DataBucket", "AccessLogBucket")
TOKEN = "ghp_TOPSECRET0123456789"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


@pytest.fixture(scope="module")
def tpl() -> Template:
    return load(TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def script(tpl: Template) -> str:
    """The bootstrap as CloudFormation renders it, indentation removed."""
    ud = props(tpl, "TradingServer")["UserData"]["Fn::Base64"]["Fn::Sub"]
    text = render_sub(ud, {"GitTokenSecret": "tfl/git_token", "AWS::Region": "ap-south-1", "AWS::StackName": "TFL-S"})
    start = text.index("#!/bin/bash")
    return text[start : text.index("--==TFL-BOUNDARY==--")]


def function(script: str, name: str) -> str:
    m = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", script, re.S | re.M)
    assert m, f"no shell function {name}"
    return m.group(0)


def stub(bin_dir: Path, name: str, body: str) -> Path:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return path


def bash(code: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{tmp / 'bin'}:{os.environ['PATH']}", "HOME": str(tmp)}
    return subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=env, check=False, timeout=30)


# --------------------------------------------------------------------------- retry and keep


def test_kept_resources_are_deleted_when_their_first_create_rolls_back(tpl: Template) -> None:
    for name in KEPT:
        r = tpl["Resources"][name]
        assert r["DeletionPolicy"] == "RetainExceptOnCreate", name
        assert r["UpdateReplacePolicy"] == "Retain", name  # a replacement still keeps the old one
    retained = [n for n, r in tpl["Resources"].items() if r.get("DeletionPolicy") == "Retain"]
    assert retained == [], "a plain Retain would survive a failed first create and block the retry"


def test_the_deploy_knows_the_templates_fixed_names(tpl: Template) -> None:
    assert props(tpl, "JournalTable")["TableName"] == JOURNAL_TABLE
    assert PROTECT_PARAMETER in tpl["Parameters"] and TYPE_PARAMETER in tpl["Parameters"]


def test_the_server_must_signal_its_first_boot(tpl: Template, script: str) -> None:
    policy = tpl["Resources"]["TradingServer"]["CreationPolicy"]["ResourceSignal"]
    assert policy["Count"] == 1
    minutes = int(re.fullmatch(r"PT(\d+)M", policy["Timeout"]).group(1))  # type: ignore[union-attr]
    assert 20 <= minutes <= 60  # a first pip install takes minutes; CloudFormation allows up to 12 h
    assert "aws-cfn-bootstrap" in script.split("dnf install -y", 1)[1].splitlines()[0]
    assert "--resource TradingServer" in function(script, "cfn_signal")
    # the signal comes last, after the services are set up
    assert script.rindex("cfn_signal 0") > script.index("systemctl enable tfl-trader.service")


def test_os_security_updates_are_applied_at_boot_before_the_code(script: str) -> None:
    line = next(x for x in script.splitlines() if "dnf upgrade" in x)
    assert "--security" in line and "--releasever=latest" in line and line.lstrip().startswith("if timeout ")
    assert script.index("dnf upgrade") < script.index("git_auth &&")


def signal_run(script: str, tmp: Path, *, installed: bool, failure: str = "") -> list[str]:
    """Run the bootstrap's final signalling step; the cfn-signal calls, one argv per line."""
    (tmp / "bin").mkdir(exist_ok=True)
    calls = tmp / "calls"
    fake = stub(tmp / "bin", "cfn-signal", f'printf "%s|" "$@" >> {calls}; echo >> {calls}\n')
    venv = tmp / "venv"
    if installed:
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        stub(venv / "bin", "tfl", "exit 0\n")
    final = re.search(r'^if \[ -x "\$VENV/bin/tfl" \].*?^fi\n', script, re.S | re.M)
    assert final
    code = "\n".join(
        [
            f"VENV={venv}; SIGNALLED={tmp / 'signalled'}; REGION=ap-south-1; REF=v1.2; FAILURE='{failure}'",
            'log() { echo "tfl-bootstrap: $*"; }',
            function(script, "cfn_signal").replace("/opt/aws/bin/cfn-signal", str(fake)),
            final.group(0),
        ]
    )
    proc = bash(code, tmp)
    assert proc.returncode == 0, proc.stderr
    return calls.read_text().splitlines() if calls.exists() else []


def test_the_first_boot_signals_success_or_the_failure_once(script: str, tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    ok.mkdir()
    (call,) = signal_run(script, ok, installed=True)
    assert call.startswith("-e|0|--reason|trader installed from v1.2|--stack|TFL-S|--resource|TradingServer|")
    assert signal_run(script, ok, installed=True) == [call]  # later boots: no second signal
    bad = tmp_path / "bad"
    bad.mkdir()
    (call,) = signal_run(script, bad, installed=False, failure="pip install of v1.2 (abc) failed")
    assert call.startswith("-e|1|--reason|pip install of v1.2 (abc) failed; see /var/log/cloud-init-output.log|")
    never = tmp_path / "never"
    never.mkdir()
    (call,) = signal_run(script, never, installed=False)
    assert "--reason|the trader is not installed;" in call


# --------------------------------------------------------------------------- private repository


def git_auth_run(
    script: str, tmp: Path, secret_name: str, aws_body: str, then: str
) -> subprocess.CompletedProcess[str]:
    (tmp / "bin").mkdir(exist_ok=True)
    stub(tmp / "bin", "aws", f'printf "%s " "$@" > {tmp / "aws-argv"}\n' + aws_body)
    askpass = tmp / "git-askpass"
    m = re.search(r"cat > /opt/tfl/git-askpass <<'EOF'\n(.*?)\nEOF\n", script, re.S)
    assert m
    askpass.write_text(m.group(1) + "\n")
    askpass.chmod(0o700)
    code = "\n".join(
        [
            f"set -uo pipefail; GIT_TOKEN_SECRET='{secret_name}'; REGION=ap-south-1",
            'log() { echo "tfl-bootstrap: $*"; }',
            function(script, "git_auth").replace("/opt/tfl/git-askpass", str(askpass)),
            then,
        ]
    )
    return bash(code, tmp)


def test_the_boot_hands_the_token_to_git_without_echoing_it(script: str, tmp_path: Path) -> None:
    secret = '{"username": "gitlab+deploy-token-7", "token": "' + TOKEN + '"}'
    body = f"echo '{secret}'\n"
    quiet = git_auth_run(script, tmp_path, "tfl/git_token", body, 'git_auth; echo "rc=$?"')
    assert quiet.stdout == "rc=0\n" and quiet.stderr == ""  # nothing of the token in the boot log
    argv = (tmp_path / "aws-argv").read_text()
    assert "secretsmanager get-secret-value --region ap-south-1 --secret-id tfl/git_token" in argv
    asked = git_auth_run(
        script,
        tmp_path,
        "tfl/git_token",
        body,
        'git_auth && "$GIT_ASKPASS" "Username for \'https://gitlab.com\': " '
        '&& "$GIT_ASKPASS" "Password for \'https://gitlab.com\': " && echo "prompt=$GIT_TERMINAL_PROMPT"',
    )
    assert asked.stdout.splitlines() == ["gitlab+deploy-token-7", TOKEN, "prompt=0"]  # what git receives
    default_user = git_auth_run(
        script,
        tmp_path,
        "tfl/git_token",
        f"""echo '{{"token": "{TOKEN}"}}'\n""",
        'git_auth && "$GIT_ASKPASS" "Username for x: "',
    )
    assert default_user.stdout == "x-access-token\n"


@pytest.mark.parametrize(
    ("aws_body", "log"),
    [
        ("exit 254\n", "cannot read the git token secret tfl/git_token"),
        ("echo 'not json'\n", "is not JSON with a token"),
    ],
)
def test_an_unreadable_token_fails_the_fetch_and_says_so(script: str, tmp_path: Path, aws_body: str, log: str) -> None:
    proc = git_auth_run(script, tmp_path, "tfl/git_token", aws_body, 'git_auth; echo "rc=$?"')
    *logged, rc = proc.stdout.splitlines()
    assert rc == "rc=1" and len(logged) == 1 and logged[0].startswith("tfl-bootstrap: ") and log in logged[0]


def test_a_public_repository_reads_no_secret(script: str, tmp_path: Path) -> None:
    proc = git_auth_run(script, tmp_path, "", "exit 1\n", 'git_auth; echo "rc=$? askpass=${GIT_ASKPASS:-none}"')
    assert proc.stdout == "rc=0 askpass=none\n" and not (tmp_path / "aws-argv").exists()


def test_the_token_is_read_only_by_the_server_and_only_that_secret(tpl: Template) -> None:
    grants = [(where, st) for where, st in iam_statements(tpl) if st.get("Sid") == "ReadGitToken"]
    ((where, st),) = grants
    assert where.startswith("InstanceRole/")
    assert st["Action"] == "secretsmanager:GetSecretValue"
    assert st["Resource"]["Fn::Sub"].endswith(":secret:${GitTokenSecret}-??????")
    policy = props(tpl, "InstanceRole")["Policies"][0]["PolicyDocument"]["Statement"]
    (conditional,) = [s for s in policy if "Fn::If" in s]
    assert conditional["Fn::If"][0] == "HasGitToken" and conditional["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    assert tpl["Conditions"]["HasGitToken"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "GitTokenSecret"}, ""]}]}


@pytest.mark.parametrize(
    ("param", "value", "ok"),
    [
        ("GitTokenSecret", "", True),
        ("GitTokenSecret", "tfl/git_token", True),
        ("GitTokenSecret", "tfl/x'; curl evil", False),
        ("GitRepositoryUrl", "https://github.com/me/private-tfl.git", True),
        ("GitRepositoryUrl", "https://x-access-token:ghp_abc@github.com/me/tfl.git", False),  # no token in a URL
        ("GitRepositoryUrl", "https://me@github.com/me/tfl.git", False),
        ("AlertPhone", "", True),
        ("AlertPhone", "+919812345678", True),
        ("AlertPhone", "9812345678", False),
        ("AlertPhone", "+91 98123 45678", False),
    ],
)
def test_parameter_patterns(tpl: Template, param: str, value: str, ok: bool) -> None:
    assert (re.fullmatch(tpl["Parameters"][param]["AllowedPattern"], value) is not None) is ok


# --------------------------------------------------------------------------- Graviton, SMS, ops marker


def test_graviton_sizes_boot_the_arm64_image(tpl: Template) -> None:
    allowed = tpl["Parameters"]["InstanceTypeParameter"]["AllowedValues"]
    assert {"t4g.small", "t4g.medium"} <= set(allowed)
    in_condition = {e["Fn::Equals"][1] for e in tpl["Conditions"]["Graviton"]["Fn::Or"]}
    # the condition names exactly the allowed arm64 sizes, as the deploy's own check classifies them
    assert in_condition == {t for t in allowed if architecture(t) == "arm64"}
    assert tpl["Parameters"]["LatestArm64AmiId"]["Default"].endswith("/al2023-ami-kernel-default-arm64")
    image = props(tpl, "TradingServer")["ImageId"]
    assert image["Fn::If"][2] == {"Fn::If": ["Graviton", {"Ref": "LatestArm64AmiId"}, {"Ref": "LatestAmiId"}]}


def test_an_optional_sms_subscription(tpl: Template) -> None:
    subs = {n: r for n, r in tpl["Resources"].items() if r["Type"] == "AWS::SNS::Subscription"}
    sms = [(n, r) for n, r in subs.items() if r["Properties"]["Protocol"] == "sms"]
    ((_name, r),) = sms
    assert r["Condition"] == "HasAlertPhone" and r["Properties"]["Endpoint"] == {"Ref": "AlertPhone"}
    assert refs(r["Properties"]["TopicArn"]) == {"NotificationTopic"}
    assert tpl["Parameters"]["AlertPhone"]["Default"] == ""


def test_the_ops_role_may_write_only_its_marker_partition(tpl: Template) -> None:
    (st,) = [st for where, st in iam_statements(tpl) if where.startswith("OpsFunctionRole/") and "dynamodb" in str(st)]
    assert set(st["Action"]) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert refs(st["Resource"]) == {"JournalTable"}
    assert st["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [ONCE_PARTITION]}}
    env: dict[str, Any] = props(tpl, "OpsFunction")["Environment"]["Variables"]
    assert env["TFL_AWS__JOURNAL_TABLE"] == {"Ref": "JournalTable"}


def test_the_disk_size_is_a_parameter_with_a_floor(tpl: Template) -> None:
    """10 GiB is the cost page's recommendation; the floor keeps the AMI's 8 GiB snapshot plus room."""
    p = tpl["Parameters"]["RootVolumeSize"]
    assert (p["Type"], p["Default"], p["MinValue"]) == ("Number", 20, 10)
    (dev,) = props(tpl, "TradingServer")["BlockDeviceMappings"]
    assert dev["Ebs"]["VolumeSize"] == {"Ref": "RootVolumeSize"}
