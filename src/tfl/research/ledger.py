"""The trial ledger: every trial ever run on a dataset, in one SQLite file.

It is what makes the statistics honest. The deflated Sharpe ratio asks how many trials
were tried on this data and how their Sharpe ratios varied; a sweep that only knew its
own trials would forget yesterday's. It is also the cache that makes a sweep resumable:
a trial is stored the moment it finishes, keyed by content (data, trial, code version),
so a sweep killed half way and started again runs only what is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tfl.research.trial import CostVariant, TrialMetrics, TrialResult

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    data_hash TEXT NOT NULL,
    trial_hash TEXT NOT NULL,
    code_version TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    point TEXT NOT NULL,
    settings TEXT NOT NULL,
    start TEXT NOT NULL,
    end TEXT NOT NULL,
    metrics TEXT NOT NULL,
    costs TEXT NOT NULL,
    days BLOB NOT NULL,
    returns BLOB NOT NULL,
    raw_pnl BLOB NOT NULL,
    cost BLOB NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (data_hash, trial_hash, code_version)
);
"""


class LedgerError(ValueError):
    """The ledger file cannot be used; the message names it."""


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else x


def _unfloat(x: object) -> float:
    return math.nan if x is None else float(x)  # type: ignore[arg-type]


class Ledger:
    """One SQLite file; only the sweep's parent process writes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and not path.is_file():
            raise LedgerError(f"ledger {path}: not a file")
        if not path.parent.is_dir():
            raise LedgerError(f"ledger {path}: folder {path.parent} does not exist")
        try:
            self.db = sqlite3.connect(path, timeout=30.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                self.db.commit()
            elif row[0] != str(SCHEMA_VERSION):
                raise LedgerError(f"ledger {path}: schema {row[0]}, this code reads {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"ledger {path}: not a TFL trial ledger ({exc})") from None

    def close(self) -> None:
        self.db.close()

    def get(self, data_hash: str, trial_hash: str, code_version: str) -> TrialResult | None:
        row = self.db.execute(
            "SELECT * FROM trials WHERE data_hash=? AND trial_hash=? AND code_version=?",
            (data_hash, trial_hash, code_version),
        ).fetchone()
        return None if row is None else _decode(row)

    def put(self, data_hash: str, code_version: str, settings_json: str, r: TrialResult) -> None:
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM trials").fetchone()[0]
        self.db.execute(
            "INSERT OR REPLACE INTO trials VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                data_hash,
                r.trial_hash,
                code_version,
                r.settings_hash,
                json.dumps([[k, v] for k, v in r.point]),
                settings_json,
                r.start.isoformat(),
                r.end.isoformat(),
                json.dumps({k: _json_float(v) if isinstance(v, float) else v for k, v in asdict(r.metrics).items()}),
                json.dumps(
                    {
                        "variants": [
                            [v.multiple, v.net_pnl, _json_float(v.sharpe), v.cagr_pct] for v in r.cost_variants
                        ],
                        "breakeven_multiple": r.breakeven_multiple,
                        "breakeven_cost_per_trade": r.breakeven_cost_per_trade,
                        "turnover": r.turnover,
                    }
                ),
                r.days.astype("<i8").tobytes(),
                r.returns.astype("<f8").tobytes(),
                r.day_raw_pnl.astype("<f8").tobytes(),
                r.day_cost.astype("<f8").tobytes(),
                seq,
            ),
        )
        self.db.commit()

    def distinct_trials(self, data_hash: str) -> int:
        """Distinct trials (settings, symbols and period) ever run on this data, by any code."""
        return int(
            self.db.execute("SELECT COUNT(DISTINCT trial_hash) FROM trials WHERE data_hash=?", (data_hash,)).fetchone()[
                0
            ]
        )

    def latest(self, data_hash: str) -> Iterator[TrialResult]:
        """Each distinct trial on this data once (its most recent run)."""
        rows = self.db.execute(
            "SELECT t.* FROM trials t JOIN (SELECT trial_hash, MAX(seq) AS s FROM trials WHERE data_hash=? "
            "GROUP BY trial_hash) m ON t.trial_hash=m.trial_hash AND t.seq=m.s WHERE t.data_hash=? ORDER BY t.seq",
            (data_hash, data_hash),
        )
        for row in rows:
            yield _decode(row)


def _blob(value: object, dtype: str) -> np.ndarray[tuple[int], np.dtype[np.generic]]:
    if not isinstance(value, bytes):
        raise LedgerError(f"ledger: a stored series is {type(value).__name__}, not bytes")
    return np.frombuffer(value, dtype=dtype)


def _decode(row: Sequence[object]) -> TrialResult:
    (_, trial_hash, _, settings_hash, point, _, start, end, metrics, costs, days, rets, raw, cost, _) = row
    m = json.loads(str(metrics))
    c = json.loads(str(costs))
    fields: dict[str, Any] = {
        k: (_unfloat(v) if k not in ("trades", "long_trades", "short_trades") else int(v)) for k, v in m.items()
    }
    return TrialResult(
        trial_hash=str(trial_hash),
        settings_hash=str(settings_hash),
        point=tuple((str(k), v) for k, v in json.loads(str(point))),
        start=dt.date.fromisoformat(str(start)),
        end=dt.date.fromisoformat(str(end)),
        metrics=TrialMetrics(**fields),
        days=_blob(days, "<i8").astype(np.int64),
        returns=_blob(rets, "<f8").astype(np.float64),
        day_raw_pnl=_blob(raw, "<f8").astype(np.float64),
        day_cost=_blob(cost, "<f8").astype(np.float64),
        cost_variants=tuple(CostVariant(a, b, _unfloat(s), d) for a, b, s, d in c["variants"]),
        breakeven_multiple=float(c["breakeven_multiple"]),
        breakeven_cost_per_trade=float(c["breakeven_cost_per_trade"]),
        turnover=float(c["turnover"]),
    )
