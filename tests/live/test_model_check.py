"""Live against the model: a replayed session compared with the backtest of the same day.

The replay world runs the live runtime on the stored bars, so its trades are the model's
exactly: nothing missing, nothing extra, no slippage beyond the model. Differences are
then injected, through the paper broker (a rejected order) or into a copy of the journal's
events (a fill 0.2% worse, an exit a bar late), and the comparison must report each one
exactly, with the expected values computed here independently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from tfl.core.events import Allocated, Filled, LevelsSet, OrderPlaced, SignalRejected
from tfl.core.orders import Leg
from tfl.costs import CostModel
from tfl.data.market import Market, load_market
from tfl.domain import RejectReason
from tfl.live.journal import SqliteJournal, read_events
from tfl.live.model_check import (
    DayComparison,
    ModelCheckError,
    Stored,
    compare_day,
    comparison_lines,
    index_journal,
    why_extra,
)
from tfl.live.paper import PaperBroker
from tfl.settings import Settings
from tfl.timeutil import BAR_SECONDS

from live_helpers import replay

SYMBOLS = [
    "ADANIENT",
    "ADANIPORTS",
    "ASHOKLEY",
    "BAJFINANCE",
    "BANKBARODA",
    "BEL",
    "BHEL",
    "CANBK",
    "GAIL",
    "HINDALCO",
    "ICICIBANK",
    "IRCTC",
    "ITC",
    "JSWSTEEL",
    "LT",
    "NMDC",
    "PNB",
    "RECLTD",
    "SAIL",
    "SBIN",
    "TATASTEEL",
    "TRENT",
    "VEDL",
]
S = Settings()
DAY = dt.date(2021, 1, 8)  # LONGS: ASHOKLEY and VEDL trail out, LT is stopped at 14:15


@pytest.fixture(scope="module")
def market(nse_dir: Path) -> Market:
    return load_market(nse_dir, S, SYMBOLS)


def journal_events(tmp: Path) -> list[Stored]:
    journal = SqliteJournal(tmp / "journal.sqlite")
    events = list(read_events(journal))
    journal.close()
    return events


@pytest.fixture(scope="module")
def clean_day(market: Market, tmp_path_factory: pytest.TempPathFactory) -> list[Stored]:
    tmp = tmp_path_factory.mktemp("clean")
    replay(tmp, market, SYMBOLS, DAY, S)
    return journal_events(tmp)


def _assert_worlds_match(events: list[Stored], market: Market, day: dt.date) -> DayComparison:
    c = compare_day(events, market, day, symbols=SYMBOLS)
    assert c.missing == () and c.extra == (), comparison_lines(c)
    assert c.live_trades == c.model_trades == len(c.matched)
    assert c.exits_differing == 0
    for f in c.fills:
        assert f.live_price == f.model_price
        assert f.excess_bps == 0.0 and f.excess_rupees == 0.0
    for f in c.slipping_fills:  # what the replay paid is exactly the assumption
        assert f.real_bps == pytest.approx(S.costs.slippage_pct * 100, abs=1e-6)
    assert len(c.fills) == 2 * len(c.matched)
    assert c.live_pnl == c.model_pnl and c.live_charges == c.model_charges
    return c


def test_replayed_sessions_match_the_model(market: Market, tmp_path: Path) -> None:
    """Two consecutive sessions in one journal (the second opens with the first's cash), a busy
    day with rejections, a day of shorts, and a session whose bias was forced to NO_TRADES
    (the data says LONGS: the model must trade the session's bias, not recompute it)."""
    total = 0
    for day in (dt.date(2020, 12, 7), dt.date(2020, 12, 8)):
        replay(tmp_path / "two", market, SYMBOLS, day, S)
    events = journal_events(tmp_path / "two")
    opened = [ev for _, ev in events if type(ev).__name__ == "SessionOpened"]
    assert opened[1].cash != opened[0].cash  # the second day really starts from other cash
    for day in (dt.date(2020, 12, 7), dt.date(2020, 12, 8)):
        total += len(_assert_worlds_match(events, market, day).matched)
    replay(tmp_path / "busy", market, SYMBOLS, dt.date(2022, 8, 8), S)
    total += len(_assert_worlds_match(journal_events(tmp_path / "busy"), market, dt.date(2022, 8, 8)).matched)
    replay(tmp_path / "short", market, SYMBOLS, dt.date(2022, 5, 16), S)
    shorts = _assert_worlds_match(journal_events(tmp_path / "short"), market, dt.date(2022, 5, 16))
    assert shorts.bias == "SHORTS" and {m.live.side.label for m in shorts.matched} == {"SHORT"}
    total += len(shorts.matched)
    assert total >= 30  # real trades were compared
    replay(tmp_path / "forced", market, SYMBOLS, DAY, S, bias="NO_TRADES")
    forced = compare_day(journal_events(tmp_path / "forced"), market, DAY, symbols=SYMBOLS)
    assert forced.bias == "NO_TRADES" and forced.model_trades == forced.live_trades == 0


def test_a_broker_rejection_is_a_missing_trade_with_its_reason(market: Market, tmp_path: Path) -> None:
    def hook(b: PaperBroker) -> PaperBroker:
        b.rejections.add("VEDL")  # the paper broker refuses every VEDL order
        return b

    replay(tmp_path, market, SYMBOLS, DAY, S, broker_hook=hook)
    c = compare_day(journal_events(tmp_path), market, DAY, symbols=SYMBOLS)
    assert [(u.trade.symbol, u.trade.side.label) for u in c.missing] == [("VEDL", "LONG")]
    assert "the broker rejected the entry order" in c.missing[0].why
    assert c.extra == () and len(c.matched) == 2
    assert any(line.startswith("  - missing VEDL LONG") for line in comparison_lines(c))


def _entry_fill(events: list[Stored], symbol: str) -> int:
    placed = {ev.cid for _, ev in events if isinstance(ev, OrderPlaced) and ev.leg is Leg.ENTRY and ev.symbol == symbol}
    return next(i for i, (_, ev) in enumerate(events) if isinstance(ev, Filled) and ev.cid in placed)


def test_a_fill_two_tenths_of_a_percent_worse(market: Market, clean_day: list[Stored]) -> None:
    events = list(clean_day)
    i = _entry_fill(events, "ASHOKLEY")
    rec, fill = events[i]
    assert isinstance(fill, Filled)
    worse = fill.price * 1.002  # a buy: 0.2% above the fill the model made
    events[i] = (rec, dataclasses.replace(fill, price=worse))
    c = compare_day(events, market, DAY, symbols=SYMBOLS)
    assert c.missing == () and c.extra == ()
    (m,) = [m for m in c.matched if m.live.symbol == "ASHOKLEY"]
    assert m.entry is not None and m.exit is not None
    assert m.entry.model_price == fill.price and m.entry.live_price == worse
    assert m.entry.excess_bps == pytest.approx(20.0, abs=1e-9)
    assert m.entry.real_bps == pytest.approx((1.002 * 1.0005 - 1.0) * 1e4, abs=1e-6)
    assert m.entry.excess_rupees == pytest.approx(fill.qty * fill.price * 0.002, rel=1e-9)
    assert m.exit.excess_bps == 0.0  # the exit is the model's
    cost = CostModel(S.costs)
    charges_diff = cost.charges(fill.qty * worse, True).total - cost.charges(fill.qty * fill.price, True).total
    assert c.live_charges - c.model_charges == pytest.approx(charges_diff, abs=1e-9)
    assert m.pnl_difference == pytest.approx(-fill.qty * fill.price * 0.002 - charges_diff, abs=1e-6)
    others = [f for f in c.fills if f is not m.entry]
    assert others and all(f.excess_bps == 0.0 for f in others)


def test_a_late_exit(market: Market, clean_day: list[Stored]) -> None:
    events = list(clean_day)
    stops = {ev.cid for _, ev in events if isinstance(ev, OrderPlaced) and ev.leg is Leg.STOP and ev.symbol == "LT"}
    i = next(i for i, (_, ev) in enumerate(events) if isinstance(ev, Filled) and ev.cid in stops)
    rec, fill = events[i]
    assert isinstance(fill, Filled)
    events[i] = (rec, dataclasses.replace(fill, ts=fill.ts + BAR_SECONDS, slot=fill.slot + BAR_SECONDS))
    c = compare_day(events, market, DAY, symbols=SYMBOLS)
    (m,) = [m for m in c.matched if m.live.symbol == "LT"]
    assert m.exit_slots == 1 and m.exit is None  # a bar late: not a slippage sample
    assert m.entry is not None and m.entry.excess_bps == 0.0
    assert c.exits_differing == 1 and c.missing == () and c.extra == ()
    assert any("LT LONG" in line and "(+1 bars)" in line for line in comparison_lines(c))


def test_bad_input_is_one_clear_error(market: Market, clean_day: list[Stored], nse_dir: Path) -> None:
    with pytest.raises(ModelCheckError, match="has no session 2021-01-11"):
        compare_day(clean_day, market, dt.date(2021, 1, 11), symbols=SYMBOLS)
    # The day's bars are not stored: the market ends the day before.
    short = load_market(nse_dir, S, SYMBOLS)
    cut = dataclasses.replace(
        short,
        intraday={s: b.take(slice(0, b.day_range(0, _day_number(DAY) - 1)[1])) for s, b in short.intraday.items()},
    )
    with pytest.raises(ModelCheckError, match="no 15-minute bars for 2021-01-08"):
        compare_day(clean_day, cut, DAY, symbols=SYMBOLS)


def _day_number(d: dt.date) -> int:
    from tfl.timeutil import date_to_day

    return date_to_day(d)


def test_a_setup_blocked_live_says_why(market: Market, clean_day: list[Stored]) -> None:
    """The journal of a trader whose entries were blocked when VEDL's setup was sized (its
    allocation refused, no order): the missing trade carries the journal's reason."""
    vedl = {ev.cid for _, ev in clean_day if isinstance(ev, OrderPlaced) and ev.symbol == "VEDL"}
    events: list[Stored] = []
    for rec, ev in clean_day:
        if isinstance(ev, Allocated) and ev.symbol == "VEDL":
            events.append((rec, dataclasses.replace(ev, reject=RejectReason.ENTRIES_BLOCKED)))
        elif getattr(ev, "cid", None) in vedl or (isinstance(ev, LevelsSet) and ev.symbol == "VEDL"):
            continue
        else:
            events.append((rec, ev))
    c = compare_day(events, market, DAY, symbols=SYMBOLS)
    (u,) = c.missing
    assert u.trade.symbol == "VEDL" and c.extra == () and len(c.matched) == 2
    assert u.why.startswith("no reservation live: ENTRIES_BLOCKED (entries blocked")


def test_an_early_square_off_is_still_a_slippage_sample(market: Market, tmp_path: Path) -> None:
    """Paper and live square off before the 15:15 bar on purpose: an EOD exit a bar early is
    the same order (a sample, its bar difference shown), a stop a bar late is not."""
    day = dt.date(2021, 1, 11)  # one trade, ASHOKLEY, squared off at 15:15
    replay(tmp_path, market, SYMBOLS, day, S)
    events = journal_events(tmp_path)
    exits = {ev.cid for _, ev in events if isinstance(ev, OrderPlaced) and ev.leg is Leg.EXIT}
    i = next(i for i, (_, ev) in enumerate(events) if isinstance(ev, Filled) and ev.cid in exits)
    rec, fill = events[i]
    assert isinstance(fill, Filled)
    early = fill.price * 0.999  # a sell: 10 bps worse than the model's square-off
    events[i] = (rec, dataclasses.replace(fill, price=early, ts=fill.ts - 120, slot=fill.slot - BAR_SECONDS))
    c = compare_day(events, market, day, symbols=SYMBOLS)
    (m,) = c.matched
    assert m.live.exit_reason.value == "EOD" and m.exit_slots == -1 and c.exits_differing == 0
    assert m.exit is not None and m.exit.excess_bps == pytest.approx(10.0, abs=1e-9)
    assert m.exit.excess_rupees == pytest.approx(fill.qty * fill.price * 0.001, rel=1e-9)


def test_extra_trades_say_why(market: Market, clean_day: list[Stored]) -> None:
    """A trade the model did not take: VEDL is left out of the model's symbols, then the model is
    said to have rejected VEDL's signal (its reason is quoted)."""
    c = compare_day(clean_day, market, DAY, symbols=[s for s in SYMBOLS if s != "VEDL"])
    (u,) = c.extra
    assert u.trade.symbol == "VEDL" and c.missing == () and len(c.matched) == 2
    assert u.why.startswith("the model had no such trade")
    rejected = SignalRejected(u.trade.setup_ts + BAR_SECONDS, "VEDL", u.trade.side, RejectReason.MAX_POSITIONS, 80.0)
    why = why_extra([rejected], index_journal(clean_day), u.trade)
    assert why.startswith("the model rejected the signal: MAX_POSITIONS")
    late = SignalRejected(u.trade.setup_ts + 2 * BAR_SECONDS, "VEDL", u.trade.side, RejectReason.MAX_POSITIONS, 80.0)
    assert why_extra([late], index_journal(clean_day), u.trade).startswith("the model had no such trade")


def test_the_model_follows_the_sessions_symbols(market: Market, tmp_path: Path) -> None:
    """By default the model trades what the session followed (its SESSION_OPEN marks); asked to
    trade a symbol the session did not follow, the missing trade says so."""
    followed = [s for s in SYMBOLS if s != "VEDL"]
    replay(tmp_path, market, followed, DAY, S)
    events = journal_events(tmp_path)
    c = compare_day(events, market, DAY)  # market holds VEDL too: the session's symbols decide
    assert c.missing == () and c.extra == () and len(c.matched) == 2
    (u,) = compare_day(events, market, DAY, symbols=SYMBOLS).missing
    assert u.trade.symbol == "VEDL" and u.why.startswith("the trader did not follow VEDL that day")
