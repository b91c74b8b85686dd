"""Random-entry null model: would the same trades, entered at random, have done as well?

Each draw replaces every actual trade by one random trade matched on:

- **symbol and side**: the same instrument, long or short as the actual was;
- **time of day**: entered at the OPEN of the bar that starts at the same IST minute as the
  actual's entry bar, on a session of the run chosen uniformly among those where the symbol has
  that bar and could have entered on it (before the square-off point, not the session's last bar);
- **holding time**: held for the same number of the symbol's bars as the actual (exit bar index
  minus entry bar index, counted in the symbol's session), and exited at the open of that bar by a
  market order, or at the square-off point if that comes first: the open of the session's first
  bar at or after ``strategy.squareoff_time``, else the close of the symbol's last bar of the
  session. An actual that was squared off at the square-off bar's open is therefore matched by a
  random trade that also exits at a square-off bar's open;
- **size**: the same rupee notional as the actual (``qty = round(notional / entry price)``, at
  least one share);
- **costs**: both fills slipped by :func:`tfl.core.fills.adverse` (as the simulated exchange fills
  market orders) and charged by the run's :class:`tfl.costs.CostModel`.

Daily returns are each session's net P&L divided by the starting capital (not compounded): the
random trades have fixed rupee sizes that do not follow any equity curve, so P&L over a fixed
capital is the one definition both sides share. :func:`actual_daily_returns` uses it for the
actual trades; this is why its Sharpe differs slightly from the backtest summary's (compounded
equity returns). The statistic is the per-session Sharpe ratio (mean / sample standard deviation
of the daily returns, not annualised), and the p-value is ``(1 + #{null >= actual}) / (n + 1)``.
The same p-value on net P&L comes with it: when both means are negative (costs), a Sharpe ratio
improves with volatility alone, so a losing strategy that trades on wilder days than its random
twins can beat them on Sharpe without making more money.

Limits, stated so nobody reads more into the p-value than it holds:

- the random trades do not compete for capital, slots or the open-risk budget, and two of them may
  overlap on one symbol; the actual's day-level constraints (bias, loss limit) are not reproduced;
- the actual's stop, target, breakeven and trail path is not reproduced: holding time is matched
  instead (as the issue asks), so the null answers "does the timing of the entries carry an
  edge?", not "do the exits?";
- an actual stopped out inside its entry bar (0 bars; about 6% of the default strategy's trades)
  is matched by a one-bar hold. A zero-bar random trade would pay its costs with no price risk at
  all, which would make the null's days calmer than the actual's and push its Sharpe ratios
  towards the sign of their mean; one bar holds a little more risk than the actual's part of a bar;
- entries are at bar opens while the actual's stop entries fill inside the bar; slippage is the
  same fraction either way;
- nothing matches the market's mood: breakout entries come on wilder bars than random ones, so the
  actual's daily returns can vary more than the null's (on the shared data, 2020-2025, the default
  strategy's daily P&L has a standard deviation of about 3,600 rupees against the null's 2,800).
  With both means negative, that alone lifts the actual's Sharpe ratio above the null's: read the
  net-P&L p-value beside the Sharpe one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tfl.core.fills import adverse
from tfl.costs import CostModel
from tfl.data.bars import F64, I64, BarSeries
from tfl.settings import CostSettings, Settings, parse_hhmm
from tfl.strategy.book import Trade
from tfl.timeutil import BAR_SECONDS, IST_OFFSET_S, SECONDS_PER_DAY, date_to_day

log = logging.getLogger(__name__)

# Random trades priced in one block (draws x trades cells); it bounds memory, never results.
_BLOCK_CELLS = 1 << 20
# Relative agreement required between the vectorised charges and CostModel.charge_total itself.
_CHARGE_RTOL = 1e-9
# A standard deviation below this fraction of the mean is rounding noise (a Sharpe ratio of 1e9).
_FLAT_SD = 1e-9
# Turnovers re-priced by CostModel.charge_total to check the vectorised charges.
_CHARGE_SAMPLES = 64


Sessions = Sequence[int] | Sequence[dt.date] | I64  # the run's sessions: IST day numbers or dates


class NullModelError(ValueError):
    """Inputs the null model cannot use (the message names the problem)."""


@dataclass(frozen=True, eq=False)
class NullResult:
    """The actual trades' per-session Sharpe ratio against ``n_draws`` random-entry draws."""

    actual_sharpe: float
    null_sharpes: F64  # one per draw
    p_value: float  # (1 + #{null >= actual}) / (n_draws + 1)
    n_draws: int
    seed: int
    n_trades: int
    n_sessions: int
    actual_net_pnl: float
    null_net_pnls: F64  # one per draw
    net_pnl_p_value: float  # the same p-value on net P&L (blind to how volatile the days are)
    null_net_pnl_mean: float
    null_net_pnl_p05: float
    null_net_pnl_p95: float


@dataclass(frozen=True, eq=False)
class RandomTrades:
    """The random trades of every draw: 2-D arrays are (draws, actual trades)."""

    symbols: tuple[str, ...]  # per actual trade
    side: I64  # per actual trade: +1 long, -1 short
    holding: I64  # per actual trade: the bars each random trade is held (before clipping)
    notional: F64  # per actual trade: its entry price x quantity
    entry_ts: I64
    exit_ts: I64
    entry_price: F64  # the fill, slipped
    exit_price: F64  # the fill, slipped
    qty: I64
    charges: F64  # both sides
    pnl: F64  # net of charges
    session: I64  # index into the sorted sessions of the run


@dataclass(frozen=True)
class _Plan:
    """Everything the draws need, computed once: the bars of the traded symbols in the run's
    sessions (concatenated), the square-off point of each bar's session, and per actual trade its
    block of candidate entry bars, holding, notional and side."""

    ts: I64
    open: F64
    session_of_bar: I64
    stop_at: I64  # per bar: global index of its session's square-off bar (or one past its last bar)
    stop_px: F64  # per bar: the raw square-off price of its session
    stop_ts: I64
    candidates: I64  # global bar indices, grouped by (symbol, minute)
    cand_start: I64  # per trade
    cand_size: I64  # per trade
    symbols: tuple[str, ...]
    side: I64
    holding: I64
    notional: F64


def _session_days(sessions: Sessions) -> I64:
    as_days = [date_to_day(d) if isinstance(d, dt.date) else int(d) for d in sessions]
    days = np.unique(np.asarray(as_days, dtype=np.int64))
    if days.shape[0] < 2:
        raise NullModelError(f"the null model needs at least 2 sessions, got {days.shape[0]}")
    return days


def _plan(trades: Sequence[Trade], bars_by_symbol: Mapping[str, BarSeries], days: I64, settings: Settings) -> _Plan:
    if not trades:
        raise NullModelError("no trades: the null model needs at least one actual trade")
    names = sorted({t.symbol for t in trades})
    for name in names:
        if name not in bars_by_symbol:
            raise NullModelError(f"{name}: traded but has no 15-minute bars")
    sq_min = parse_hhmm(settings.strategy.squareoff_time)

    parts: list[BarSeries] = []
    sym_parts: list[I64] = []
    offsets: dict[str, int] = {}
    n = 0
    for k, name in enumerate(names):
        b = bars_by_symbol[name]
        b = b.take(np.isin(b.day, days))
        offsets[name] = n
        n += len(b)
        parts.append(b)
        sym_parts.append(np.full(len(b), k, dtype=np.int64))
    ts = np.concatenate([b.ts for b in parts])
    opens = np.concatenate([b.open for b in parts])
    closes = np.concatenate([b.close for b in parts])
    sym = np.concatenate(sym_parts)
    day = (ts + IST_OFFSET_S) // SECONDS_PER_DAY
    minute = ((ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
    if n == 0:
        raise NullModelError("the traded symbols have no bars in the run's sessions")

    # Runs: one symbol's bars of one session.
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (sym[1:] != sym[:-1]) | (day[1:] != day[:-1])
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], n)
    run_of = np.cumsum(new_run) - 1
    idx = np.arange(n, dtype=np.int64)
    first_sq = np.minimum.reduceat(np.where(minute >= sq_min, idx, n), starts)
    has_sq = first_sq < ends
    sq_safe = np.where(has_sq, first_sq, 0)
    run_stop = np.where(has_sq, first_sq, ends)
    run_px = np.where(has_sq, opens[sq_safe], closes[ends - 1])
    run_ts = np.where(has_sq, ts[sq_safe], ts[ends - 1] + BAR_SECONDS)
    stop_at = run_stop[run_of]
    last_of_run = ends[run_of] - 1

    # Candidate entry bars, grouped by (symbol, minute of day).
    eligible = np.flatnonzero((idx < stop_at) & (idx < last_of_run))
    key = sym * 1440 + minute
    order = np.argsort(key[eligible], kind="stable")
    candidates = eligible[order]
    cand_keys = key[candidates]

    m = len(trades)
    t_sym = np.empty(m, dtype=np.int64)
    entry = np.empty(m, dtype=np.int64)
    exit_ix = np.empty(m, dtype=np.int64)
    side = np.empty(m, dtype=np.int64)
    notional = np.empty(m, dtype=np.float64)
    code = {name: k for k, name in enumerate(names)}
    for i, t in enumerate(trades):
        lo = offsets[t.symbol]
        sts = parts[code[t.symbol]].ts
        e = int(np.searchsorted(sts, t.entry_ts))
        if e >= sts.shape[0] or sts[e] != t.entry_ts:
            raise NullModelError(
                f"{t.symbol}: the trade entered at epoch {t.entry_ts}, not the start of one of its bars in the sessions"
            )
        if t.qty < 1 or not t.entry_price > 0:
            raise NullModelError(f"{t.symbol}: trade at epoch {t.entry_ts} has no size (qty {t.qty})")
        t_sym[i] = code[t.symbol]
        entry[i] = lo + e
        exit_ix[i] = lo + int(np.searchsorted(sts, t.exit_ts))
        side[i] = int(t.side)
        notional[i] = t.entry_price * t.qty
    # An exit at or after the square-off point (or in a later session) counts up to that point.
    held = np.minimum(exit_ix, stop_at[entry]) - entry
    holding = np.maximum(held, 1)
    t_key = key[entry]
    cand_start = np.searchsorted(cand_keys, t_key, side="left")
    cand_size = np.searchsorted(cand_keys, t_key, side="right") - cand_start
    if (cand_size == 0).any():
        i = int(np.flatnonzero(cand_size == 0)[0])
        raise NullModelError(
            f"{trades[i].symbol}: no session of the run can enter at the minute of the trade at epoch "
            f"{trades[i].entry_ts} (it is at or after the square-off)"
        )
    session_of_bar = np.searchsorted(days, day)
    return _Plan(
        ts,
        opens,
        session_of_bar,
        stop_at,
        run_px[run_of],
        run_ts[run_of],
        candidates,
        cand_start,
        cand_size,
        tuple(trades[i].symbol for i in range(m)),
        side,
        holding,
        notional,
    )


def _charge_totals(cost: CostModel, c: CostSettings, turnover: F64, is_buy: bool) -> F64:
    """``cost.charge_total`` of every turnover, vectorised.

    The charges are linear in turnover on either side of the brokerage cap's kink, so each piece
    is drawn through values that :meth:`CostModel.charge_total` itself computes (at the kink and at
    twice it; charges of nothing are nothing). The pieces do not depend on which turnovers are
    priced together, so neither do the results. A sample of turnovers is re-priced by the model to
    check it; should the model ever stop being piecewise linear, every turnover is priced one by one.
    """
    if turnover.shape[0] == 0:
        return np.zeros(0)
    capped = c.model != "flat" and c.brokerage_pct > 0
    kink = c.brokerage_cap / (c.brokerage_pct / 100.0) if capped else 1.0
    at_kink = cost.charge_total(kink, is_buy)
    slope_beyond = (cost.charge_total(2.0 * kink, is_buy) - at_kink) / kink
    out: F64 = np.where(turnover <= kink, turnover * (at_kink / kink), at_kink + (turnover - kink) * slope_beyond)
    step = max(1, turnover.shape[0] // _CHARGE_SAMPLES)
    sample = np.arange(0, turnover.shape[0], step)
    exact = np.array([cost.charge_total(float(turnover[j]), is_buy) for j in sample])
    if np.allclose(out[sample], exact, rtol=_CHARGE_RTOL, atol=1e-9):
        return out
    log.warning(
        "charges are not piecewise linear in turnover: pricing each trade one by one",
        extra={"fields": {"component": "research", "model": c.model}},
    )
    return np.fromiter(
        (cost.charge_total(float(x), is_buy) for x in turnover), dtype=np.float64, count=turnover.shape[0]
    )


def _blocks(plan: _Plan, settings: Settings, n_draws: int, seed: int) -> Iterator[RandomTrades]:
    """The draws, a block of them at a time, from one seeded generator (same seed, same trades)."""
    rng = np.random.default_rng(seed)
    cost = CostModel(settings.costs)
    slip = settings.costs.slippage_pct / 100.0
    long = plan.side > 0
    # Fill multipliers from the one slippage rule: a long buys in and sells out.
    entry_mult = np.where(long, adverse(1.0, True, slip), adverse(1.0, False, slip))
    exit_mult = np.where(long, adverse(1.0, False, slip), adverse(1.0, True, slip))
    m = plan.side.shape[0]
    per_block = max(1, _BLOCK_CELLS // m)
    done = 0
    while done < n_draws:
        k = min(per_block, n_draws - done)
        # One double per cell (never a buffered draw), so how the draws are blocked never changes them.
        pick = np.minimum((rng.random((k, m)) * plan.cand_size).astype(np.int64), plan.cand_size - 1)
        entry = plan.candidates[plan.cand_start + pick]
        entry_px = plan.open[entry] * entry_mult
        qty = np.maximum(1, np.rint(plan.notional / entry_px)).astype(np.int64)
        target = entry + plan.holding
        stop = plan.stop_at[entry]
        clipped = target >= stop
        safe = np.where(clipped, 0, target)
        exit_raw = np.where(clipped, plan.stop_px[entry], plan.open[safe])
        exit_ts = np.where(clipped, plan.stop_ts[entry], plan.ts[safe])
        exit_px = exit_raw * exit_mult
        entry_turn = (qty * entry_px).ravel()
        exit_turn = (qty * exit_px).ravel()
        buy_in = np.broadcast_to(long, (k, m)).ravel()
        sell_in = ~buy_in
        cells = np.empty(k * m)
        cells[buy_in] = _charge_totals(cost, settings.costs, entry_turn[buy_in], True)
        cells[buy_in] += _charge_totals(cost, settings.costs, exit_turn[buy_in], False)
        cells[sell_in] = _charge_totals(cost, settings.costs, entry_turn[sell_in], False)
        cells[sell_in] += _charge_totals(cost, settings.costs, exit_turn[sell_in], True)
        charges = cells.reshape(k, m)
        pnl = plan.side * qty * (exit_px - entry_px) - charges
        yield RandomTrades(
            plan.symbols,
            plan.side,
            plan.holding,
            plan.notional,
            plan.ts[entry],
            exit_ts,
            entry_px,
            exit_px,
            qty,
            charges,
            pnl,
            plan.session_of_bar[entry],
        )
        done += k


def _check_draws(n_draws: int) -> None:
    if n_draws < 1:
        raise NullModelError(f"the number of draws must be at least 1, got {n_draws}")


def random_trades(
    trades: Sequence[Trade],
    bars_by_symbol: Mapping[str, BarSeries],
    sessions: Sessions,
    settings: Settings,
    n_draws: int,
    seed: int,
) -> RandomTrades:
    """Every random trade of ``n_draws`` draws (the ones :func:`random_entry_nulls` prices with the
    same seed)."""
    _check_draws(n_draws)
    plan = _plan(trades, bars_by_symbol, _session_days(sessions), settings)
    blocks = list(_blocks(plan, settings, n_draws, seed))
    if len(blocks) == 1:
        return blocks[0]
    first = blocks[0]
    return RandomTrades(
        first.symbols,
        first.side,
        first.holding,
        first.notional,
        *(np.concatenate([getattr(b, f) for b in blocks]) for f in _DRAW_FIELDS),
    )


_DRAW_FIELDS = ("entry_ts", "exit_ts", "entry_price", "exit_price", "qty", "charges", "pnl", "session")


def session_sharpe(daily_returns: F64) -> F64:
    """Per-session Sharpe ratio along the last axis: mean / sample standard deviation, not
    annualised, zero risk-free rate; 0 where the returns do not vary beyond rounding (no risk, no
    ratio: a constant series' computed deviation is rounding noise, not risk)."""
    mean = daily_returns.mean(axis=-1)
    sd = daily_returns.std(axis=-1, ddof=1)
    out: F64 = np.divide(mean, sd, out=np.zeros_like(mean), where=sd > _FLAT_SD * np.abs(mean))
    return out


def null_p_value(actual: float, nulls: F64) -> float:
    """``(1 + #{null >= actual}) / (n + 1)``: the chance of a null at least as good, counting
    the actual as one of the draws, so it is never 0."""
    if nulls.shape[0] == 0:
        raise NullModelError("a p-value needs at least one null draw")
    return float((1 + int(np.count_nonzero(nulls >= actual))) / (nulls.shape[0] + 1))


def actual_daily_returns(trades: Sequence[Trade], sessions: Sessions, capital: float) -> F64:
    """Each session's net P&L of ``trades`` (by entry session) divided by ``capital``: the
    definition the null draws use. Sessions without trades return 0."""
    if not capital > 0:
        raise NullModelError(f"the capital must be positive, got {capital}")
    days = _session_days(sessions)
    entry_days = np.array([(t.entry_ts + IST_OFFSET_S) // SECONDS_PER_DAY for t in trades], dtype=np.int64)
    where = np.searchsorted(days, entry_days)
    outside = (where >= days.shape[0]) | (days[np.minimum(where, days.shape[0] - 1)] != entry_days)
    if outside.any():
        t = trades[int(np.flatnonzero(outside)[0])]
        raise NullModelError(f"{t.symbol}: trade at epoch {t.entry_ts} is not in any session of the run")
    pnl = np.bincount(where, weights=np.array([t.pnl for t in trades]), minlength=days.shape[0])
    out: F64 = pnl / capital
    return out


def random_entry_nulls(
    trades: Sequence[Trade],
    bars_by_symbol: Mapping[str, BarSeries],
    sessions: Sessions,
    capital: float,
    settings: Settings,
    n_draws: int = 1000,
    seed: int = 0,
) -> NullResult:
    """The actual trades' per-session Sharpe ratio against random entries matched on symbol, side,
    time of day, holding time and notional (see the module's docstring for the matching)."""
    _check_draws(n_draws)
    actual = actual_daily_returns(trades, sessions, capital)
    days = _session_days(sessions)
    plan = _plan(trades, bars_by_symbol, days, settings)
    n_sess = days.shape[0]
    sharpes: list[F64] = []
    nets: list[F64] = []
    for block in _blocks(plan, settings, n_draws, seed):
        k = block.pnl.shape[0]
        cell = (np.arange(k, dtype=np.int64)[:, None] * n_sess + block.session).ravel()
        daily = np.bincount(cell, weights=block.pnl.ravel(), minlength=k * n_sess)
        sharpes.append(session_sharpe(daily.reshape(k, n_sess) / capital))
        nets.append(block.pnl.sum(axis=1))
    null_sharpes = np.concatenate(sharpes)
    null_net = np.concatenate(nets)
    actual_sharpe = float(session_sharpe(actual))
    actual_net = float(sum(t.pnl for t in trades))
    result = NullResult(
        actual_sharpe=actual_sharpe,
        null_sharpes=null_sharpes,
        p_value=null_p_value(actual_sharpe, null_sharpes),
        n_draws=n_draws,
        seed=seed,
        n_trades=len(trades),
        n_sessions=n_sess,
        actual_net_pnl=actual_net,
        null_net_pnls=null_net,
        net_pnl_p_value=null_p_value(actual_net, null_net),
        null_net_pnl_mean=float(null_net.mean()),
        null_net_pnl_p05=float(np.quantile(null_net, 0.05)),
        null_net_pnl_p95=float(np.quantile(null_net, 0.95)),
    )
    log.info(
        "random-entry null model",
        extra={
            "fields": {
                "component": "research",
                "trades": result.n_trades,
                "draws": n_draws,
                "seed": seed,
                "actual_sharpe": round(actual_sharpe, 6),
                "p_value": round(result.p_value, 6),
            }
        },
    )
    return result
