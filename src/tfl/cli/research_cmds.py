"""`tfl research`: parameter sweeps, walk-forward, and their report."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfl.settings import Settings

log = logging.getLogger(__name__)

AddConfig = Callable[[argparse.ArgumentParser], None]
Conv = Callable[[str], Any]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _out_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path}: exists and is not a folder")
    if not path.parent.exists():
        raise ValueError(f"--out {path}: folder {path.parent} does not exist")
    return path


def _common(p: argparse.ArgumentParser, date: Conv, symbols: Conv, add_config: AddConfig) -> None:
    p.add_argument("--data", type=Path, required=True, help="data directory (15min/ and daily/ Parquet files)")
    p.add_argument("--symbols", type=symbols, default=None, help="'all' (default) or A,B,C")
    p.add_argument("--start", type=date, required=True, help="first session, YYYY-MM-DD")
    p.add_argument("--end", type=date, required=True, help="last session, YYYY-MM-DD")
    p.add_argument(
        "--grid",
        required=True,
        metavar="SPEC",
        help="the space: 'section.key=v1,v2;section.key=v1,v2' (a grid), or with --random/--search also "
        "numeric ranges 'section.key=lo:hi'",
    )
    p.add_argument(
        "--objective",
        default="sharpe",
        help="what 'best' means: sharpe (default), cagr_pct, "
        "profit_factor, sqn, sortino, calmar, net_pnl, expectancy, avg_r, win_rate_pct, ...",
    )
    p.add_argument("--costs", choices=("nse_intraday", "flat"), help="cost model (default: the settings')")
    p.add_argument("--bias", choices=("auto", "LONGS", "SHORTS", "BOTH", "NO_TRADES"))
    p.add_argument("--capital", type=float)
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="local process pool (default) or Ray")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: every core)")
    p.add_argument("--address", help="--engine ray: join this Ray cluster (e.g. ray://head:10001 or auto)")
    p.add_argument(
        "--out", type=Path, required=True, help="folder for trials.csv, returns.parquet, verdict.json, report.html"
    )
    p.add_argument("--ledger", type=Path, help="the trial ledger (default: DATA.tfl-trials.sqlite beside the data)")
    p.add_argument("--seed", type=int, default=0, help="random search, Optuna and the null models")
    p.add_argument("--null-draws", type=int, default=500, help="random-entry portfolios for the null model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config(p)


def add_parsers(sub: Any, date: Conv, symbols: Conv, add_config: AddConfig, settings: Callable[..., Settings]) -> None:
    r = sub.add_parser("research", help="parameter sweeps, walk-forward and the statistics that keep them honest")
    rsub = r.add_subparsers(dest="research_command", required=True, metavar="SUBCOMMAND")

    sw = rsub.add_parser("sweep", help="run a grid, random or Optuna search; every trial goes into the ledger")
    _common(sw, date, symbols, add_config)
    sw.add_argument("--random", type=int, metavar="N", help="N random points over the --grid ranges or lists")
    sw.add_argument("--search", choices=("grid", "optuna"), default="grid")
    sw.add_argument("--trials", type=int, default=50, help="--search optuna: how many trials")
    sw.set_defaults(func=lambda a: cmd_sweep(a, settings(a, _extra(a))))

    wf = rsub.add_parser("walkforward", help="choose on each train window, test on the next; one stitched OOS curve")
    _common(wf, date, symbols, add_config)
    wf.add_argument("--train", default="24m", help="train window: 24m, 1y, 90d (default 24m)")
    wf.add_argument("--test", default="6m", help="test window (default 6m)")
    wf.add_argument("--mode", choices=("rolling", "expanding"), default="rolling")
    wf.add_argument(
        "--choose",
        choices=("plateau", "best"),
        default="plateau",
        help="plateau (default): the objective averaged over neighbouring grid cells",
    )
    wf.set_defaults(func=lambda a: cmd_walkforward(a, settings(a, _extra(a))))

    rp = rsub.add_parser("report", help="(re)write report.html from a research output folder")
    rp.add_argument("dir", type=Path)
    rp.set_defaults(func=cmd_report)


def _extra(args: argparse.Namespace) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if args.costs:
        extra["costs.model"] = args.costs
    if args.bias:
        extra["backtest.bias"] = args.bias
    if args.capital is not None:
        extra["backtest.capital"] = args.capital
    return extra


def _spec(args: argparse.Namespace, base: Settings) -> Any:
    from tfl.research.sweep import SweepSpec

    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be at least 1")
    if args.null_draws < 1:
        raise ValueError(f"--null-draws {args.null_draws}: must be at least 1")
    if args.ledger is not None and args.ledger.exists() and not args.ledger.is_file():
        raise ValueError(f"--ledger {args.ledger}: not a file")
    return SweepSpec(
        data_dir=args.data,
        symbols=tuple(args.symbols) if args.symbols else None,
        start=args.start,
        end=args.end,
        base=base,
        objective=args.objective,
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        ledger=args.ledger,
        progress=False if args.no_progress else None,
    )


def cmd_sweep(args: argparse.Namespace, base: Settings) -> int:
    from tfl.research.analysis import analyse, verdict_dict, write_returns, write_trials, write_verdict
    from tfl.research.space import SpaceError, grid_points, parse_grid, parse_ranges, random_points
    from tfl.research.sweep import run_sweep

    out = _out_dir(args.out)
    spec = _spec(args, base)
    if args.search == "optuna":
        if args.trials < 1:
            raise SpaceError(f"--trials {args.trials}: must be at least 1")
        dims = parse_ranges(args.grid)
        points = None
    elif args.random is not None:
        if args.random < 1:
            raise SpaceError(f"--random {args.random}: must be at least 1")
        dims = parse_ranges(args.grid)
        points = random_points(dims, args.random, args.seed)
    else:
        if any(d.is_range for d in parse_ranges(args.grid)):
            raise SpaceError("--grid: a range lo:hi needs --random N or --search optuna")
        dims = parse_grid(args.grid)
        points = grid_points(dims)
    run = run_sweep(spec, dims, points, optuna_trials=args.trials, seed=args.seed)
    analysis = analyse(run, base, spec.objective, null_draws=args.null_draws, seed=args.seed)
    out.mkdir(exist_ok=True)
    keys = [d.key for d in dims]
    write_trials(out / "trials.csv", run.results, keys)
    write_returns(out / "returns.parquet", run.results)
    data = verdict_dict(
        analysis,
        run,
        {"swept": keys, "search": args.search if points is None else ("random" if args.random else "grid")},
    )
    write_verdict(out / "verdict.json", data)
    _write_report(out)
    _out(data["verdict_text"])
    _out(
        f"trials: {len(run.results)} in this sweep ({run.ran} run, {run.cached} from the ledger); "
        f"{analysis.trials_total} on this data in the ledger {run.ledger_path}"
    )
    _out(f"wrote {out}/trials.csv, returns.parquet, verdict.json, report.html")
    return 0


def cmd_walkforward(args: argparse.Namespace, base: Settings) -> int:
    from tfl.research.wf_run import run_walkforward

    out = _out_dir(args.out)
    spec = _spec(args, base)
    data = run_walkforward(
        spec,
        args.grid,
        train=args.train,
        test=args.test,
        mode=args.mode,
        choose=args.choose,
        out=out,
        null_draws=args.null_draws,
        seed=args.seed,
    )
    _write_report(out)
    _out(f"{data['verdict_text']}")
    _out(f"wrote {out}/folds.csv, oos_equity.csv, trials.csv, returns.parquet, verdict.json, report.html")
    return 0


def _write_report(out: Path) -> None:
    from tfl.report.research import render_research_report

    (out / "report.html").write_text(render_research_report(out), encoding="utf-8")


def cmd_report(args: argparse.Namespace) -> int:
    d: Path = args.dir
    if not (d / "verdict.json").is_file():
        raise ValueError(f"{d}: not a research output folder (no verdict.json)")
    _write_report(d)
    _out(f"wrote {d}/report.html")
    return 0
