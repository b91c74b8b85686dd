"""Screenshots of an HTML report (backtest or research) in headless Chromium, for people.

    python scripts/report_screenshots.py build/demo/report.html --out build/shots

writes one full-page PNG per viewport (1280 px desktop, 700 px, 390 px phone) and fails
with the page's console errors, uncaught errors or network requests if it had any.
Needs Debian's chromium (`make browser`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfl.report.browser import VIEWPORTS, BrowserMissingError, screenshot_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="the report.html to open")
    ap.add_argument("--out", type=Path, default=Path("build/screenshots"), help="directory for the PNG files")
    ap.add_argument("--viewport", action="append", choices=sorted(VIEWPORTS), help="only these (repeatable)")
    args = ap.parse_args(argv)
    if not args.report.is_file():
        sys.stderr.write(f"error: {args.report} is not a file\n")
        return 2
    chosen = {k: VIEWPORTS[k] for k in (args.viewport or VIEWPORTS)}
    try:
        for shot in screenshot_report(args.report, args.out, chosen):
            sys.stdout.write(f"{shot}\n")
    except (BrowserMissingError, RuntimeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
