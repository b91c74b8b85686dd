"""The universe CSV (one column ``Symbol``): one parser for the data loader and the Lambdas.

Standard library only, so the pre-market Lambda can use it without the loader's pandas.
"""

from __future__ import annotations

import csv
import io


class UniverseError(ValueError):
    """The text is not a usable universe; ``row`` is the 1-based data row, when there is one."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


def parse_universe(text: str) -> list[str]:
    """Symbols in file order without duplicates (a leading byte-order mark is allowed)."""
    try:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        if reader.fieldnames is None or "Symbol" not in reader.fieldnames:
            raise UniverseError("no 'Symbol' column")
        out: dict[str, None] = {}
        for row, record in enumerate(reader, start=1):
            sym = (record.get("Symbol") or "").strip()
            if not sym:
                raise UniverseError("empty symbol", row)
            out[sym] = None
    except csv.Error as exc:
        raise UniverseError(f"not a readable CSV ({exc})") from None
    return list(out)
