"""Shared fixtures: the real NSE data beside the project, and small hand-built markets."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data" / "nse").resolve()


@pytest.fixture(scope="session")
def nse_dir() -> Path:
    """The real data set; tests read it in place and never copy it."""
    if not (SHARED_DATA / "15min").is_dir():
        pytest.fail(f"the shared NSE data is missing at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nse_market(nse_dir: Path):  # type: ignore[no-untyped-def]
    from tfl.data.market import load_market
    from tfl.settings import Settings

    return load_market(nse_dir, Settings())
