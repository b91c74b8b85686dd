"""The pre-market bias job (08:45 IST): daily bars from S3 -> the bias record in SSM -> SNS.

The bias comes from :func:`tfl.regime.compute_bias`, the function the backtester uses, on
the same closes (``tfl data sync`` writes them after each close). Data that is missing,
stale or unreadable, or any other error, publishes NO_TRADES with the reason and sends an
ERROR alert: not trading is the safe failure. On a day without a session nothing is written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.calendar_table import CalendarTableError, CalendarTableExpired, load_table
from tfl.aws.daily_bars import DAILY_PREFIX, DailyBar, DailyBarsError, daily_closes, daily_key, list_daily, read_daily
from tfl.aws.lambdas.common import (
    ConfigError,
    LambdaConfig,
    alert,
    decide,
    entry,
    event_date,
    publish,
)
from tfl.aws.notify import SnsNotifier
from tfl.aws.ssm_bias import write_bias
from tfl.regime import BiasRecord, DailyCloses, compute_bias

log = logging.getLogger("tfl.aws.lambdas.bias")

MIN_FRESH_FRACTION = 0.9  # of the universe's files must end on the previous session


class DataProblemError(RuntimeError):
    """The inputs cannot give a trustworthy bias; the message is the NO_TRADES reason."""


@dataclass
class Inputs:
    universe: dict[str, DailyCloses]
    benchmark: DailyCloses
    vix: DailyCloses
    fresh: int
    stale: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _last(bars: list[DailyBar]) -> dt.date | None:
    return bars[-1].date if bars else None


def _fresh_input(
    results: dict[str, list[DailyBar] | DailyBarsError], symbol: str, what: str, where: str, prev: dt.date
) -> DailyCloses:
    got = results.get(symbol)
    if got is None:
        raise DataProblemError(f"no daily file for the {what} {symbol} ({where}{daily_key(symbol)})")
    if isinstance(got, DailyBarsError):
        raise DataProblemError(f"the {what} {symbol}: {got}")
    last = _last(got)
    if last != prev:
        ends = f"ends on {last}" if last else "is empty"
        raise DataProblemError(
            f"the {what} {symbol} {ends}, not on the previous session {prev}: stale data (did `tfl data sync` run?)"
        )
    return daily_closes(got)


def load_inputs(s3: Any, bucket: str, cfg: LambdaConfig, prev: dt.date) -> Inputs:
    """The closes the bias needs, checked for freshness against the previous session."""
    params = cfg.settings.bias
    where = f"s3://{bucket}/"
    keys = list_daily(s3, bucket)
    results = read_daily(s3, bucket, keys)
    benchmark = _fresh_input(results, params.benchmark_symbol, "benchmark", where, prev)
    vix = _fresh_input(results, params.vix_symbol, "volatility index", where, prev)
    not_stocks = {*cfg.settings.backtest.index_symbols, params.benchmark_symbol, params.vix_symbol}
    members = sorted(s for s in results if s not in not_stocks)
    if not members:
        raise DataProblemError(f"no universe files under {where}{DAILY_PREFIX}")
    inputs = Inputs({}, benchmark, vix, 0)
    for sym in members:
        got = results[sym]
        if isinstance(got, DailyBarsError):
            inputs.problems.append(str(got))
            continue
        inputs.universe[sym] = daily_closes(got)
        if _last(got) == prev:
            inputs.fresh += 1
        else:
            inputs.stale.append(sym)
    if inputs.fresh < MIN_FRESH_FRACTION * len(members):
        raise DataProblemError(
            f"only {inputs.fresh} of {len(members)} universe files end on the previous session {prev} "
            f"(at least {MIN_FRESH_FRACTION:.0%} must): stale data (did `tfl data sync` run?)"
        )
    return inputs


def _fmt(x: float | None, nd: int = 2) -> str:
    return "n/a" if x is None else f"{x:,.{nd}f}"


def bias_message(record: BiasRecord, cfg: LambdaConfig, inputs: Inputs | None) -> str:
    p = cfg.settings.bias
    lines = [
        f"TFL bias for {record.session}: {record.bias}",
        f"reason: {record.reason}",
        f"previous session: {record.previous_session or 'n/a'}",
        f"breadth: {_fmt(record.breadth_above, 1)}% above / {_fmt(record.breadth_below, 1)}% below their "
        f"{p.breadth_sma}-day SMA ({record.breadth_count} stocks; threshold {p.breadth_threshold_pct:g}%)",
        f"{record.index_symbol}: close {_fmt(record.index_close)}, SMA{p.long_index_sma} "
        f"{_fmt(record.index_sma_long)}, SMA{p.short_index_sma} {_fmt(record.index_sma_short)}",
        f"{record.vix_symbol}: {_fmt(record.vix)} (threshold {p.vix_threshold:g})",
    ]
    if inputs is not None and inputs.stale:
        lines.append(f"stale universe files (not counted): {', '.join(inputs.stale)}")
    if inputs is not None and inputs.problems:
        lines.append("unreadable universe files (not counted):")
        lines += [f"  {msg}" for msg in inputs.problems]
    lines += ["", f"record: {record.to_json()}"]
    return "\n".join(lines)


def _no_trades(
    ssm: Any, cfg: LambdaConfig, notifier: SnsNotifier | None, day: dt.date, reason: str, level: str = "ERROR"
) -> dict[str, Any]:
    """Publish NO_TRADES for ``day`` (if SSM works) and alert with the reason."""
    name = cfg.settings.aws.bias_parameter
    record = BiasRecord.no_trades(day, reason, cfg.settings.bias)
    written = False
    write_error = ""
    if name and ssm is not None:
        try:
            write_bias(ssm, name, record)
            written = True
        except (ClientError, BotoCoreError) as exc:
            write_error = _aws_code(exc)
    decide(
        log,
        "bias failed: NO_TRADES",
        logging.ERROR,
        session=day.isoformat(),
        reason=reason,
        parameter=name,
        written=written,
        write_error=write_error,
    )
    tail = "" if written else f" (and the NO_TRADES record could not be written to SSM {name or '(unset)'})"
    alert(notifier, level, f"TFL bias for {day}: NO_TRADES: {reason}{tail}")
    return {
        "status": "error",
        "session": day.isoformat(),
        "bias": record.bias,
        "reason": reason,
        "written": written,
    }


def _aws_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def run(event: dict[str, Any], cfg: LambdaConfig, now: dt.datetime | None = None) -> dict[str, Any]:
    notifier = cfg.notifier()
    try:
        day = event_date(event, now)
    except ValueError as exc:
        decide(log, "bias not run: bad event", logging.ERROR, reason=str(exc))
        alert(notifier, "ERROR", f"TFL bias job: {exc}")
        return {"status": "error", "reason": str(exc)}
    ssm = cfg.client("ssm")
    try:
        table = load_table()
        session = table.session(day)
    except CalendarTableError as exc:
        level = "CRITICAL" if isinstance(exc, CalendarTableExpired) else "ERROR"
        return _no_trades(ssm, cfg, notifier, day, str(exc), level)
    if session is None:
        decide(log, "no NSE session today: bias skipped", session=day.isoformat())
        return {"status": "skipped", "session": day.isoformat(), "reason": "no NSE session"}
    name = cfg.settings.aws.bias_parameter
    inputs: Inputs | None = None
    try:
        cfg.require(name, "TFL_AWS__BIAS_PARAMETER")
        bucket = cfg.require(cfg.settings.aws.data_bucket, "TFL_AWS__DATA_BUCKET")
        prev = table.previous_session(day)
        inputs = load_inputs(cfg.client("s3"), bucket, cfg, prev)
        record = compute_bias(day, prev, inputs.universe, inputs.benchmark, inputs.vix, cfg.settings.bias)
    except (DataProblemError, ConfigError, CalendarTableError) as exc:
        return _no_trades(ssm, cfg, notifier, day, str(exc))
    except (ClientError, BotoCoreError) as exc:
        return _no_trades(ssm, cfg, notifier, day, f"reading the daily bars failed ({_aws_code(exc)})")
    except Exception as exc:  # any other failure must still end in NO_TRADES and an alert
        log.exception("bias job failed unexpectedly", extra={"fields": {"session": day.isoformat()}})
        return _no_trades(ssm, cfg, notifier, day, f"unexpected error ({type(exc).__name__}: {str(exc)[:200]})")
    try:
        write_bias(ssm, name, record)
    except (ClientError, BotoCoreError) as exc:
        reason = f"could not write the bias record to SSM {name} ({_aws_code(exc)})"
        decide(log, "bias not published", logging.ERROR, session=day.isoformat(), reason=reason)
        alert(notifier, "ERROR", f"TFL bias for {day}: {reason}: the trader will not trade today")
        return {"status": "error", "session": day.isoformat(), "bias": record.bias, "reason": reason, "written": False}
    published = publish(notifier, f"TFL bias for {day}: {record.bias}", bias_message(record, cfg, inputs))
    decide(
        log,
        "bias published",
        session=day.isoformat(),
        bias=record.bias,
        reason=record.reason,
        previous_session=record.previous_session,
        breadth_count=record.breadth_count,
        stale=len(inputs.stale),
        problems=len(inputs.problems),
        notified=published,
    )
    return {
        "status": "ok",
        "session": day.isoformat(),
        "bias": record.bias,
        "record": json.loads(record.to_json()),
        "written": True,
        "published": published,
        "stale": list(inputs.stale),
        "problems": list(inputs.problems),
    }


def _after_bug(ev: dict[str, Any], cfg: LambdaConfig, reason: str) -> dict[str, Any]:
    """A bug must still end in NO_TRADES and an alert."""
    try:
        return _no_trades(cfg.client("ssm"), cfg, None, event_date(ev), reason)
    except Exception:
        return {"status": "error", "reason": reason, "written": False}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler, 08:45 IST; ``{"date": "YYYY-MM-DD"}`` to rerun a day)."""
    return entry("bias", log, run, event, on_bug=_after_bug)
