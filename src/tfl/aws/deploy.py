"""`tfl deploy`: package the Lambdas, upload, create or update the stack, wait, print outputs.

The template is uploaded next to the code (it is larger than CloudFormation's inline
limit). Parameters not given on the command line keep their previous value on an
update, so a redeploy never silently resets the operator's IP, key or trading mode.
Progress is the stack's own event stream, printed as it arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tfl.aws.package import Bundle

TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
TERMINAL_BAD = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_COMPLETE",
    "DELETE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_FAILED",
}
# Parameters the template requires on the first deploy (the rest have safe defaults).
REQUIRED_ON_CREATE = ("MyIPAddress", "GitRepositoryUrl")


class DeployError(RuntimeError):
    """The deployment cannot go on; the message says what to fix."""


@dataclass
class DeployPlan:
    stack_name: str
    template: Path
    artifacts_bucket: str
    parameters: dict[str, str] = field(default_factory=dict)
    universe: Path | None = None


def template_parameters(text: str) -> dict[str, dict[str, Any]]:
    """The template's Parameters section, read locally (CloudFormation's short tags are kept as data)."""
    import yaml

    loader: Any = type("CfnLoader", (yaml.SafeLoader,), {})

    def _tag(ldr: Any, suffix: str, node: Any) -> Any:
        del suffix
        if isinstance(node, yaml.ScalarNode):
            return ldr.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return ldr.construct_sequence(node, deep=True)
        return ldr.construct_mapping(node, deep=True)

    loader.add_multi_constructor("!", _tag)
    try:
        doc = yaml.load(text, Loader=loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise DeployError(f"the template is not valid YAML: {exc}") from None
    params = doc.get("Parameters") if isinstance(doc, dict) else None
    if not isinstance(params, dict):
        raise DeployError("the template has no Parameters section")
    return {str(k): dict(v or {}) for k, v in params.items()}


def artifacts_bucket_name(sts: Any, region: str) -> str:
    account = sts.get_caller_identity()["Account"]
    return f"tfl-artifacts-{account}-{region}"


def ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    """A private, encrypted, versioned bucket for code and templates (created once)."""
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"artifacts bucket {bucket}: {exc.response.get('Error', {}).get('Code')}") from None
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def upload_if_missing(s3: Any, bucket: str, key: str, body: bytes) -> bool:
    """Upload unless the object exists (keys are content hashes); True if uploaded."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except ClientError:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return True


def stack_status(cfn: Any, name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(stacks[0]["StackStatus"]) if stacks else None


def stack_parameters(
    template_params: Mapping[str, Any], given: Mapping[str, str], *, update: bool
) -> list[dict[str, Any]]:
    """CloudFormation parameters: given values, previous values on an update, defaults otherwise."""
    unknown = sorted(set(given) - set(template_params))
    if unknown:
        raise DeployError(f"the template has no parameter(s) {', '.join(unknown)}")
    out: list[dict[str, Any]] = []
    for name in sorted(template_params):
        if name in given:
            out.append({"ParameterKey": name, "ParameterValue": given[name]})
        elif update:
            out.append({"ParameterKey": name, "UsePreviousValue": True})
    if not update:
        missing = [p for p in REQUIRED_ON_CREATE if p in template_params and p not in given]
        if missing:
            raise DeployError(f"the first deploy needs {', '.join(missing)} (see tfl deploy --help)")
    return out


def wait_for_stack(
    cfn: Any,
    name: str,
    progress: Callable[[str], None],
    *,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Print each new stack event until the stack settles; its final status."""
    seen: set[str] = set()
    first = True
    deadline = clock() + timeout_seconds
    while True:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
        fresh = [e for e in reversed(events) if e["EventId"] not in seen]
        for e in fresh:
            seen.add(e["EventId"])
            if first:  # older events belong to earlier deployments
                continue
            reason = f" ({e['ResourceStatusReason']})" if e.get("ResourceStatusReason") else ""
            progress(f"{e['LogicalResourceId']:<32} {e['ResourceStatus']}{reason}")
        first = False
        status = stack_status(cfn, name) or "DELETE_COMPLETE"
        if status in TERMINAL_OK or status in TERMINAL_BAD:
            return status
        if clock() > deadline:
            raise DeployError(f"stack {name} still {status} after {timeout_seconds:.0f} s")
        sleep(poll_seconds)


def stack_outputs(cfn: Any, name: str) -> dict[str, str]:
    stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def deploy(
    plan: DeployPlan,
    bundle: Bundle,
    *,
    cfn: Any,
    s3: Any,
    region: str,
    progress: Callable[[str], None],
    template_params: Mapping[str, Any],
    poll_seconds: float = 5.0,
) -> dict[str, str]:
    """Upload the bundle and the template, create or update the stack, wait; the outputs."""
    ensure_bucket(s3, plan.artifacts_bucket, region)
    if upload_if_missing(s3, plan.artifacts_bucket, bundle.key, bundle.data):
        progress(f"uploaded the Lambda bundle s3://{plan.artifacts_bucket}/{bundle.key} ({len(bundle.data)} bytes)")
    else:
        progress(f"the Lambda bundle is already uploaded: s3://{plan.artifacts_bucket}/{bundle.key}")
    body = plan.template.read_bytes()
    template_key = f"templates/{plan.template.stem}-{bundle.sha256[:8]}-{int(time.time())}.yaml"
    s3.put_object(Bucket=plan.artifacts_bucket, Key=template_key, Body=body)
    url = f"https://{plan.artifacts_bucket}.s3.{region}.amazonaws.com/{template_key}"
    given = dict(plan.parameters)
    given["LambdaCodeBucket"] = plan.artifacts_bucket
    given["LambdaCodeKey"] = bundle.key
    status = stack_status(cfn, plan.stack_name)
    if status == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"stack {plan.stack_name} failed to create earlier (ROLLBACK_COMPLETE): delete it, then deploy again"
        )
    update = status is not None
    params = stack_parameters(template_params, given, update=update)
    caps = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
    if update:
        try:
            cfn.update_stack(StackName=plan.stack_name, TemplateURL=url, Parameters=params, Capabilities=caps)
        except ClientError as exc:
            if "No updates are to be performed" in str(exc):
                progress("no changes: the stack is already up to date")
                return stack_outputs(cfn, plan.stack_name)
            raise DeployError(f"update of {plan.stack_name} refused: {exc}") from None
        progress(f"updating stack {plan.stack_name} ...")
    else:
        cfn.create_stack(
            StackName=plan.stack_name,
            TemplateURL=url,
            Parameters=params,
            Capabilities=caps,
            OnFailure="ROLLBACK",
            Tags=[{"Key": "Project", "Value": "TFL"}],
        )
        progress(f"creating stack {plan.stack_name} ...")
    final = wait_for_stack(cfn, plan.stack_name, progress, poll_seconds=poll_seconds)
    if final not in TERMINAL_OK:
        raise DeployError(f"stack {plan.stack_name} ended {final}: see the events above")
    outputs = stack_outputs(cfn, plan.stack_name)
    if plan.universe is not None and outputs.get("DataBucket"):
        s3.put_object(Bucket=outputs["DataBucket"], Key="config/universe.csv", Body=plan.universe.read_bytes())
        progress(f"uploaded the universe to s3://{outputs['DataBucket']}/config/universe.csv")
    return outputs
