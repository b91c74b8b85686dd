"""The operator store (:mod:`tfl.live.ops_store`) in the DynamoDB journal table: items under
the partition ``#ops``, which the journal never lists as a session and nothing scans.
Commands are put with ``attribute_not_exists`` and acknowledged with a conditional update
that removes their ``pending`` mark, so a retry never stores or answers one twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code
from tfl.live.ops_store import (
    RECENT_COMMANDS,
    Beat,
    Command,
    CommandAck,
    CommandView,
    OpsStoreError,
    ack_from,
    beat_from,
    beat_json,
    command_json,
    command_or_unreadable,
)

OPS_PARTITION = "#ops"
_BEAT_KEY = "beat"
_CMD_PREFIX = "cmd:"
_ONCE_PREFIX = "once:"


class DynamoOpsStore:
    """The operator items in the DynamoDB journal table, partition ``#ops``."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def _fail(self, op: str, exc: Exception) -> OpsStoreError:
        return OpsStoreError(f"journal dynamodb:{self.table}: operator {op} failed ({aws_code(exc)})")

    def _put(self, item: dict[str, Any]) -> None:
        try:
            self.client.put_item(TableName=self.table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("write", exc) from None

    def _query(self, prefix: str, *, newest_first: bool, limit: int | None = None) -> Iterator[dict[str, Any]]:
        kw: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#s = :p AND begins_with(#k, :pre)",
            "ExpressionAttributeNames": {"#s": "session", "#k": "key"},
            "ExpressionAttributeValues": {":p": {"S": OPS_PARTITION}, ":pre": {"S": prefix}},
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        if limit is not None:
            kw["Limit"] = limit
        seen = 0
        try:
            while True:
                page = self.client.query(**kw)
                for item in page.get("Items", []):
                    yield item
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
                last = page.get("LastEvaluatedKey")
                if not last:
                    return
                kw["ExclusiveStartKey"] = last
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("read", exc) from None

    @staticmethod
    def _cmd_key(cmd_id: str) -> str:
        # ids start with the epoch second, so key order is issue order
        return _CMD_PREFIX + cmd_id

    def send(self, cmd: Command) -> bool:
        item = {
            "session": {"S": OPS_PARTITION},
            "key": {"S": self._cmd_key(cmd.id)},
            "data": {"S": command_json(cmd)},
            "pending": {"S": "1"},
        }
        return self._put_new(item)

    def _put_new(self, item: dict[str, Any]) -> bool:
        return self._conditional(
            self.client.put_item,
            Item=item,
            ConditionExpression="attribute_not_exists(#k)",
            ExpressionAttributeNames={"#k": "key"},
        )

    def _conditional(self, write: Any, **kw: Any) -> bool:
        """One conditional write; False when its condition fails (already there, already answered)."""
        try:
            write(TableName=self.table, **kw)
        except ClientError as exc:
            if aws_code(exc) == "ConditionalCheckFailedException":
                return False
            raise self._fail("write", exc) from None
        except BotoCoreError as exc:
            raise self._fail("write", exc) from None
        return True

    def pending(self) -> list[Command]:
        recent = list(self._query(_CMD_PREFIX, newest_first=True, limit=RECENT_COMMANDS))
        return [self._command(i) for i in reversed(recent) if "pending" in i]

    @staticmethod
    def _command(item: dict[str, Any]) -> Command:
        key = str(item.get("key", {}).get("S", ""))
        return command_or_unreadable(key.removeprefix(_CMD_PREFIX), str(item.get("data", {}).get("S", "")))

    def acknowledge(self, ack: CommandAck) -> bool:
        return self._conditional(
            self.client.update_item,
            Key={"session": {"S": OPS_PARTITION}, "key": {"S": self._cmd_key(ack.id)}},
            UpdateExpression="SET #a = :a REMOVE #p",
            ConditionExpression="attribute_exists(#p)",
            ExpressionAttributeNames={"#a": "ack", "#p": "pending"},
            ExpressionAttributeValues={":a": {"S": json.dumps(asdict(ack), sort_keys=True)}},
        )

    def commands(self, limit: int = 20) -> list[CommandView]:
        out = []
        for i in self._query(_CMD_PREFIX, newest_first=True, limit=limit):
            ack = ack_from(i["ack"]["S"]) if "ack" in i else None
            out.append(CommandView(self._command(i), ack))
        return out

    def write_beat(self, beat: Beat) -> None:
        self._put({"session": {"S": OPS_PARTITION}, "key": {"S": _BEAT_KEY}, "data": {"S": beat_json(beat)}})

    def beat(self) -> Beat | None:
        try:
            got = self.client.get_item(
                TableName=self.table,
                Key={"session": {"S": OPS_PARTITION}, "key": {"S": _BEAT_KEY}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("read", exc) from None
        item = got.get("Item")
        return beat_from(item["data"]["S"]) if item else None

    def use_once(self, name: str, expires_at: int) -> bool:
        item = {
            "session": {"S": OPS_PARTITION},
            "key": {"S": _ONCE_PREFIX + name},
            "expires_at": {"N": str(expires_at)},
        }
        return self._put_new(item)

    def close(self) -> None:
        return None
