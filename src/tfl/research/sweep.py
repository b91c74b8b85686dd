"""`tfl research sweep`: run a search space through the engine, resumably, into the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from tfl.data.loader import DataError
from tfl.research.engine import Engine, SweepContext, Task
from tfl.research.identity import Dataset, code_version, dataset_of, research_settings, trial_hash
from tfl.research.ledger import Ledger
from tfl.research.space import Dimension, Point, SpaceError, canonical, settings_for, validate
from tfl.research.trial import LOAD_KEYS, OBJECTIVES, TrialResult, Workbench, setup_key
from tfl.settings import Settings

log = logging.getLogger(__name__)

LEDGER_SUFFIX = ".tfl-trials.sqlite"
MIN_SESSIONS = 2  # a Sharpe ratio needs two returns


@dataclass(frozen=True)
class SweepSpec:
    """Everything a sweep needs, validated before anything runs."""

    data_dir: Path
    symbols: tuple[str, ...] | None
    start: dt.date
    end: dt.date
    base: Settings
    objective: str = "sharpe"
    engine: str = "local"
    workers: int = 1
    address: str | None = None
    ledger: Path | None = None
    progress: bool | None = None  # None: when stderr is a terminal


@dataclass
class SweepRun:
    """What a sweep produced: its trials (cached or new) and where they were recorded."""

    spec: SweepSpec
    dataset: Dataset
    ledger_path: Path
    results: list[TrialResult] = field(default_factory=list)
    ran: int = 0
    cached: int = 0
    bench: Workbench | None = None  # the parent's workbench, for the analysis


def default_ledger(data_dir: Path) -> Path:
    """Beside the data directory (not inside it: the data may be read-only)."""
    d = data_dir.resolve()
    return d.parent / f"{d.name}{LEDGER_SUFFIX}"


def check_spec(spec: SweepSpec, dims: Sequence[Dimension]) -> None:
    if spec.end < spec.start:
        raise SpaceError(f"--end {spec.end} is before --start {spec.start}")
    if spec.address and spec.engine != "ray":
        raise SpaceError("--address joins a Ray cluster: it needs --engine ray")
    if spec.objective not in OBJECTIVES:
        raise SpaceError(f"--objective '{spec.objective}': expected one of {', '.join(OBJECTIVES)}")
    for d in dims:
        if d.key in LOAD_KEYS:
            raise SpaceError(f"sweep key '{d.key}': it changes what is loaded; set it with --set for the whole sweep")


def _bar(total: int, initial: int, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc="trials",
        unit="trial",
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )


class Sweeper:
    """Runs points against one dataset and records every trial in the ledger."""

    def __init__(self, spec: SweepSpec, bench: Workbench) -> None:
        self.spec = spec
        self.bench = bench
        self.dataset = dataset_of(spec.data_dir, spec.symbols)
        self.ledger_path = spec.ledger if spec.ledger is not None else default_ledger(spec.data_dir)
        self.ledger = Ledger(self.ledger_path)
        self.code = code_version()
        self.ctx = SweepContext(spec.data_dir, spec.symbols, spec.base, self.dataset.data_hash)
        self._engine: Engine | None = None
        self.ran = 0
        self.cached = 0

    def engine(self) -> Engine:
        if self._engine is None:
            s = self.spec
            self._engine = Engine(self.ctx, engine=s.engine, workers=s.workers, address=s.address, bench=self.bench)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self.ledger.close()

    def run_points(
        self,
        points: Sequence[Point],
        start: dt.date,
        end: dt.date,
        *,
        bar: tqdm | None = None,
    ) -> list[TrialResult]:
        """Each point's trial on [start, end]: from the ledger when this code already ran it."""
        settings = validate(self.spec.base, points)
        by_hash: dict[str, TrialResult] = {}
        order: list[str] = []
        todo: list[Task] = []
        for p, s in zip(points, settings, strict=True):
            h = trial_hash(s, self.spec.symbols, start, end)
            order.append(h)
            if h in by_hash or any(t.point == p for t in todo):
                continue
            hit = self.ledger.get(self.dataset.data_hash, h, self.code)
            if hit is not None:
                # The same trial, perhaps recorded by a sweep over other keys: label it with
                # this sweep's point, so its row shows this sweep's settings.
                by_hash[h] = dataclasses.replace(hit, point=p)
                self.cached += 1
            else:
                todo.append(Task(p, s, start, end))
        # Trials that share setups run one after another, so each worker's cache serves them.
        todo.sort(key=lambda t: repr(setup_key(t.settings)))
        own_bar = bar is None
        if bar is None:
            enabled = sys.stderr.isatty() if self.spec.progress is None else self.spec.progress
            bar = _bar(len(todo) + len(by_hash), len(by_hash), enabled)
        try:
            if todo:
                for r in self.engine().run(todo):
                    s = settings_for(self.spec.base, r.point)
                    self.ledger.put(self.dataset.data_hash, self.code, json.dumps(research_settings(s)), r)
                    by_hash[r.trial_hash] = r
                    self.ran += 1
                    bar.update(1)
        finally:
            if own_bar:
                bar.close()
        return [by_hash[h] for h in dict.fromkeys(order)]


def optuna_points(
    sweeper: Sweeper,
    dims: Sequence[Dimension],
    n_trials: int,
    seed: int,
    objective: str,
    bar: tqdm | None = None,
) -> Iterator[list[TrialResult]]:
    """Optuna's TPE sampler over ``dims``, asked in batches of one per worker."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    spec = sweeper.spec
    done = 0
    while done < n_trials:
        batch = min(spec.workers, n_trials - done)
        asked = [study.ask() for _ in range(batch)]
        points = [canonical({d.key: _suggest(t, d) for d in dims}) for t in asked]
        before = sweeper.cached
        results = sweeper.run_points(points, spec.start, spec.end, bar=bar)
        if bar is not None:
            bar.update(sweeper.cached - before)  # trials the ledger already had
        by_point = {r.point: r for r in results}
        for t, p in zip(asked, points, strict=True):
            study.tell(t, max(by_point[p].objective(objective), -1e12))
        done += batch
        yield results


def _suggest(trial: object, d: Dimension) -> bool | int | float | str:
    t = trial  # optuna.Trial; kept untyped here so optuna stays an optional import
    if d.is_range:
        assert d.low is not None and d.high is not None
        if d.kind == "int":
            return int(t.suggest_int(d.key, int(d.low), int(d.high)))  # type: ignore[attr-defined]
        return float(t.suggest_float(d.key, d.low, d.high))  # type: ignore[attr-defined]
    return t.suggest_categorical(d.key, list(d.values))  # type: ignore[attr-defined,no-any-return]


def open_bench(spec: SweepSpec, start: dt.date | None = None) -> Workbench:
    """Load the market in this process and check the period has sessions, before any file
    (the ledger included) is created."""
    if not spec.data_dir.is_dir():
        raise DataError(spec.data_dir, "data directory does not exist")
    bench = Workbench(spec.data_dir, spec.symbols, spec.base)
    first = start or spec.start
    n = len(bench.sessions(first, spec.end))
    if n < MIN_SESSIONS:
        raise SpaceError(
            f"{n} trading session(s) between {first} and {spec.end}: a trial needs at least {MIN_SESSIONS}"
        )
    return bench


def run_sweep(
    spec: SweepSpec,
    dims: Sequence[Dimension],
    points: Sequence[Point] | None,
    *,
    optuna_trials: int = 0,
    seed: int = 0,
    on_sweeper: Callable[[Sweeper], None] | None = None,
) -> SweepRun:
    """Run a grid or random ``points``, or ``optuna_trials`` asked of Optuna."""
    check_spec(spec, dims)
    if points is not None:
        validate(spec.base, points)  # every combination, before anything runs
    bench = open_bench(spec)
    sweeper = Sweeper(spec, bench)
    if on_sweeper is not None:
        on_sweeper(sweeper)
    try:
        results: list[TrialResult] = []
        if points is not None:
            results = sweeper.run_points(points, spec.start, spec.end)
        else:
            enabled = sys.stderr.isatty() if spec.progress is None else spec.progress
            with _bar(optuna_trials, 0, enabled) as bar:
                for batch in optuna_points(sweeper, dims, optuna_trials, seed, spec.objective, bar):
                    results.extend(batch)
            results = list({r.trial_hash: r for r in results}.values())
    finally:
        sweeper.close()
    return SweepRun(spec, sweeper.dataset, sweeper.ledger_path, results, sweeper.ran, sweeper.cached, bench)
