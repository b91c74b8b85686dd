"""What makes two trials the same: the settings they ran, the data, and the code.

The ledger counts trials by these hashes, so they are defined from content, never from
names or times: the same settings on the same files with the same code are one trial,
however many times it is run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tfl.data.loader import DataError
from tfl.research.space import RESEARCH_SECTIONS
from tfl.settings import Settings

HASH_CHARS = 16
# The packages whose code decides a backtest's trades; a change to any of them is a new code version.
DECIDING_CODE = ("core", "strategy", "backtest", "indicators", "data", "regime.py", "costs.py", "settings.py")


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def research_settings(settings: Settings) -> dict[str, dict[str, object]]:
    """The sections of ``settings`` a backtest reads (JSON-ready)."""
    full = settings.to_dict()
    return {sec: full[sec] for sec in RESEARCH_SECTIONS}


def settings_hash(settings: Settings) -> str:
    return _digest(research_settings(settings))


@dataclass(frozen=True)
class Dataset:
    """The data a sweep reads: the directory's files for its symbols, by content."""

    data_dir: Path
    symbols: tuple[str, ...] | None  # None: the whole universe
    data_hash: str
    files: int
    bytes: int


def trial_hash(settings: Settings, symbols: tuple[str, ...] | None, start: dt.date, end: dt.date) -> str:
    """One trial: its settings, its symbols and its period."""
    return _digest(
        {
            "settings": research_settings(settings),
            "symbols": list(symbols) if symbols is not None else "all",
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
    )


def dataset_of(data_dir: Path, symbols: Iterable[str] | None) -> Dataset:
    """Hash every bar file the sweep can read (all of them: the bias reads the whole
    universe's daily bars, whatever symbols are traded), by name and content."""
    if not data_dir.is_dir():
        raise DataError(data_dir, "data directory does not exist")
    h = hashlib.sha256()
    files = total = 0
    for sub in ("15min", "daily"):
        folder = data_dir / sub
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if not f.is_file():
                continue
            h.update(f"{sub}/{f.name}\0".encode())
            with f.open("rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
            files += 1
            total += f.stat().st_size
    for name in ("universe.csv", "nifty200.csv"):
        if (data_dir / name).is_file():
            h.update(name.encode() + b"\0" + (data_dir / name).read_bytes())
    if files == 0:
        raise DataError(data_dir, "no bar files under 15min/ or daily/")
    syms = tuple(symbols) if symbols is not None else None
    return Dataset(data_dir, syms, h.hexdigest()[:HASH_CHARS], files, total)


@cache
def code_version() -> str:
    """A hash of the source files that decide a backtest's trades."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for part in DECIDING_CODE:
        p = root / part
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]
