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


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, object]) -> dict[str, object]:
    """pytest-playwright's browser is Debian's Chromium (`make browser` installs it): Playwright's
    own browser download is not reachable from these machines. Missing is a failure, not a skip."""
    from tfl.report.browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get installs Debian's chromium)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": list(CHROMIUM_ARGS)}
