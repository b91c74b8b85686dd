"""`tfl deploy`: package the Lambdas, upload, create or update the stack, wait, print outputs.

The template is uploaded next to the code (it is larger than CloudFormation's inline
limit). Parameters not given on the command line keep their previous value on an
update, so a redeploy never silently resets the operator's IP, key or trading mode.
An update pins the trading server's image (``PinnedAmiId``): CloudFormation re-resolves
the SSM-typed ``LatestAmiId`` on every update, and a newer Amazon Linux image would
otherwise replace the instance. Progress is the stack's own event stream, printed as it
arrives.

A deployment that fails says why (the first failed resource and its reason, from the
events) and what it kept. A first create that failed (ROLLBACK_COMPLETE: nothing is left in
it) is deleted and created again by the next ``tfl deploy``; a journal table left by an
earlier stack is named, with how to remove it, before anything is uploaded. The journal's
deletion protection is off while the first create runs (a rollback could not delete it
otherwise) and is turned on by a second, in-place update right after.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code
from tfl.aws.package import Bundle
from tfl.aws.stack_failure import diagnose, existing_table

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
    "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
}
# Statuses CloudFormation refuses to update from, with what the operator must do first.
_NOT_UPDATABLE = {
    "ROLLBACK_FAILED": "its creation failed and could not be rolled back: delete it, then deploy again",
    "CREATE_FAILED": "its creation failed and was kept for inspection: delete it, then deploy again",
    "UPDATE_ROLLBACK_FAILED": "an update could not be rolled back: run "
    "aws cloudformation continue-update-rollback --stack-name {name}, then try again",
    "DELETE_FAILED": "a deletion failed: delete it again (fix what blocked it), then deploy",
    "REVIEW_IN_PROGRESS": "a change set was created but never executed: execute or delete it first",
}
# Parameters the template requires on the first deploy (the rest have safe defaults).
REQUIRED_ON_CREATE = ("MyIPAddress", "GitRepositoryUrl")
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
# The template's AMI pin and the instance it protects: CloudFormation re-resolves the SSM-typed
# LatestAmiId on every update, so without a pin a new Amazon Linux release replaces the server.
PIN_PARAMETER = "PinnedAmiId"
SERVER_RESOURCE = "TradingServer"
NO_UPDATES = "No updates are to be performed"
# A first create that failed and was rolled back: nothing is left in it, so it is replaced.
ROLLED_BACK_CREATE = "ROLLBACK_COMPLETE"
# The template's journal table (a fixed name: a table kept from an earlier stack blocks a create)
# and the parameter that keeps its deletion protection off during the first create only.
JOURNAL_TABLE = "TFL-Journal"
PROTECT_PARAMETER = "JournalDeletionProtection"
TYPE_PARAMETER = "InstanceTypeParameter"

log = logging.getLogger("tfl.aws.deploy")


class DeployError(RuntimeError):
    """The deployment cannot go on; the message says what to fix."""


@dataclass
class DeployPlan:
    stack_name: str
    template: Path
    artifacts_bucket: str
    parameters: dict[str, str] = field(default_factory=dict)
    universe: Path | None = None
    refresh_ami: bool = False  # let an update move the server to the latest image (replaces it)


def architecture(instance_type: str) -> str:
    """arm64 for a Graviton size (t4g.small, m7g.large, c7gn.xlarge), else x86_64."""
    family = instance_type.split(".", maxsplit=1)[0]
    return "arm64" if re.fullmatch(r"[a-z]+\d+g[a-z]*", family) else "x86_64"


def check_architecture(stack: Mapping[str, Any] | None, given: Mapping[str, str], refresh_ami: bool) -> None:
    """Refuse moving the server between x86_64 and arm64 while its image is pinned: the pinned
    image cannot boot the other architecture, and moving means a new instance."""
    if stack is None or refresh_ami or TYPE_PARAMETER not in given:
        return
    old = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}.get(TYPE_PARAMETER)
    new = given[TYPE_PARAMETER]
    if old and architecture(old) != architecture(new):
        raise DeployError(
            f"{new} is {architecture(new)} but the server ({old}) runs an {architecture(old)} image: pass "
            "--refresh-ami as well, which REPLACES the server (new disk: history is fetched again; the "
            "Elastic IP and the journal stay)"
        )


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


def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack's description, or None if it does not exist."""
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def stack_status(cfn: Any, name: str) -> str | None:
    stack = describe_stack(cfn, name)
    return str(stack["StackStatus"]) if stack else None


def check_updatable(name: str, status: str | None) -> None:
    """Refuse, before anything is uploaded, a stack CloudFormation would not update; the message says what to do."""
    if status is None:
        return
    fix = _NOT_UPDATABLE.get(status)
    if fix is not None:
        raise DeployError(f"stack {name} is {status}: {fix.format(name=name)}")
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {name} is {status}: another operation is running; wait for it to finish")


def current_image(cfn: Any, ec2: Any, stack_name: str) -> str:
    """The AMI the stack's trading server runs now: pinning it keeps the instance through an update."""
    try:
        resource = cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=SERVER_RESOURCE)
        instance_id = resource["StackResourceDetail"]["PhysicalResourceId"]
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        image = str(reservations[0]["Instances"][0]["ImageId"])
    except (ClientError, BotoCoreError, IndexError, KeyError) as exc:
        code = aws_code(exc)
        raise DeployError(
            f"cannot read the image of {SERVER_RESOURCE} in {stack_name} ({code}), so it cannot be pinned: "
            "an update could replace the server. Pass --refresh-ami to accept a new instance"
        ) from None
    log.info(
        "trading server image pinned",
        extra={"fields": {"stack": stack_name, "instance": instance_id, "image": image}},
    )
    return image


def stack_parameters(
    template_params: Mapping[str, Any], given: Mapping[str, str], existing: Collection[str] | None
) -> list[dict[str, Any]]:
    """CloudFormation parameters: given values, else the stack's previous value, else the template default.

    ``existing`` is the running stack's parameter keys (None on a create). Only those may be
    sent as UsePreviousValue: CloudFormation rejects it for a parameter the stack never had.
    """
    unknown = sorted(set(given) - set(template_params))
    if unknown:
        raise DeployError(f"the template has no parameter(s) {', '.join(unknown)}")
    out: list[dict[str, Any]] = []
    missing: list[str] = []
    for name in sorted(template_params):
        if name in given:
            out.append({"ParameterKey": name, "ParameterValue": given[name]})
        elif existing is not None and name in existing:
            out.append({"ParameterKey": name, "UsePreviousValue": True})
        elif "Default" not in template_params[name]:
            missing.append(name)
    if missing and existing is None:
        raise DeployError(f"the first deploy needs {', '.join(missing)} (see tfl deploy --help)")
    if missing:
        raise DeployError(
            f"the template adds parameter(s) without a default: {', '.join(missing)}; pass a value (tfl deploy --help)"
        )
    return out


def latest_event_id(cfn: Any, name: str) -> str | None:
    """The newest event of the stack: read before an operation, so waiting prints exactly that operation's events."""
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(events[0]["EventId"]) if events else None


def _events_after(cfn: Any, name: str, since: str | None, seen: set[str]) -> list[dict[str, Any]]:
    """Events newer than ``since`` not printed yet, oldest first (the API pages newest first)."""
    fresh: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StackName": name}
    while True:
        page = cfn.describe_stack_events(**kwargs)
        for e in page["StackEvents"]:
            if e["EventId"] == since or e["EventId"] in seen:
                return fresh[::-1]
            fresh.append(e)
        if not page.get("NextToken"):
            return fresh[::-1]
        kwargs["NextToken"] = page["NextToken"]


def wait_for_stack(
    cfn: Any,
    name: str,
    progress: Callable[[str], None],
    *,
    since: str | None,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Print each event after ``since`` (see :func:`latest_event_id`) until the stack settles; its final status."""
    seen: set[str] = set()
    deadline = clock() + timeout_seconds
    while True:
        for e in _events_after(cfn, name, since, seen):
            seen.add(e["EventId"])
            reason = f" ({e['ResourceStatusReason']})" if e.get("ResourceStatusReason") else ""
            progress(f"{e['LogicalResourceId']:<32} {e['ResourceStatus']}{reason}")
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
    ec2: Any,
    region: str,
    progress: Callable[[str], None],
    template_params: Mapping[str, Any],
    poll_seconds: float = 5.0,
    ddb: Any = None,
) -> dict[str, str]:
    """Upload the bundle and the template, create or update the stack, wait; the outputs.

    ``ddb`` (a DynamoDB client) lets a create check first for a journal table kept from an
    earlier stack; without it that check is skipped.
    """
    stack = describe_stack(cfn, plan.stack_name)
    given = dict(plan.parameters)
    if stack is not None and stack["StackStatus"] == ROLLED_BACK_CREATE:
        # the retry keeps what the failed create was given (the operator's IP, URL, ...)
        given = {**rolled_back_parameters(stack, template_params), **given}
        stack_parameters(template_params, {**given, "LambdaCodeBucket": "-", "LambdaCodeKey": "-"}, None)
        replace_rolled_back(cfn, plan.stack_name, str(stack.get("StackId") or plan.stack_name), progress, poll_seconds)
        stack = None
    check_updatable(plan.stack_name, str(stack["StackStatus"]) if stack else None)
    update = stack is not None
    if not update and ddb is not None:
        check_no_kept_journal(ddb)
    check_architecture(stack, plan.parameters, plan.refresh_ami)
    given["LambdaCodeBucket"] = plan.artifacts_bucket
    given["LambdaCodeKey"] = bundle.key
    protect_after = not update and PROTECT_PARAMETER in template_params and PROTECT_PARAMETER not in given
    if protect_after:
        given[PROTECT_PARAMETER] = "false"
    elif update and PROTECT_PARAMETER in template_params and PROTECT_PARAMETER not in given:
        # every update turns the protection on: a first create whose protect step failed or was
        # interrupted is mended by the next deploy, never left unprotected for good
        given[PROTECT_PARAMETER] = "true"
    if update and PIN_PARAMETER in template_params:
        if plan.refresh_ami:
            given[PIN_PARAMETER] = ""
            progress(
                f"--refresh-ami: {SERVER_RESOURCE} moves to the latest image; if that is newer than its own, "
                "the instance is REPLACED (a new instance with an empty disk)"
            )
        else:
            given[PIN_PARAMETER] = current_image(cfn, ec2, plan.stack_name)
            progress(f"{SERVER_RESOURCE} stays on its image {given[PIN_PARAMETER]} (--refresh-ami to update it)")
    elif update and plan.refresh_ami:
        progress(f"--refresh-ami: the template has no {PIN_PARAMETER}; every update resolves the latest image anyway")
    existing = [str(p["ParameterKey"]) for p in stack.get("Parameters", [])] if stack is not None else None
    params = stack_parameters(template_params, given, existing)

    ensure_bucket(s3, plan.artifacts_bucket, region)
    if upload_if_missing(s3, plan.artifacts_bucket, bundle.key, bundle.data):
        progress(f"uploaded the Lambda bundle s3://{plan.artifacts_bucket}/{bundle.key} ({len(bundle.data)} bytes)")
    else:
        progress(f"the Lambda bundle is already uploaded: s3://{plan.artifacts_bucket}/{bundle.key}")
    body = plan.template.read_bytes()
    template_key = f"templates/{plan.template.stem}-{bundle.sha256[:8]}-{int(time.time())}.yaml"
    s3.put_object(Bucket=plan.artifacts_bucket, Key=template_key, Body=body)
    url = f"https://{plan.artifacts_bucket}.s3.{region}.amazonaws.com/{template_key}"

    since = latest_event_id(cfn, plan.stack_name) if update else None
    changed = True
    if update:
        try:
            cfn.update_stack(StackName=plan.stack_name, TemplateURL=url, Parameters=params, Capabilities=CAPABILITIES)
        except ClientError as exc:
            if NO_UPDATES not in str(exc):
                raise DeployError(f"update of {plan.stack_name} refused: {exc}") from None
            progress("no changes: the stack is already up to date")
            changed = False
        else:
            progress(f"updating stack {plan.stack_name} ...")
    else:
        cfn.create_stack(
            StackName=plan.stack_name,
            TemplateURL=url,
            Parameters=params,
            Capabilities=CAPABILITIES,
            OnFailure="ROLLBACK",
            Tags=[{"Key": "Project", "Value": "TFL"}],
        )
        progress(f"creating stack {plan.stack_name} ...")
    if changed:
        final = wait_for_stack(cfn, plan.stack_name, progress, since=since, poll_seconds=poll_seconds)
        if final not in TERMINAL_OK:
            explain_failure(cfn, plan.stack_name, final, since, progress)
    if protect_after:
        protect_journal(cfn, plan.stack_name, progress, poll_seconds)
    outputs = stack_outputs(cfn, plan.stack_name)
    if plan.universe is not None and outputs.get("DataBucket"):  # also when the stack itself had no changes
        s3.put_object(Bucket=outputs["DataBucket"], Key="config/universe.csv", Body=plan.universe.read_bytes())
        progress(f"uploaded the universe to s3://{outputs['DataBucket']}/config/universe.csv")
    return outputs


def explain_failure(cfn: Any, name: str, final: str, since: str | None, progress: Callable[[str], None]) -> None:
    """Print why the operation failed (first failed resource, kept resources); raise a one-line error."""
    diagnosis = diagnose(cfn, name, final, since)
    progress("")
    for line in diagnosis.lines():
        progress(line)
    cause = diagnosis.failure
    summary = f"{cause.logical_id}: {cause.reason}" if cause is not None else "see the events above"
    retry = (
        " Fix the cause and run tfl deploy again: it replaces the rolled-back stack."
        if final == ROLLED_BACK_CREATE
        else ""
    )
    raise DeployError(f"stack {name} ended {final} ({summary}).{retry}")


def rolled_back_parameters(stack: Mapping[str, Any], template_params: Mapping[str, Any]) -> dict[str, str]:
    """The values a failed create was given, for its retry: those the template still has, except
    the ones ``tfl deploy`` sets itself (code, image pin, journal protection) and hidden ones."""
    own = {"LambdaCodeBucket", "LambdaCodeKey", PIN_PARAMETER, PROTECT_PARAMETER}
    return {
        str(p["ParameterKey"]): str(p["ParameterValue"])
        for p in stack.get("Parameters", [])
        if p["ParameterKey"] in template_params and p["ParameterKey"] not in own and p.get("ParameterValue") != "****"
    }


def replace_rolled_back(
    cfn: Any, name: str, stack_id: str, progress: Callable[[str], None], poll_seconds: float
) -> None:
    """A first create that failed and rolled back: say why, then delete the empty stack so it can be created anew.

    The deletion is followed by the stack's id: once deleted, the name no longer finds it.
    """
    for line in diagnose(cfn, name, ROLLED_BACK_CREATE).lines():
        progress(line)
    progress(f"deleting the rolled-back stack {name} (it holds no resources), then creating it again ...")
    since = latest_event_id(cfn, stack_id)
    cfn.delete_stack(StackName=name)
    final = wait_for_stack(cfn, stack_id, progress, since=since, poll_seconds=poll_seconds)
    if final != "DELETE_COMPLETE":
        explain_failure(cfn, name, final, since, progress)


def check_no_kept_journal(ddb: Any) -> None:
    """Refuse a create while a journal table from an earlier stack exists: the template creates that name."""
    try:
        found = existing_table(ddb, JOURNAL_TABLE)
    except (ClientError, BotoCoreError) as exc:
        log.warning("cannot check for a kept journal table", extra={"fields": {"error": aws_code(exc)}})
        return
    if found is not None:
        raise DeployError(
            f"table {JOURNAL_TABLE} exists ({found}), kept from an earlier stack, and the new stack cannot create "
            f"it. Export what you need (tfl journal export dynamodb://{JOURNAL_TABLE} --out journal.jsonl), then "
            f"aws dynamodb update-table --table-name {JOURNAL_TABLE} --no-deletion-protection-enabled and "
            f"aws dynamodb delete-table --table-name {JOURNAL_TABLE}, and deploy again"
        )


def protect_journal(cfn: Any, name: str, progress: Callable[[str], None], poll_seconds: float) -> None:
    """After a successful first create: turn the journal table's deletion protection on (an in-place update)."""
    stack = describe_stack(cfn, name)
    keys = [str(p["ParameterKey"]) for p in (stack or {}).get("Parameters", [])]
    params: list[dict[str, Any]] = [
        {"ParameterKey": k, "UsePreviousValue": True} for k in sorted(keys) if k != PROTECT_PARAMETER
    ]
    params.append({"ParameterKey": PROTECT_PARAMETER, "ParameterValue": "true"})
    progress(f"turning on the deletion protection of {JOURNAL_TABLE} ...")
    since = latest_event_id(cfn, name)
    try:
        cfn.update_stack(StackName=name, UsePreviousTemplate=True, Parameters=params, Capabilities=CAPABILITIES)
    except ClientError as exc:
        raise DeployError(
            f"the stack was created, but turning on {JOURNAL_TABLE}'s deletion protection was refused "
            f"({aws_code(exc)}): run tfl deploy again"
        ) from None
    final = wait_for_stack(cfn, name, progress, since=since, poll_seconds=poll_seconds)
    if final not in TERMINAL_OK:
        explain_failure(cfn, name, final, since, progress)
