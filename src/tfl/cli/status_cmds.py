"""``tfl status``: the operator's status, as text, as a one-time login link, or served.

Without ``--serve`` it reads (the journal and the operator store read-only, nothing is
created) and prints the facts; ``--link`` prints a fresh one-time login link; ``--serve``
serves the page and its JSON on 127.0.0.1 until interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfl.settings import Settings

DEFAULT_PORT = 8765


def _now() -> int:
    return int(time.time())


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from tfl.cli.wiring import open_journal_read, open_ops
    from tfl.status.auth import DEFAULT_KEY_FILE, Signer, local_key, login_link
    from tfl.status.facts import facts_text, gather
    from tfl.status.sources import local_sources

    if args.port is not None and not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: expected 0..65535")
    reading = not args.serve and not args.link
    journal = open_journal_read(args.journal, settings, snapshot=reading)  # missing: one line, exit 2
    sources = local_sources(args.journal, settings, state_dir=args.state_dir, log_file=args.log_file)
    port = DEFAULT_PORT if args.port is None else args.port
    base = args.base_url or f"http://127.0.0.1:{port}"
    try:
        if reading:
            ops = open_ops(args.journal, settings, read_only=True)
            try:
                sys.stdout.write(facts_text(gather(journal, ops, sources, _now(), settings)) + "\n")
            finally:
                ops.close()
            return 0
        signer = Signer(local_key(args.key_file or DEFAULT_KEY_FILE), _now)
        if args.link and not args.serve:
            sys.stdout.write(login_link(base, signer) + "\n")
            return 0
        return _serve(args, settings, journal, sources, signer, port, base)
    finally:
        journal.close()


def _serve(
    args: argparse.Namespace, settings: Settings, journal: Any, sources: Any, signer: Any, port: int, base: str
) -> int:
    from tfl.cli.wiring import open_ops
    from tfl.status.app import StatusApp
    from tfl.status.auth import login_link
    from tfl.status.server import LOCALHOST, make_server

    ops = open_ops(args.journal, settings)
    server = make_server(StatusApp(journal, ops, sources, signer), port)
    try:
        host, bound = LOCALHOST, int(server.server_address[1])
        sys.stdout.write(f"serving the status page on http://{host}:{bound}/ (Ctrl-C stops)\n")
        if args.link:
            sys.stdout.write(login_link(args.base_url or f"http://{host}:{bound}", signer) + "\n")
        sys.stdout.flush()
        server.serve_forever()
    finally:
        server.server_close()
        ops.close()
    return 0


def add_parsers(
    sub: Any, add_config: Callable[[argparse.ArgumentParser], None], settings: Callable[[argparse.Namespace], Settings]
) -> None:
    st = sub.add_parser(
        "status",
        help="the operator's status: print it, print a one-time login link, or serve the page",
        description="Print the running trader's status from its journal (read-only), print a one-time login "
        "link (--link), or serve the status page and its JSON on 127.0.0.1 (--serve).",
    )
    st.add_argument("--journal", required=True, help="SQLite journal file or dynamodb://TABLE")
    st.add_argument("--serve", action="store_true", help="serve the page at / and the facts at /api/status")
    st.add_argument("--port", type=int, help=f"--serve: the port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free)")
    st.add_argument("--link", action="store_true", help="print a fresh one-time login link (valid until 17:00 IST)")
    st.add_argument("--base-url", help="the page's address in links (default http://127.0.0.1:PORT)")
    st.add_argument("--key-file", type=Path, help="the link-signing key, created 0600 (default ~/.tfl/status.key)")
    st.add_argument("--state-dir", type=Path, help="with a DynamoDB journal: the trader's --state-dir (its log)")
    st.add_argument("--log-file", type=Path, help="the trader's JSON log (default: JOURNAL.log)")
    add_config(st)
    st.set_defaults(func=lambda a: cmd_status(a, settings(a)))
