"""Where the page's side facts come from: the trader's JSON log and the bias record.

A SQLite journal has its log and bias file beside it (``JOURNAL.log``, ``bias.json``);
a DynamoDB journal's log lives on the trading server (in ``--state-dir`` when given), so
the Lambda shows the journal's alerts instead, and reads the bias record from SSM.
Nothing here creates a file or a folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfl.cli.wiring import dynamo_table, is_dynamo
from tfl.live.model_table import TABLE_SUFFIX
from tfl.settings import Settings
from tfl.status.facts import Sources

# (where it came from, its text), or None when it is not there (yet): read at each refresh
TextReader = Callable[[], tuple[str, str] | None]


def file_text(path: Path, label: str = "file") -> TextReader:
    """A text file's contents when it is there (nothing is created)."""

    def read() -> tuple[str, str] | None:
        try:
            return f"{label} {path.name}", path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    return read


def ssm_bias(ssm: Any, name: str) -> TextReader:
    def read() -> tuple[str, str] | None:
        from tfl.aws.ssm_bias import read_bias_text

        text = read_bias_text(ssm, name)
        return None if text is None else (f"SSM {name}", text)

    return read


def local_sources(
    spec: str, settings: Settings, *, state_dir: Path | None = None, log_file: Path | None = None
) -> Sources:
    """The log file and bias record of a journal run on this machine."""
    if is_dynamo(spec):
        table = dynamo_table(spec)
        log = log_file or (state_dir / f"{table}.log" if state_dir else None)
        bias: TextReader | None = None
        if settings.live.bias_file:
            bias = file_text(Path(settings.live.bias_file), "bias file")
        elif settings.aws.bias_parameter:
            from tfl.aws.clients import client

            bias = ssm_bias(client("ssm", settings.aws.region), settings.aws.bias_parameter)
        model = file_text(state_dir / f"{table}{TABLE_SUFFIX}") if state_dir else None
        return Sources(spec, log, bias, model)
    path = Path(spec)
    bias_path = Path(settings.live.bias_file) if settings.live.bias_file else path.with_name("bias.json")
    model = file_text(path.with_name(path.name + TABLE_SUFFIX))
    return Sources(path.name, log_file or path.with_name(path.name + ".log"), file_text(bias_path, "bias file"), model)


def s3_text(s3: Any, bucket: str, key: str) -> TextReader:
    """An object's text, or None when it is not there yet (or cannot be read)."""

    def read() -> tuple[str, str] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return f"s3://{bucket}/{key}", body.decode("utf-8")
        except (ClientError, BotoCoreError, UnicodeDecodeError):
            return None

    return read
