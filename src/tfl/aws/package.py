"""The Lambda bundle: the part of ``tfl`` the jobs import, plus a freshly generated calendar.

The bundle is computed, not listed by hand: a child interpreter imports the four handler
modules with NumPy, pandas, pyarrow and requests blocked, and every ``tfl`` module that
ended up loaded goes into the zip. A handler that starts needing a heavy library fails
here, at build time, instead of in the Lambda at 08:45. The zip is byte-reproducible
(sorted entries, fixed timestamps), so its SHA-256 names the S3 object and CloudFormation
updates the functions exactly when the code changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tfl

HANDLERS = (
    "tfl.aws.lambdas.bias",
    "tfl.aws.lambdas.report",
    "tfl.aws.lambdas.ops",
    "tfl.aws.lambdas.login",
)
BLOCKED = ("numpy", "pandas", "pyarrow", "requests", "pandas_market_calendars", "exchange_calendars", "tqdm")
CALENDAR_ENTRY = "tfl/aws/nse_calendar.json"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)

_PROBE = """
import importlib, importlib.abc, json, sys
blocked = set(json.loads(sys.argv[1]))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"a Lambda may not import {name}")
        return None
sys.meta_path.insert(0, Block())
for mod in json.loads(sys.argv[2]):
    importlib.import_module(mod)
print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()
                        if (n == "tfl" or n.startswith("tfl.")) and getattr(m, "__file__", None))))
"""


class PackageError(RuntimeError):
    """The Lambda bundle cannot be built."""


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    files: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"lambda/tfl-{self.sha256[:16]}.zip"


def lambda_modules(handlers: tuple[str, ...] = HANDLERS) -> list[Path]:
    """Source files of every ``tfl`` module the handlers import, found with heavy imports blocked."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(BLOCKED), json.dumps(list(handlers))],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PackageError(f"the Lambda handlers cannot be imported without heavy libraries: {last}")
    return [Path(p) for p in json.loads(proc.stdout)]


def build_bundle(calendar_json: bytes) -> Bundle:
    """A deterministic zip of the handlers' modules, their packages' __init__ files and the calendar."""
    root = Path(tfl.__file__).resolve().parent
    files: dict[str, bytes] = {}
    for path in lambda_modules():
        rel = path.resolve().relative_to(root.parent).as_posix()
        files[rel] = path.read_bytes()
        parent = path.resolve().parent
        while parent != root.parent:  # every package on the way needs its __init__.py
            init = parent / "__init__.py"
            if init.exists():
                files[init.relative_to(root.parent).as_posix()] = init.read_bytes()
            parent = parent.parent
    files[CALENDAR_ENTRY] = calendar_json
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    data = buf.getvalue()
    return Bundle(data, hashlib.sha256(data).hexdigest(), tuple(sorted(files)))
