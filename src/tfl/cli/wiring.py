"""Choosing adapters from settings: local files by default, AWS services when configured.

One place decides, so every command agrees: a journal spec ``dynamodb://TABLE`` is the
DynamoDB journal (its side files then live in ``--state-dir``); a non-empty
``aws.bias_parameter`` means the bias comes from SSM; ``aws.topic_arn`` sends alerts to
SNS as well as the log; ``aws.metrics_file`` writes CloudWatch EMF metrics; the two
Secrets Manager names replace the local secrets file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfl.domain import BiasRead
from tfl.live.journal import Journal
from tfl.secrets import FileSecretStore, SecretStore, default_secrets_path
from tfl.settings import Settings

if TYPE_CHECKING:
    from tfl.live.ops_store import OpsStore

DYNAMO_PREFIX = "dynamodb://"
DEFAULT_STATE_DIR = Path.home() / ".tfl" / "state"


def is_dynamo(spec: str) -> bool:
    return spec.startswith(DYNAMO_PREFIX)


def dynamo_table(spec: str) -> str:
    table = spec[len(DYNAMO_PREFIX) :].strip("/")
    if not table:
        raise ValueError(f"journal '{spec}': expected dynamodb://TABLE")
    return table


def open_journal(spec: str, settings: Settings) -> Journal:
    """The SQLite journal at a path, or the DynamoDB journal for ``dynamodb://TABLE``."""
    if is_dynamo(spec):
        from tfl.aws.clients import client
        from tfl.aws.dynamo_journal import DynamoJournal

        return DynamoJournal(client("dynamodb", settings.aws.region), dynamo_table(spec))
    from tfl.live.journal import SqliteJournal

    return SqliteJournal(Path(spec))


def open_journal_read(spec: str, settings: Settings, *, snapshot: bool = False) -> Journal:
    """A journal to read only: the DynamoDB table (queries), or the SQLite file opened
    read-only, which must exist and be a journal (nothing is created, not even in an empty file)."""
    if is_dynamo(spec):
        return open_journal(spec, settings)
    from tfl.live.journal import ReadOnlySqliteJournal

    return ReadOnlySqliteJournal(Path(spec), snapshot=snapshot)


def open_ops(spec: str, settings: Settings, *, read_only: bool = False) -> OpsStore:
    """The operator store (commands, heartbeat, used links) beside the journal ``spec``;
    never creates a journal."""
    if is_dynamo(spec):
        from tfl.aws.clients import client
        from tfl.aws.dynamo_ops import DynamoOpsStore

        return DynamoOpsStore(client("dynamodb", settings.aws.region), dynamo_table(spec))
    from tfl.live.ops_store import SqliteOpsStore

    return SqliteOpsStore(Path(spec), read_only=read_only)


def side_base(spec: str, state_dir: Path | None) -> Path:
    """The path whose siblings hold the log, the kill switch, the pid and the paper broker's store."""
    if is_dynamo(spec):
        base_dir = state_dir or DEFAULT_STATE_DIR
        base_dir.mkdir(parents=True, exist_ok=True)
        return base_dir / dynamo_table(spec)
    return Path(spec)


def secret_store(settings: Settings) -> SecretStore:
    a = settings.aws
    if a.credentials_secret and a.token_secret:
        from tfl.aws.clients import client
        from tfl.aws.secrets_store import SecretsManagerStore

        return SecretsManagerStore(client("secretsmanager", a.region), a.credentials_secret, a.token_secret)
    return FileSecretStore(default_secrets_path(settings.fyers.secrets_file))


def alert_channel(settings: Settings, fallback: Callable[[str, str], None]) -> Callable[[str, str], None]:
    if not settings.aws.topic_arn:
        return fallback
    from tfl.aws.clients import client
    from tfl.aws.notify import SnsNotifier

    return SnsNotifier(client("sns", settings.aws.region), settings.aws.topic_arn).alert


def metrics_sink(settings: Settings) -> Any:
    if not settings.aws.metrics_file:
        return None
    from tfl.aws.metrics import EmfMetrics

    return EmfMetrics(Path(settings.aws.metrics_file), settings.aws.metrics_namespace)


def ssm_bias(settings: Settings, session: dt.date) -> BiasRead | None:
    """The bias from the SSM parameter when one is configured, else None (use the local file)."""
    if not settings.aws.bias_parameter:
        return None
    from tfl.aws.clients import client
    from tfl.aws.ssm_bias import read_bias_checked

    return read_bias_checked(client("ssm", settings.aws.region), settings.aws.bias_parameter, session)
