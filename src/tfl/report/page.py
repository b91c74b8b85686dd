"""Pieces shared by the offline HTML pages: the embedded plotly.js, the data blob, tables.

Every page is one file: plotly.js (from the plotly wheel) and the page's own script are
inlined once, the data rides in a JSON script tag, nothing is fetched. Tables are rendered
here, in Python, with each header cell aligned like its column's cells, so the page reads
even before any script has run.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

Kind = Literal["text", "int", "money", "pct", "r", "num"]
_DIGITS: dict[Kind, int] = {"text": 0, "int": 0, "money": 2, "pct": 1, "r": 3, "num": 2}
DASH = "–"


def asset(name: str) -> str:
    """A file shipped beside this module (the page's script and style)."""
    return resources.files("tfl.report").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def plotly_js() -> str:
    """The plotly.js bundle of the installed plotly wheel (read once per process). Found
    beside the package without importing it: the page needs only the file, and importing
    plotly costs more than reading it."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the plotly package is not installed: the report needs its plotly.js")
    js = (Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js").read_text(
        encoding="utf-8"
    )
    if _closes_script(js):  # would end the inline script early
        raise ValueError("the plotly.js bundle contains '</script' and cannot be inlined")
    return js


def _closes_script(text: str) -> bool:
    """Whether ``text`` holds ``</script`` in any case (without lower-casing megabytes)."""
    i = text.find("</")
    while i >= 0:
        if text[i + 2 : i + 8].lower() == "script":
            return True
        i = text.find("</", i + 2)
    return False


def json_blob(element_id: str, data: Any) -> str:
    """Data for the page's script, in a JSON script tag (sorted keys: same input, same bytes)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    safe = text.replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{safe}</script>'


def scripts(page_js: str) -> str:
    """plotly.js once, then the page's own script."""
    return f"<script>{plotly_js()}</script>\n<script>{page_js}</script>"


def fmt(x: float | int | None, kind: Kind) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    if kind == "int":
        return f"{int(x):,}"
    text = f"{x:,.{_DIGITS[kind]}f}"
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text  # no "-0.00"


@dataclass(frozen=True)
class Col:
    title: str
    kind: Kind = "text"
    signed: bool = False  # colour the cell green/red by sign


def table(cols: Sequence[Col], rows: Sequence[Sequence[Any]], *, table_id: str, sortable: bool = True) -> str:
    """An HTML table; numeric headers and cells share the class ``num`` (right-aligned), so a
    header always sits over its own column. Each cell keeps its raw value for sorting."""
    head = "".join(
        f'<th class="{"num" if c.kind != "text" else "txt"}" scope="col">{html.escape(c.title)}</th>' for c in cols
    )
    body = []
    for row in rows:
        cells = []
        for c, v in zip(cols, row, strict=True):
            if c.kind == "text":
                cells.append(f'<td class="txt">{html.escape(str(v))}</td>')
                continue
            cls = "num"
            if c.signed and isinstance(v, int | float) and math.isfinite(v):
                cls += " pos" if v > 0 else " neg" if v < 0 else ""
            raw = "" if v is None else repr(round(float(v), 6))
            cells.append(f'<td class="{cls}" data-v="{raw}">{fmt(v, c.kind)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    return (
        f'<div class="scroll"><table id="{table_id}"{cls}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def chart(div_id: str, caption: str = "") -> str:
    """A container the page's script draws one figure into."""
    cap = f'<p class="note">{html.escape(caption)}</p>' if caption else ""
    return f'<div class="chart" id="{div_id}"></div>{cap}'
