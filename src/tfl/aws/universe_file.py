"""The traded universe on AWS: ``config/universe.csv`` in the data bucket (``tfl deploy --universe``).

The trading server keeps a copy in its data directory; the bucket's copy wins, so the
operator changes the universe with a deploy and no SSH.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.clients import aws_code
from tfl.aws.daily_bars import UNIVERSE_KEY

log = logging.getLogger("tfl.aws.universe")


def download_universe(s3: Any, bucket: str, dest: Path) -> bool:
    """Replace ``dest`` with the bucket's universe; False (and ``dest`` untouched) when the
    bucket has none or cannot be read."""
    try:
        body = s3.get_object(Bucket=bucket, Key=UNIVERSE_KEY)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        code = aws_code(exc)
        log.warning(
            "no universe from the data bucket: keeping the local file",
            extra={"fields": {"bucket": bucket, "key": UNIVERSE_KEY, "error": code, "local": str(dest)}},
        )
        return False
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(body)
        os.replace(tmp, dest)
    except OSError as exc:  # a full or read-only disk: the local copy (if any) stays
        log.warning("universe not saved", extra={"fields": {"file": str(dest), "error": exc.strerror}})
        return False
    return True
