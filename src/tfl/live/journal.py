"""The trader's journal: append-only, write-ahead, idempotent, durable.

Every decision with an outside effect is appended *before* the effect (an order intent
before the broker call) and every outcome after it. Appends are grouped into one
transaction and committed (fsync) by :meth:`Journal.flush`, which the trader calls before
every broker call and at the end of every step: what was not flushed had no effect yet
and is derived again after a restart. Each record has a deterministic key;
appending a key that exists is a no-op when the payload is identical and an error when it
differs (the process is not deterministic any more, which must stop trading).

A journal stores :class:`Record` s (a key, the session, the market time, the kind and a
JSON payload); :func:`to_record` and :func:`read_events` are the boundary where the typed
events of :mod:`tfl.core.events` become records and back (the codec).

:class:`SqliteJournal` keeps the events in a real SQLite file in WAL mode with full
fsync, guarded by triggers that forbid UPDATE and DELETE, and a checksum per row. A file
that is not a journal, or whose rows fail their checksum, raises :class:`JournalCorruptError`
and is never truncated or rewritten. The :class:`Journal` protocol lets a DynamoDB
journal follow with the same behaviour.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tfl.core.codec import CodecError, decode, encode
from tfl.core.events import Event
from tfl.errors import Unavailable

SCHEMA_VERSION = "1"
APP_ID = "tfl-journal"


class JournalError(RuntimeError):
    """The journal cannot be used; trading must not go on without it."""


class JournalUnavailable(JournalError, Unavailable):  # noqa: N818 - a state, named for what it is
    """The journal's service did not answer (DynamoDB throttling, network): a restart may cure it."""


class JournalCorruptError(JournalError):
    """The journal file is damaged or is not a journal. It is left exactly as it is."""


class JournalConflictError(JournalError):
    """An event key was appended twice with different contents."""


@dataclass(frozen=True)
class Record:
    """One stored event: what the journal keeps, before decoding."""

    key: str
    session: str
    ts: int  # market time, UTC epoch seconds
    kind: str
    data: dict[str, Any]

    def payload(self) -> str:
        return json.dumps(self.data, sort_keys=True, separators=(",", ":"))


def to_record(session: str, ts: int, ev: Event) -> Record:
    """The journal record of a typed event (its key scoped by the session)."""
    kind, data = encode(ev)
    return Record(f"{session}:{ev.key()}", session, ts, kind, data)


def to_event(rec: Record) -> Event:
    """The typed event of a stored record; a payload that does not decode is a damaged journal."""
    try:
        return decode(rec.kind, rec.session, rec.data)
    except CodecError as exc:
        raise JournalCorruptError(f"journal record {rec.key}: {exc}") from None


def read_events(journal: Journal, session: str | None = None) -> Iterator[tuple[Record, Event]]:
    """Every record of the journal (or of one session) with its typed event, in order."""
    for rec in journal.records(session):
        yield rec, to_event(rec)


def event_checksum(key: str, session: str, ts: int, kind: str, payload: str) -> str:
    """The 16-hex checksum stored beside every event (SQLite and DynamoDB use the same one)."""
    h = hashlib.sha256(f"{key}\x1f{session}\x1f{ts}\x1f{kind}\x1f{payload}".encode())
    return h.hexdigest()[:16]


class Journal(Protocol):
    def append(self, record: Record) -> bool:
        """Store ``record``; True if new, False if an identical record was already there."""
        ...

    def records(self, session: str | None = None) -> Iterator[Record]:
        """Records in append order (optionally of one session)."""
        ...

    def sessions(self) -> list[str]: ...

    def flush(self) -> None:
        """Make every appended event durable. Called before any outside effect."""
        ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    session TEXT NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    crc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events(session, seq);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""


class SqliteJournal:
    """The local journal: one SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path, *, verify: bool = True) -> None:
        self.path = Path(path)
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=5000")
            if existed:
                self._check_identity()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?), ('schema', ?)", (APP_ID, SCHEMA_VERSION))
        except sqlite3.DatabaseError as exc:
            raise JournalCorruptError(
                f"journal {self.path}: not a usable SQLite journal ({exc}); left untouched"
            ) from None
        if verify and existed:
            self.verify()

    def _check_identity(self) -> None:
        ok = self._db.execute("PRAGMA quick_check").fetchone()
        if ok is None or ok[0] != "ok":
            raise JournalCorruptError(f"journal {self.path}: SQLite integrity check failed ({ok}); left untouched")
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables or "events" not in tables:
            raise JournalCorruptError(f"journal {self.path}: an SQLite file, but not a TFL journal; left untouched")
        app = self._db.execute("SELECT v FROM meta WHERE k='app'").fetchone()
        if app is None or app[0] != APP_ID:
            raise JournalCorruptError(f"journal {self.path}: not a TFL journal; left untouched")

    def verify(self) -> int:
        """Check every row's checksum; returns the number of events."""
        n = 0
        for seq, key, session, ts, kind, data, crc in self._db.execute(
            "SELECT seq, key, session, ts, kind, data, crc FROM events ORDER BY seq"
        ):
            if event_checksum(key, session, ts, kind, data) != crc:
                raise JournalCorruptError(
                    f"journal {self.path}: event #{seq} ({key}) fails its checksum; left untouched"
                )
            try:
                json.loads(data)
            except json.JSONDecodeError:
                raise JournalCorruptError(f"journal {self.path}: event #{seq} ({key}) is not valid JSON") from None
            n += 1
        return n

    def append(self, event: Record) -> bool:
        """Append inside the open group-commit transaction; :meth:`flush` makes it durable."""
        payload = event.payload()
        crc = event_checksum(event.key, event.session, event.ts, event.kind, payload)
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO events (key, session, ts, kind, data, crc) VALUES (?, ?, ?, ?, ?, ?)",
                (event.key, event.session, event.ts, event.kind, payload, crc),
            )
            return True
        except sqlite3.IntegrityError:
            row = self._db.execute("SELECT kind, data FROM events WHERE key = ?", (event.key,)).fetchone()
            if row is None:  # pragma: no cover - a constraint other than the key
                raise
            if row[0] != event.kind or row[1] != payload:
                raise JournalConflictError(
                    f"journal {self.path}: event {event.key} already recorded with different contents"
                ) from None
            return False
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: append failed ({exc})") from None

    def records(self, session: str | None = None) -> Iterator[Record]:
        sql = "SELECT key, session, ts, kind, data FROM events"
        args: tuple[Any, ...] = ()
        if session is not None:
            sql += " WHERE session = ?"
            args = (session,)
        for key, sess, ts, kind, data in self._db.execute(sql + " ORDER BY seq", args).fetchall():
            yield Record(key, sess, int(ts), kind, json.loads(data))

    def sessions(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT session FROM events ORDER BY session")]

    def flush(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"journal {self.path}: commit failed ({exc})") from None

    def close(self) -> None:
        self.flush()
        self._db.close()


class MemoryJournal:
    """An in-memory journal with the same semantics (tests, the backtest world)."""

    def __init__(self) -> None:
        self._events: list[Record] = []
        self._by_key: dict[str, Record] = {}

    def append(self, event: Record) -> bool:
        old = self._by_key.get(event.key)
        if old is not None:
            if old.kind != event.kind or old.payload() != event.payload():
                raise JournalConflictError(f"event {event.key} already recorded with different contents")
            return False
        self._by_key[event.key] = event
        self._events.append(event)
        return True

    def records(self, session: str | None = None) -> Iterator[Record]:
        return iter([e for e in self._events if session is None or e.session == session])

    def sessions(self) -> list[str]:
        return sorted({e.session for e in self._events})

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def connect_read_only(path: Path, *, snapshot: bool) -> sqlite3.Connection:
    """A read-only connection to an existing file that creates nothing beside it.

    ``mode=ro`` alone creates the ``-wal``/``-shm`` companions of a WAL journal at rest (no
    writer has it open). ``snapshot`` opens such a file ``immutable`` instead: right for one
    look (``tfl status``, ``tfl ctl list``), wrong for a reader that stays open while a
    writer may start (the status server keeps a normal connection)."""
    if not path.is_file():
        raise JournalError(f"journal {path}: no such file")
    wal = path.with_name(path.name + "-wal")
    flags = "mode=ro&immutable=1" if snapshot and not wal.exists() else "mode=ro"
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?{flags}", uri=True, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA busy_timeout=5000")
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"journal {path}: not a usable SQLite journal ({exc})") from None
    return db


class ReadOnlySqliteJournal:
    """The events of an existing SQLite journal, read-only (appends are refused): for the
    commands that only look (``tfl report``, ``journal show``/``export``, ``tfl status``),
    which must never create a journal or turn an empty file into one. Each row's checksum is
    checked as it is read, as :meth:`SqliteJournal.verify` does."""

    def __init__(self, path: str | Path, *, snapshot: bool = False) -> None:
        self.path = Path(path)
        self._db = connect_read_only(self.path, snapshot=snapshot)
        try:
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: not a usable SQLite journal ({exc})") from None
        if "events" not in tables:
            self._db.close()
            raise JournalCorruptError(f"journal {self.path}: not a TFL journal; left untouched")

    def append(self, record: Record) -> bool:
        raise JournalError(f"journal {self.path}: opened read-only")

    def records(self, session: str | None = None) -> Iterator[Record]:
        sql = "SELECT seq, key, session, ts, kind, data, crc FROM events"
        args: tuple[Any, ...] = ()
        if session is not None:
            sql += " WHERE session = ?"
            args = (session,)
        try:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: unreadable ({exc})") from None
        for seq, key, sess, ts, kind, data, crc in rows:
            if event_checksum(key, sess, ts, kind, data) != crc:
                raise JournalCorruptError(
                    f"journal {self.path}: event #{seq} ({key}) fails its checksum; left untouched"
                )
            try:
                payload = json.loads(data)
            except json.JSONDecodeError:
                raise JournalCorruptError(f"journal {self.path}: event #{seq} ({key}) is not valid JSON") from None
            yield Record(key, sess, int(ts), kind, payload)

    def sessions(self) -> list[str]:
        try:
            return [r[0] for r in self._db.execute("SELECT DISTINCT session FROM events ORDER BY session")]
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: unreadable ({exc})") from None

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self._db.close()
