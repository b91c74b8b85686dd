"""Shared helpers for the live-runtime tests: run a replayed session in-process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from tfl.calendar.nse import NseCalendar
from tfl.core.state import CoreState
from tfl.data.market import Market
from tfl.domain import Bias
from tfl.live.feed import ReplayFeed
from tfl.live.journal import SqliteJournal
from tfl.live.paper import PaperBroker
from tfl.live.report import rebuild
from tfl.live.runtime import Controls, FeedFactory, SessionResult, resolve_bias, run_session
from tfl.settings import Settings

CAL = NseCalendar()


def replay(
    tmp: Path,
    market: Market,
    symbols: list[str],
    day: dt.date,
    settings: Settings,
    *,
    bias: str = "auto",
    controls: Controls | None = None,
    feed_factory: FeedFactory | None = None,
    broker_hook: Callable[[PaperBroker], object] | None = None,
) -> tuple[CoreState, SessionResult]:
    session = CAL.session(day)
    assert session is not None, day
    tmp.mkdir(parents=True, exist_ok=True)
    journal = SqliteJournal(tmp / "journal.sqlite")
    broker = PaperBroker(tmp / "broker.sqlite", slippage_pct=settings.costs.slippage_pct)
    wrapped = broker_hook(broker) if broker_hook else broker
    b, why = resolve_bias(bias, market, day, settings, None)
    res = run_session(
        session,
        market,
        symbols,
        journal,
        wrapped,
        settings,
        b,
        why,  # type: ignore[arg-type]
        controls or Controls(),
        feed_factory=feed_factory,
        market_sim=wrapped,
    )  # type: ignore[arg-type]  # wrappers forward ticks to the paper broker
    state = rebuild(journal)
    journal.close()
    broker.close()
    return state, res


def bias_of(market: Market, day: dt.date, settings: Settings) -> Bias:
    return resolve_bias("auto", market, day, settings, None)[0]


def materialize(events: list, start: int, side_of=None) -> list:  # type: ignore[no-untyped-def,type-arg]
    """A replay's planned ticks as plain feed events (every bar on the long path unless
    ``side_of`` says otherwise), for scripted feeds that rearrange them."""
    kw = {"side_of": side_of} if side_of is not None else {}
    feed = ReplayFeed(events, start_ts=start, **kw)
    return list(feed)
