"""The Lambda bundle: the part of ``tfl`` the jobs import, plus a freshly generated calendar.

The bundle is computed, not listed by hand: a child interpreter imports the four handler
modules allowing only what the Lambda Python runtime has (the standard library, boto3 and
its dependencies) besides ``tfl`` itself, and every ``tfl`` module that ended up loaded goes
into the zip. A handler that starts needing any other library (pandas, yaml, fyers_apiv3,
...) fails here, at build time, instead of in the Lambda at 08:45. An optional import the
code guards with ``except ImportError`` stays allowed: it fails the same way in the Lambda. The zip is byte-reproducible
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
# Beyond the standard library, the Lambda Python runtime ships boto3 and what it needs.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
CALENDAR_ENTRY = "tfl/aws/nse_calendar.json"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
_REFUSED_EXIT = 3

_PROBE = """
import importlib, importlib.abc, json, sys
handlers = json.loads(sys.argv[2])
allowed = set(sys.stdlib_module_names) | set(json.loads(sys.argv[1])) | {"tfl"} | {h.split(".")[0] for h in handlers}
class OnlyRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top not in allowed:
            raise ImportError(f"the Lambda runtime has no {top}", name=top)
        return None
sys.meta_path.insert(0, OnlyRuntime())
for mod in handlers:
    try:
        importlib.import_module(mod)
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] in allowed:
            raise
        print(json.dumps({"handler": mod, "module": exc.name}))
        sys.exit(int(sys.argv[3]))
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
    """Source files of every ``tfl`` module the handlers import, found with only the runtime's libraries allowed."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(RUNTIME_PACKAGES), json.dumps(list(handlers)), str(_REFUSED_EXIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == _REFUSED_EXIT:
        hit = json.loads(proc.stdout.strip().splitlines()[-1])
        raise PackageError(
            f"the Lambda handler {hit['handler']} imports {hit['module']}, which the Lambda runtime does not have "
            f"(allowed: the standard library, tfl, {', '.join(RUNTIME_PACKAGES)})"
        )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PackageError(f"the Lambda handlers cannot be imported: {last}")
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
