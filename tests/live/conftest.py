"""Fixtures shared by the live tests that replay the faults day (tests/live/test_faults.py's
DAY, SYMBOLS and settings): its market, and the clean run the faulty ones are held against."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_faults import DAY, SYMBOLS, S

from tfl.data.market import load_market

from live_helpers import replay


@pytest.fixture(scope="module")
def market(nse_dir: Path):  # type: ignore[no-untyped-def]
    return load_market(nse_dir, S, SYMBOLS)


@pytest.fixture(scope="module")
def clean(market, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    state, res = replay(tmp_path_factory.mktemp("clean"), market, SYMBOLS, DAY, S)
    assert res.flat and len(state.book.trades) >= 5
    return state
