"""The trader's journal in DynamoDB, with the same behaviour as :class:`tfl.live.journal.SqliteJournal`.

One item per event, keyed ``(session, key)``; ``seq`` is the append order within the session
(local secondary index ``by_seq``), ``data`` the canonical JSON payload and ``sum`` the same
checksum the SQLite journal stores. A meta item ``("#meta", "sessions")`` lists the sessions
(a string set, extended in the same transaction as a session's first events), so neither
:meth:`DynamoJournal.sessions` nor anything else ever scans the table.

Behaviour, and why it matches the SQLite journal:

* Group commit. :meth:`~DynamoJournal.append` answers at once from an in-memory index of the
  session (loaded with one Query on first touch) and buffers the event; :meth:`~DynamoJournal.flush`
  (called by the engine before every broker call and at the end of every step) writes the buffer
  with ``TransactWriteItems`` in chunks of at most 100 actions, in order, each put guarded by
  ``attribute_not_exists``. A crash therefore leaves a prefix of the appended events: a flush
  of more than one transaction can land in part (SQLite commits all of it or none), but either
  way what is stored is a prefix of the append order, which is all recovery relies on.
* Idempotency. An identical re-append (same key, kind and payload; the timestamp is not
  compared, as in SQLite) returns False; different contents raise :class:`JournalConflictError`,
  at append time, or at flush time when another writer got there first.
* Key uniqueness. SQLite makes keys unique per journal; here they are unique per session. The
  engine prefixes every key with its session (``f"{session}:{key}"``), so the two are the same
  for every event the trader writes; only a hand-made event reusing a key in another session
  would be accepted here and answered False by SQLite.
* Order. ``events(session)`` is that session's append order. ``events()`` is the sessions in
  chronological order, each in append order; SQLite gives the global append order, which is
  the same thing for a trader that appends one session after another.
* Damage is reported, never repaired: an item with a bad checksum, a missing attribute or
  undecodable JSON raises :class:`JournalCorruptError` naming the table, session and key.
  A session is read with a Query on the base table (not on the sparse ``by_seq`` index, which
  would silently drop an item that lost its ``seq``) and sorted in memory.
* Failures (table missing, access denied, network, throttling that outlasts botocore's retries
  and two more of ours) raise :class:`JournalError` naming the table and the AWS error code,
  never the message: no trading without a journal. Unflushed events stay buffered, so a later
  flush retries them; a transaction that went through but whose answer was lost is recognised
  then (identical items), so nothing is written twice.
* ``close()`` flushes, like ``SqliteJournal.close()`` commits; a closed journal refuses use.

Only the standard library and botocore are imported, so the report Lambda can read sessions
with this class.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code
from tfl.live.journal import (
    JournalConflictError,
    JournalCorruptError,
    JournalError,
    JournalUnavailable,
    Record,
    event_checksum,
)

log = logging.getLogger("tfl.aws.journal")

META_SESSION = "#meta"
META_KEY = "sessions"
INDEX_BY_SEQ = "by_seq"
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's limit on actions per TransactWriteItems
MAX_TRANSACTION_BYTES = 3_500_000  # below the 4 MB request limit, with room for names and conditions
MAX_ITEM_BYTES = 390_000  # below the 400 KB item limit

TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "session", "AttributeType": "S"},
        {"AttributeName": "key", "AttributeType": "S"},
        {"AttributeName": "seq", "AttributeType": "N"},
    ],
    "KeySchema": [
        {"AttributeName": "session", "KeyType": "HASH"},
        {"AttributeName": "key", "KeyType": "RANGE"},
    ],
    "LocalSecondaryIndexes": [
        {
            "IndexName": INDEX_BY_SEQ,
            "KeySchema": [
                {"AttributeName": "session", "KeyType": "HASH"},
                {"AttributeName": "seq", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}

_EVENT_ATTRS = ("seq", "ts", "kind", "data", "sum")


def create_table(client: Any, name: str) -> None:
    """Create the journal table from :data:`TABLE_SCHEMA` (tests, local runs; the template makes the real one)."""
    client.create_table(TableName=name, **copy.deepcopy(TABLE_SCHEMA))
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


_THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_RETRY_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"})


def _cancellation_codes(exc: Exception) -> list[str]:
    """The per-action reasons of a cancelled transaction ("None" for an action that was fine)."""
    if not isinstance(exc, ClientError) or aws_code(exc) != "TransactionCanceledException":
        return []
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code") or "None") if isinstance(r, dict) else "None" for r in reasons]


def _throttled(exc: Exception, codes: list[str]) -> bool:
    if codes:
        return set(codes) <= _RETRY_REASONS | {"None"} and set(codes) != {"None"}
    return aws_code(exc) in _THROTTLE_CODES


_PERMANENT_CODES = frozenset(
    {
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ValidationException",
        "UnrecognizedClientException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSNotFoundException",
    }
)


def _item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (UTF-8; numbers counted as their text)."""
    return sum(len(name.encode()) + len(next(iter(v.values())).encode()) for name, v in item.items())


@dataclass(frozen=True)
class _Pending:
    """An appended event that is not in the table yet."""

    event: Record
    seq: int
    payload: str
    item: dict[str, Any]
    size: int

    def decoded(self) -> Record:
        """The event as it will read back from the table (JSON types: a tuple comes back a list)."""
        e = self.event
        return Record(e.key, e.session, int(e.ts), e.kind, json.loads(self.payload))


@dataclass
class _Loaded:
    """What this process knows about one session: the stored and buffered keys and the next seq."""

    contents: dict[str, tuple[str, str]]  # key -> (kind, payload)
    next_seq: int


class DynamoJournal:
    """The journal on a DynamoDB table (see the module docstring for the design)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        retry_delays: tuple[float, ...] = (0.1, 0.4),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table = table_name
        self.retry_delays = retry_delays  # throttled transactions, on top of botocore's own retries
        self._sleep = sleep
        self._lock = threading.RLock()
        self._loaded: dict[str, _Loaded] = {}
        self._pending: list[_Pending] = []
        self._closed = False
        # Reading the meta item checks, at start-up, that the table is there and readable.
        self._meta_sessions: set[str] = self._read_meta()

    # ------------------------------------------------------------------ helpers

    def _where(self, session: str | None = None, key: str | None = None) -> str:
        where = f"journal dynamodb:{self.table}"
        if session is not None:
            where += f" session {session}"
        if key is not None:
            where += f" event {key}"
        return where

    def _fail(self, op: str, exc: Exception) -> JournalError:
        code = aws_code(exc)
        log.error("journal call failed", extra={"fields": {"table": self.table, "op": op, "error": code}})
        # Missing table, no permission, bad request: a restart changes nothing.
        permanent = isinstance(exc, ClientError) and code in _PERMANENT_CODES
        kind = JournalError if permanent else JournalUnavailable
        return kind(f"{self._where()}: {op} failed ({code})")

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"{self._where()}: the journal is closed")

    def _read_meta(self) -> set[str]:
        try:
            resp = self.client.get_item(
                TableName=self.table,
                Key={"session": {"S": META_SESSION}, "key": {"S": META_KEY}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("reading the session list", exc) from None
        item = resp.get("Item")
        if item is None:
            return set()
        value = item.get("sessions")
        if not isinstance(value, dict) or "SS" not in value:
            where = self._where(META_SESSION, META_KEY)
            raise JournalCorruptError(f"{where}: the session list is damaged; left untouched")
        return set(value["SS"])

    def _query_session(self, session: str) -> list[tuple[int, Record, str]]:
        """Every stored event of ``session``, verified, in append order: (seq, event, payload)."""
        rows: list[tuple[int, str, Record, str]] = []
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "session"},
            "ExpressionAttributeValues": {":s": {"S": session}},
            "ConsistentRead": True,
        }
        while True:
            try:
                resp = self.client.query(**args)
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(f"reading session {session}", exc) from None
            for item in resp.get("Items", []):
                seq, event, payload = self._decode(session, item)
                rows.append((seq, event.key, event, payload))
            last = resp.get("LastEvaluatedKey")
            if not last:
                break
            args["ExclusiveStartKey"] = last
        rows.sort(key=lambda r: (r[0], r[1]))  # two writers could share a seq: the key breaks the tie
        return [(seq, event, payload) for seq, _, event, payload in rows]

    def _decode(self, session: str, item: dict[str, Any]) -> tuple[int, Record, str]:
        key = str(item.get("key", {}).get("S", "?"))
        where = self._where(session, key)
        try:
            seq = int(item["seq"]["N"])
            ts = int(item["ts"]["N"])
            kind = item["kind"]["S"]
            payload = item["data"]["S"]
            stored_sum = item["sum"]["S"]
        except (KeyError, TypeError, ValueError):
            missing = [a for a in _EVENT_ATTRS if a not in item]
            what = f"missing {', '.join(missing)}" if missing else "an attribute of the wrong type"
            raise JournalCorruptError(f"{where}: damaged item ({what}); left untouched") from None
        if event_checksum(key, session, ts, kind, payload) != stored_sum:
            raise JournalCorruptError(f"{where}: fails its checksum; left untouched")
        try:
            data = json.loads(payload)
        except json.JSONDecodeError:
            raise JournalCorruptError(f"{where}: data is not valid JSON; left untouched") from None
        if not isinstance(data, dict):
            raise JournalCorruptError(f"{where}: data is not a JSON object; left untouched")
        return seq, Record(key, session, ts, kind, data), payload

    def _load(self, session: str, stored: list[tuple[int, Record, str]] | None = None) -> _Loaded:
        loaded = self._loaded.get(session)
        if loaded is None:
            if stored is None:
                stored = self._query_session(session)
            contents = {ev.key: (ev.kind, payload) for _, ev, payload in stored}
            loaded = _Loaded(contents, max((seq for seq, _, _ in stored), default=0) + 1)
            self._loaded[session] = loaded
        return loaded

    # ------------------------------------------------------------------ the Journal protocol

    def append(self, event: Record) -> bool:
        """Buffer ``event`` (True), or recognise it as already recorded (False); :meth:`flush` writes it."""
        with self._lock:
            self._check_open()
            if not event.session or not event.key or event.session.startswith("#"):
                raise JournalError(f"{self._where()}: event {event.key!r} of session {event.session!r}: invalid key")
            payload = event.payload()
            loaded = self._load(event.session)
            old = loaded.contents.get(event.key)
            if old is not None:
                if old != (event.kind, payload):
                    raise JournalConflictError(
                        f"{self._where(event.session, event.key)}: already recorded with different contents"
                    )
                return False
            ts = int(event.ts)
            item = {
                "session": {"S": event.session},
                "key": {"S": event.key},
                "seq": {"N": str(loaded.next_seq)},
                "ts": {"N": str(ts)},
                "kind": {"S": event.kind},
                "data": {"S": payload},
                "sum": {"S": event_checksum(event.key, event.session, ts, event.kind, payload)},
            }
            size = _item_size(item)
            if size > MAX_ITEM_BYTES:
                raise JournalError(f"{self._where(event.session, event.key)}: event too large for DynamoDB ({size} B)")
            self._pending.append(_Pending(event, loaded.next_seq, payload, item, size))
            loaded.contents[event.key] = (event.kind, payload)
            loaded.next_seq += 1
            return True

    def records(self, session: str | None = None) -> Iterator[Record]:
        """Verified events in append order: one session, or every session in chronological order."""
        with self._lock:
            self._check_open()
            sessions = [session] if session is not None else self.sessions()
            out: list[Record] = []
            for sid in sessions:
                stored = self._query_session(sid)
                self._load(sid, stored)
                keys = {ev.key for _, ev, _ in stored}
                out.extend(ev for _, ev, _ in stored)
                out.extend(p.decoded() for p in self._pending if p.event.session == sid and p.event.key not in keys)
        return iter(out)

    def sessions(self) -> list[str]:
        """The sessions with events (read from the meta item, plus this process's buffered ones)."""
        with self._lock:
            self._check_open()
            known = self._read_meta()
            self._meta_sessions |= known
            return sorted(known | {p.event.session for p in self._pending})

    def flush(self) -> None:
        """Write the buffered events, in order, one transaction per chunk of at most 100 actions."""
        with self._lock:
            self._check_open()
            while self._pending:
                chunk, new_sessions = self._next_chunk()
                self._write_chunk(chunk, new_sessions)
                del self._pending[: len(chunk)]
                self._meta_sessions |= new_sessions

    def close(self) -> None:
        """Flush (as :meth:`SqliteJournal.close` commits) and refuse further use."""
        with self._lock:
            if self._closed:
                return
            self.flush()
            self._closed = True

    # ------------------------------------------------------------------ group commit

    def _next_chunk(self) -> tuple[list[_Pending], set[str]]:
        chunk: list[_Pending] = []
        new_sessions: set[str] = set()
        size = 0
        for p in self._pending:
            sid = p.event.session
            adds = set() if sid in self._meta_sessions or sid in new_sessions else {sid}
            actions = len(chunk) + 1 + (1 if new_sessions or adds else 0)
            if chunk and (actions > MAX_TRANSACTION_ITEMS or size + p.size > MAX_TRANSACTION_BYTES):
                break
            chunk.append(p)
            new_sessions |= adds
            size += p.size
        return chunk, new_sessions

    def _write_chunk(self, chunk: list[_Pending], new_sessions: set[str]) -> None:
        """One transaction. Items another writer already stored identically are dropped and the rest
        retried; a throttled transaction is retried after :attr:`retry_delays`, then it is an error."""
        todo = list(chunk)
        delays = iter(self.retry_delays)
        while todo:
            try:
                self.client.transact_write_items(TransactItems=self._actions(todo, new_sessions))
                return
            except (ClientError, BotoCoreError) as exc:
                codes = _cancellation_codes(exc)
                mine = codes[: len(todo)]
                if "ConditionalCheckFailed" in mine and set(codes) <= {"ConditionalCheckFailed", "None"}:
                    failed = [p for p, code in zip(todo, mine, strict=False) if code == "ConditionalCheckFailed"]
                elif _throttled(exc, codes) and (delay := next(delays, None)) is not None:
                    log.warning(
                        "journal write throttled: retrying",
                        extra={"fields": {"table": self.table, "error": aws_code(exc), "delay": delay}},
                    )
                    self._sleep(delay)
                    continue
                else:
                    raise self._fail("writing events", exc) from None
            for p in failed:
                self._resolve_existing(p)
            done = {id(p) for p in failed}
            todo = [p for p in todo if id(p) not in done]
        if new_sessions:  # every event was already there: the session list still needs them
            self._add_sessions(new_sessions)

    def _actions(self, todo: list[_Pending], new_sessions: set[str]) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": p.item,
                    "ConditionExpression": "attribute_not_exists(#k)",
                    "ExpressionAttributeNames": {"#k": "key"},
                }
            }
            for p in todo
        ]
        if new_sessions:
            actions.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"session": {"S": META_SESSION}, "key": {"S": META_KEY}},
                        "UpdateExpression": "ADD #ss :new",
                        "ExpressionAttributeNames": {"#ss": "sessions"},
                        "ExpressionAttributeValues": {":new": {"SS": sorted(new_sessions)}},
                    }
                }
            )
        return actions

    def _resolve_existing(self, p: _Pending) -> None:
        """Another writer stored this key first: fine if identical, a conflict otherwise."""
        ev = p.event
        try:
            resp = self.client.get_item(
                TableName=self.table,
                Key={"session": {"S": ev.session}, "key": {"S": ev.key}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("reading an existing event", exc) from None
        item = resp.get("Item")
        if item is None:  # the condition failed on an item that is gone now: nothing we can trust
            raise JournalError(f"{self._where(ev.session, ev.key)}: write refused for an event that is not stored")
        _, stored, payload = self._decode(ev.session, item)
        if (stored.kind, payload) != (ev.kind, p.payload):
            raise JournalConflictError(
                f"{self._where(ev.session, ev.key)}: already recorded with different contents (another writer)"
            )

    def _add_sessions(self, sessions: set[str]) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"session": {"S": META_SESSION}, "key": {"S": META_KEY}},
                UpdateExpression="ADD #ss :new",
                ExpressionAttributeNames={"#ss": "sessions"},
                ExpressionAttributeValues={":new": {"SS": sorted(sessions)}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("updating the session list", exc) from None
