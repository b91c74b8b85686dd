"""The pre-market bias job (08:45 IST): daily bars from S3 -> the bias record in SSM -> SNS.

The bias comes from :func:`tfl.regime.compute_bias`, the function the backtester uses, on
the same closes (``tfl data sync`` writes them after each close). The universe is the list
``tfl deploy --universe`` uploads (``config/universe.csv``); without it, every daily file
counts (and the message says so). Data that is missing, stale, unreadable or invalid, a
NO_TRADES that compute_bias gave because an input was absent, or any other error publishes
NO_TRADES with the reason and sends an ERROR alert: not trading is the safe failure. A
NO_TRADES because no condition was met is a normal day. On a day without a session nothing
is written.

The parameter holds one record, today's: a rerun of another day (``{"date": "YYYY-MM-DD"}``)
computes and publishes its record but writes SSM only when the event says ``"write": true``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.calendar_table import CalendarTableError, CalendarTableExpired, load_table, next_year_missing
from tfl.aws.clients import aws_code, client
from tfl.aws.daily_bars import (
    DAILY_PREFIX,
    UNIVERSE_KEY,
    DailyBar,
    DailyBarsError,
    daily_closes,
    daily_key,
    list_daily,
    read_daily,
    read_universe,
)
from tfl.aws.lambdas.common import (
    ConfigError,
    LambdaConfig,
    alert,
    decide,
    entry,
    event_date,
    ist_today,
    publish,
)
from tfl.aws.lambdas.status import morning_link
from tfl.aws.notify import SnsNotifier
from tfl.aws.ssm_bias import write_bias
from tfl.domain import Bias
from tfl.regime import BiasRecord, DailyCloses, compute_bias
from tfl.settings import AwsSettings, BiasSettings

log = logging.getLogger("tfl.aws.lambdas.bias")

MIN_FRESH_FRACTION = 0.9  # of the universe's members must have bars up to the previous session
MAX_NAMED = 10  # symbols named in a reason: the record must stay within SSM's 4 KB
_EPOCH = dt.date(1970, 1, 1)


class DataProblemError(RuntimeError):
    """The inputs cannot give a trustworthy bias; the message is the NO_TRADES reason."""


@dataclass
class Inputs:
    universe: dict[str, DailyCloses]
    benchmark: DailyCloses
    vix: DailyCloses
    source: str  # where the member list came from
    members: int = 0
    fresh: int = 0
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """Where the day's record goes: the SSM parameter (only if ``write``) and the topic."""

    ssm: Any
    name: str
    write: bool
    notifier: SnsNotifier | None
    params: BiasSettings


def _last_day(closes: DailyCloses) -> dt.date | None:
    return _EPOCH + dt.timedelta(days=closes.days[-1]) if closes.days else None


def _names(symbols: list[str]) -> str:
    shown = ", ".join(symbols[:MAX_NAMED])
    return shown + (f" (+{len(symbols) - MAX_NAMED} more)" if len(symbols) > MAX_NAMED else "")


def _fresh_input(
    results: dict[str, list[DailyBar] | DailyBarsError], symbol: str, what: str, where: str, prev: dt.date
) -> DailyCloses:
    """The closes of the benchmark or VIX; they must reach the previous session (a later end is
    fine: the rules read nothing after it)."""
    got = results.get(symbol)
    if got is None:
        raise DataProblemError(f"no daily file for the {what} {symbol} ({where}{daily_key(symbol)})")
    if isinstance(got, DailyBarsError):
        raise DataProblemError(f"the {what} {symbol}: {got}")
    closes = daily_closes(got)  # judged on the closes the rules read, after bad rows are dropped
    last = _last_day(closes)
    if last is None or last < prev:
        ends = f"ends on {last}" if last else "has no positive close"
        dropped = ""
        if got and got[-1].date != last:
            dropped = f" (its rows after that, to {got[-1].date}, have no positive close)"
        raise DataProblemError(
            f"the {what} {symbol} {ends}, before the previous session {prev}{dropped}: "
            "stale data (did `tfl data sync` run?)"
        )
    return closes


def universe_members(s3: Any, bucket: str, cfg: LambdaConfig, keys: dict[str, str]) -> tuple[list[str], str]:
    """The stocks the breadth counts, and where that list came from.

    The deployed universe list when there is one (a symbol dropped from it no longer counts
    as stale; a member without a file is noticed); otherwise every daily file, with a warning.
    """
    params = cfg.settings.bias
    not_stocks = {*cfg.settings.backtest.index_symbols, params.benchmark_symbol, params.vix_symbol}
    where = f"s3://{bucket}/"
    try:
        listed = read_universe(s3, bucket)
    except DailyBarsError as exc:
        raise DataProblemError(f"the universe list {exc}") from None
    if listed is None:
        source = f"every file under {where}{DAILY_PREFIX} (no {where}{UNIVERSE_KEY}: deploy with --universe)"
        decide(log, "no universe list: every daily file counts", logging.WARNING, universe=source)
        return sorted(s for s in keys if s not in not_stocks), source
    members = sorted(s for s in listed if s not in not_stocks)
    ignored = set(keys) - not_stocks - set(members)  # dropped from the universe: not stale, just not counted
    decide(log, "universe list read", members=len(members), ignored_files=len(ignored))
    return members, f"{where}{UNIVERSE_KEY}"


def load_inputs(s3: Any, bucket: str, cfg: LambdaConfig, prev: dt.date) -> Inputs:
    """The closes the bias needs, checked for freshness against the previous session."""
    params = cfg.settings.bias
    where = f"s3://{bucket}/"
    keys = list_daily(s3, bucket)
    members, source = universe_members(s3, bucket, cfg, keys)
    if not members:
        raise DataProblemError(f"no universe members ({source})")
    wanted = dict.fromkeys([params.benchmark_symbol, params.vix_symbol, *members])
    results = read_daily(s3, bucket, {s: keys[s] for s in wanted if s in keys})
    benchmark = _fresh_input(results, params.benchmark_symbol, "benchmark", where, prev)
    vix = _fresh_input(results, params.vix_symbol, "volatility index", where, prev)
    inputs = Inputs({}, benchmark, vix, source, members=len(members))
    for sym in members:
        got = results.get(sym)
        if got is None:
            inputs.missing.append(sym)
            continue
        if isinstance(got, DailyBarsError):
            inputs.problems.append(str(got))
            continue
        closes = daily_closes(got)
        inputs.universe[sym] = closes
        last = _last_day(closes)
        if last is not None and last >= prev:
            inputs.fresh += 1
        else:
            inputs.stale.append(sym)
    if inputs.fresh < MIN_FRESH_FRACTION * len(members):
        parts = [
            f"only {inputs.fresh} of {len(members)} universe members have daily bars up to the previous "
            f"session {prev} (at least {MIN_FRESH_FRACTION:.0%} must)"
        ]
        if inputs.missing:
            parts.append(f"no file for {_names(inputs.missing)}")
        if inputs.stale:
            parts.append(f"stale: {_names(inputs.stale)}")
        if inputs.problems:
            parts.append(f"{len(inputs.problems)} unreadable")
        raise DataProblemError("; ".join(parts) + ": stale data (did `tfl data sync` run?)")
    return inputs


def input_problem(record: BiasRecord) -> bool:
    """Whether a NO_TRADES record comes from an absent or invalid input rather than from the rules.

    compute_bias answers NO_TRADES both on a quiet day ("no condition met", every input there)
    and when an input is missing on the previous session or invalid (no VIX bar, a non-positive
    VIX, a benchmark without enough history, no stock counted). Only the first is a normal day;
    the record's own inputs tell them apart, so no reason text is parsed.
    """
    if record.bias != Bias.NO_TRADES.value:
        return False
    vix = record.vix
    return (
        record.previous_session is None
        or record.breadth_count == 0
        or record.index_close is None
        or record.index_sma_long is None
        or record.index_sma_short is None
        or vix is None
        or not math.isfinite(vix)
        or vix <= 0
    )


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
    if inputs is not None:
        lines.append(f"universe: {inputs.members} members from {inputs.source}; {inputs.fresh} up to date")
        if inputs.missing:
            lines.append(f"universe members without a daily file (not counted): {', '.join(inputs.missing)}")
        if inputs.stale:
            lines.append(f"stale universe files (not counted): {', '.join(inputs.stale)}")
        if inputs.problems:
            lines.append("unreadable universe files (not counted):")
            lines += [f"  {msg}" for msg in inputs.problems]
    lines += ["", f"record: {record.to_json()}"]
    return "\n".join(lines)


def wants_write(event: dict[str, Any], day: dt.date, now: dt.datetime | None = None) -> bool:
    """Today's record goes to SSM; another day's only on request (the parameter holds one
    record, and a rerun must never replace the morning's)."""
    raw = event.get("write", False)
    if not isinstance(raw, bool):
        raise ValueError(f"event write {str(raw)[:20]!r} is not true or false")
    return raw or day == ist_today(now)


def _write(out: Target, record: BiasRecord, provisional: bool = False) -> tuple[bool, str]:
    """(written, the AWS error code when the write failed)."""
    if not out.write or not out.name or out.ssm is None:
        return False, ""
    try:
        write_bias(out.ssm, out.name, record, provisional=provisional)
    except (ClientError, BotoCoreError) as exc:
        return False, aws_code(exc)
    return True, ""


def _no_trades(
    out: Target,
    day: dt.date,
    reason: str,
    level: str = "ERROR",
    *,
    record: BiasRecord | None = None,
    details: str = "",
    retry: bool = False,
) -> dict[str, Any]:
    """Publish NO_TRADES for ``day`` (SSM if it works and may be written) and alert with the reason.

    ``retry``: the failure may pass (AWS did not answer). The record is provisional, so the
    trader keeps waiting, and the handler fails so that Lambda runs the job again.
    """
    record = record or BiasRecord.no_trades(day, reason, out.params)
    written, write_error = _write(out, record, provisional=retry)
    decide(
        log,
        "bias failed: NO_TRADES",
        logging.ERROR,
        session=day.isoformat(),
        reason=reason,
        parameter=out.name,
        written=written,
        write_error=write_error,
        rerun=not out.write,
    )
    if not out.write:
        tail = " (a rerun: SSM not written)"
    elif not written:
        why = f" ({write_error})" if write_error else ""
        tail = f" (and the NO_TRADES record could not be written to SSM {out.name or '(unset)'}{why})"
    else:
        tail = ""
    if retry:
        tail += " (provisional: the job is retried; the trader waits until its deadline)"
    text = f"TFL bias for {day}: NO_TRADES: {reason}{tail}"
    alert(out.notifier, level, f"{text}\n\n{details}" if details else text)
    return {
        "status": "error",
        "session": day.isoformat(),
        "bias": record.bias,
        "reason": reason,
        "record": json.loads(record.to_json()),
        "written": written,
        "retry": retry,
    }


def run(event: dict[str, Any], cfg: LambdaConfig, now: dt.datetime | None = None) -> dict[str, Any]:
    notifier = cfg.notifier()
    try:
        day = event_date(event, now)
        write = wants_write(event, day, now)
    except ValueError as exc:
        decide(log, "bias not run: bad event", logging.ERROR, reason=str(exc))
        alert(notifier, "ERROR", f"TFL bias job: {exc}")
        return {"status": "error", "reason": str(exc)}
    name = cfg.settings.aws.bias_parameter
    out = Target(cfg.client("ssm"), name, write, notifier, cfg.settings.bias)
    try:
        table = load_table()
        session = table.session(day)
    except CalendarTableError as exc:
        level = "CRITICAL" if isinstance(exc, CalendarTableExpired) else "ERROR"
        return _no_trades(out, day, str(exc), level)
    if session is None:
        decide(log, "no NSE session today: bias skipped", session=day.isoformat())
        return {"status": "skipped", "session": day.isoformat(), "reason": "no NSE session"}
    inputs: Inputs | None = None
    try:
        cfg.require(name, "TFL_AWS__BIAS_PARAMETER")
        bucket = cfg.require(cfg.settings.aws.data_bucket, "TFL_AWS__DATA_BUCKET")
        prev = table.previous_session(day)
        inputs = load_inputs(cfg.client("s3"), bucket, cfg, prev)
        record = compute_bias(day, prev, inputs.universe, inputs.benchmark, inputs.vix, cfg.settings.bias)
    except (DataProblemError, ConfigError, CalendarTableError) as exc:
        return _no_trades(out, day, str(exc))
    except (ClientError, BotoCoreError) as exc:
        return _no_trades(out, day, f"reading the daily bars failed ({aws_code(exc)})", retry=True)
    except Exception as exc:  # any other failure must still end in NO_TRADES and an alert
        log.exception("bias job failed unexpectedly", extra={"fields": {"session": day.isoformat()}})
        return _no_trades(out, day, f"unexpected error ({type(exc).__name__})")  # its text could carry data
    if input_problem(record):
        return _no_trades(out, day, record.reason, record=record, details=bias_message(record, cfg, inputs))
    written, write_error = _write(out, record)
    if write and not written:
        reason = f"could not write the bias record to SSM {name} ({write_error})"
        decide(log, "bias not published", logging.ERROR, session=day.isoformat(), reason=reason)
        alert(notifier, "ERROR", f"TFL bias for {day}: {reason}: the trader will not trade today")
        return {"status": "error", "session": day.isoformat(), "bias": record.bias, "reason": reason, "written": False}
    rerun = "" if write else " (rerun: not written to SSM)"
    text = bias_message(record, cfg, inputs)
    link = morning_link(cfg, os.environ, int((now or dt.datetime.now(dt.UTC)).timestamp()))
    if link:
        text += f"\n\nstatus page (this link works once, until 17:00 IST): {link}"
    next_year = next_year_missing(table.last_year, day)  # the morning e-mail carries the warning
    published = publish(
        notifier, f"TFL bias for {day}: {record.bias}{rerun}", f"{next_year}\n\n{text}" if next_year else text
    )
    decide(
        log,
        "bias published" if write else "bias computed for a rerun: SSM not written",
        session=day.isoformat(),
        bias=record.bias,
        reason=record.reason,
        previous_session=record.previous_session,
        breadth_count=record.breadth_count,
        universe=inputs.source,
        missing=len(inputs.missing),
        stale=len(inputs.stale),
        problems=len(inputs.problems),
        written=written,
        notified=published,
    )
    return {
        "status": "ok",
        "session": day.isoformat(),
        "bias": record.bias,
        "record": json.loads(record.to_json()),
        "written": written,
        "published": published,
        "universe": inputs.source,
        "missing": list(inputs.missing),
        "stale": list(inputs.stale),
        "problems": list(inputs.problems),
    }


def _after_bug(ev: dict[str, Any], cfg: LambdaConfig, reason: str) -> dict[str, Any]:
    """A bug must still end in NO_TRADES (``unexpected`` has alerted already)."""
    day = event_date(ev)
    out = Target(cfg.client("ssm"), cfg.settings.aws.bias_parameter, wants_write(ev, day), None, cfg.settings.bias)
    return _no_trades(out, day, reason)


def _after_config_error(ev: dict[str, Any], reason: str) -> dict[str, Any]:
    """Invalid settings: today's NO_TRADES and an alert, with the names read from the raw
    environment (the settings that would normally give them cannot be loaded)."""
    env = os.environ
    today = ist_today()
    try:
        asked = event_date(ev)
    except ValueError:
        asked = None
    region = env.get("TFL_AWS__REGION", "").strip() or AwsSettings().region
    topic = env.get("TFL_AWS__TOPIC_ARN", "").strip()
    notifier = SnsNotifier(client("sns", region), topic) if topic else None
    write = asked == today or ev.get("write") is True
    out = Target(client("ssm", region), env.get("TFL_AWS__BIAS_PARAMETER", "").strip(), write, notifier, BiasSettings())
    return _no_trades(out, today, f"the bias job cannot run: {reason}")


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler, 08:45 IST; ``{"date": "YYYY-MM-DD"}`` reruns a day
    without writing SSM, add ``"write": true`` to replace the parameter's record)."""
    out = entry("bias", log, run, event, on_config_error=_after_config_error, on_bug=_after_bug)
    if out.get("retry"):
        # After the provisional NO_TRADES and the alert: a failed asynchronous run is retried by
        # Lambda (twice, within minutes), then lands in the dead-letter queue.
        raise BiasRetryError(str(out.get("reason", "")))
    return out


class BiasRetryError(RuntimeError):
    """The job failed in a way a retry may cure; raised so that Lambda runs it again."""
