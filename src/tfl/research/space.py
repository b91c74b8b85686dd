"""The search space of a sweep: a grid, random draws over ranges, or Optuna's sampler.

Every key is a setting of the one validated settings object (``section.key``), and every
point is checked by building its settings before anything runs, so a typo or an invalid
combination (``strategy.min_run`` above ``strategy.max_run``, say) is an error naming the
key, never a sweep that silently ran the defaults.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfl.settings import Settings, SettingsError

# Sections a backtest reads; the live, FYERS and AWS sections cannot change a trial's result.
RESEARCH_SECTIONS = ("bias", "indicators", "strategy", "risk", "costs", "backtest")

Value = bool | int | float | str
Point = tuple[tuple[str, Value], ...]  # sorted (key, value) pairs: hashable and canonical


class SpaceError(SettingsError):
    """A search-space description that cannot be run; the message names the key."""


@dataclass(frozen=True)
class Dimension:
    """One swept setting: its type, and either its listed values or a numeric range."""

    key: str
    kind: str  # "int", "float", "bool", "str"
    values: tuple[Value, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def is_range(self) -> bool:
        return self.low is not None


def field_kind(key: str) -> str:
    """The type name of setting ``section.key``; unknown keys are an error naming them."""
    sec, dot, name = key.partition(".")
    if not dot or sec not in RESEARCH_SECTIONS:
        raise SpaceError(
            f"sweep key '{key}': expected one of the sections {', '.join(RESEARCH_SECTIONS)} as 'section.key'"
        )
    section = getattr(Settings(), sec)
    known = {f.name: f for f in dataclasses.fields(section)}
    if name not in known:
        raise SpaceError(f"sweep key '{key}': unknown setting (known in [{sec}]: {', '.join(sorted(known))})")
    t = known[name].type
    kind = t if isinstance(t, str) else getattr(t, "__name__", str(t))
    if kind not in ("int", "float", "bool", "str"):
        raise SpaceError(f"sweep key '{key}': a {kind} setting cannot be swept")
    return kind


def _scalar(key: str, kind: str, text: str) -> Value:
    text = text.strip()
    if not text:
        raise SpaceError(f"sweep key '{key}': empty value")
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise SpaceError(f"sweep key '{key}': '{text}' is not a {kind}") from None
    if kind == "bool":
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise SpaceError(f"sweep key '{key}': '{text}' is not true or false")
    return text


def _clauses(text: str, flag: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for clause in (c.strip() for c in text.split(";")):
        if not clause:
            continue
        key, eq, rhs = clause.partition("=")
        if not eq or not key.strip():
            raise SpaceError(f"{flag} '{clause}': expected section.key=values")
        out.append((key.strip(), rhs))
    if not out:
        raise SpaceError(f"{flag}: no settings given")
    keys = [k for k, _ in out]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise SpaceError(f"{flag}: key '{dup[0]}' given twice")
    return out


def parse_grid(text: str) -> list[Dimension]:
    """``"strategy.long_rsi_min=70,75,80;strategy.target_r=3,5,10"`` as dimensions."""
    dims = []
    for key, rhs in _clauses(text, "--grid"):
        kind = field_kind(key)
        values = tuple(dict.fromkeys(_scalar(key, kind, v) for v in rhs.split(",")))
        dims.append(Dimension(key, kind, values))
    return dims


def parse_ranges(text: str) -> list[Dimension]:
    """``"strategy.long_rsi_min=60:85;strategy.use_trail=true,false"``: numeric ranges
    (``lo:hi``, inclusive; integers for integer settings) or lists to choose from."""
    dims = []
    for key, rhs in _clauses(text, "--space"):
        kind = field_kind(key)
        lo, colon, hi = rhs.partition(":")
        if colon and kind in ("int", "float"):
            a, b = float(_scalar(key, kind, lo)), float(_scalar(key, kind, hi))
            if not a < b:
                raise SpaceError(f"sweep key '{key}': range {rhs} is empty (low must be below high)")
            dims.append(Dimension(key, kind, (), a, b))
        else:
            dims.append(Dimension(key, kind, tuple(dict.fromkeys(_scalar(key, kind, v) for v in rhs.split(",")))))
    return dims


def grid_points(dims: Sequence[Dimension]) -> list[Point]:
    """The Cartesian product, in the order the values were given."""
    keys = [d.key for d in dims]
    return [canonical(dict(zip(keys, combo, strict=True))) for combo in itertools.product(*(d.values for d in dims))]


def random_points(dims: Sequence[Dimension], n: int, seed: int) -> list[Point]:
    """``n`` distinct points drawn uniformly (seeded); fewer when the space is smaller."""
    rng = random.Random(seed)
    out: dict[Point, None] = {}
    attempts = 0
    while len(out) < n and attempts < n * 50:
        attempts += 1
        point: dict[str, Value] = {}
        for d in dims:
            if d.is_range:
                assert d.low is not None and d.high is not None
                if d.kind == "int":
                    point[d.key] = rng.randint(int(d.low), int(d.high))
                else:
                    point[d.key] = round(rng.uniform(d.low, d.high), 6)
            else:
                point[d.key] = rng.choice(d.values)
        out[canonical(point)] = None
    return list(out)


def canonical(point: Mapping[str, Value]) -> Point:
    return tuple(sorted(point.items()))


def settings_for(base: Settings, point: Point) -> Settings:
    """The settings of one point; an invalid value or combination names the key."""
    try:
        return base.replace(dict(point))
    except SettingsError as exc:
        shown = ", ".join(f"{k}={v}" for k, v in point)
        raise SpaceError(f"{exc} (in the combination {shown})") from None


def validate(base: Settings, points: Sequence[Point]) -> list[Settings]:
    """Every point's settings, built before anything runs."""
    if not points:
        raise SpaceError("the search space is empty")
    return [settings_for(base, p) for p in points]


def point_dict(point: Point) -> dict[str, Any]:
    return dict(point)
