"""Checks of the paths a command is given, before any work is done or any file is made.

A path that cannot work (an output folder that is a file, a file in a folder that does not
exist, a journal to read that is not there) ends the command with one line naming the flag
and the problem (exit 2), instead of a traceback after minutes of work, or an empty
journal created by a command that only reads.
"""

from __future__ import annotations

from pathlib import Path

from tfl.cli.wiring import is_dynamo


class PathError(ValueError):
    """A path given on the command line cannot be used; ``str()`` is one line."""


def _first_existing(path: Path) -> Path:
    """The path itself or its nearest ancestor that exists."""
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path(".")  # pragma: no cover - the root always exists


def output_dir(path: Path, flag: str = "--out") -> Path:
    """A folder to write into: made if missing (with its parents), refused when it, or an
    ancestor it would be made in, is a file."""
    if path.exists() and not path.is_dir():
        raise PathError(f"{flag} {path}: exists and is not a folder")
    base = _first_existing(path)
    if not base.is_dir():
        raise PathError(f"{flag} {path}: {base} is a file, not a folder")
    return path


def output_file(path: Path, flag: str = "--out", *, make_folder: bool = False) -> Path:
    """A file to write: not a folder, and in a folder that exists (or, with ``make_folder``,
    that the command may make)."""
    if path.is_dir():
        raise PathError(f"{flag} {path}: is a folder; give a file name")
    folder = path.parent
    if make_folder:
        output_dir(folder, flag)
        return path
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise PathError(f"{flag} {path}: folder {folder} {what}")
    return path


def existing_journal(spec: str, flag: str = "journal") -> str:
    """A journal to read: a SQLite file that exists (reading must never create one), or a
    ``dynamodb://`` table (whose absence the table's own client reports)."""
    if is_dynamo(spec):
        return spec
    path = Path(spec)
    if not path.exists():
        raise PathError(f"{flag} {spec}: no such journal (nothing was created)")
    if not path.is_file():
        raise PathError(f"{flag} {spec}: is not a journal file")
    return spec


def journal_to_write(spec: str, flag: str = "--journal") -> str:
    """A journal the trader writes (new or resumed): its folder must exist, since the log,
    the pid and the paper broker's store are made beside it."""
    if is_dynamo(spec):
        return spec
    path = Path(spec)
    if path.exists() and not path.is_file():
        raise PathError(f"{flag} {spec}: is not a journal file")
    output_file(path, flag)
    return spec
