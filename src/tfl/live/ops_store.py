"""The operator's side of the journal: commands, their acknowledgements, the runtime's
heartbeat snapshot and one-time marks (used links).

The trading server has no open ports, so an operator (the status page, ``tfl ctl``,
``tfl halt``) steers a running trader by writing a command item next to its journal; the
runtime polls for commands it has not acknowledged, carries each out and writes the
acknowledgement. The same store holds the runtime's latest heartbeat (what the status page
shows as state, feed lag and token expiry) and the names already used once (a one-time
link that has been exchanged).

Two stores with one behaviour: tables in the SQLite journal file (``ops_*``, beside the
append-only ``events``; WAL lets the page read while the trader writes) and items in the
DynamoDB journal table under the partition ``#ops`` (never listed as a session, never
scanned). Commands are written once (``id`` unique) and acknowledged once (a conditional
write): a retry never carries a command out twice.

Opening a store never creates a journal: a command for a journal that does not exist is
refused, and a reader (``tfl status``) of a journal without ops tables sees none.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from tfl.live.journal import JournalError, connect_read_only

MAX_REASON = 200
# Only the most recent commands are asked for pending ones: anything older is long past
# ``live.command_max_age_seconds`` anyway, and the trader's poll stays one small read.
RECENT_COMMANDS = 50


class OpsStoreError(JournalError):
    """The operator store cannot be used (missing journal, unreadable table, AWS refused)."""


class CommandKind(StrEnum):
    """What an operator can ask of a running trader."""

    STOP_ENTRIES = "stop_entries"  # no new entries today; positions keep their stops and targets
    FLATTEN_HALT = "flatten_halt"  # what ``tfl halt`` does: no new entries, every position closed
    EXIT_POSITION = "exit_position"  # close one position at market
    LIFT_HALT = "lift_halt"  # entries again after an operator's halt or stop (never the loss limit's)
    UNREADABLE = "unreadable"  # a stored item this code cannot parse: acknowledged as refused, never sent


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    kind: CommandKind
    issued_at: int  # UTC epoch seconds
    source: str  # page, ctl, halt
    reason: str = ""
    symbol: str = ""  # EXIT_POSITION only


@dataclass(frozen=True, slots=True)
class CommandAck:
    id: str
    at: int  # UTC epoch seconds
    done: bool  # False: refused (the outcome says why)
    outcome: str


@dataclass(frozen=True, slots=True)
class CommandView:
    command: Command
    ack: CommandAck | None


@dataclass(frozen=True, slots=True)
class Beat:
    """The runtime's latest heartbeat: what the status page shows about the process itself."""

    at: int  # UTC epoch seconds, when written
    world: str  # replay, paper, live
    session: str  # YYYY-MM-DD
    state: str  # ACTIVE, REDUCE-ONLY, HALTED
    state_reason: str
    last_tick_ts: int  # exchange time of the last tick (0: none yet)
    feed_fresh: bool
    token_ok: bool
    token_expires_at: int  # UTC epoch seconds; 0 unknown
    pid: int
    marks: tuple[tuple[str, float], ...] = ()  # last prices of the symbols held


# What the operator types to confirm a control, on the page and at `tfl ctl` (an exit: the symbol).
CONFIRM_WORDS = {
    CommandKind.STOP_ENTRIES: "STOP",
    CommandKind.FLATTEN_HALT: "FLATTEN",
    CommandKind.LIFT_HALT: "LIFT",
}


def confirm_word(kind: CommandKind, symbol: str = "") -> str:
    if kind is CommandKind.UNREADABLE:
        raise ValueError("unreadable is not a command one can send")
    return symbol.upper() if kind is CommandKind.EXIT_POSITION else CONFIRM_WORDS[kind]


def new_command(kind: CommandKind, source: str, now: int, *, reason: str = "", symbol: str = "") -> Command:
    """A command with a fresh unguessable id; ``symbol`` is required for EXIT_POSITION only."""
    if kind is CommandKind.UNREADABLE:
        raise ValueError("unreadable is not a command one can send")
    if kind is CommandKind.EXIT_POSITION and not symbol:
        raise ValueError("exit_position needs a symbol")
    if kind is not CommandKind.EXIT_POSITION and symbol:
        raise ValueError(f"{kind.value} takes no symbol")
    return Command(f"{now}-{secrets.token_hex(6)}", kind, now, source, reason[:MAX_REASON], symbol.upper())


def command_json(c: Command) -> str:
    return json.dumps({**asdict(c), "kind": c.kind.value}, sort_keys=True)


def command_from(data: str) -> Command:
    d = json.loads(data)
    return Command(
        str(d["id"]),
        CommandKind(d["kind"]),
        int(d["issued_at"]),
        str(d["source"]),
        str(d.get("reason", "")),
        str(d.get("symbol", "")),
    )


def command_or_unreadable(cmd_id: str, data: str) -> Command:
    """The stored command, or an UNREADABLE one carrying the problem (a newer writer, a damaged
    item): the trader acknowledges it as refused rather than failing on it at every poll."""
    try:
        cmd = command_from(data)
    except (ValueError, KeyError, TypeError) as exc:
        problem = f"{type(exc).__name__}: {str(exc)[:80]}"
        return Command(cmd_id, CommandKind.UNREADABLE, 0, "?", problem)
    return cmd if cmd.id == cmd_id else Command(cmd_id, CommandKind.UNREADABLE, 0, "?", "its id does not match its key")


def beat_json(b: Beat) -> str:
    d = asdict(b)
    d["marks"] = [[s, p] for s, p in b.marks]
    return json.dumps(d, sort_keys=True)


def beat_from(data: str) -> Beat:
    d = json.loads(data)
    marks = tuple((str(s), float(p)) for s, p in d.get("marks", []))
    return Beat(
        int(d["at"]),
        str(d["world"]),
        str(d["session"]),
        str(d["state"]),
        str(d.get("state_reason", "")),
        int(d["last_tick_ts"]),
        bool(d["feed_fresh"]),
        bool(d["token_ok"]),
        int(d.get("token_expires_at", 0)),
        int(d.get("pid", 0)),
        marks,
    )


class OpsStore(Protocol):
    def send(self, cmd: Command) -> bool:
        """Store a command; False if one with its id is stored already."""
        ...

    def pending(self) -> list[Command]:
        """Commands without an acknowledgement, oldest first."""
        ...

    def acknowledge(self, ack: CommandAck) -> bool:
        """Store the acknowledgement; False if the command was acknowledged already (or is unknown)."""
        ...

    def commands(self, limit: int = 20) -> list[CommandView]:
        """The most recent commands with their acknowledgements, newest first."""
        ...

    def write_beat(self, beat: Beat) -> None: ...

    def beat(self) -> Beat | None: ...

    def use_once(self, name: str, expires_at: int) -> bool:
        """Mark ``name`` used; True only the first time (a one-time link, an idempotent job)."""
        ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS ops_commands (
    id TEXT PRIMARY KEY, issued_at INTEGER NOT NULL, data TEXT NOT NULL,
    ack_at INTEGER, ack TEXT
);
CREATE TABLE IF NOT EXISTS ops_beat (k INTEGER PRIMARY KEY CHECK (k = 1), data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ops_once (name TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
"""


class SqliteOpsStore:
    """The operator tables inside the SQLite journal file (which must exist). ``read_only``
    is for one look that creates nothing (see :func:`~tfl.live.journal.connect_read_only`)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise OpsStoreError(f"journal {self.path}: no such file (start the trader first, or check the path)")
        self.read_only = read_only
        try:
            if read_only:  # creates nothing, not even the WAL companions of a journal at rest
                self._db = connect_read_only(self.path, snapshot=True)
            else:
                self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=5000")
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "events" not in tables:
                raise OpsStoreError(f"journal {self.path}: not a TFL journal")
            self._ready = {"ops_commands", "ops_beat", "ops_once"} <= tables
            if not read_only and not self._ready:
                self._db.executescript(_SCHEMA)
                self._ready = True
        except sqlite3.DatabaseError as exc:
            raise OpsStoreError(f"journal {self.path}: not a usable SQLite journal ({exc})") from None

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self._ready:
            return []
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise OpsStoreError(f"journal {self.path}: operator tables unreadable ({exc})") from None

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        if self.read_only:
            raise OpsStoreError(f"journal {self.path}: opened read-only")
        try:
            return self._db.execute(sql, args).rowcount
        except sqlite3.IntegrityError:
            return 0
        except sqlite3.DatabaseError as exc:
            raise OpsStoreError(f"journal {self.path}: operator write failed ({exc})") from None

    def send(self, cmd: Command) -> bool:
        return (
            self._write(
                "INSERT INTO ops_commands (id, issued_at, data) VALUES (?, ?, ?)",
                (cmd.id, cmd.issued_at, command_json(cmd)),
            )
            == 1
        )

    def pending(self) -> list[Command]:
        rows = self._rows(
            "SELECT id, data FROM (SELECT id, data, ack, issued_at, rowid AS r FROM ops_commands "
            "ORDER BY issued_at DESC, rowid DESC LIMIT ?) WHERE ack IS NULL ORDER BY issued_at, r",
            (RECENT_COMMANDS,),
        )
        return [command_or_unreadable(i, d) for i, d in rows]

    def acknowledge(self, ack: CommandAck) -> bool:
        data = json.dumps(asdict(ack), sort_keys=True)
        return (
            self._write(
                "UPDATE ops_commands SET ack_at = ?, ack = ? WHERE id = ? AND ack IS NULL", (ack.at, data, ack.id)
            )
            == 1
        )

    def commands(self, limit: int = 20) -> list[CommandView]:
        rows = self._rows(
            "SELECT id, data, ack FROM ops_commands ORDER BY issued_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [CommandView(command_or_unreadable(i, d), ack_from(a) if a else None) for i, d, a in rows]

    def write_beat(self, beat: Beat) -> None:
        self._write("INSERT OR REPLACE INTO ops_beat (k, data) VALUES (1, ?)", (beat_json(beat),))

    def beat(self) -> Beat | None:
        rows = self._rows("SELECT data FROM ops_beat WHERE k = 1")
        return beat_from(rows[0][0]) if rows else None

    def use_once(self, name: str, expires_at: int) -> bool:
        return self._write("INSERT INTO ops_once (name, expires_at) VALUES (?, ?)", (name, expires_at)) == 1

    def close(self) -> None:
        self._db.close()


def ack_from(data: str) -> CommandAck:
    d = json.loads(data)
    return CommandAck(str(d["id"]), int(d["at"]), bool(d["done"]), str(d["outcome"]))
