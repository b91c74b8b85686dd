"""What every handler needs: configuration from the environment, IST dates, clients, logging.

Lambdas get their configuration as environment variables (``TFL_AWS__*`` settings plus a
few deployment names such as ``TFL_INSTANCE_ID``); nothing is read from a file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tfl.aws.clients import client
from tfl.aws.notify import SnsNotifier
from tfl.aws.secrets_store import SecretsManagerStore
from tfl.logs import JsonFormatter
from tfl.settings import Settings, SettingsError, load_settings
from tfl.timeutil import IST


class ConfigError(RuntimeError):
    """The function's environment lacks something it needs; the message names the variable."""


@dataclass(frozen=True)
class LambdaConfig:
    settings: Settings
    instance_id: str = ""
    heartbeat_alarm: str = ""
    login_url: str = ""

    @staticmethod
    def from_environ(environ: Mapping[str, str] | None = None) -> LambdaConfig:
        env = os.environ if environ is None else environ
        try:
            settings = load_settings(environ=env)
        except SettingsError as exc:
            raise ConfigError(f"the function's settings are invalid: {exc}") from None
        return LambdaConfig(
            settings,
            env.get("TFL_INSTANCE_ID", "").strip(),
            env.get("TFL_HEARTBEAT_ALARM", "").strip(),
            env.get("TFL_LOGIN_URL", "").strip(),
        )

    @property
    def region(self) -> str:
        return self.settings.aws.region

    def client(self, service: str) -> Any:
        return client(service, self.region)

    def require(self, value: str, variable: str) -> str:
        if not value:
            raise ConfigError(f"environment variable {variable} is not set")
        return value

    def secrets(self) -> SecretsManagerStore:
        """The FYERS credentials and daily token secrets (both variables must be set)."""
        aws = self.settings.aws
        return SecretsManagerStore(
            self.client("secretsmanager"),
            self.require(aws.credentials_secret, "TFL_AWS__CREDENTIALS_SECRET"),
            self.require(aws.token_secret, "TFL_AWS__TOKEN_SECRET"),
        )

    def notifier(self) -> SnsNotifier | None:
        """The SNS notifier, or None (logged) when no topic is configured: alerts still reach the log."""
        arn = self.settings.aws.topic_arn
        if not arn:
            logging.getLogger("tfl.aws.lambdas").error(
                "no SNS topic configured: alerts go to the log only",
                extra={"fields": {"variable": "TFL_AWS__TOPIC_ARN"}},
            )
            return None
        return SnsNotifier(self.client("sns"), arn)


def alert(notifier: SnsNotifier | None, level: str, message: str) -> None:
    """An alert on the topic (and always in the log); never raises."""
    if notifier is not None:
        notifier.alert(level, message)
    else:
        logging.getLogger("tfl.alert").log(
            logging.getLevelName(level if level != "FATAL" else "CRITICAL"), f"ALERT: {message}"
        )


def unexpected(logger: logging.Logger, job: str, cfg: LambdaConfig, exc: Exception) -> str:
    """A bug or an unforeseen failure: the traceback to the log, an ERROR alert, and the reason.

    The alert names the exception type only; its text could carry request data.
    """
    reason = f"unexpected error ({type(exc).__name__})"
    logger.error(f"{job} job failed unexpectedly", exc_info=exc, extra={"fields": {"job": job}})
    try:
        notifier = cfg.notifier()
    except Exception:  # no client at all: the log line above is what is left
        notifier = None
    alert(notifier, "ERROR", f"TFL {job} job failed: {reason}; see the function's log")
    return reason


def publish(notifier: SnsNotifier | None, subject: str, message: str) -> bool:
    return notifier.publish(subject, message) if notifier is not None else False


def ist_now(now: dt.datetime | None = None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).astimezone(IST)


def ist_today(now: dt.datetime | None = None) -> dt.date:
    return ist_now(now).date()


def event_date(event: Mapping[str, Any], now: dt.datetime | None = None) -> dt.date:
    """``event["date"]`` (YYYY-MM-DD, for manual runs and tests) or today in IST."""
    raw = event.get("date")
    if raw is None or raw == "":
        return ist_today(now)
    if not isinstance(raw, str):
        raise ValueError(f"event date {raw!r} is not a YYYY-MM-DD string")
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"event date {raw[:40]!r} is not YYYY-MM-DD") from None


def decide(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One structured log line per decision."""
    logger.log(level, event, extra={"fields": fields})


def setup_logging(environ: Mapping[str, str] | None = None) -> None:
    """JSON log lines in Lambda (the runtime's own format drops our fields); a no-op elsewhere."""
    env = os.environ if environ is None else environ
    if not env.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    for h in root.handlers:
        if not isinstance(h.formatter, JsonFormatter):
            h.setFormatter(JsonFormatter())
    root.setLevel(logging.INFO)


Result = dict[str, Any]


def entry(
    job: str,
    logger: logging.Logger,
    run: Callable[[dict[str, Any], LambdaConfig], Result],
    event: Any,
    *,
    on_config_error: Callable[[dict[str, Any], str], Result] | None = None,
    on_bug: Callable[[dict[str, Any], LambdaConfig, str], Result] | None = None,
) -> Result:
    """Every handler's frame: JSON logs, configuration from the environment, and no exception
    ever escaping (a scheduled job that dies silently is the worst outcome)."""
    setup_logging()
    ev = event_dict(event)
    try:
        cfg = LambdaConfig.from_environ()
    except ConfigError as exc:
        reason = str(exc)
        decide(logger, f"{job} not run: configuration", logging.ERROR, reason=reason)
        return _fallback(logger, job, lambda: on_config_error(ev, reason) if on_config_error else None, reason)
    try:
        return run(ev, cfg)
    except Exception as exc:
        reason = unexpected(logger, job, cfg, exc)
        return _fallback(logger, job, lambda: on_bug(ev, cfg, reason) if on_bug else None, reason)


def _fallback(logger: logging.Logger, job: str, handle: Callable[[], Result | None], reason: str) -> Result:
    """A failure's own handler (NO_TRADES, an error page); if that fails too, the plain error result."""
    try:
        out = handle()
    except Exception as exc:
        logger.error(f"{job} failure handling failed", exc_info=exc, extra={"fields": {"job": job}})
        out = None
    return out if out is not None else {"status": "error", "reason": reason}


def event_dict(event: Any) -> dict[str, Any]:
    return dict(event) if isinstance(event, Mapping) else {}
