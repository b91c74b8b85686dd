"""Operator commands carried out by a running replay session: each command is sent into the
operator store mid-session (as the status page or ``tfl ctl`` would), the runtime picks it up
at its next poll, acts through the trader, journals the decision and acknowledges it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from test_faults import DAY, SYMBOLS, S, check_consistent

from tfl.core.events import Halted, Lifted, OrderPlaced, ReduceOnly
from tfl.core.orders import Leg
from tfl.core.state import CoreState
from tfl.domain import ExitReason, HaltReason
from tfl.live.feed import FeedEvent, ListFeed
from tfl.live.journal import SqliteJournal, read_events
from tfl.live.operator import OperatorLink
from tfl.live.ops_store import CommandKind, CommandView, OpsStoreError, SqliteOpsStore, new_command
from tfl.live.runtime import Controls
from tfl.settings import Settings
from tfl.timeutil import BAR_SECONDS

from live_helpers import materialize, replay

FAST = dataclasses.replace(S, live=dataclasses.replace(S.live, command_poll_seconds=0.05, status_beat_seconds=0.5))
EPOCH = 1_800_000_000.0  # the wall clock's origin in these tests


class Operated:
    """The replay's ticks with a fake clock; ``hooks`` run once each when the feed reaches
    their exchange time (the operator acting while the session runs)."""

    def __init__(self, events: list[FeedEvent], clock: list[float], hooks: list[tuple[int, Callable[[], None]]]):
        self._inner = ListFeed(events)
        self._clock = clock
        self._hooks = sorted(hooks, key=lambda h: h[0])
        self._events = events
        self._i = 0

    @property
    def exhausted(self) -> bool:
        return self._inner.exhausted

    def refresh(self) -> None:
        return None

    def next(self, timeout: float) -> FeedEvent | None:
        self._clock[0] += 0.01
        if self._i < len(self._events):
            ts = self._events[self._i].ts
            while self._hooks and self._hooks[0][0] <= ts:
                self._hooks.pop(0)[1]()
        self._i += 1
        return self._inner.next(timeout)

    def close(self) -> None:
        self._inner.close()


@dataclasses.dataclass
class Run:
    state: CoreState
    flat: bool
    views: list[CommandView]
    events: list[tuple[int, object]]


def operate(tmp: Path, market, plan: list[tuple[int, CommandKind, str]], settings: Settings = FAST) -> Run:  # type: ignore[no-untyped-def]
    """Replay DAY; at each planned exchange time send the command (kind, symbol)."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "journal.sqlite"
    SqliteJournal(path).close()
    store = SqliteOpsStore(path)
    clock = [0.0]
    wall = lambda: EPOCH + clock[0]  # noqa: E731
    controls = Controls(clock=lambda: clock[0], kill_file=tmp / "journal.halt")
    controls.operator = OperatorLink(store, "replay", controls.clear_kill_switch, wall, pid=1)
    controls.token_expiry = lambda: EPOCH + 7200  # the beat carries the token's expiry the runtime knows

    def sender(kind: CommandKind, symbol: str) -> Callable[[], None]:
        return lambda: store.send(new_command(kind, "test", int(wall()), reason="test", symbol=symbol))

    hooks = [(ts, sender(kind, sym)) for ts, kind, sym in plan]

    def factory(events: list, start: int, side_of) -> Operated:  # type: ignore[no-untyped-def,type-arg]
        return Operated(materialize(events, start, side_of), clock, hooks)

    state, res = replay(tmp, market, SYMBOLS, DAY, settings, controls=controls, feed_factory=factory)
    views = store.commands()
    beat = store.beat()
    assert beat is not None and beat.session == DAY.isoformat() and beat.token_expires_at == int(EPOCH) + 7200
    store.close()
    journal = SqliteJournal(path)
    events = [(rec.ts, ev) for rec, ev in read_events(journal)]
    journal.close()
    return Run(state, res.flat, views, events)


def test_exit_one_position(market, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the first trade of the clean run that stays open for at least two bars
    target = next(
        t for t in sorted(clean.book.trades, key=lambda t: t.entry_ts) if t.exit_ts - t.entry_ts > 2 * BAR_SECONDS
    )
    at = target.entry_ts + BAR_SECONDS + 60
    run = operate(tmp_path, market, [(at, CommandKind.EXIT_POSITION, target.symbol)])
    (view,) = run.views
    assert view.ack is not None and view.ack.done, view
    mine = [t for t in run.state.book.trades if t.symbol == target.symbol and t.entry_ts == target.entry_ts]
    assert len(mine) == 1 and mine[0].exit_reason is ExitReason.OPERATOR
    assert at - at % BAR_SECONDS <= mine[0].exit_ts < target.exit_ts  # in the command's bar, before the rules
    exits = [ev for _, ev in run.events if isinstance(ev, OrderPlaced) and ev.leg is Leg.EXIT]
    assert [e.symbol for e in exits if e.reason is ExitReason.OPERATOR] == [target.symbol]
    others = {(t.symbol, t.entry_ts) for t in run.state.book.trades} - {(target.symbol, target.entry_ts)}
    assert others  # the rest of the day traded
    assert run.flat
    check_consistent(tmp_path, run.state)


def test_stop_entries_then_lift(market, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    entries = sorted({t.entry_ts for t in clean.book.trades})
    assert len(entries) >= 3
    stop_at, lift_at = entries[0] - 60, entries[-1] - BAR_SECONDS - 60
    run = operate(tmp_path, market, [(stop_at, CommandKind.STOP_ENTRIES, ""), (lift_at, CommandKind.LIFT_HALT, "")])
    assert all(v.ack is not None and v.ack.done for v in run.views), run.views
    got = sorted({t.entry_ts for t in run.state.book.trades})
    assert not [ts for ts in got if stop_at <= ts < lift_at]  # nothing entered while stopped
    assert [ts for ts in got if ts >= lift_at]  # entries came back after the lift
    kinds = [type(ev) for _, ev in run.events if isinstance(ev, ReduceOnly | Lifted)]
    assert kinds == [ReduceOnly, Lifted]
    assert run.flat
    check_consistent(tmp_path, run.state)


def test_flatten_halt_lift_and_halt_again(market, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    held_at = sorted(clean.book.trades, key=lambda t: t.entry_ts)[0].entry_ts + BAR_SECONDS + 60
    first_exit = max(t.exit_ts for t in clean.book.trades)
    plan = [
        (held_at, CommandKind.FLATTEN_HALT, ""),
        (held_at + BAR_SECONDS, CommandKind.LIFT_HALT, ""),
        (held_at + 2 * BAR_SECONDS, CommandKind.LIFT_HALT, ""),  # nothing to lift: refused
        (held_at + 3 * BAR_SECONDS, CommandKind.FLATTEN_HALT, ""),
    ]
    assert first_exit > held_at
    run = operate(tmp_path, market, plan)
    acks = [v.ack for v in reversed(run.views)]
    assert [a.done for a in acks if a] == [True, True, False, True], acks
    assert "nothing to lift" in acks[2].outcome  # type: ignore[union-attr]
    halts = [ev for _, ev in run.events if isinstance(ev, Halted)]
    assert [(h.reason, h.n) for h in halts] == [(HaltReason.KILL_SWITCH, 0), (HaltReason.KILL_SWITCH, 1)]
    killed = [t for t in run.state.book.trades if t.exit_reason is ExitReason.KILL_SWITCH]
    assert killed and all(held_at - held_at % BAR_SECONDS <= t.exit_ts for t in killed)
    assert run.flat
    check_consistent(tmp_path, run.state)


def test_old_commands_and_unknown_positions_are_refused(market, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "journal.sqlite"
    SqliteJournal(path).close()
    store = SqliteOpsStore(path)
    stale = new_command(CommandKind.FLATTEN_HALT, "ctl", int(EPOCH) - 3600, reason="yesterday evening")
    assert store.send(stale)
    store.close()
    first = min(t.entry_ts for t in clean.book.trades)
    run = operate(tmp_path, market, [(first - 60, CommandKind.EXIT_POSITION, "NOTHELD")])
    by_id = {v.command.id: v.ack for v in run.views}
    assert by_id[stale.id] is not None and not by_id[stale.id].done and "issued 3600 s ago" in by_id[stale.id].outcome
    other = next(a for i, a in by_id.items() if i != stale.id)
    assert other is not None and not other.done and "no open NOTHELD" in other.outcome
    assert not [ev for _, ev in run.events if isinstance(ev, Halted)]  # the stale halt did nothing
    assert len(run.state.book.trades) == len(clean.book.trades)


class BrokenStore(SqliteOpsStore):
    def pending(self):  # type: ignore[no-untyped-def]
        self.calls = getattr(self, "calls", 0) + 1
        raise OpsStoreError("journal x: operator read failed (ThrottlingException)")


def test_an_unreachable_store_never_stops_trading(
    market, clean, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "journal.sqlite"
    SqliteJournal(path).close()
    store = BrokenStore(path)
    clock = [0.0]
    controls = Controls(clock=lambda: clock[0])
    controls.operator = OperatorLink(store, "replay", controls.clear_kill_switch, lambda: EPOCH + clock[0])

    def factory(events: list, start: int, side_of) -> Operated:  # type: ignore[no-untyped-def,type-arg]
        return Operated(materialize(events, start, side_of), clock, [])

    with caplog.at_level("ERROR"):
        state, res = replay(tmp_path, market, SYMBOLS, DAY, FAST, controls=controls, feed_factory=factory)
    assert store.calls > 10  # the fault really happened, again and again
    assert sum("operator store unreachable" in r.message for r in caplog.records) <= store.calls // 60 + 1
    assert res.flat and len(state.book.trades) == len(clean.book.trades)


def test_the_loss_limit_halt_is_never_lifted() -> None:
    from scripted import PLAN

    from tfl.core.decide import Core
    from tfl.core.state import apply

    core = Core(S, PLAN)
    state = CoreState.fresh(S)
    assert core.lift(state, "x") == []  # nothing to lift
    apply(state, Halted(HaltReason.KILL_SWITCH))
    (lift,) = core.lift(state, "operator")
    assert isinstance(lift, Lifted) and lift.n == 1
    apply(state, lift)
    assert state.halted is None and state.lifts == 1
    apply(state, Halted(HaltReason.DAILY_LOSS_LIMIT, state.lifts))
    assert core.lift(state, "operator") == []
    assert not [e for e in core.halt(state, HaltReason.KILL_SWITCH) if isinstance(e, Halted)]  # halted already
    assert Halted(HaltReason.KILL_SWITCH, 1).key() != Halted(HaltReason.KILL_SWITCH).key()


def test_tfls_own_reduce_only_is_not_lifted_and_the_same_cause_after_a_lift_counts() -> None:
    from scripted import PLAN

    from tfl.core.decide import Core
    from tfl.core.state import apply

    core = Core(S, PLAN)
    state = CoreState.fresh(S)
    apply(state, ReduceOnly("closed outside: SBIN"))  # TFL's own: the broker and the journal disagree
    assert core.lift(state, "operator") == []
    state = CoreState.fresh(S)
    (stop,) = core.stop_entries(state, "operator: stop new entries")
    assert isinstance(stop, ReduceOnly) and stop.operator
    apply(state, stop)
    (lift,) = core.lift(state, "operator")
    apply(state, lift)
    assert not state.reduce_only and state.lifts == 1
    # the same cause again after the lift is a new journal event, not a duplicate of the first
    again = ReduceOnly("operator: stop new entries", state.lifts, operator=True)
    assert again.key() != stop.key()


def test_an_unreadable_command_is_refused_and_trading_goes_on(market, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    path = tmp_path / "journal.sqlite"
    SqliteJournal(path).close()
    SqliteOpsStore(path).close()  # the tables
    db = sqlite3.connect(path)
    with db:  # a newer writer's command, and a damaged item
        db.execute("INSERT INTO ops_commands (id, issued_at, data) VALUES ('a', ?, ?)",
                   (int(EPOCH), '{"id": "a", "kind": "pause", "issued_at": 1, "source": "page"}'))  # fmt: skip
        db.execute("INSERT INTO ops_commands (id, issued_at, data) VALUES ('b', ?, 'not json')", (int(EPOCH),))
    db.close()
    run = operate(tmp_path, market, [])
    acks = {v.command.id: v.ack for v in run.views}
    assert set(acks) == {"a", "b"}
    for ack in acks.values():
        assert ack is not None and not ack.done and "not a command this trader understands" in ack.outcome
    assert run.flat and len(run.state.book.trades) == len(clean.book.trades)


def test_a_failing_command_is_acknowledged_and_alerted_and_trading_goes_on(
    market, clean, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """A real OS fault inside a command: the kill file is a folder, so the trader is halted from
    the start (it exists) and the lift cannot delete it."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "journal.halt").mkdir()
    first = min(t.entry_ts for t in clean.book.trades)
    with caplog.at_level("CRITICAL"):
        run = operate(tmp_path, market, [(first, CommandKind.LIFT_HALT, "")])
    (view,) = run.views
    assert view.ack is not None and not view.ack.done and view.ack.outcome.startswith("failed: IsADirectoryError")
    assert any("operator command failed" in r.message for r in caplog.records)
    assert not run.state.book.trades  # still halted by the kill switch: nothing entered
    assert run.flat
