"""The day's bias as a dated JSON record in an SSM parameter.

The pre-market job writes it; the trader reads it. Anything missing, malformed, stale or
unreadable means NO_TRADES, with the reason: failing safe is not trading.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code
from tfl.domain import Bias, BiasRead
from tfl.regime import BiasRecord, parse_bias_record

log = logging.getLogger("tfl.aws.bias")


def write_bias(ssm: Any, name: str, record: BiasRecord, *, provisional: bool = False) -> None:
    """Publish ``record``; errors propagate (the caller alerts).

    A provisional record (a NO_TRADES written because the job failed in a way a retry may
    cure) is marked so: the trader keeps waiting for a final one until its deadline.
    """
    value = record.to_json()
    if provisional:
        value = json.dumps({**json.loads(value), "provisional": True}, sort_keys=True)
    ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)


def read_bias_text(ssm: Any, name: str) -> str | None:
    """The parameter's raw value, or None when it does not exist."""
    try:
        return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise


def read_bias(ssm: Any, name: str, session: dt.date) -> tuple[Bias, str]:
    """The bias to trade on ``session`` and why; NO_TRADES unless a valid record for that day exists."""
    got = read_bias_checked(ssm, name, session)
    return got.bias, got.reason


def read_bias_checked(ssm: Any, name: str, session: dt.date) -> BiasRead:
    """:func:`read_bias`, saying whether a valid record for ``session`` was there (the trader
    waits for one before the open)."""
    try:
        text = read_bias_text(ssm, name)
    except (ClientError, BotoCoreError) as exc:
        why = f"bias parameter {name} unreadable ({aws_code(exc)}): NO_TRADES"
        log.warning("bias rejected: NO_TRADES", extra={"fields": {"parameter": name, "reason": why}})
        return BiasRead(Bias.NO_TRADES, why, False)
    if text is None:
        why = f"no bias parameter {name}: NO_TRADES"
        log.warning("bias missing", extra={"fields": {"parameter": name, "reason": why}})
        return BiasRead(Bias.NO_TRADES, why, False)
    bias, why = parse_bias_record(text, session)
    if why:
        log.warning("bias rejected: NO_TRADES", extra={"fields": {"parameter": name, "reason": why}})
        return BiasRead(Bias.NO_TRADES, why, False)
    return BiasRead(bias, f"read from SSM parameter {name}", True)
