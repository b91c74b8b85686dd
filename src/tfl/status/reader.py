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

from tfl.live.journal import JournalError, Record, connect_read_only
from tfl.live.ops_store import OpsStore
from tfl.settings import Settings


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


def open_journal_read(spec: str, settings: Settings, *, snapshot: bool = False) -> Any:
    """A journal to read: DynamoDB for ``dynamodb://TABLE`` (queries only), else the SQLite
    file opened read-only."""
    from tfl.cli.wiring import is_dynamo, open_journal

    if is_dynamo(spec):
        return open_journal(spec, settings)
    return ReadOnlySqliteJournal(spec, snapshot=snapshot)


def open_ops_read(spec: str, settings: Settings) -> OpsStore:
    """The operator store of ``spec`` for reads that create nothing."""
    from tfl.cli.wiring import open_ops

    return open_ops(spec, settings, read_only=True)
