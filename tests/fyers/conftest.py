from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fyers_harness import SYMBOLS


@pytest.fixture(scope="session")
def fyers_market(nse_dir: Path):  # type: ignore[no-untyped-def]
    from tfl.data.market import load_market
    from tfl.settings import Settings

    return load_market(nse_dir, Settings(), SYMBOLS)
