"""Where trials run: in this process, on a local process pool, or as Ray tasks.

The trial function is the same in all three (:func:`run_task`). Each worker process
loads the market once and keeps a :class:`~tfl.research.trial.Workbench` for the sweep,
so indicators and setups are computed once per distinct setting and shared by every
trial that uses them. With Ray the bars go into Ray's object store once and every
worker maps them from there.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfl.data.market import Market
from tfl.research.space import Point
from tfl.research.trial import TrialResult, Workbench
from tfl.settings import Settings

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class SweepContext:
    """What every trial of a sweep shares; it identifies the worker's workbench."""

    data_dir: Path
    symbols: tuple[str, ...] | None
    base: Settings
    data_hash: str


@dataclass(frozen=True)
class Task:
    point: Point
    settings: Settings
    start: dt.date
    end: dt.date


class _Benches:
    """The workbench of each sweep this worker process has served (normally one).

    A worker lives for one sweep, so this per-process cache is the "loaded once per worker"
    the design needs; it is never shared between processes.
    """

    def __init__(self) -> None:
        self.by_key: dict[tuple[object, ...], Workbench] = {}

    def get(self, ctx: SweepContext, market: Market | None = None) -> Workbench:
        key = (str(ctx.data_dir), ctx.symbols, ctx.data_hash)
        bench = self.by_key.get(key)
        if bench is None:
            self.by_key.clear()  # one sweep at a time: free the last one's memory
            bench = Workbench(ctx.data_dir, ctx.symbols, ctx.base, market=market)
            self.by_key[key] = bench
        return bench


_BENCHES = _Benches()


def run_task(ctx: SweepContext, task: Task, market: Market | None = None) -> TrialResult:
    """The trial function: one backtest on this worker's shared workbench."""
    return _BENCHES.get(ctx, market).run(task.point, task.settings, task.start, task.end)


def _warm(ctx: SweepContext) -> None:
    _BENCHES.get(ctx)


class Engine:
    """Runs batches of tasks; results come back in completion order."""

    def __init__(
        self,
        ctx: SweepContext,
        *,
        engine: str = "local",
        workers: int = 1,
        address: str | None = None,
        market: Market | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"--engine '{engine}': expected one of {', '.join(ENGINES)}")
        if workers < 1:
            raise ValueError(f"--workers {workers}: must be at least 1")
        self.ctx = ctx
        self.kind = engine
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._ray: Any = None
        self._remote: Any = None
        self._market_ref: Any = None
        self._market = market
        if engine == "ray":
            self._start_ray(address)
        elif workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm,
                initargs=(ctx,),
            )

    def _start_ray(self, address: str | None) -> None:
        import ray

        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
        market = (
            self._market
            if self._market is not None
            else Workbench(self.ctx.data_dir, self.ctx.symbols, self.ctx.base).market
        )
        self._market_ref = ray.put(market)
        self._remote = ray.remote(run_task)
        self._ray = ray

    def run(self, tasks: Sequence[Task]) -> Iterator[TrialResult]:
        if self._ray is not None:
            yield from self._run_ray(tasks)
        elif self._pool is not None:
            yield from self._run_pool(tasks)
        else:
            for t in tasks:
                yield run_task(self.ctx, t, self._market)

    def _run_pool(self, tasks: Sequence[Task]) -> Iterator[TrialResult]:
        assert self._pool is not None
        pending: set[Future[TrialResult]] = set()
        queue = list(reversed(tasks))
        limit = self.workers * 2  # keep every worker busy without queueing the whole sweep
        while queue or pending:
            while queue and len(pending) < limit:
                pending.add(self._pool.submit(run_task, self.ctx, queue.pop()))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()

    def _run_ray(self, tasks: Sequence[Task]) -> Iterator[TrialResult]:
        ray = self._ray
        pending = [self._remote.remote(self.ctx, t, self._market_ref) for t in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
