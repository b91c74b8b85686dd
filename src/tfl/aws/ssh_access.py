"""`tfl ssh-allow`: replace the SSH rule of TFL-SG with the operator's current address.

The runbook's "SSH access lost" case. The normal way updates the stack's ``MyIPAddress``
parameter (everything else keeps its previous value and the previous template), so the
stack stays the single source of truth. ``--direct`` edits the security group through
the EC2 API instead, for when CloudFormation cannot be used; every other port-22 rule is
removed so an old address does not keep access, and the next ``tfl deploy`` must be
given the same ``--my-ip`` or it restores the old rule.
"""

from __future__ import annotations

import ipaddress
from typing import Any

SSH_PORT = 22


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


def update_stack_ip(cfn: Any, stack_name: str, cidr: str) -> None:
    """Start a stack update that changes only ``MyIPAddress`` (the caller waits for it)."""
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    names = [p["ParameterKey"] for p in stack.get("Parameters", [])]
    if "MyIPAddress" not in names:
        raise ValueError(f"stack {stack_name} has no MyIPAddress parameter")
    params = [
        {"ParameterKey": n, "ParameterValue": cidr}
        if n == "MyIPAddress"
        else {"ParameterKey": n, "UsePreviousValue": True}
        for n in names
    ]
    cfn.update_stack(
        StackName=stack_name,
        UsePreviousTemplate=True,
        Parameters=params,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )


def find_group(ec2: Any, group_id: str | None, group_name: str = "TFL-SG") -> str:
    if group_id:
        return group_id
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [group_name]}])["SecurityGroups"]
    if len(groups) != 1:
        raise ValueError(f"expected one security group named {group_name}, found {len(groups)}")
    return str(groups[0]["GroupId"])


def allow_ssh_from(ec2: Any, group_id: str, cidr: str) -> list[str]:
    """Revoke every SSH rule of the group, then allow ``cidr``; the CIDRs that were removed."""
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    removed: list[str] = []
    for perm in group.get("IpPermissions", []):
        if perm.get("IpProtocol") == "tcp" and perm.get("FromPort") == SSH_PORT and perm.get("ToPort") == SSH_PORT:
            ranges = perm.get("IpRanges", [])
            removed.extend(r["CidrIp"] for r in ranges)
            ec2.revoke_security_group_ingress(
                GroupId=group_id,
                IpPermissions=[{"IpProtocol": "tcp", "FromPort": SSH_PORT, "ToPort": SSH_PORT, "IpRanges": ranges}],
            )
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
    return removed
