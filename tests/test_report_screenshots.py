"""scripts/report_screenshots.py, the screenshots for people, run as its own process: Playwright's
sync API cannot start a second time in a process where pytest-playwright's browser is open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_report_research import write_fixture
from tfl.report.research import render_research_report

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "report_screenshots.py"


def test_screenshot_script_writes_pngs(tmp_path: Path) -> None:
    out = write_fixture(tmp_path / "sweep")
    page = out / "report.html"
    page.write_text(render_research_report(out), encoding="utf-8")

    def main(args: list[str]) -> int:
        return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, check=False).returncode

    assert main([str(page), "--out", str(tmp_path / "shots"), "--viewport", "phone"]) == 0
    (shot,) = (tmp_path / "shots").iterdir()
    assert shot.name == "report-phone-390px.png" and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([str(tmp_path / "nope.html"), "--out", str(tmp_path / "none")]) == 2  # named, nothing written
    assert not (tmp_path / "none").exists()
