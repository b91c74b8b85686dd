"""The journal contract, run against every implementation: SQLite, DynamoDB (on moto) and memory.

A *store* is where a journal lives (a file, a table): tests open several journal objects on
one store to check what survives a clean close, a crash (the process dies without flushing)
and a reopen. The memory journal has no store; it runs the single-object tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
from moto import mock_aws

from tfl.aws.dynamo_journal import DynamoJournal, create_table
from tfl.core.events import Event
from tfl.live.journal import (
    Journal,
    JournalConflictError,
    JournalCorruptError,
    MemoryJournal,
    Record,
    SqliteJournal,
    read_events,
    to_event,
)


class Store(Protocol):
    def open(self) -> Journal: ...

    def after_crash(self, journal: Journal) -> Journal:
        """``journal``'s process died now (no flush, no close): a new journal on what it left."""
        ...

    def tamper(self, key: str) -> None:
        """Change one stored event's data behind the journal's back."""
        ...

    def snapshot(self) -> Any:
        """Everything stored, to check that a damaged store is left untouched."""
        ...


class SqliteStore:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.path = tmp / "j.sqlite"
        self.crashes = 0

    def open(self) -> Journal:
        return SqliteJournal(self.path)

    def after_crash(self, journal: Journal) -> Journal:
        # The files as they are now are what a crash leaves: the open transaction is not in them.
        self.crashes += 1
        crashed = self.tmp / f"crash{self.crashes}"
        crashed.mkdir()
        for suffix in ("", "-wal"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                shutil.copyfile(src, crashed / src.name)
        journal.close()  # commits into the abandoned original only
        self.path = crashed / self.path.name
        return self.open()

    def tamper(self, key: str) -> None:
        db = sqlite3.connect(self.path)
        db.execute("DROP TRIGGER events_no_update")
        db.execute("UPDATE events SET data = '{\"x\":99}' WHERE key = ?", (key,))
        db.commit()
        db.close()

    def snapshot(self) -> Any:
        return self.path.read_bytes()


class DynamoStore:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def open(self) -> Journal:
        return DynamoJournal(self.client, self.table)

    def after_crash(self, journal: Journal) -> Journal:
        return self.open()  # the buffered events die with the process: never flushed, never closed

    def tamper(self, key: str) -> None:
        items = [i for i in self.snapshot() if i["key"]["S"] == key]
        assert len(items) == 1
        item = dict(items[0])
        item["data"] = {"S": '{"x":99}'}
        self.client.put_item(TableName=self.table, Item=item)

    def snapshot(self) -> Any:
        items = self.client.scan(TableName=self.table, ConsistentRead=True)["Items"]  # test-side only
        return sorted(items, key=lambda i: (i["session"]["S"], i["key"]["S"]))


@contextlib.contextmanager
def sqlite_store(tmp: Path) -> Iterator[Store]:
    yield SqliteStore(tmp)


@contextlib.contextmanager
def dynamodb_store(tmp: Path) -> Iterator[Store]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with mock_aws():
            client = boto3.client("dynamodb", region_name="ap-south-1")
            create_table(client, "TFL-Journal")
            yield DynamoStore(client, "TFL-Journal")


STORES: dict[str, Callable[[Path], contextlib.AbstractContextManager[Store]]] = {
    "sqlite": sqlite_store,
    "dynamodb": dynamodb_store,
}
Factory = Callable[[Path], contextlib.AbstractContextManager[Journal]]


@contextlib.contextmanager
def _memory(tmp: Path) -> Iterator[Journal]:
    yield MemoryJournal()


def _opened(name: str) -> Factory:
    @contextlib.contextmanager
    def factory(tmp: Path) -> Iterator[Journal]:
        with STORES[name](tmp) as store:
            yield store.open()

    return factory


FACTORIES: dict[str, Factory] = {"sqlite": _opened("sqlite"), "dynamodb": _opened("dynamodb"), "memory": _memory}


@pytest.fixture(params=sorted(FACTORIES))
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    with FACTORIES[request.param](tmp_path) as j:
        yield j


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with STORES[request.param](tmp_path) as st:
        yield st


def ev(key: str, data: dict | None = None, session: str = "2024-01-02", kind: str = "NOTE") -> Record:  # type: ignore[type-arg]
    return Record(key, session, 1704166200, kind, data or {"x": 1})


def test_append_is_idempotent_and_ordered(journal: Journal) -> None:
    assert journal.append(ev("a")) is True
    assert journal.append(ev("b", {"y": [1, 2]})) is True
    assert journal.append(ev("a")) is False  # the same event again: a no-op
    assert [e.key for e in journal.records()] == ["a", "b"]
    assert next(iter(journal.records())).data == {"x": 1}


def test_conflicting_rewrite_is_refused(journal: Journal) -> None:
    journal.append(ev("a"))
    with pytest.raises(JournalConflictError, match="different contents"):
        journal.append(ev("a", {"x": 2}))
    assert [e.data for e in journal.records()] == [{"x": 1}]


def test_sessions_filter(journal: Journal) -> None:
    journal.append(ev("a", session="2024-01-02"))
    journal.append(ev("b", session="2024-01-03"))
    assert journal.sessions() == ["2024-01-02", "2024-01-03"]
    assert [e.key for e in journal.records("2024-01-03")] == ["b"]


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
    assert [e.key for e in j2.records()] == ["a"]
    assert [e.data for e in j2.records()] == [{"x": 1}]  # the refused UPDATE changed nothing
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


# ---------------------------------------------------------------------- the contract, continued


def keys(j: Journal, session: str | None = None) -> list[str]:
    return [e.key for e in j.records(session)]


def test_unflushed_appends_are_visible_to_their_writer(journal: Journal) -> None:
    journal.append(ev("a", session="2024-01-02"))
    journal.flush()
    journal.append(ev("b", session="2024-01-03"))
    assert keys(journal) == ["a", "b"]
    assert journal.sessions() == ["2024-01-02", "2024-01-03"]
    assert keys(journal, "2024-01-03") == ["b"]


def test_unflushed_events_read_back_as_stored(store: Store) -> None:
    """Before and after the flush, an event reads back as its JSON (a tuple is a list)."""
    j = store.open()
    j.append(ev("t", {"pair": (1, 2), "f": 1.5}))
    before = list(j.records())
    j.flush()
    assert before == list(j.records()) == list(store.after_crash(j).records())
    assert before[0].data == {"pair": [1, 2], "f": 1.5}


def test_reappend_with_another_timestamp_is_idempotent(journal: Journal) -> None:
    """As in SQLite, identity is the key, the kind and the payload: a later ts is the same event."""
    assert journal.append(ev("a")) is True
    journal.flush()
    later = Record("a", "2024-01-02", 1704166200 + 900, "NOTE", {"x": 1})
    assert journal.append(later) is False
    assert [e.ts for e in journal.records()] == [1704166200]
    with pytest.raises(JournalConflictError):
        journal.append(ev("a", kind="OTHER"))


def test_events_by_session_in_append_order(journal: Journal) -> None:
    sessions = ["2024-01-02", "2024-01-03", "2024-01-04"]
    expected: dict[str, list[str]] = {s: [] for s in sessions}
    for s in sessions:
        for i in (5, 1, 9, 3):  # append order, not key order
            k = f"{s}:k{i}"
            journal.append(ev(k, {"i": i}, session=s))
            expected[s].append(k)
        journal.flush()
    assert journal.sessions() == sessions
    for s in sessions:
        assert keys(journal, s) == expected[s]
    assert keys(journal) == [k for s in sessions for k in expected[s]]
    assert keys(journal, "2023-12-29") == []


def test_unicode_payloads(journal: Journal) -> None:
    data = {"note": "₹ 1,00,000 — नमस्ते", "emoji": "📈", "nested": {"ü": ["ä", "€"]}}
    journal.append(ev("u", data))
    journal.flush()
    assert [e.data for e in journal.records()] == [data]
    assert journal.append(ev("u", dict(data))) is False


def test_flushed_events_survive_reopen_in_order(store: Store) -> None:
    j = store.open()
    for k in ("c", "a", "b"):
        j.append(ev(k, {"k": k}))
    j.flush()
    j2 = store.after_crash(j)
    assert [(e.key, e.data) for e in j2.records()] == [("c", {"k": "c"}), ("a", {"k": "a"}), ("b", {"k": "b"})]
    assert j2.sessions() == ["2024-01-02"]


def test_a_crash_loses_only_the_unflushed_tail(store: Store) -> None:
    j = store.open()
    j.append(ev("a"))
    j.append(ev("b"))
    j.flush()
    j.append(ev("c"))
    j.append(ev("d", session="2024-01-03"))
    j2 = store.after_crash(j)
    assert keys(j2) == ["a", "b"]
    assert j2.sessions() == ["2024-01-02"]
    assert j2.append(ev("c")) is True  # derived again after the restart
    j2.flush()
    assert keys(store.after_crash(j2)) == ["a", "b", "c"]


def test_close_commits_like_a_flush(store: Store) -> None:
    j = store.open()
    j.append(ev("a"))
    j.close()
    j2 = store.open()
    assert keys(j2) == ["a"]
    j2.close()


def test_conflicting_rewrite_is_refused_across_reopen(store: Store) -> None:
    j = store.open()
    j.append(ev("a"))
    j.flush()
    j2 = store.after_crash(j)
    with pytest.raises(JournalConflictError, match="different contents"):
        j2.append(ev("a", {"x": 2}))
    j2.flush()
    assert [e.data for e in store.after_crash(j2).records()] == [{"x": 1}]


def test_idempotent_reappend_after_reopen(store: Store) -> None:
    j = store.open()
    assert j.append(ev("a")) is True
    assert j.append(ev("b")) is True
    j.close()
    j2 = store.open()
    assert j2.append(ev("b")) is False
    assert j2.append(ev("a")) is False
    assert j2.append(ev("c")) is True
    j2.flush()
    assert keys(store.after_crash(j2)) == ["a", "b", "c"]


def test_sessions_survive_reopen(store: Store) -> None:
    j = store.open()
    for s in ("2024-01-04", "2024-01-02", "2024-01-03"):
        j.append(ev(f"{s}:open", session=s))
    j.flush()
    j2 = store.after_crash(j)
    assert j2.sessions() == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert keys(j2, "2024-01-03") == ["2024-01-03:open"]


def test_large_batch_in_one_flush(store: Store) -> None:
    """More events than one DynamoDB transaction takes (100), over two sessions, in one flush."""
    j = store.open()
    expected = []
    for i in range(260):
        s = "2024-01-02" if i < 130 else "2024-01-03"
        j.append(ev(f"{s}:e{i:03d}", {"i": i, "pad": "x" * 50}, session=s))
        expected.append(f"{s}:e{i:03d}")
    j.flush()
    j2 = store.after_crash(j)
    assert keys(j2) == expected
    assert j2.sessions() == ["2024-01-02", "2024-01-03"]
    assert [e.data["i"] for e in j2.records("2024-01-03")] == list(range(130, 260))


def test_a_damaged_event_is_reported_and_left_untouched(store: Store) -> None:
    j = store.open()
    j.append(ev("a"))
    j.append(ev("b"))
    j.close()
    store.tamper("b")
    before = store.snapshot()
    with pytest.raises(JournalCorruptError, match="checksum") as err:
        list(store.open().records())
    assert "b" in str(err.value)
    assert store.snapshot() == before


def test_one_sessions_events_give_the_same_report_as_the_whole_journal(tmp_path: Path, nse_dir: Path) -> None:
    """The post-market job reads one session; its report must equal the one built from all sessions."""
    from tfl.data.market import load_market
    from tfl.live.report import day_report, session_report
    from tfl.settings import Settings

    from live_helpers import replay

    symbols = ["ADANIENT", "GAIL", "NMDC", "SAIL", "TATASTEEL"]
    days = (dt.date(2020, 12, 7), dt.date(2020, 12, 8), dt.date(2020, 12, 9))
    settings = Settings()
    market = load_market(nse_dir, settings, symbols, load_universe_daily=False)
    for day in days:
        replay(tmp_path, market, symbols, day, settings, bias="LONGS")
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    events = list(read_events(journal))
    journal.close()
    reports = [session_report(journal_of(events, d), d) for d in days]
    assert reports == [day_report(events, d) for d in days]
    assert reports[-1] is not None and reports[-1].start_equity != settings.backtest.capital
    stripped = [(r, e) for r, e in events if r.kind != "SESSION_OPEN"]
    assert session_report(stripped, days[0]) is None


def journal_of(events: list[tuple[Record, Event]], day: dt.date) -> list[tuple[Record, Event]]:
    return [(r, e) for r, e in events if r.session == day.isoformat()]


def test_a_position_left_by_a_dead_day_is_booked_as_closed_by_the_broker_never_exited(
    tmp_path: Path, nse_dir: Path
) -> None:
    """A day that ended unflat (a trader that died) leaves its position in the journal, which
    the broker squared off that afternoon. The next session corrects the journal with an
    explicit event (an estimated EOD exit) and an alert before it opens, opens flat, and never
    sends an order for those shares."""
    from tfl.core.events import AlertRaised, ClosedByBroker, OrderPlaced
    from tfl.core.orders import Leg
    from tfl.core.state import CoreState, apply
    from tfl.data.market import load_market
    from tfl.domain import ExitReason
    from tfl.live.report import session_report
    from tfl.settings import Settings

    from live_helpers import replay

    symbols = ["ADANIENT", "GAIL", "NMDC", "SAIL", "TATASTEEL"]
    day1, day2 = dt.date(2020, 12, 7), dt.date(2020, 12, 8)
    settings = Settings()
    market = load_market(nse_dir, settings, symbols, load_universe_daily=False)
    replay(tmp_path / "full", market, symbols, day1, settings, bias="LONGS")
    full = SqliteJournal(tmp_path / "full" / "journal.sqlite")
    state = CoreState.fresh(settings)
    (tmp_path / "died").mkdir()
    died = SqliteJournal(tmp_path / "died" / "journal.sqlite")
    for ev in full.records():  # the trader died right after its first entry filled
        died.append(ev)
        apply(state, to_event(ev))
        if state.book.positions:
            break
    full.close()
    from tfl.cli.live_cmds import _session_so_far

    so_far = _session_so_far(died, day1)  # what a trader restarted then would see
    assert so_far.opened and not so_far.closed and so_far.bias == "LONGS"
    assert so_far.positions == sorted(state.book.positions)
    ((sym, pos),) = state.book.positions.items()
    died.close()
    replay(tmp_path / "died", market, symbols, day2, settings, bias="LONGS")
    journal = SqliteJournal(tmp_path / "died" / "journal.sqlite")
    events = list(read_events(journal))
    journal.close()
    day2_events = [(r, e) for r, e in events if r.session == day2.isoformat()]
    closed = [e for _, e in day2_events if isinstance(e, ClosedByBroker)]
    assert len(closed) == 1 and closed[0].symbol == sym and closed[0].qty == pos.qty
    assert closed[0].estimated and closed[0].reason is ExitReason.EOD
    assert any(isinstance(e, AlertRaised) and e.cause == "CARRIED_CLOSED" for _, e in day2_events)
    # Nothing was ever sent for the carried shares: no exit, no stop, no flatten.
    assert not [
        e
        for _, e in day2_events
        if isinstance(e, OrderPlaced) and e.setup_ts == pos.setup_ts and e.leg is not Leg.ENTRY
    ]
    opened = next(r for r, _ in day2_events if r.kind == "SESSION_OPEN")
    assert "cash" in opened.data  # day 2 opened flat: its own report stands alone
    assert session_report(day2_events, day2) is not None
    journal = SqliteJournal(tmp_path / "died" / "journal.sqlite")
    after = _session_so_far(journal, day2)
    journal.close()
    assert after.opened and after.closed
