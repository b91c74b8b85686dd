"""Fixture journals for the status page, made by real replay sessions over the shared NSE
data, and a test stand-in for the runtime's command handling.

``midday``: the 2023-05-16 replay cut at 11:16 IST (three long positions open, each with
its stop resting at the paper broker); ``closed``: the whole session (flat, SESSION_CLOSE
written); ``rejecting``: the same day with the paper broker refusing every DLF order.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tfl.data.market import Market
from tfl.live.journal import SqliteJournal
from tfl.live.ops_store import CommandAck, OpsStore
from tfl.live.paper import PaperBroker
from tfl.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))
from live_helpers import replay

DAY = dt.date(2023, 5, 16)
SYMBOLS = ["RELIANCE", "TCS", "ICICIBANK", "DLF", "TRENT"]
MIDDAY_CUT = 1684216000  # 2023-05-16 11:16:40 IST: TRENT, ICICIBANK and DLF are open
REJECTED_SYMBOL = "DLF"


@dataclass(frozen=True)
class Journals:
    closed: Path
    midday: Path
    rejecting: Path


def _cut(src: Path, dst: Path, until: int) -> None:
    """A journal as it stood at ``until``: the replay's records up to then, in order."""
    whole = SqliteJournal(src)
    part = SqliteJournal(dst)
    for rec in whole.records():
        if rec.ts <= until:
            part.append(rec)
    part.flush()
    part.close()
    whole.close()


def _reject(symbol: str) -> Callable[[PaperBroker], PaperBroker]:
    def hook(b: PaperBroker) -> PaperBroker:
        b.rejections.add(symbol)
        return b

    return hook


def make_journals(root: Path, market: Market) -> Journals:
    settings = Settings()
    replay(root / "closed", market, SYMBOLS, DAY, settings)
    replay(root / "rejecting", market, SYMBOLS, DAY, settings, broker_hook=_reject(REJECTED_SYMBOL))
    (root / "midday").mkdir()
    _cut(root / "closed" / "journal.sqlite", root / "midday" / "journal.sqlite", MIDDAY_CUT)
    for d in ("closed", "rejecting", "midday"):
        for extra in (root / d).glob("broker.sqlite*"):
            extra.unlink()
    return Journals(
        root / "closed" / "journal.sqlite", root / "midday" / "journal.sqlite", root / "rejecting" / "journal.sqlite"
    )


def copy_journal(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    shutil.copyfile(src, dst)
    return dst


def ack_pending_stand_in(store: OpsStore, now: int) -> list[str]:
    """TEST STAND-IN for the runtime until its command polling is merged: acknowledge every
    pending command as done. Not the trader's behaviour; the round trip against a real
    replay session is tests/status/test_status_browser.py::test_round_trip_with_a_running_replay."""
    done = []
    for cmd in store.pending():
        if store.acknowledge(CommandAck(cmd.id, now, True, f"{cmd.kind.value} done (test stand-in)")):
            done.append(cmd.id)
    return done


class Clock:
    """A settable clock (UTC epoch seconds): tests move time, never wait for it."""

    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t
