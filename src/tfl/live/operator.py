"""Carrying out the operator's commands inside the running trader.

The runtime polls the operator store (:mod:`tfl.live.ops_store`) for commands it has not
acknowledged and hands each to :func:`carry_out`, which acts through the trader's own
methods: the flatten-and-halt is the kill switch of ``tfl halt`` (the same ``Trader.halt``),
the others are core decisions journalled before anything is sent. Every command ends in an
acknowledgement saying what happened, or why nothing did (a position that is not held, a
loss-limit halt that is not the operator's to lift). A command is acknowledged only after
its decisions are durable in the journal, so a crash between the two carries it out again
on restart, which the journal's idempotent keys make harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from tfl.domain import HaltReason
from tfl.live.journal import JournalError
from tfl.live.ops_store import Beat, Command, CommandAck, CommandKind, OpsStore
from tfl.live.trader import Trader

log = logging.getLogger("tfl.operator")

ACTIVE, REDUCE_ONLY, HALTED = "ACTIVE", "REDUCE-ONLY", "HALTED"


@dataclass
class OperatorLink:
    """The runtime's end of the operator store, with what a lift must also undo locally."""

    store: OpsStore
    world: str
    clear_kill_switch: Callable[[], None]  # a lift removes the kill file and the signal's flag
    wall: Callable[[], float]  # UTC epoch seconds (acknowledgements and heartbeats)
    pid: int = 0
    # consecutive store failures per operation (logged on the first, then every 60th)
    failures: dict[str, int] = field(default_factory=dict)


def trading_state(trader: Trader) -> tuple[str, str]:
    """ACTIVE, REDUCE-ONLY or HALTED, with why."""
    st = trader.state
    if st.halted is not None:
        return HALTED, st.halted.value
    if st.reduce_only:
        return REDUCE_ONLY, st.reduce_only
    return ACTIVE, ""


def carry_out(trader: Trader, cmd: Command, ts: int, link: OperatorLink) -> CommandAck:
    """Act on one command at exchange time ``ts``; the acknowledgement says what happened."""
    who = f"operator ({cmd.source}{': ' + cmd.reason if cmd.reason else ''})"
    st = trader.state
    if cmd.kind is CommandKind.UNREADABLE:
        return _acked(cmd, False, f"refused: not a command this trader understands ({cmd.reason})", link)
    age = int(link.wall()) - cmd.issued_at
    if age > trader.settings.live.command_max_age_seconds:
        done, outcome = False, f"refused: issued {age} s ago, before this trader was running; send it again"
        return _acked(cmd, done, outcome, link)
    match cmd.kind:
        case CommandKind.FLATTEN_HALT:
            if st.halted is not None:
                done, outcome = True, f"already halted ({st.halted.value}); positions are being flattened"
            else:
                trader.halt(ts, HaltReason.KILL_SWITCH)
                done, outcome = True, "halted: no new entries today, every position closed at market"
        case CommandKind.STOP_ENTRIES:
            if st.halted is not None or st.reduce_only:
                state, why = trading_state(trader)
                done, outcome = True, f"entries were already stopped ({state}: {why})"
            else:
                trader.decide(trader.core.stop_entries(st, f"{who}: stop new entries"), ts)
                done, outcome = True, "no new entries today; positions keep their stops and targets"
        case CommandKind.LIFT_HALT:
            if st.halted is HaltReason.DAILY_LOSS_LIMIT:
                done, outcome = False, "refused: the daily loss limit's halt is a rule and is not lifted"
            elif st.reduce_only and not st.reduce_only_by_operator:
                done, outcome = (
                    False,
                    (
                        f"refused: TFL set reduce-only itself ({st.reduce_only}); it lasts until the next session's "
                        "reconciliation. Check the broker's positions and orders"
                    ),
                )
            else:
                evs = trader.core.lift(st, f"{who}: lift")
                if not evs:
                    done, outcome = False, "refused: nothing to lift (trading is active)"
                else:
                    link.clear_kill_switch()
                    trader.decide(evs, ts)
                    done, outcome = True, "lifted: new entries allowed again (nothing is re-entered)"
        case CommandKind.EXIT_POSITION:
            sym = cmd.symbol
            if sym not in st.book.positions:
                done, outcome = False, f"refused: no open {sym} position in the journal"
            elif sym in st.exit_pending:
                done, outcome = True, f"{sym} is being exited already"
            else:
                evs = trader.core.exit_position(st, sym)
                if not evs:
                    done, outcome = False, f"refused: no exit attempt left for {sym}; its stop stays"
                else:
                    trader.decide(evs, ts)
                    done, outcome = True, f"{sym}: market exit sent, its stop and target cancelled"
        case CommandKind.UNREADABLE:  # answered above
            done, outcome = False, "refused"
    return _acked(cmd, done, outcome, link)


def _acked(cmd: Command, done: bool, outcome: str, link: OperatorLink) -> CommandAck:
    log.warning(
        "operator command",
        extra={
            "fields": {"id": cmd.id, "kind": cmd.kind.value, "symbol": cmd.symbol, "done": done, "outcome": outcome}
        },
    )
    return CommandAck(cmd.id, int(link.wall()), done, outcome)


def poll_commands(trader: Trader, ts: int, link: OperatorLink) -> int:
    """Carry out every pending command, oldest first; returns how many were acknowledged.
    A store that cannot be reached is logged, never raised: the trading loop goes on."""
    try:
        pending = link.store.pending()
    except JournalError as exc:
        _store_failed(link, "read", exc)
        return 0
    link.failures.pop("read", None)
    n = 0
    for cmd in pending:
        try:
            ack = carry_out(trader, cmd, ts, link)
        except JournalError:
            raise  # the trader's own journal failed: the runtime's handling applies
        except Exception as exc:  # a bug or an OS error must not stop the trading loop
            log.critical("operator command failed", exc_info=exc, extra={"fields": {"id": cmd.id}})
            trader.alert(
                "CRITICAL",
                f"TFL: the operator command {cmd.kind.value} failed ({type(exc).__name__}); "
                "check the status page and the log, and send it again if it is still needed",
            )
            ack = CommandAck(cmd.id, int(link.wall()), False, f"failed: {type(exc).__name__} (see the trader's log)")
        try:
            link.store.acknowledge(ack)
        except JournalError as exc:
            _store_failed(link, "acknowledge", exc)
            return n
        n += 1
    return n


def write_beat(trader: Trader, link: OperatorLink, last_tick_ts: int, token_expiry: float | None) -> None:
    """The heartbeat the status page reads: state, feed, token (``token_expiry``: epoch seconds,
    None unknown), the marks of held symbols."""
    state, why = trading_state(trader)
    st = trader.state
    marks = tuple((s, float(st.marks[s])) for s in sorted(st.book.positions) if s in st.marks)
    expires = int(token_expiry or 0)
    beat = Beat(
        int(link.wall()),
        link.world,
        trader.sid,
        state,
        why,
        last_tick_ts,
        bool(trader.gate.feed_fresh),
        bool(trader.gate.token_ok),
        expires,
        link.pid,
        marks,
    )
    try:
        link.store.write_beat(beat)
    except JournalError as exc:
        _store_failed(link, "heartbeat", exc)
        return
    link.failures.pop("heartbeat", None)


def _store_failed(link: OperatorLink, what: str, exc: Exception) -> None:
    n = link.failures.get(what, 0)
    if n % 60 == 0:
        log.error(
            "operator store unreachable: commands and the status page's heartbeat wait",
            extra={"fields": {"op": what, "error": str(exc), "failures": n + 1}},
        )
    link.failures[what] = n + 1
