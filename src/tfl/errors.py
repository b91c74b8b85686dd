"""Errors shared across layers that decide how a run ends."""

from __future__ import annotations


class Unavailable(RuntimeError):  # noqa: N818 - a state, named for what it is
    """A service the run needs (FYERS, AWS, the journal's store) did not answer.

    The trader exits with status 5 and systemd starts it again: a restart may cure it,
    unlike bad configuration or data (status 2, final).
    """
