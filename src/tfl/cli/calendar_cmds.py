"""`tfl calendar add-year`: a new year's NSE holidays into the calendar's override file.

The holidays go into the packaged ``src/tfl/calendar/overrides.json`` (``years``) by
default: it is the one file every consumer reads. The trader's calendar reads it, and
``tfl deploy`` builds the Lambdas' static table from it (the jobs that start the server,
compute the bias and send the reports); the server installs it from git. An operator's
``live.calendar_file`` reaches only the trader it is configured on, never the Lambdas, so
it is a target (``--file``) only for a trader run outside AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tfl.calendar.holiday_list import PLAUSIBLE_WEEKDAY_HOLIDAYS, HolidayList, parse_holiday_list

PACKAGED = Path(__file__).resolve().parents[1] / "calendar" / "overrides.json"


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _read_input(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV may start with a BOM
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (save the table as CSV or plain text)") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None


def _read_overrides(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"sessions": {}, "closed": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable calendar override file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("years", {}), dict):
        raise ValueError(f"{path}: not a calendar override file (a JSON object with 'years' an object)")
    return data


def check_year(year: int, holidays: HolidayList, overrides: dict[str, Any], path: Path, *, force: bool) -> None:
    """Refuse what cannot be right: a year the package already lists, a gap, a replaced entry, an odd count."""
    from tfl.calendar.nse import NseCalendar, package_last_year

    package = package_last_year()
    if year <= package:
        raise ValueError(
            f"the calendar package already lists NSE's {year} holidays (it covers up to {package}); "
            "correct single days under 'closed' or 'sessions' instead"
        )
    if str(year) in overrides.get("years", {}) and not force:
        raise ValueError(f"{path} already lists {year}'s holidays: pass --force to replace them")
    last = NseCalendar(path if path != PACKAGED and path.exists() else None).last_year
    if year > last + 1:
        raise ValueError(f"the calendar ends in {last}: add {last + 1}'s holidays first")
    if not holidays.plausible and not force:
        lo, hi = PLAUSIBLE_WEEKDAY_HOLIDAYS
        raise ValueError(
            f"{len(holidays.closures)} weekday holidays for {year}: NSE closes {lo} to {hi} weekdays a year; "
            "check the input (the whole table, one year), or pass --force if the circular really lists that many"
        )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write the whole file or nothing: a temporary file beside it, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_add_year(args: argparse.Namespace) -> int:
    year: int = args.year
    if not 2000 <= year <= 2100:
        raise ValueError(f"--year {year}: expected a year such as 2027")
    source = " ".join(str(args.source).split())
    if not source:
        raise ValueError("--source must name NSE's circular (number and date), e.g. 'NSE/CMTR/12345 of 2026-12-12'")
    path: Path = args.file or PACKAGED
    holidays = parse_holiday_list(_read_input(args.input), year)
    overrides = _read_overrides(path)
    check_year(year, holidays, overrides, path, force=args.force)
    entry = {
        "holidays": [h.date.isoformat() for h in holidays.closures],
        "names": {h.date.isoformat(): h.name for h in holidays.closures},
        "source": source,
    }
    _out(f"NSE holidays {year} ({source}): {len(holidays.closures)} weekdays closed")
    for h in holidays.closures:
        _out(f"  {h.date.isoformat()} {h.date:%a}  {h.name}")
    if holidays.weekend:
        shown = ", ".join(f"{h.date.isoformat()} {h.date:%a}" for h in holidays.weekend)
        _out(f"on a weekend, not closures (left out): {shown}")
    if not holidays.plausible:
        lo, hi = PLAUSIBLE_WEEKDAY_HOLIDAYS
        _out(f"warning: {len(holidays.closures)} is outside the usual {lo}-{hi}: accepted because of --force")
    if args.dry_run:
        _out(f"dry run: {path} not changed")
        return 0
    overrides.setdefault("years", {})[str(year)] = entry
    _write_json(path, overrides)
    _verify(path, year, holidays)
    _out(f"wrote {path}")
    if path == PACKAGED:
        _out("next: commit and push it, then `tfl deploy` (the Lambdas' calendar table is built from it)")
    else:
        _out("this file reaches only a trader whose live.calendar_file names it, never the AWS jobs")
    return 0


def _verify(path: Path, year: int, holidays: HolidayList) -> None:
    """Read the written file back through the calendar: the year is known and every listed day closed."""
    from tfl.calendar.nse import NseCalendar

    cal = NseCalendar(path)
    wrong = [h.date.isoformat() for h in holidays.closures if cal.session(h.date) is not None]
    if cal.last_year < year or wrong:
        raise ValueError(f"{path} was written but the calendar does not read {year} from it: check the file")


def add_parsers(sub: Any) -> None:
    cal = sub.add_parser("calendar", help="the NSE trading calendar")
    csub = cal.add_subparsers(dest="calendar_command", required=True, metavar="SUBCOMMAND")
    ay = csub.add_parser(
        "add-year",
        help="add a year's NSE trading holidays (from NSE's circular) to the calendar",
        description="Read NSE's holiday list for a year (a CSV, or the circular's table pasted as text: "
        "one holiday per line) and add its weekday holidays to the calendar override file.",
    )
    ay.add_argument("--year", type=int, required=True, help="the year the list is for, e.g. 2027")
    ay.add_argument("--from", dest="input", required=True, help="the list: a CSV or text file, or - for stdin")
    ay.add_argument("--source", required=True, help="NSE's circular (number and date), recorded with the dates")
    ay.add_argument(
        "--file",
        type=Path,
        help="the override file to extend (default: the packaged src/tfl/calendar/overrides.json, which AWS uses)",
    )
    ay.add_argument("--force", action="store_true", help="accept an unusual count, or replace the year's entry")
    ay.add_argument("--dry-run", action="store_true", help="validate and show, write nothing")
    ay.set_defaults(func=cmd_add_year)
