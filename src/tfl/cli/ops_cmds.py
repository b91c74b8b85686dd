"""`tfl ctl`: the operator's controls from a terminal (the status page's, without a browser).

A command is written to the operator store beside the journal (the SQLite file, or the
DynamoDB table with the operator's own AWS credentials); the running trader picks it up
within ``live.command_poll_seconds``, carries it out and acknowledges it. ``tfl ctl`` waits
for that acknowledgement (``--wait``) and prints it; a command no trader picks up within
``live.command_max_age_seconds`` is refused when one next starts, so nothing fires later
out of context.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from tfl.cli.wiring import open_ops
from tfl.live.ops_store import Command, CommandAck, CommandKind, OpsStore, confirm_word, new_command
from tfl.settings import Settings

ACTIONS: dict[str, CommandKind] = {
    "stop-entries": CommandKind.STOP_ENTRIES,
    "flatten": CommandKind.FLATTEN_HALT,
    "exit": CommandKind.EXIT_POSITION,
    "lift": CommandKind.LIFT_HALT,
}


def send_and_wait(
    store: OpsStore,
    cmd: Command,
    wait_seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CommandAck | None:
    """Send ``cmd`` and poll for its acknowledgement for up to ``wait_seconds``."""
    store.send(cmd)
    deadline = clock() + wait_seconds
    while True:
        for view in store.commands(limit=50):
            if view.command.id == cmd.id and view.ack is not None:
                return view.ack
        if clock() >= deadline:
            return None
        sleep(0.25)


def describe(cmd: Command, ack: CommandAck | None, settings: Settings) -> str:
    what = cmd.kind.value + (f" {cmd.symbol}" if cmd.symbol else "")
    if ack is None:
        return (
            f"sent {what} (id {cmd.id}); not acknowledged yet: is a trader running? One that starts "
            f"within {settings.live.command_max_age_seconds} s carries it out, later ones refuse it"
        )
    return f"{what}: {'done' if ack.done else 'not done'}: {ack.outcome}"


def _typed_confirmation(word: str) -> bool:
    if not sys.stdin.isatty():
        raise ValueError(f"confirmation needed: type {word} at the prompt, or pass --yes")
    try:
        got = input(f"type {word} to confirm: ")
    except EOFError:
        raise ValueError(f"confirmation needed: type {word} at the prompt, or pass --yes") from None
    return got.strip() == word


def cmd_ctl(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        store = open_ops(args.journal, settings, read_only=True)
        for view in store.commands(limit=args.limit):
            c, a = view.command, view.ack
            state = "pending" if a is None else ("done" if a.done else "refused")
            sys.stdout.write(
                f"{c.id}  {c.kind.value:<13} {c.symbol:<12} {state:<8} {c.source:<5} {a.outcome if a else c.reason}\n"
            )
        store.close()
        return 0
    kind = ACTIONS[args.action]
    symbol = (args.symbol or "").upper()
    if kind is CommandKind.EXIT_POSITION and not symbol:
        raise ValueError("tfl ctl exit needs a SYMBOL")
    if kind is not CommandKind.EXIT_POSITION and symbol:
        raise ValueError(f"tfl ctl {args.action} takes no symbol")
    store = open_ops(args.journal, settings)
    word = confirm_word(kind, symbol)
    if not args.yes and not _typed_confirmation(word):
        sys.stdout.write("not confirmed: nothing sent\n")
        store.close()
        return 1
    cmd = new_command(kind, "ctl", int(time.time()), reason=args.reason, symbol=symbol)
    ack = send_and_wait(store, cmd, args.wait)
    store.close()
    sys.stdout.write(describe(cmd, ack, settings) + "\n")
    return 0 if ack is None or ack.done else 1


def add_parsers(
    sub: Any,
    add_config: Callable[[argparse.ArgumentParser], None],
    settings_of: Callable[[argparse.Namespace], Settings],
) -> None:
    ctl = sub.add_parser(
        "ctl",
        help="operator controls for a running trader: stop entries, flatten, exit one position, lift",
        description="Send a command to the trader that writes JOURNAL (it acts within a second or so and "
        "acknowledges). With a DynamoDB journal this uses your own AWS credentials.",
    )
    ctl.add_argument("action", choices=(*ACTIONS, "list"), help="what to do; list shows recent commands")
    ctl.add_argument("symbol", nargs="?", help="exit: the symbol whose position to close")
    ctl.add_argument("--journal", required=True, help="SQLite journal file or dynamodb://TABLE")
    ctl.add_argument("--reason", default="", help="recorded with the command")
    ctl.add_argument("--yes", action="store_true", help="skip the typed confirmation")
    ctl.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the acknowledgement (default 10)")
    ctl.add_argument("--limit", type=int, default=20, help="list: how many commands")
    add_config(ctl)
    ctl.set_defaults(func=lambda args: cmd_ctl(args, settings_of(args)))
