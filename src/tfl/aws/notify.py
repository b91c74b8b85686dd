"""Alerts and reports to the SNS topic.

An alert is always logged as well (the CloudWatch alarm on ERROR lines sees it even if
SNS is down), and a failed publish is logged, never raised: a notification problem must
not stop the trading loop.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code

log = logging.getLogger("tfl.aws.notify")
_SUBJECT_MAX = 100  # SNS limit


def subject_line(text: str) -> str:
    """SNS subjects are one line of printable ASCII, at most 100 characters."""
    clean = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in text).strip() or "TFL"
    return clean if len(clean) <= _SUBJECT_MAX else clean[: _SUBJECT_MAX - 3] + "..."


class SnsNotifier:
    name = "sns"

    def __init__(self, sns: Any, topic_arn: str) -> None:
        self.sns = sns
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str) -> bool:
        """Send one message; False (and an ERROR log line) if SNS refused or was unreachable."""
        try:
            self.sns.publish(TopicArn=self.topic_arn, Subject=subject_line(subject), Message=message)
        except (ClientError, BotoCoreError) as exc:
            log.error(
                "SNS publish failed",
                extra={"fields": {"topic": self.topic_arn, "error": aws_code(exc)}},
            )
            return False
        return True

    def send(self, level: str, message: str) -> bool:
        """An alert channel (:class:`tfl.live.alerts.Channel`): the message under a ``TFL LEVEL:`` subject."""
        return self.publish(f"TFL {level}: {message}", message)

    def alert(self, level: str, message: str) -> None:
        """The runtime's alert channel: a log line at ``level`` and an SNS message."""
        logging.getLogger("tfl.alert").log(
            logging.getLevelName(level if level != "FATAL" else "CRITICAL"), f"ALERT: {message}"
        )
        self.send(level, message)
