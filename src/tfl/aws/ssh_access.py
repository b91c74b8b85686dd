"""`tfl ssh-allow`: replace the SSH rule of TFL-SG with the operator's current address.

The runbook's "SSH access lost" case. The normal way changes the stack's ``MyIPAddress``
parameter (everything else keeps its previous value and the previous template), so the
stack stays the single source of truth. It goes through a change set that is executed
only if all it does is edit the security group in place: the trading server is never
restarted or replaced by it, at any hour (its image is pinned, as by ``tfl deploy``).
``--direct`` edits the security group through the EC2 API instead, for when CloudFormation
cannot be used: the new rule is added first, then every other rule that reaches port 22 is
removed, so a failure never leaves the operator locked out and an old address does not keep
access. The next ``tfl deploy`` must then be given the same ``--my-ip`` or it restores the
old rule.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from tfl.aws.deploy import (
    CAPABILITIES,
    NO_UPDATES,
    PIN_PARAMETER,
    TERMINAL_OK,
    DeployError,
    check_updatable,
    current_image,
    describe_stack,
    latest_event_id,
    wait_for_stack,
)

SSH_PORT = 22
GROUP_RESOURCE = "TraderSecurityGroup"
NO_CHANGES = "didn't contain changes"  # the StatusReason of an empty change set
_CHANGE_SET_TIMEOUT = 600.0

log = logging.getLogger("tfl.aws.ssh")


def normalise_cidr(text: str) -> str:
    """'1.2.3.4' or '1.2.3.4/32' -> '1.2.3.4/32'; anything else is an error naming the input."""
    try:
        net = ipaddress.ip_network(text.strip() if "/" in text else text.strip() + "/32", strict=True)
    except ValueError:
        raise ValueError(f"'{text}' is not an IPv4 address or CIDR block") from None
    if net.version != 4:
        raise ValueError(f"'{text}': the security group rule takes an IPv4 address")
    if net.prefixlen < 24:
        raise ValueError(f"'{text}': refusing to open SSH to more than 256 addresses")
    return str(net)


def ip_parameters(names: list[str], cidr: str, pinned_image: str | None) -> list[dict[str, Any]]:
    """The stack's own parameters: the new ``MyIPAddress``, the pinned image, every other one unchanged."""
    if "MyIPAddress" not in names:
        raise ValueError("the stack has no MyIPAddress parameter")
    out: list[dict[str, Any]] = []
    for n in names:
        if n == "MyIPAddress":
            out.append({"ParameterKey": n, "ParameterValue": cidr})
        elif n == PIN_PARAMETER and pinned_image is not None:
            out.append({"ParameterKey": n, "ParameterValue": pinned_image})
        else:
            out.append({"ParameterKey": n, "UsePreviousValue": True})
    return out


def unsafe_changes(changes: list[dict[str, Any]]) -> list[str]:
    """Every change other than an in-place edit of the SSH security group, as 'Name (Action, replacement X)'."""
    bad: list[str] = []
    for change in changes:
        rc = change.get("ResourceChange") or {}
        name = str(rc.get("LogicalResourceId", "?"))
        action = str(rc.get("Action", "?"))
        replacement = rc.get("Replacement")
        if (
            change.get("Type") == "Resource"
            and name == GROUP_RESOURCE
            and action == "Modify"
            and replacement == "False"
        ):
            continue
        bad.append(f"{name} ({action}" + (f", replacement {replacement})" if replacement else ")"))
    return bad


def _change_set(
    cfn: Any,
    stack_name: str,
    cs_id: str,
    *,
    poll_seconds: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> dict[str, Any]:
    """The change set once CloudFormation has computed it, with every page of its changes."""
    deadline = clock() + _CHANGE_SET_TIMEOUT
    while True:
        desc = cfn.describe_change_set(ChangeSetName=cs_id, StackName=stack_name)
        if desc["Status"] not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
            break
        if clock() > deadline:
            raise DeployError(f"change set {cs_id} still {desc['Status']} after {_CHANGE_SET_TIMEOUT:.0f} s")
        sleep(poll_seconds)
    changes = list(desc.get("Changes", []))
    token = desc.get("NextToken")
    while token:
        page = cfn.describe_change_set(ChangeSetName=cs_id, StackName=stack_name, NextToken=token)
        changes.extend(page.get("Changes", []))
        token = page.get("NextToken")
    return {**desc, "Changes": changes}


def change_stack_ip(
    cfn: Any,
    ec2: Any,
    stack_name: str,
    cidr: str,
    progress: Callable[[str], None],
    *,
    poll_seconds: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Set ``MyIPAddress`` through a change set; False if the stack already had it.

    The change set is executed only if it edits nothing but the security group, in place;
    anything else (an instance restart or replacement) is a DeployError naming the resources.
    """
    stack = describe_stack(cfn, stack_name)
    if stack is None:
        raise DeployError(f"stack {stack_name} does not exist: deploy it first (tfl deploy), or use --direct")
    check_updatable(stack_name, str(stack["StackStatus"]))
    names = [str(p["ParameterKey"]) for p in stack.get("Parameters", [])]
    pinned = current_image(cfn, ec2, stack_name) if PIN_PARAMETER in names else None
    params = ip_parameters(names, cidr, pinned)
    name = f"tfl-ssh-allow-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S%f}"
    try:
        cs_id = cfn.create_change_set(
            StackName=stack_name,
            ChangeSetName=name,
            ChangeSetType="UPDATE",
            UsePreviousTemplate=True,
            Parameters=params,
            Capabilities=CAPABILITIES,
            Description=f"tfl ssh-allow {cidr}",
        )["Id"]
    except ClientError as exc:
        if NO_UPDATES in str(exc):
            return False
        raise
    desc = _change_set(cfn, stack_name, cs_id, poll_seconds=poll_seconds, sleep=sleep, clock=clock)
    if desc["Status"] == "FAILED":
        cfn.delete_change_set(ChangeSetName=cs_id, StackName=stack_name)
        reason = str(desc.get("StatusReason", ""))
        if NO_CHANGES in reason or NO_UPDATES in reason:
            return False
        raise DeployError(f"the change set for {stack_name} failed: {reason}")
    bad = unsafe_changes(desc["Changes"])
    log.info(
        "ssh-allow change set",
        extra={"fields": {"stack": stack_name, "changes": len(desc["Changes"]), "refused": bad}},
    )
    if bad:
        cfn.delete_change_set(ChangeSetName=cs_id, StackName=stack_name)
        raise DeployError(
            f"updating MyIPAddress on {stack_name} would also change {', '.join(bad)}, which can restart or "
            "replace the trading server: nothing was changed. Use tfl ssh-allow --direct"
        )
    since = latest_event_id(cfn, stack_name)
    cfn.execute_change_set(ChangeSetName=cs_id, StackName=stack_name)
    progress(f"updating {stack_name}: MyIPAddress = {cidr} (security group only) ...")
    status = wait_for_stack(cfn, stack_name, progress, since=since, poll_seconds=poll_seconds, sleep=sleep)
    if status not in TERMINAL_OK:
        raise DeployError(f"the update of {stack_name} ended {status}; try again with --direct")
    return True


def find_group(ec2: Any, group_id: str | None, group_name: str = "TFL-SG") -> str:
    if group_id:
        return group_id
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [group_name]}])["SecurityGroups"]
    if len(groups) != 1:
        raise ValueError(f"expected one security group named {group_name}, found {len(groups)}")
    return str(groups[0]["GroupId"])


def _reaches_ssh(rule: dict[str, Any]) -> bool:
    if rule.get("IsEgress"):
        return False
    proto = str(rule.get("IpProtocol"))
    if proto == "-1":
        return True
    return proto in ("tcp", "6") and int(rule.get("FromPort", -1)) <= SSH_PORT <= int(rule.get("ToPort", -1))


def _source(rule: dict[str, Any]) -> str:
    ref = rule.get("ReferencedGroupInfo") or {}
    return str(rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule.get("PrefixListId") or ref.get("GroupId") or "?")


def _is_rule_for(rule: dict[str, Any], cidr: str) -> bool:
    return (
        rule.get("IpProtocol") in ("tcp", "6")
        and rule.get("FromPort") == SSH_PORT
        and rule.get("ToPort") == SSH_PORT
        and rule.get("CidrIpv4") == cidr
    )


def _ssh_rules(ec2: Any, group_id: str) -> list[dict[str, Any]]:
    pages = ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )
    return [r for page in pages for r in page.get("SecurityGroupRules", []) if _reaches_ssh(r)]


def allow_ssh_from(ec2: Any, group_id: str, cidr: str) -> list[str]:
    """Allow ``cidr`` (unless it already is), then revoke every other rule reaching port 22; the sources removed."""
    rules = _ssh_rules(ec2, group_id)
    if not any(_is_rule_for(r, cidr) for r in rules):
        ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": SSH_PORT,
                    "ToPort": SSH_PORT,
                    "IpRanges": [{"CidrIp": cidr, "Description": "SSH from the operator (tfl ssh-allow)"}],
                }
            ],
        )
    others = [r for r in rules if not _is_rule_for(r, cidr)]
    if others:
        ids = [r["SecurityGroupRuleId"] for r in others]
        ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=ids)
    removed = [_source(r) for r in others]
    log.info("ssh rule replaced", extra={"fields": {"group": group_id, "allowed": cidr, "removed": removed}})
    return removed
