"""The read-only git token of a private repository, kept in Secrets Manager for the server.

The server installs TFL from git at every boot. For a private repository it reads this
secret with its instance role and hands the token to git through ``GIT_ASKPASS`` (see the
template's bootstrap), so the token is never in the user data, a URL, argv or a log. The
secret lives outside the stack: it must exist before the first boot the stack waits for.
It is encrypted with the account's ``aws/secretsmanager`` key, which the instance role may
use through Secrets Manager without a key grant.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tfl.aws.clients import aws_code

GIT_TOKEN_SECRET = "tfl/git_token"
DEFAULT_GIT_USER = "x-access-token"  # GitHub; GitLab deploy tokens have their own user name
_MAX_TOKEN_CHARS = 1024

log = logging.getLogger("tfl.aws.git_credentials")


class GitTokenError(ValueError):
    """The token file or its secret cannot be used; the message says why (never the token)."""


@dataclass(frozen=True)
class StoredToken:
    secret_name: str
    created: bool  # False: an existing secret got a new value


def read_token(path: Path) -> str:
    """The token in ``path``: one line, printable, no spaces (the value is never echoed back)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GitTokenError(f"cannot read the git token file {path}: {type(exc).__name__}") from None
    token = text.strip()
    if not token:
        raise GitTokenError(f"the git token file {path} is empty")
    if len(token) > _MAX_TOKEN_CHARS or any(c.isspace() or not c.isprintable() for c in token):
        raise GitTokenError(f"the git token file {path} must hold one token on one line, without spaces")
    return token


def store_token(sm: Any, token: str, user: str = DEFAULT_GIT_USER, name: str = GIT_TOKEN_SECRET) -> StoredToken:
    """Create the secret, or put a new value into it; the name the stack's GitTokenSecret takes."""
    if not user or any(c.isspace() for c in user):
        raise GitTokenError(f"git user name {user[:40]!r} must be one word")
    value = json.dumps({"username": user, "token": token})
    try:
        sm.put_secret_value(SecretId=name, SecretString=value)
        created = False
    except ClientError as exc:
        if aws_code(exc) != "ResourceNotFoundException":
            raise GitTokenError(f"cannot store the git token in {name} ({aws_code(exc)})") from None
        try:
            sm.create_secret(
                Name=name,
                Description="Read-only git token of the TFL repository (read by the trading server at boot)",
                SecretString=value,
                Tags=[{"Key": "Project", "Value": "TFL"}],
            )
        except ClientError as exc2:
            raise GitTokenError(f"cannot create the secret {name} ({aws_code(exc2)})") from None
        created = True
    log.info("git token stored", extra={"fields": {"secret": name, "created": created}})
    return StoredToken(name, created)
