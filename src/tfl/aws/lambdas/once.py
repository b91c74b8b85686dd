"""At most once per key: a conditional DynamoDB marker, so a retried invocation repeats no side effect.

EventBridge Scheduler and Lambda's asynchronous invocation both retry, and a retried 08:30
start must not send a second login link: a second link would also replace the login state,
voiding the first one the operator may be opening. Before the side effect the caller
*claims* the key with a conditional put; a claim that exists (done, or taken moments ago by
a concurrent run) makes the retry skip it. A side effect that failed *releases* the claim,
so a retry does it; a claim older than :data:`STALE_CLAIM` (its run died half-way) can be
taken over.

The markers live in the journal table under their own partition (``#ops-once``), which
the journal never reads (its sessions are dates) and to which the ops role's grant is
limited (``dynamodb:LeadingKeys``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code

ONCE_PARTITION = "#ops-once"
STALE_CLAIM = dt.timedelta(minutes=2)
CLAIMED, DONE, RELEASED = "claimed", "done", "released"


class OnceMarkerError(RuntimeError):
    """The marker could not be read or written (table missing, access denied, network)."""


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`OnceMarker.claim`: ``ours`` to do, else the state found."""

    ours: bool
    found: str = ""


@dataclass(frozen=True)
class OnceMarker:
    client: Any
    table: str
    key: str

    def _item_key(self) -> dict[str, Any]:
        return {"session": {"S": ONCE_PARTITION}, "key": {"S": self.key}}

    def claim(self, now: dt.datetime) -> Claim:
        """Take the key unless it is done or claimed less than STALE_CLAIM ago."""
        stale = int((now - STALE_CLAIM).timestamp())
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**self._item_key(), "state": {"S": CLAIMED}, "at": {"N": str(int(now.timestamp()))}},
                ConditionExpression="attribute_not_exists(#k) OR #st = :released OR (#st = :claimed AND #at < :stale)",
                ExpressionAttributeNames={"#k": "key", "#st": "state", "#at": "at"},
                ExpressionAttributeValues={
                    ":released": {"S": RELEASED},
                    ":claimed": {"S": CLAIMED},
                    ":stale": {"N": str(stale)},
                },
            )
        except ClientError as exc:
            if aws_code(exc) == "ConditionalCheckFailedException":
                return Claim(False, self.state())
            raise OnceMarkerError(f"{self.table}: claiming {self.key} failed ({aws_code(exc)})") from None
        except BotoCoreError as exc:
            raise OnceMarkerError(f"{self.table}: claiming {self.key} failed ({aws_code(exc)})") from None
        return Claim(True)

    def state(self) -> str:
        """The marker's state ("" when absent or unreadable: only for the log)."""
        try:
            item = self.client.get_item(TableName=self.table, Key=self._item_key(), ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError):
            return ""
        return str(item["state"]["S"]) if item else ""

    def finish(self, now: dt.datetime, *, succeeded: bool) -> None:
        """Mark the side effect done, or release the claim so a retry may do it."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._item_key(),
                UpdateExpression="SET #st = :st, #at = :at",
                ExpressionAttributeNames={"#st": "state", "#at": "at"},
                ExpressionAttributeValues={
                    ":st": {"S": DONE if succeeded else RELEASED},
                    ":at": {"N": str(int(now.timestamp()))},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise OnceMarkerError(f"{self.table}: recording {self.key} failed ({aws_code(exc)})") from None
