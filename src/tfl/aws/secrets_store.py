"""The secrets store on AWS: two Secrets Manager secrets behind the ``SecretStore`` protocol.

- the credentials secret (``tfl/fyers_credentials``): client_id, secret_key and
  redirect_uri, edited by the operator once (and telegram_bot_token, for Telegram alerts);
- the token secret: the day's access token, its date, and the state of a pending login,
  written by the login callback (or ``tfl auth login``).

A value still holding the template's placeholder counts as missing. Reads are cached for a
few seconds because the REST client asks for the token on every request. Errors name the
secret, never a value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.secrets import SecretError

CREDENTIAL_NAMES = frozenset({"client_id", "secret_key", "redirect_uri", "telegram_bot_token"})
PLACEHOLDER_PREFIX = "REPLACE_ME"


def is_placeholder(value: str | None) -> bool:
    return value is None or value == "" or value.startswith(PLACEHOLDER_PREFIX)


class SecretsManagerStore:
    def __init__(
        self,
        client: Any,
        credentials_secret: str,
        token_secret: str,
        *,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.credentials_secret = credentials_secret
        self.token_secret = token_secret
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}

    def _secret_for(self, name: str) -> str:
        return self.credentials_secret if name in CREDENTIAL_NAMES else self.token_secret

    def _read(self, secret_id: str, *, fresh: bool = False) -> dict[str, str]:
        hit = self._cache.get(secret_id)
        if hit is not None and not fresh and self._clock() - hit[0] < self.cache_seconds:
            return hit[1]
        try:
            text = self.client.get_secret_value(SecretId=secret_id).get("SecretString") or "{}"
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if code == "ResourceNotFoundException":
                data: dict[str, str] = {}
                self._cache[secret_id] = (self._clock(), data)
                return data
            raise SecretError(f"secret {secret_id}: cannot read ({code})") from None
        except BotoCoreError as exc:
            raise SecretError(f"secret {secret_id}: cannot read ({type(exc).__name__})") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError:
            raise SecretError(f"secret {secret_id}: not a JSON object") from None
        if not isinstance(raw, dict):
            raise SecretError(f"secret {secret_id}: not a JSON object")
        data = {str(k): str(v) for k, v in raw.items()}
        self._cache[secret_id] = (self._clock(), data)
        return data

    def get(self, name: str) -> str | None:
        value = self._read(self._secret_for(name)).get(name)
        return None if is_placeholder(value) else value

    def put(self, name: str, value: str) -> None:
        self.put_many({name: value})

    def put_many(self, values: Mapping[str, str]) -> None:
        """Several names of one secret in a single PutSecretValue: a reader never sees half of them
        (a token without its date, a login state without its day)."""
        targets = {self._secret_for(name) for name in values}
        if len(targets) != 1:
            raise ValueError(f"put_many writes one secret at a time, not {len(targets)}: {sorted(values)}")
        (secret_id,) = targets
        data = dict(self._read(secret_id, fresh=True))
        data.update(values)
        body = json.dumps(data, sort_keys=True)
        try:
            try:
                self.client.put_secret_value(SecretId=secret_id, SecretString=body)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                self.client.create_secret(Name=secret_id, SecretString=body)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise SecretError(f"secret {secret_id}: cannot write ({code})") from None
        except BotoCoreError as exc:
            raise SecretError(f"secret {secret_id}: cannot write ({type(exc).__name__})") from None
        self._cache[secret_id] = (self._clock(), data)
