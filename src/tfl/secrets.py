"""Secrets: the FYERS app secret and the daily access token.

Locally they live in a JSON file readable by its owner only (mode 0600; a file anyone else
can read is refused). The environment can supply them too (``TFL_FYERS_SECRET_KEY``,
``TFL_FYERS_ACCESS_TOKEN``), which wins. On AWS a Secrets Manager store implements the
same protocol. Values never reach a log line, an exception or a report: errors name the
secret, never its value.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

ENV_NAMES = {
    "secret_key": "TFL_FYERS_SECRET_KEY",
    "access_token": "TFL_FYERS_ACCESS_TOKEN",
    "telegram_bot_token": "TFL_TELEGRAM_BOT_TOKEN",
}


class SecretError(RuntimeError):
    """A secret store cannot be used; the message names the store, never a value."""


class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str) -> None: ...


class FileSecretStore:
    def __init__(self, path: Path, environ: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._env = os.environ if environ is None else environ

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise SecretError(f"secrets file {self.path} is readable by others (mode {mode:o}); chmod 600 it")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SecretError(f"secrets file {self.path}: unreadable ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise SecretError(f"secrets file {self.path}: not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def get(self, name: str) -> str | None:
        env_name = ENV_NAMES.get(name)
        if env_name and self._env.get(env_name):
            return self._env[env_name]
        return self._read().get(name)

    def put(self, name: str, value: str) -> None:
        data = self._read()
        data[name] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def default_secrets_path(configured: str) -> Path:
    return Path(configured).expanduser() if configured else Path.home() / ".tfl" / "secrets.json"
