"""The operator store: commands written once and acknowledged once, the heartbeat, one-time
names; the SQLite tables and the DynamoDB items behave the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tfl.aws.dynamo_journal import DynamoJournal
from tfl.aws.dynamo_ops import DynamoOpsStore
from tfl.live.journal import Record, SqliteJournal
from tfl.live.ops_store import (
    Beat,
    CommandAck,
    CommandKind,
    OpsStore,
    OpsStoreError,
    SqliteOpsStore,
    new_command,
)


def _sqlite(tmp_path: Path) -> OpsStore:
    path = tmp_path / "j.sqlite"
    SqliteJournal(path).close()
    return SqliteOpsStore(path)


def _dynamo(ddb_table: tuple[Any, str]) -> OpsStore:
    client, name = ddb_table
    return DynamoOpsStore(client, name)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> OpsStore:
    if request.param == "sqlite":
        return _sqlite(tmp_path)
    return _dynamo(request.getfixturevalue("ddb_table"))


def test_commands_are_stored_once_and_acknowledged_once(store: OpsStore) -> None:
    a = new_command(CommandKind.STOP_ENTRIES, "ctl", 1_000, reason="news")
    b = new_command(CommandKind.EXIT_POSITION, "page", 1_001, symbol="sbin")
    assert store.send(a) and store.send(b)
    assert not store.send(a)  # a retried send is not a second command
    assert [c.id for c in store.pending()] == [a.id, b.id]
    assert b.symbol == "SBIN"
    ack = CommandAck(a.id, 1_002, True, "entries stopped")
    assert store.acknowledge(ack)
    assert not store.acknowledge(CommandAck(a.id, 1_003, False, "again"))  # the first answer stands
    assert [c.id for c in store.pending()] == [b.id]
    views = store.commands()
    assert [v.command.id for v in views] == [b.id, a.id]  # newest first
    assert views[1].ack == ack and views[0].ack is None
    assert not store.acknowledge(CommandAck("999-unknown", 1, True, "x"))


def test_beat_is_replaced_and_read_back(store: OpsStore) -> None:
    assert store.beat() is None
    b1 = Beat(10, "paper", "2026-12-04", "ACTIVE", "", 9, True, True, 0, 42, (("SBIN", 801.5),))
    b2 = Beat(20, "paper", "2026-12-04", "HALTED", "kill switch", 19, False, True, 99, 42)
    store.write_beat(b1)
    assert store.beat() == b1
    store.write_beat(b2)
    assert store.beat() == b2


def test_a_name_is_used_once(store: OpsStore) -> None:
    assert store.use_once("link:abc", 100)
    assert not store.use_once("link:abc", 100)
    assert store.use_once("link:abd", 100)


def test_the_ops_partition_is_not_a_session(ddb_table: tuple[Any, str]) -> None:
    client, name = ddb_table
    journal = DynamoJournal(client, name)
    journal.append(Record("2026-12-04:open", "2026-12-04", 1, "NOTE", {"kind": "x", "text": "y"}))
    journal.flush()
    store = DynamoOpsStore(client, name)
    store.send(new_command(CommandKind.FLATTEN_HALT, "halt", 5))
    store.write_beat(Beat(1, "live", "2026-12-04", "ACTIVE", "", 0, True, True, 0, 1))
    assert DynamoJournal(client, name).sessions() == ["2026-12-04"]


def test_sqlite_refuses_a_missing_journal_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nope.sqlite"
    with pytest.raises(OpsStoreError, match="no such file"):
        SqliteOpsStore(path)
    assert not path.exists()


def test_sqlite_reader_of_an_old_journal_sees_nothing_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    SqliteJournal(path).close()
    before = path.read_bytes()
    reader = SqliteOpsStore(path, read_only=True)
    assert reader.pending() == [] and reader.beat() is None and reader.commands() == []
    with pytest.raises(OpsStoreError, match="read-only"):
        reader.send(new_command(CommandKind.LIFT_HALT, "ctl", 1))
    reader.close()
    assert path.read_bytes() == before


def test_sqlite_refuses_a_file_that_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(OpsStoreError, match="not"):
        SqliteOpsStore(path)


def test_bad_commands_are_refused() -> None:
    make: Callable[..., object] = new_command
    with pytest.raises(ValueError, match="symbol"):
        make(CommandKind.EXIT_POSITION, "ctl", 1)
    with pytest.raises(ValueError, match="no symbol"):
        make(CommandKind.LIFT_HALT, "ctl", 1, symbol="SBIN")


def test_aws_failures_are_one_line_errors(mocked_aws: None) -> None:
    import boto3

    store = DynamoOpsStore(boto3.client("dynamodb", region_name="ap-south-1"), "missing-table")
    with pytest.raises(OpsStoreError, match="ResourceNotFoundException"):
        store.pending()
