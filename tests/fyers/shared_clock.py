"""A clock one process sets and another reads: the fake exchange's simulated time, shared
with a trader running as its own process through a small memory-mapped file."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

_SLOTS = struct.Struct("<dd")  # the time written twice: a reader retries until both agree


class SharedClock:
    def __init__(self, mm: mmap.mmap) -> None:
        self._mm = mm

    @classmethod
    def create(cls, path: Path, now: float) -> SharedClock:
        path.write_bytes(_SLOTS.pack(now, now))
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> SharedClock:
        with open(path, "r+b") as fh:
            return cls(mmap.mmap(fh.fileno(), _SLOTS.size))

    def write(self, now: float) -> None:
        _SLOTS.pack_into(self._mm, 0, now, now)

    def read(self) -> float:
        while True:
            a, b = _SLOTS.unpack_from(self._mm, 0)
            if a == b:
                return float(a)
