"""Reading a journal without ever writing one.

:class:`~tfl.live.journal.SqliteJournal` creates its file and schema when it opens; the
status page and ``tfl status`` only look, so they open the SQLite file read-only (a URI
with ``mode=ro``): a missing path is refused and nothing is created beside it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfl.live.journal import JournalError, Record
from tfl.live.ops_store import (  # the store's own row codecs, so that one format is parsed one way
    Beat,
    Command,
    CommandAck,
    CommandView,
    OpsStore,
    OpsStoreError,
    _ack_from,
    _beat_from,
    _command_from,
)
from tfl.settings import Settings


def connect_read_only(path: Path, *, snapshot: bool) -> sqlite3.Connection:
    """A read-only connection to an existing file (see the module's note on ``snapshot``)."""
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
    """The events of an existing SQLite journal, read-only (appends are refused)."""

    def __init__(self, path: str | Path, *, snapshot: bool = False) -> None:
        self.path = Path(path)
        self._db = connect_read_only(self.path, snapshot=snapshot)
        try:
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: not a usable SQLite journal ({exc})") from None
        if "events" not in tables:
            self._db.close()
            raise JournalError(f"journal {self.path}: not a TFL journal")

    def append(self, record: Record) -> bool:
        raise JournalError(f"journal {self.path}: opened read-only")

    def records(self, session: str | None = None) -> Iterator[Record]:
        sql = "SELECT key, session, ts, kind, data FROM events"
        args: tuple[Any, ...] = ()
        if session is not None:
            sql += " WHERE session = ?"
            args = (session,)
        try:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: unreadable ({exc})") from None
        for key, sess, ts, kind, data in rows:
            yield Record(key, sess, int(ts), kind, json.loads(data))

    def sessions(self) -> list[str]:
        try:
            return [r[0] for r in self._db.execute("SELECT DISTINCT session FROM events ORDER BY session")]
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: unreadable ({exc})") from None

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self._db.close()


class SnapshotOps:
    """The operator tables of a SQLite journal, read through a snapshot connection: the
    heartbeat and the commands; every write is refused. (``SqliteOpsStore(read_only=True)``
    opens the file ``mode=ro``, which creates the WAL companions of a journal at rest.)"""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect_read_only(path, snapshot=True)
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        self._ready = {"ops_commands", "ops_beat"} <= tables

    def _refuse(self) -> OpsStoreError:
        return OpsStoreError(f"journal {self.path}: opened read-only")

    def send(self, cmd: Command) -> bool:
        raise self._refuse()

    def acknowledge(self, ack: CommandAck) -> bool:
        raise self._refuse()

    def write_beat(self, beat: Beat) -> None:
        raise self._refuse()

    def use_once(self, name: str, expires_at: int) -> bool:
        raise self._refuse()

    def pending(self) -> list[Command]:
        return [v.command for v in self.commands(10_000) if v.ack is None][::-1]

    def commands(self, limit: int = 20) -> list[CommandView]:
        if not self._ready:
            return []
        rows = self._db.execute(
            "SELECT data, ack FROM ops_commands ORDER BY issued_at DESC, rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return [CommandView(_command_from(d), _ack_from(a) if a else None) for d, a in rows]

    def beat(self) -> Beat | None:
        if not self._ready:
            return None
        rows = self._db.execute("SELECT data FROM ops_beat WHERE k = 1").fetchall()
        return _beat_from(rows[0][0]) if rows else None

    def close(self) -> None:
        self._db.close()


def open_journal_read(spec: str, settings: Settings, *, snapshot: bool = False) -> Any:
    """A journal to read: DynamoDB for ``dynamodb://TABLE`` (queries only), else the SQLite
    file opened read-only."""
    from tfl.cli.wiring import is_dynamo, open_journal

    if is_dynamo(spec):
        return open_journal(spec, settings)
    return ReadOnlySqliteJournal(spec, snapshot=snapshot)


def open_ops_read(spec: str, settings: Settings) -> OpsStore:
    """The operator store of ``spec`` for one read that creates nothing."""
    from tfl.cli.wiring import is_dynamo, open_ops

    if is_dynamo(spec):
        return open_ops(spec, settings, read_only=True)
    return SnapshotOps(Path(spec))
