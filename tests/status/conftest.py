"""Fixture journals for the status tests (real replays, made once per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from status_helpers import Journals, make_journals


@pytest.fixture(scope="session")
def journals(nse_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Journals:
    from status_helpers import SYMBOLS

    from tfl.data.market import load_market
    from tfl.settings import Settings

    market = load_market(nse_dir, Settings(), SYMBOLS)
    return make_journals(tmp_path_factory.mktemp("status-journals"), market)
