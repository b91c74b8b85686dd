"""DynamoDB journal: what the shared contract (tests/live/test_journal.py) cannot show.

Failures of the service (missing table, access denied, throttling, a lost answer), another
writer, damaged items, the no-Scan rule, the table schema, a replayed trading session giving
the same events and state as the SQLite journal, and a property test against SQLite.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfl.aws.dynamo_journal import TABLE_SCHEMA, DynamoJournal, create_table
from tfl.live.journal import (
    JournalConflictError,
    JournalCorruptError,
    JournalError,
    Record,
    SqliteJournal,
    event_checksum,
)

REGION = "ap-south-1"
S1, S2, S3 = "2024-01-02", "2024-01-03", "2024-01-04"


def ev(key: str, data: dict[str, Any] | None = None, session: str = S1, kind: str = "NOTE") -> Record:
    return Record(key, session, 1704166200, kind, data if data is not None else {"x": 1})


class Recorder:
    """The real (moto) client, with every call recorded and chosen calls made to fail."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []
        self.fail: dict[str, Callable[[int], Exception | None]] = {}
        self.after: dict[str, Callable[[int], Exception | None]] = {}  # fail *after* the call went through

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith(("get_waiter", "get_paginator", "meta")):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            n = self.calls.count(name)
            if name in self.fail and (exc := self.fail[name](n)) is not None:
                raise exc
            out = attr(*args, **kwargs)
            if name in self.after and (exc := self.after[name](n)) is not None:
                raise exc
            return out

        return call


def client_error(code: str, op: str, message: str = "", reasons: list[dict[str, str]] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if reasons is not None:
        response["CancellationReasons"] = reasons
    return ClientError(response, op)


def items(client: Any, table: str) -> list[dict[str, Any]]:
    out = client.scan(TableName=table, ConsistentRead=True)["Items"]  # the test's own look at the table
    return sorted(out, key=lambda i: (i["session"]["S"], i["key"]["S"]))


# ---------------------------------------------------------------------- schema


def test_table_schema_is_the_contract(ddb_table: tuple[Any, str]) -> None:
    client, table = ddb_table
    assert TABLE_SCHEMA["BillingMode"] == "PAY_PER_REQUEST"
    assert {(a["AttributeName"], a["AttributeType"]) for a in TABLE_SCHEMA["AttributeDefinitions"]} == {
        ("session", "S"),
        ("key", "S"),
        ("seq", "N"),
    }
    desc = client.describe_table(TableName=table)["Table"]
    assert desc["KeySchema"] == [
        {"AttributeName": "session", "KeyType": "HASH"},
        {"AttributeName": "key", "KeyType": "RANGE"},
    ]
    (lsi,) = desc["LocalSecondaryIndexes"]
    assert lsi["IndexName"] == "by_seq"
    assert lsi["KeySchema"] == [
        {"AttributeName": "session", "KeyType": "HASH"},
        {"AttributeName": "seq", "KeyType": "RANGE"},
    ]
    assert lsi["Projection"] == {"ProjectionType": "ALL"}


def test_items_follow_the_contract_and_by_seq_gives_append_order(ddb_table: tuple[Any, str]) -> None:
    """What the report Lambda relies on: a Query on by_seq reads one session in append order."""
    client, table = ddb_table
    j = DynamoJournal(client, table)
    for k in ("z", "m", "a"):
        j.append(ev(f"{S1}:{k}", {"k": k}))
    j.append(ev(f"{S2}:open", session=S2))
    j.flush()
    resp = client.query(
        TableName=table,
        IndexName="by_seq",
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "session"},
        ExpressionAttributeValues={":s": {"S": S1}},
    )
    got = resp["Items"]
    assert [i["key"]["S"] for i in got] == [f"{S1}:z", f"{S1}:m", f"{S1}:a"]
    assert [int(i["seq"]["N"]) for i in got] == [1, 2, 3]
    first = got[0]
    assert set(first) == {"session", "key", "seq", "ts", "kind", "data", "sum"}
    assert first["data"]["S"] == '{"k":"z"}'
    assert first["sum"]["S"] == event_checksum(f"{S1}:z", S1, 1704166200, "NOTE", '{"k":"z"}')
    meta = client.get_item(TableName=table, Key={"session": {"S": "#meta"}, "key": {"S": "sessions"}})["Item"]
    assert sorted(meta["sessions"]["SS"]) == [S1, S2]


# ---------------------------------------------------------------------- the service failing


def test_missing_table_is_a_journal_error(mocked_aws: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    with pytest.raises(JournalError, match=r"TFL-Nope: reading the session list failed \(ResourceNotFoundException\)"):
        DynamoJournal(client, "TFL-Nope")


def test_unreachable_dynamodb_is_a_journal_error(aws_env: None) -> None:
    cfg = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url="http://127.0.0.1:9", config=cfg)
    with pytest.raises(JournalError, match=r"TFL-Journal.*EndpointConnectionError"):
        DynamoJournal(client, "TFL-Journal")


def test_access_denied_names_the_code_not_the_message(aws_env: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_item", service_error_code="AccessDeniedException", service_message="token=SECRET-abc123 not allowed"
        )
        with pytest.raises(JournalError) as err:
            DynamoJournal(client, "TFL-Journal")
    assert "AccessDeniedException" in str(err.value) and "TFL-Journal" in str(err.value)
    assert "SECRET" not in str(err.value)


THROTTLED = [
    client_error("ProvisionedThroughputExceededException", "TransactWriteItems"),
    client_error(
        "TransactionCanceledException",
        "TransactWriteItems",
        reasons=[{"Code": "ThrottlingError", "Message": "slow down"}] + [{"Code": "None"}] * 99,
    ),
]


@pytest.mark.parametrize("error", THROTTLED, ids=["throughput", "cancelled-throttled"])
def test_throttling_beyond_retries_leaves_a_prefix_and_a_later_flush_completes(
    ddb_table: tuple[Any, str], error: ClientError
) -> None:
    client, table = ddb_table
    rec = Recorder(client)
    slept: list[float] = []
    j = DynamoJournal(rec, table, sleep=slept.append)
    keys = [f"{S1}:e{i:03d}" for i in range(250)]  # three transactions: 99 (+ the session list) + 100 + 51
    for k in keys:
        j.append(ev(k, {"k": k}))
    rec.fail["transact_write_items"] = lambda n: error if n >= 2 else None
    with pytest.raises(JournalError, match=r"TFL-Journal: writing events failed") as err:
        j.flush()
    assert not isinstance(err.value, JournalConflictError)
    code = error.response["Error"]["Code"]
    assert f"({code})" in str(err.value)
    assert slept == [0.1, 0.4] and rec.calls.count("transact_write_items") == 4
    on_disk = [e.key for e in DynamoJournal(client, table).records()]
    assert on_disk == keys[:99]  # the first transaction, nothing of the second
    del rec.fail["transact_write_items"]
    j.flush()  # the next flush writes the rest, once
    assert [e.key for e in DynamoJournal(client, table).records()] == keys
    assert len(items(client, table)) == 251  # 250 events and the meta item


@pytest.mark.parametrize("error", THROTTLED, ids=["throughput", "cancelled-throttled"])
def test_a_brief_throttle_is_retried(ddb_table: tuple[Any, str], error: ClientError) -> None:
    client, table = ddb_table
    rec = Recorder(client)
    slept: list[float] = []
    j = DynamoJournal(rec, table, sleep=slept.append)
    j.append(ev(f"{S1}:a"))
    rec.fail["transact_write_items"] = lambda n: error if n == 1 else None
    j.flush()
    assert slept == [0.1]
    assert [e.key for e in DynamoJournal(client, table).records()] == [f"{S1}:a"]


def test_a_cancelled_transaction_for_another_reason_is_an_error(ddb_table: tuple[Any, str]) -> None:
    client, table = ddb_table
    rec = Recorder(client)
    j = DynamoJournal(rec, table, sleep=lambda s: None)
    j.append(ev(f"{S1}:a"))
    j.append(ev(f"{S1}:b"))
    mixed = client_error(
        "TransactionCanceledException",
        "TransactWriteItems",
        reasons=[{"Code": "ConditionalCheckFailed"}, {"Code": "ValidationError"}, {"Code": "None"}],
    )
    rec.fail["transact_write_items"] = lambda n: mixed
    with pytest.raises(JournalError, match="TransactionCanceledException"):
        j.flush()
    assert rec.calls.count("transact_write_items") == 1 and "get_item" not in rec.calls[1:]


def test_a_lost_answer_is_retried_idempotently(ddb_table: tuple[Any, str]) -> None:
    """The transaction went through but the answer was lost: the retry finds identical items."""
    client, table = ddb_table
    rec = Recorder(client)
    j = DynamoJournal(rec, table)
    j.append(ev(f"{S1}:a"))
    j.append(ev(f"{S1}:b"))
    rec.after["transact_write_items"] = lambda n: ReadTimeoutError(endpoint_url="x") if n == 1 else None
    with pytest.raises(JournalError, match="ReadTimeoutError"):
        j.flush()
    j.append(ev(f"{S1}:c"))
    j.flush()
    assert [e.key for e in DynamoJournal(client, table).records()] == [f"{S1}:a", f"{S1}:b", f"{S1}:c"]
    assert DynamoJournal(client, table).sessions() == [S1]


def test_a_damaged_session_list_is_reported(ddb_table: tuple[Any, str]) -> None:
    client, table = ddb_table
    client.put_item(TableName=table, Item={"session": {"S": "#meta"}, "key": {"S": "sessions"}, "sessions": {"S": "x"}})
    with pytest.raises(JournalCorruptError, match="session list"):
        DynamoJournal(client, table)


# ---------------------------------------------------------------------- another writer


def test_another_writer_with_different_data_is_a_conflict_at_flush(ddb_table: tuple[Any, str]) -> None:
    client, table = ddb_table
    a = DynamoJournal(client, table)
    a.append(ev(f"{S1}:open"))
    a.flush()
    b = DynamoJournal(client, table)
    b.append(ev(f"{S1}:x", {"by": "b"}))
    b.flush()
    assert a.append(ev(f"{S1}:y")) is True
    assert a.append(ev(f"{S1}:x", {"by": "a"})) is True  # a loaded the session before b wrote
    with pytest.raises(JournalConflictError, match=rf"TFL-Journal session {S1} event {S1}:x.*another writer"):
        a.flush()
    stored = [(e.key, e.data) for e in DynamoJournal(client, table).records()]
    assert stored == [(f"{S1}:open", {"x": 1}), (f"{S1}:x", {"by": "b"})]  # the whole chunk was refused


def test_another_writer_with_identical_data_is_fine(ddb_table: tuple[Any, str]) -> None:
    client, table = ddb_table
    a = DynamoJournal(client, table)
    a.append(ev(f"{S1}:open"))
    a.flush()
    b = DynamoJournal(client, table)
    b.append(ev(f"{S1}:x", {"same": True}))
    b.append(ev(f"{S2}:open", session=S2))
    b.flush()
    a.append(ev(f"{S1}:x", {"same": True}))
    a.append(ev(f"{S1}:z"))
    a.append(ev(f"{S2}:open", session=S2))
    a.flush()
    fresh = DynamoJournal(client, table)
    assert [e.key for e in fresh.records()] == [f"{S1}:open", f"{S1}:x", f"{S1}:z", f"{S2}:open"]
    assert fresh.sessions() == [S1, S2]


# ---------------------------------------------------------------------- no scans, damage, misuse


def test_sessions_and_events_never_scan(ddb_table: tuple[Any, str]) -> None:
    client, table = ddb_table
    rec = Recorder(client)
    j = DynamoJournal(rec, table)
    for s in (S1, S2, S3):
        j.append(ev(f"{s}:open", session=s))
    j.flush()
    j2 = DynamoJournal(rec, table)
    assert j2.sessions() == [S1, S2, S3]
    assert len(list(j2.records())) == 3
    j2.append(ev(f"{S3}:close", session=S3))
    j2.close()
    assert "scan" not in rec.calls
    assert set(rec.calls) <= {"get_item", "query", "transact_write_items"}


def test_a_session_larger_than_one_query_page_is_read_whole_and_in_order(ddb_table: tuple[Any, str]) -> None:
    """DynamoDB answers a Query in pages of at most 1 MB (moto too): 24 events of 60 KB need two."""
    client, table = ddb_table
    j = DynamoJournal(client, table)
    keys = [f"{S1}:{i:02d}" for i in range(24)]
    for i, key in enumerate(reversed(keys)):  # append order differs from key order: the seq decides
        j.append(ev(key, {"i": i, "pad": "x" * 60_000}))
    j.close()
    rec = Recorder(client)
    got = list(DynamoJournal(rec, table).records(S1))
    assert rec.calls.count("query") >= 2  # really more than one page
    assert [e.key for e in got] == list(reversed(keys)) and [e.data["i"] for e in got] == list(range(24))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"data": {"S": '{"x":2}'}}, "checksum"),
        ({"ts": {"N": "1"}}, "checksum"),
        ({"kind": {"S": "FILL"}}, "checksum"),
        ({"sum": None}, "missing sum"),
        ({"seq": None}, "missing seq"),
        ({"data": {"N": "1"}}, "wrong type"),
        ({"data": {"S": "{not json"}, "sum": "recompute"}, "not valid JSON"),
        ({"data": {"S": "[1,2]"}, "sum": "recompute"}, "not a JSON object"),
    ],
    ids=["data", "ts", "kind", "no-sum", "no-seq", "data-type", "bad-json", "json-list"],
)
def test_a_damaged_item_is_reported_and_left_untouched(
    ddb_table: tuple[Any, str], damage: dict[str, Any], message: str
) -> None:
    client, table = ddb_table
    j = DynamoJournal(client, table)
    j.append(ev(f"{S1}:a"))
    j.append(ev(f"{S1}:b"))
    j.close()
    (item,) = [i for i in items(client, table) if i["key"]["S"] == f"{S1}:b"]
    for attr, value in damage.items():
        if value is None:
            del item[attr]
        elif value != "recompute":
            item[attr] = value
    if damage.get("sum") == "recompute":
        item["sum"] = {"S": event_checksum(f"{S1}:b", S1, 1704166200, "NOTE", item["data"]["S"])}
    client.put_item(TableName=table, Item=item)
    before = items(client, table)
    fresh = DynamoJournal(client, table)
    with pytest.raises(JournalCorruptError, match=rf"TFL-Journal session {S1} event {S1}:b.*{message}"):
        list(fresh.records())
    with pytest.raises(JournalCorruptError):
        DynamoJournal(client, table).append(ev(f"{S1}:c"))  # loading the session for an append checks it too
    assert items(client, table) == before


def test_closed_journal_refuses_use(ddb_table: tuple[Any, str]) -> None:
    client, table = ddb_table
    j = DynamoJournal(client, table)
    j.append(ev(f"{S1}:a"))
    j.close()
    j.close()  # twice is fine
    for use in (lambda: j.append(ev(f"{S1}:b")), j.flush, j.sessions, lambda: list(j.records())):
        with pytest.raises(JournalError, match="closed"):
            use()
    assert [e.key for e in DynamoJournal(client, table).records()] == [f"{S1}:a"]


@pytest.mark.parametrize("bad", [ev(""), ev("k", session=""), ev("sessions", session="#meta")], ids=str)
def test_events_the_table_cannot_hold_are_refused(ddb_table: tuple[Any, str], bad: Record) -> None:
    client, table = ddb_table
    with pytest.raises(JournalError, match="invalid key"):
        DynamoJournal(client, table).append(bad)


def test_an_event_too_large_for_an_item_is_refused_at_append(ddb_table: tuple[Any, str]) -> None:
    client, table = ddb_table
    j = DynamoJournal(client, table)
    with pytest.raises(JournalError, match="too large"):
        j.append(ev(f"{S1}:big", {"pad": "x" * 400_000}))
    j.append(ev(f"{S1}:small"))
    j.flush()
    assert [e.key for e in j.records()] == [f"{S1}:small"]


# ---------------------------------------------------------------------- a replayed session


REPLAY_DAY = dt.date(2020, 12, 7)  # a busy LONGS day
REPLAY_SYMBOLS = ["AXISBANK", "BPCL", "HINDALCO", "ICICIBANK", "JSWSTEEL", "SBIN", "TATASTEEL", "VEDL"]


def state_view(state: Any) -> dict[str, Any]:
    """Everything in a CoreState, the book's contents included (the cost model is configuration)."""
    view = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "book"}
    view["book"] = {k: v for k, v in vars(state.book).items() if k != "cost"}
    return view


def _replay(journal: Any, tmp: Path, market: Any) -> None:
    from tfl.calendar.nse import NseCalendar
    from tfl.domain import Bias
    from tfl.live.paper import PaperBroker
    from tfl.live.runtime import Controls, run_session
    from tfl.settings import Settings

    settings = Settings()
    session = NseCalendar().session(REPLAY_DAY)
    assert session is not None
    tmp.mkdir(parents=True, exist_ok=True)
    broker = PaperBroker(tmp / "broker.sqlite", slippage_pct=settings.costs.slippage_pct)
    try:
        res = run_session(
            session,
            market,
            REPLAY_SYMBOLS,
            journal,
            broker,
            settings,
            Bias.LONGS,
            "test",
            Controls(),
            market_sim=broker,
        )
    finally:
        broker.close()
    assert res.flat


def test_a_replayed_session_is_the_same_in_dynamodb_and_sqlite(
    ddb_table: tuple[Any, str], nse_dir: Path, tmp_path: Path
) -> None:
    from tfl.data.market import load_market
    from tfl.live.report import day_report, rebuild
    from tfl.settings import Settings

    client, table = ddb_table
    market = load_market(nse_dir, Settings(), REPLAY_SYMBOLS)
    sqlite = SqliteJournal(tmp_path / "journal.sqlite")
    _replay(sqlite, tmp_path / "sqlite", market)
    rec = Recorder(client)
    dynamo = DynamoJournal(rec, table)
    _replay(dynamo, tmp_path / "dynamo", market)
    dynamo.close()

    local = list(sqlite.records())
    remote = list(DynamoJournal(client, table).records())
    assert len(local) > 50 and any(e.kind == "FILL" for e in local)
    assert remote == local
    # Per-session key uniqueness (DynamoDB) is per-journal uniqueness (SQLite) because of this:
    assert all(e.key.startswith(f"{e.session}:") for e in local)
    assert "scan" not in rec.calls

    state_local = rebuild(sqlite)
    state_remote = rebuild(DynamoJournal(client, table))
    assert state_view(state_remote) == state_view(state_local)
    assert state_local.book.trades
    from tfl.live.journal import to_event

    rep_local = day_report([(r, to_event(r)) for r in local], REPLAY_DAY)
    rep_remote = day_report([(r, to_event(r)) for r in remote], REPLAY_DAY)
    assert rep_remote.text() == rep_local.text()
    assert rep_remote.net_pnl == rep_local.net_pnl
    sqlite.close()


# ---------------------------------------------------------------------- property: the same as SQLite


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.sampled_from([S1, S2, S3]),
            st.integers(0, 5),  # key
            st.integers(0, 1),  # payload variant
            st.sampled_from(["NOTE", "FILL"]),
            st.integers(0, 2),  # ts variant (never part of identity)
        ),
        st.tuples(st.sampled_from(["flush", "reopen", "crash"])),
    ),
    max_size=25,
)


class _Pair:
    """One SQLite journal and one DynamoDB journal driven with the same operations."""

    def __init__(self, client: Any, table: str, tmp: Path) -> None:
        self.client, self.table, self.tmp = client, table, tmp
        self.path = tmp / "j.sqlite"
        self.crashes = 0
        self.sqlite = SqliteJournal(self.path)
        self.dynamo = DynamoJournal(client, table)

    def reopen(self) -> None:
        self.sqlite.close()
        self.dynamo.close()
        self.sqlite = SqliteJournal(self.path)
        self.dynamo = DynamoJournal(self.client, self.table)

    def crash(self) -> None:
        self.crashes += 1
        crashed = self.tmp / f"crash{self.crashes}"
        crashed.mkdir()
        for suffix in ("", "-wal"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                shutil.copyfile(src, crashed / src.name)
        self.sqlite.close()  # commits into the abandoned copy only
        self.path = crashed / "j.sqlite"
        self.sqlite = SqliteJournal(self.path)
        self.dynamo = DynamoJournal(self.client, self.table)  # the old one dies unflushed


def _outcome(append: Callable[[Record], bool], event: Record) -> str:
    try:
        return "new" if append(event) else "duplicate"
    except JournalConflictError:
        return "conflict"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_dynamodb_behaves_like_sqlite(mocked_aws: None, ops: list[tuple[Any, ...]]) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    table = f"TFL-Journal-{uuid.uuid4().hex[:12]}"  # one table per example, in one mock
    create_table(client, table)
    tmp = Path(tempfile.mkdtemp(prefix="tfl-prop-"))
    try:
        pair = _Pair(client, table, tmp)
        for op in ops:
            if op[0] == "append":
                _, session, k, variant, kind, tsv = op
                # keys carry their session, as the engine's do (checked in the replay test)
                e = Record(f"{session}:k{k}", session, 1704166200 + 900 * tsv, kind, {"v": variant, "s": "₹"})
                assert _outcome(pair.dynamo.append, e) == _outcome(pair.sqlite.append, e)
            elif op[0] == "flush":
                pair.sqlite.flush()
                pair.dynamo.flush()
            else:
                getattr(pair, op[0])()
            assert pair.dynamo.sessions() == pair.sqlite.sessions()
            for s in (S1, S2, S3):
                assert list(pair.dynamo.records(s)) == list(pair.sqlite.records(s))
        # all sessions: DynamoDB groups them chronologically, SQLite keeps the global append order
        assert list(pair.dynamo.records()) == sorted(pair.sqlite.records(), key=lambda e: e.session)
        pair.reopen()
        assert list(pair.dynamo.records()) == sorted(pair.sqlite.records(), key=lambda e: e.session)
        pair.sqlite.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        client.delete_table(TableName=table)
