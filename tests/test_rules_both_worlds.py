"""Every hand-worked rule scenario, through the backtester AND the replayed live runtime.

Each test of ``test_rules`` runs again with its ``run`` replaced: every scenario it builds is
backtested (the test's own hand-worked assertions check that result) and also replayed
through the live runtime (ticks, bar building, the core, the paper broker, the SQLite
journal). The two must give the same trades, prices and rejections.

Two kinds of run stay in the backtester only, each for a stated reason: the research-only
"bar" allocation (the live trader refuses it: it needs the rest of the bar in advance), and
a frame prepared with the look-ahead leak on purpose (no live trader can see tomorrow).
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import test_rules
from tfl.backtest.signals import SymbolFrame
from tfl.backtest.simulator import SimResult, simulate
from tfl.calendar.nse import NseCalendar
from tfl.data.market import Market
from tfl.domain import Bias
from tfl.live.journal import SqliteJournal
from tfl.live.paper import PaperBroker
from tfl.live.report import rebuild
from tfl.live.runtime import Controls, run_session
from tfl.settings import Settings
from tfl.timeutil import date_to_day, iso_ist
from tfl.trade_csv import trade_rows

from builders import TEST_DAY, BuiltFrame

RULE_TESTS = [n for n, f in inspect.getmembers(test_rules, inspect.isfunction) if n.startswith("test_")]


def replay_scenario(tmp: Path, frames: Sequence[SymbolFrame], bias: Bias, settings: Settings, day: dt.date) -> tuple:  # type: ignore[type-arg]
    """The scenario's session replayed through the live runtime: (trades, rejections)."""
    tmp.mkdir(parents=True, exist_ok=True)
    market = Market(tmp, [f.symbol for f in frames])
    for f in frames:
        assert isinstance(f, BuiltFrame) and f.daily is not None
        market.intraday[f.symbol] = f.bars
        market.daily[f.symbol] = f.daily
    market.calendar_days = np.unique(np.concatenate([f.daily.day for f in frames]))  # type: ignore[union-attr]
    # A scenario whose bars stop early models a short session: the calendar says so, as NSE's does.
    last = max(int(f.bars.ts[f.day == date_to_day(day)].max()) for f in frames)
    close = iso_ist(last + 900)[11:16]
    overrides = tmp / "calendar.json"
    overrides.write_text(json.dumps({"sessions": {day.isoformat(): {"open": "09:15", "close": close}}, "closed": []}))
    session = NseCalendar(overrides).session(day)
    assert session is not None
    journal = SqliteJournal(tmp / "journal.sqlite")
    broker = PaperBroker(tmp / "broker.sqlite", slippage_pct=settings.costs.slippage_pct)
    symbols = sorted(market.intraday)
    # Some hand-built bars move 20% and more inside one bar (to reach a 10R target quickly); the
    # live bad-tick filter would drop such ticks, so the replay lets them through.
    settings = settings.replace({"live.max_tick_jump_pct": 100.0})
    res = run_session(
        session, market, symbols, journal, broker, settings, bias, "scenario", Controls(), market_sim=broker
    )
    assert res.flat
    state = rebuild(journal)
    journal.close()
    broker.close()
    return trade_rows(state.book.trades), sorted((r.ts, r.symbol, r.side, r.reason) for r in state.rejections)


@pytest.mark.parametrize("name", RULE_TESTS)
def test_rule_scenario_in_both_worlds(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    replayed: list[str] = []
    backtest_only: list[str] = []

    def both(
        frames: Sequence[SymbolFrame],
        bias: Bias = Bias.BOTH,
        settings: Settings | None = None,
        days: Sequence[dt.date] = (TEST_DAY,),
    ) -> SimResult:
        s = settings or Settings()
        by_day = {date_to_day(d): bias for d in days}
        res = simulate(list(frames), by_day, date_to_day(min(days)), date_to_day(max(days)), s)
        if s.risk.allocation != "reserve":
            backtest_only.append("the 'bar' allocation needs the rest of the bar: the live trader refuses it")
            return res
        if not all(isinstance(f, BuiltFrame) for f in frames):
            backtest_only.append("a frame prepared with the look-ahead leak, on purpose")
            return res
        assert len(days) == 1
        trades, rejections = replay_scenario(tmp_path / f"run{len(replayed)}", frames, bias, s, days[0])
        assert trades == trade_rows(res.trades), "the replayed live runtime traded differently"
        want = sorted((r.ts, r.symbol, r.side, r.reason) for r in res.rejections)
        assert rejections == want, "the replayed live runtime rejected differently"
        replayed.append(f"{len(res.trades)} trades, {len(want)} rejections")
        return res

    monkeypatch.setattr(test_rules, "run", both)
    getattr(test_rules, name)()
    if not replayed and not backtest_only:
        pytest.skip("no scenario: this test checks a formula, not a trading day")
    assert replayed, f"every run was backtest-only: {backtest_only}"
