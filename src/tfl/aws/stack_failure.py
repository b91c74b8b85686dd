"""Why a CloudFormation stack failed, read from its events, and what the failure left behind.

CloudFormation's own status ("ROLLBACK_COMPLETE") says nothing useful: the cause is the
first resource that failed, and the events after it are mostly cancellations. The events
of a rollback or deletion also record each resource that was kept (``DELETE_SKIPPED``):
those are the leftovers an operator must know about, and one of them (the journal table,
whose name is fixed) blocks the next create.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code

STACK_TYPE = "AWS::CloudFormation::Stack"
# Reasons that only say another resource failed first.
_CANCELLED = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled")
# Known causes and what to do about them (matched in the failed resource's reason).
_HINTS = (
    (
        "resource signal",
        "the server's first boot did not report a working install in time (CreationPolicy): check "
        "GitRepositoryUrl, GitRef and GitTokenSecret; the bootstrap's reason, when it sent one, is above",
    ),
    (
        "FAILURE signal",
        "the server's first boot could not install the trader (the reason is above): fix the repository, "
        "ref or token, then deploy again",
    ),
    ("InsufficientInstanceCapacity", "EC2 has no capacity for this size in the zone now: deploy again later"),
    (
        "already exists",
        "a resource with that fixed name survives from an earlier stack: remove it as said below, then deploy again",
    ),
    ("not authorized", "your AWS credentials lack a permission CloudFormation needed (named above)"),
)


@dataclass(frozen=True)
class FailedResource:
    """The first resource that failed, and CloudFormation's reason."""

    logical_id: str
    resource_type: str
    status: str
    reason: str

    def hint(self) -> str:
        return next((fix for needle, fix in _HINTS if needle.lower() in self.reason.lower()), "")


@dataclass(frozen=True)
class Leftover:
    """A resource CloudFormation kept (DeletionPolicy) when it rolled back or deleted the stack."""

    logical_id: str
    resource_type: str
    physical_id: str

    def advice(self) -> str:
        pid = self.physical_id
        if self.resource_type == "AWS::DynamoDB::Table":
            return (
                f"table {pid} keeps its items and blocks a new stack (its name is fixed). If you need them, "
                f"export first (tfl journal export dynamodb://{pid} --out journal.jsonl), then: "
                f"aws dynamodb update-table --table-name {pid} --no-deletion-protection-enabled && "
                f"aws dynamodb delete-table --table-name {pid}"
            )
        if self.resource_type == "AWS::KMS::Key":
            return (
                f"KMS key {pid} costs USD 1 a month while it exists and does not block a new stack; once no kept "
                f"table or bucket needs it: aws kms schedule-key-deletion --key-id {pid} --pending-window-in-days 30"
            )
        if self.resource_type == "AWS::S3::Bucket":
            return (
                f"bucket {pid} does not block a new stack; if you do not need its objects, empty it (every "
                "version) in the S3 console and delete it"
            )
        return f"{self.resource_type} {pid} was kept; delete it by hand if nothing uses it"


@dataclass(frozen=True)
class StackDiagnosis:
    stack_name: str
    status: str
    failure: FailedResource | None
    leftovers: tuple[Leftover, ...]

    def lines(self) -> list[str]:
        """What the operator reads: the cause, the hint, then each kept resource with what to do."""
        out = [f"stack {self.stack_name} is {self.status}"]
        if self.failure is not None:
            f = self.failure
            out.append(f"the first failure: {f.logical_id} ({f.resource_type}) {f.status}: {f.reason}")
            if f.hint():
                out.append(f"  what to do: {f.hint()}")
        else:
            out.append("no failed resource in the stack's events (see the CloudFormation console)")
        for item in self.leftovers:
            out.append(f"kept: {item.logical_id}: {item.advice()}")
        return out


def stack_events(cfn: Any, name: str, since: str | None = None) -> list[dict[str, Any]]:
    """The stack's events after ``since`` (an EventId; None: all), oldest first."""
    newest_first: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StackName": name}
    while True:
        page = cfn.describe_stack_events(**kwargs)
        for e in page["StackEvents"]:
            if since is not None and e["EventId"] == since:
                return newest_first[::-1]
            newest_first.append(e)
        if not page.get("NextToken"):
            return newest_first[::-1]
        kwargs["NextToken"] = page["NextToken"]


def first_failure(events: list[dict[str, Any]]) -> FailedResource | None:
    """The oldest failed resource that is not a mere cancellation; else the stack's own failure."""
    stack_level: FailedResource | None = None
    for e in events:
        status = str(e.get("ResourceStatus", ""))
        if not status.endswith("_FAILED"):
            continue
        reason = str(e.get("ResourceStatusReason") or "no reason given")
        found = FailedResource(str(e["LogicalResourceId"]), str(e.get("ResourceType", "")), status, reason)
        if found.resource_type == STACK_TYPE:
            stack_level = stack_level or found
        elif not reason.startswith(_CANCELLED):
            return found
    return stack_level


def kept_resources(events: list[dict[str, Any]]) -> tuple[Leftover, ...]:
    """Resources CloudFormation skipped deleting (retained), each once, in event order."""
    seen: dict[str, Leftover] = {}
    for e in events:
        if e.get("ResourceStatus") == "DELETE_SKIPPED" and e.get("PhysicalResourceId"):
            item = Leftover(str(e["LogicalResourceId"]), str(e.get("ResourceType", "")), str(e["PhysicalResourceId"]))
            seen.setdefault(item.logical_id, item)
    return tuple(seen.values())


def diagnose(cfn: Any, name: str, status: str, since: str | None = None) -> StackDiagnosis:
    """The diagnosis of ``name`` from its events after ``since``; unreadable events give an empty one."""
    try:
        events = stack_events(cfn, name, since)
    except (ClientError, BotoCoreError) as exc:
        failure = FailedResource(name, STACK_TYPE, status, f"its events could not be read ({aws_code(exc)})")
        return StackDiagnosis(name, status, failure, ())
    return StackDiagnosis(name, status, first_failure(events), kept_resources(events))


def existing_table(ddb: Any, table: str) -> str | None:
    """A description of ``table`` when it exists (it would block a create), else None."""
    try:
        desc = ddb.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if aws_code(exc) == "ResourceNotFoundException":
            return None
        raise
    created = desc.get("CreationDateTime")
    when = f"created {created:%Y-%m-%d}, " if created is not None else ""
    return f"{when}about {int(desc.get('ItemCount', 0))} items"
