"""The journal contract, run against every implementation (SQLite now, DynamoDB later)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tfl.live.journal import (
    Event,
    Journal,
    JournalConflictError,
    JournalCorruptError,
    MemoryJournal,
    SqliteJournal,
)

Factory = Callable[[Path], Journal]
FACTORIES: dict[str, Factory] = {
    "sqlite": lambda tmp: SqliteJournal(tmp / "j.sqlite"),
    "memory": lambda tmp: MemoryJournal(),
}


@pytest.fixture(params=sorted(FACTORIES))
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Journal:
    return FACTORIES[request.param](tmp_path)


def ev(key: str, data: dict | None = None, session: str = "2024-01-02", kind: str = "NOTE") -> Event:  # type: ignore[type-arg]
    return Event(key, session, 1704166200, kind, data or {"x": 1})


def test_append_is_idempotent_and_ordered(journal: Journal) -> None:
    assert journal.append(ev("a")) is True
    assert journal.append(ev("b", {"y": [1, 2]})) is True
    assert journal.append(ev("a")) is False  # the same event again: a no-op
    assert [e.key for e in journal.events()] == ["a", "b"]
    assert next(iter(journal.events())).data == {"x": 1}


def test_conflicting_rewrite_is_refused(journal: Journal) -> None:
    journal.append(ev("a"))
    with pytest.raises(JournalConflictError, match="different contents"):
        journal.append(ev("a", {"x": 2}))
    assert [e.data for e in journal.events()] == [{"x": 1}]


def test_sessions_filter(journal: Journal) -> None:
    journal.append(ev("a", session="2024-01-02"))
    journal.append(ev("b", session="2024-01-03"))
    assert journal.sessions() == ["2024-01-02", "2024-01-03"]
    assert [e.key for e in journal.events("2024-01-03")] == ["b"]


def test_sqlite_survives_reopen_and_is_append_only(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = SqliteJournal(path)
    j.append(ev("a"))
    j.close()
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET data = '{}'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")
    db.close()
    j2 = SqliteJournal(path)
    assert [e.key for e in j2.events()] == ["a"]
    assert db.execute
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_garbage_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(JournalCorruptError, match="left untouched"):
        SqliteJournal(path)
    assert path.read_bytes() == before


def test_other_sqlite_file_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(JournalCorruptError, match="not a TFL journal"):
        SqliteJournal(path)


def test_tampered_row_fails_its_checksum(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = SqliteJournal(path)
    j.append(ev("a"))
    j.append(ev("b"))
    j.close()
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET data = '{\"x\":99}' WHERE key = 'b'")
    db.commit()
    db.close()
    size = path.stat().st_size
    with pytest.raises(JournalCorruptError, match="checksum"):
        SqliteJournal(path)
    assert path.stat().st_size == size  # never truncated


def test_truncated_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = SqliteJournal(path)
    for i in range(200):
        j.append(ev(f"k{i}", {"pad": "x" * 200}))
    j.close()
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(JournalCorruptError):
        SqliteJournal(path)
