"""Alerts that matter, raised by the real trader and runtime: each once per cause and subject
per ``alerts.repeat_minutes`` of market time, again once the interval has passed, never
twice after a restart, and each saying what to do.

The scripted trader (tests/live/scripted.py) drives the trader's own alerts; a replayed
day on the real data with a scripted feed drives the runtime's (feed, token).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import OPEN, PLAN, S, ScriptedBroker, at, enter, leg_of, poll

from tfl.core.events import AlertRaised, Halted
from tfl.core.orders import Leg, OrderRequest
from tfl.domain import Bias, HaltReason
from tfl.live.alerts import ACTIONS, AlertThrottle, Cause, with_action
from tfl.live.broker import BrokerError, BrokerOrder
from tfl.live.execution import Execution
from tfl.live.feed import FeedEvent, Tick
from tfl.live.journal import Journal, MemoryJournal, SqliteJournal, read_events
from tfl.live.reconcile import reconcile
from tfl.live.runtime import Controls
from tfl.live.trader import Trader
from tfl.settings import Settings
from tfl.timeutil import epoch_of_ist

from live_helpers import materialize, replay

Sent = list[tuple[str, str]]

# ---------------------------------------------------------------------- the policy itself


def greedy(times: list[float], repeat: float) -> list[float]:
    """The reference: walk the times in order, keep one whenever none was kept in the last ``repeat``."""
    kept: list[float] = []
    for t in times:
        if not kept or t - kept[-1] >= repeat:
            kept.append(t)
    return kept


@given(
    st.lists(st.integers(0, 10_000), max_size=60).map(sorted),
    st.integers(1, 2_000),
    st.lists(st.sampled_from(["AAA", "BBB"]), min_size=60, max_size=60),
)
def test_the_throttle_lets_one_through_per_cause_and_subject_per_interval(
    times: list[int], repeat: int, subjects: list[str]
) -> None:
    throttle = AlertThrottle(repeat)
    admitted: dict[str, list[float]] = {"AAA": [], "BBB": []}
    for t, subject in zip(times, subjects, strict=False):
        if throttle.admit(Cause.UNCOVERED, subject, t):
            admitted[subject].append(t)
    for subject, kept in admitted.items():
        mine = [t for t, s in zip(times, subjects, strict=False) if s == subject]
        assert kept == greedy([float(t) for t in mine], repeat)


def test_a_throttle_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        AlertThrottle(0)


def test_every_cause_says_what_to_do() -> None:
    assert set(ACTIONS) == set(Cause)
    assert with_action("FEED_STALE", "TFL market feed is stale.").endswith(f"What to do: {ACTIONS[Cause.FEED_STALE]}.")
    assert with_action("SOMETHING_ELSE", "as it was") == "as it was"


# ---------------------------------------------------------------------- the scripted trader


def trader_with(
    settings: Settings, journal: Journal | None = None, broker: ScriptedBroker | None = None
) -> tuple[Trader, ScriptedBroker, Sent]:
    sent: Sent = []
    b = broker or ScriptedBroker()
    t = Trader(settings, journal or MemoryJournal(), Execution(b, OPEN), PLAN)
    t.alert = lambda level, msg: sent.append((level, msg))
    t.load()
    t.open_session(OPEN, Bias.LONGS, "test", {"AAA": 100.0})
    t.gate.reconciled = t.gate.feed_fresh = True
    return t, b, sent


def restarted(old: Trader, b: ScriptedBroker, ts: int, sent: Sent) -> Trader:
    """A new process on the same journal and broker, reconciled at ``ts``."""
    t = Trader(old.settings, old.journal, Execution(b, OPEN), PLAN)
    t.alert = lambda level, msg: sent.append((level, msg))
    t.load()
    t.gate.feed_fresh = True
    reconcile(t, ts)
    return t


def alert_times(t: Trader, cause: Cause) -> list[int]:
    return [rec.ts for rec, ev in read_events(t.journal) if isinstance(ev, AlertRaised) and ev.cause == cause]


def refuse(*legs: Leg) -> Callable[[OrderRequest], None]:
    def on_place(req: OrderRequest) -> None:
        if leg_of(req.client_id) in legs:
            raise BrokerError("RMS: insufficient funds (scripted)")

    return on_place


def test_entry_rejections_are_one_alert_per_interval() -> None:
    """Three entries refused at 09:45, 10:00 and 10:30 with a 30-minute interval: the first
    and the third are alerted (a margin shortfall refuses every entry: one subject)."""
    t, b, sent = trader_with(S.replace({"alerts.repeat_minutes": 30}))
    b.on_place = refuse(Leg.ENTRY)
    for setup in ("09:30", "09:45", "10:15"):
        enter(t, setup=setup)
    msgs = [m for _, m in sent if "rejected the entry order for AAA" in m]
    assert len(msgs) == 2 and all("What to do:" in m for m in msgs)
    assert alert_times(t, Cause.ENTRY_REJECTED) == [at("09:45"), at("10:30")]


def test_shares_without_a_stop_are_alerted_again_each_interval_while_they_stay_bare() -> None:
    """Every stop and exit refused for 50 minutes: the bare shares are alerted at the first
    check, then again as soon as each 15-minute interval has passed, never sooner."""
    t, b, sent = trader_with(S)
    b.on_place = refuse(Leg.STOP, Leg.EXIT)
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:47"))
    poll(t, at("09:47"))
    for k in range(1, 301):
        t.retry(at("09:47") + 10 * k)
    times = alert_times(t, Cause.UNCOVERED)
    gaps = [b_ - a_ for a_, b_ in pairwise(times)]
    assert len(times) == 4, times  # 50 minutes: at the start, then after 15, 30 and 45
    assert all(900 <= g <= 910 for g in gaps), gaps  # again at the first retry once 15 minutes passed
    assert len([m for _, m in sent if "have no stop or exit" in m]) == 4


def test_a_stop_the_broker_no_longer_lists_is_alerted_once_per_interval_across_restarts() -> None:
    """The broker took the stop, then its order book lost it. Each restart's reconciliation
    sees it; the alert goes once, a restart within the interval does not send it again, one
    after the interval does."""
    t, b, sent = trader_with(S)
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:47"))
    poll(t, at("09:47"))
    stop = t.state.legs["AAA"][Leg.STOP]
    assert b.book[stop].status == "PENDING"
    del b.book[stop]
    t2 = restarted(t, b, at("09:50"), sent)
    t3 = restarted(t2, b, at("09:55"), sent)
    missing = [(lv, m) for lv, m in sent if "not in the broker's order book" in m]
    assert [lv for lv, _ in missing] == ["CRITICAL"]
    restarted(t3, b, at("10:06"), sent)
    assert len([m for _, m in sent if "not in the broker's order book" in m]) == 2


def falling_day(t: Trader, closes: list[float]) -> list[tuple[int, int]]:
    """A 5000-share long bought at 101; the bars close at ``closes``. Returns, per boundary,
    the loss levels alerted there."""
    out = []
    for i, c in enumerate(closes):
        start = at("09:45") + 900 * i
        before = len(alert_times(t, Cause.LOSS_LIMIT))
        t.on_slot(start + 900, [bar_at(start, c)], [])
        new = [ev for _, ev in read_events(t.journal) if isinstance(ev, AlertRaised) and ev.cause == Cause.LOSS_LIMIT]
        out.extend((start + 900, int(ev.ref)) for ev in new[before:])
    return out


def bar_at(start: int, close: float) -> object:
    from tfl.core.decide import ClosedBar

    return ClosedBar("AAA", start, close + 0.1, close + 0.2, close - 0.1, close, 1.0)


def long_5000(t: Trader, b: ScriptedBroker) -> None:
    cid = enter(t, qty=5000, trigger=101.0, stop=80.0)
    b.fill(cid, 5000, 101.0, at("09:47"))
    poll(t, at("09:47"))


def test_the_loss_is_alerted_at_50_80_and_100_percent_of_the_limit_once_each() -> None:
    """The limit is 3% of 1,000,000 = 30,000. Closes of 98.9, 97.5, 97.0, 96.5, 96.0, 99.0,
    96.0, 94.5 lose about 35%, 59%, 67%, 75%, 84%, 34%, 84% and 109% of it (5000 shares from
    101, plus about 60 of charges): 50% at the second bar, 80% at the fifth, nothing when it
    comes back to 84%, 100% at the last, where the core halts the day too."""
    t, b, sent = trader_with(S)
    long_5000(t, b)
    got = falling_day(t, [98.9, 97.5, 97.0, 96.5, 96.0, 99.0, 96.0, 94.5])
    first = at("10:00")
    assert got == [(first + 900, 50), (first + 4 * 900, 80), (first + 7 * 900, 100)]
    assert t.state.halted is HaltReason.DAILY_LOSS_LIMIT  # the core's own test agrees at 100%
    levels = [lv for lv, m in sent if "of the daily loss limit" in m]
    assert levels == ["WARNING", "ERROR", "CRITICAL"]
    t2 = restarted(t, b, at("12:00"), sent)  # a restart sends none of them again
    t2.check_loss(at("12:00"))
    assert len([m for _, m in sent if "of the daily loss limit" in m]) == 3


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(93.0, 101.0), min_size=1, max_size=6))
def test_the_100_percent_alert_comes_exactly_when_the_core_halts_the_day(closes: list[float]) -> None:
    """Whatever the bars: the 100% alert is raised at the boundary where the core's own loss
    limit halts the day, and never without it."""
    t, b, _ = trader_with(S)
    long_5000(t, b)
    got = falling_day(t, closes)
    halted_at = [rec.ts for rec, ev in read_events(t.journal) if isinstance(ev, Halted)]
    assert [ts for ts, lv in got if lv == 100] == halted_at
    assert [lv for _, lv in got] == sorted({lv for _, lv in got})  # each level at most once, rising


def test_a_bar_that_jumps_past_two_levels_gives_the_higher_one() -> None:
    t, b, sent = trader_with(S)
    long_5000(t, b)
    assert falling_day(t, [96.0]) == [(at("10:00"), 80)]
    assert len([m for _, m in sent if "of the daily loss limit" in m]) == 1


def test_journal_and_broker_disagreeing_is_alerted_once_per_interval() -> None:
    """An order that is not TFL's rests at the broker: each reconciliation finds it; the
    alert goes at 10:00, not again at 10:10, again at 10:20 (a new process each time)."""
    t, b, sent = trader_with(S)
    b.book["XYZ"] = BrokerOrder("B9", "XYZ", "AAA", 1, "LIMIT", 10, None, 90.0, "PENDING", 0, 0.0)
    t2 = restarted(t, b, at("10:00"), sent)
    t3 = restarted(t2, b, at("10:10"), sent)
    disagree = [(lv, m) for lv, m in sent if "the journal and the broker disagree" in m]
    assert len(disagree) == 1 and "external order XYZ" in disagree[0][1] and disagree[0][0] == "ERROR"
    restarted(t3, b, at("10:20"), sent)
    assert len([m for _, m in sent if "the journal and the broker disagree" in m]) == 2


def test_a_book_not_flat_after_the_close_is_alerted_once_with_what_to_do() -> None:
    t, b, sent = trader_with(S)
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:47"))
    poll(t, at("09:47"))
    assert not t.close_session(at("15:30"))
    assert not t.close_session(at("15:31"))  # asked again: the journal has the alert already
    msgs = [(lv, m) for lv, m in sent if "not flat" in m]
    assert len(msgs) == 1 and msgs[0][0] == "CRITICAL"
    assert "AAA" in msgs[0][1] and "What to do: close these positions at the broker" in msgs[0][1]


# ---------------------------------------------------------------------- the runtime, on a replayed day

DAY = dt.date(2020, 12, 7)
SYMBOLS = ["AXISBANK", "HDFCBANK", "ICICIBANK", "SBIN", "TCS"]


def ist(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return epoch_of_ist(DAY, h * 60 + m)


@pytest.fixture(scope="module")
def market(nse_dir: Path):  # type: ignore[no-untyped-def]
    from tfl.data.market import load_market

    return load_market(nse_dir, S, SYMBOLS)


class ScriptedFeed:
    """The replay's events with a hand-driven clock: ``step`` seconds per event, a stall of
    ``stall`` seconds (one empty answer) before the first tick at or after each of
    ``stalls``, and ``at_time`` callbacks run before the first tick at or after their time."""

    def __init__(
        self,
        events: list[FeedEvent],
        clock: list[float],
        *,
        step: float = 0.001,
        stalls: tuple[int, ...] = (),
        stall: float = 0.0,
        at_time: dict[int, Callable[[], None]] | None = None,
    ) -> None:
        self.events, self.clock, self.step = events, clock, step
        self.stalls, self.stall = sorted(stalls), stall
        self.at_time = dict(sorted((at_time or {}).items()))
        self.i = 0
        self.last_ts = 0

    @property
    def exhausted(self) -> bool:
        return self.i >= len(self.events)

    def refresh(self) -> None:
        return None

    def close(self) -> None:
        return None

    def next(self, timeout: float) -> FeedEvent | None:
        if self.exhausted:
            return None
        ev = self.events[self.i]
        if isinstance(ev, Tick):
            if self.stalls and ev.ts >= self.stalls[0]:
                self.stalls.pop(0)
                self.clock[0] += self.stall
                return None
            for when in [w for w in self.at_time if ev.ts >= w]:
                self.at_time.pop(when)()
            self.last_ts = ev.ts
        self.clock[0] += self.step
        self.i += 1
        return ev


def run_scripted(
    tmp: Path, market, settings: Settings, controls: Controls, clock: list[float], **feed_kw: object
) -> tuple[list[tuple[int, AlertRaised]], ScriptedFeed]:  # type: ignore[no-untyped-def]
    feeds: list[ScriptedFeed] = []

    def factory(events: list, start: int, side_of) -> ScriptedFeed:  # type: ignore[no-untyped-def,type-arg]
        feeds.append(ScriptedFeed(materialize(events, start, side_of), clock, **feed_kw))  # type: ignore[arg-type]
        return feeds[0]

    replay(tmp, market, SYMBOLS, DAY, settings, controls=controls, feed_factory=factory)
    journal = SqliteJournal(tmp / "journal.sqlite")
    alerts = [(rec.ts, ev) for rec, ev in read_events(journal) if isinstance(ev, AlertRaised)]
    journal.close()
    return alerts, feeds[0]


def test_a_stale_feed_is_alerted_once_per_interval(market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The feed stalls (longer than ``live.feed_stale_seconds`` of the runtime's clock) at
    10:00, 10:10 and 10:40 of market time: alerts at the first and the third."""
    clock = [0.0]
    sent: Sent = []
    controls = Controls(clock=lambda: clock[0], alert=lambda lv, m: sent.append((lv, m)))
    stall = S.live.feed_stale_seconds + 5
    alerts, _ = run_scripted(
        tmp_path, market, S, controls, clock, stalls=(ist("10:00"), ist("10:10"), ist("10:40")), stall=stall
    )
    stale = [ts for ts, ev in alerts if ev.cause == Cause.FEED_STALE]
    assert len(stale) == 2, stale
    assert ist("09:58") <= stale[0] < ist("10:00") and ist("10:38") <= stale[1] < ist("10:40")
    msgs = [m for _, m in sent if "feed is stale" in m]
    assert len(msgs) == 2 and all("What to do: no new entries until ticks return" in m for m in msgs)


def test_silence_before_the_open_is_no_stale_feed(market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same stalls, with the exchange clock still before the open (a live trader
    started early): the entry gate closes as before, but nothing is alerted."""
    clock = [0.0]
    sent: Sent = []
    controls = Controls(clock=lambda: clock[0], alert=lambda lv, m: sent.append((lv, m)))
    controls.market_now = lambda: float(ist("09:00"))
    stall = S.live.feed_stale_seconds + 5
    alerts, _ = run_scripted(tmp_path, market, S, controls, clock, stalls=(ist("10:00"), ist("10:40")), stall=stall)
    assert not [ev for _, ev in alerts if ev.cause == Cause.FEED_STALE]
    assert not [m for _, m in sent if "feed is stale" in m]


def test_a_refused_token_is_alerted_again_each_interval_until_a_login(market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The broker refuses the token at 10:00; the token is good again from 11:00. The alert
    goes at once and then once every 15 minutes of market time while it lasts."""
    clock = [0.0]
    sent: Sent = []
    lost: list[Callable[[str], None]] = []

    class TokenBroker:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def on_token_rejected(self, callback: Callable[[str], None]) -> None:
            lost.append(callback)

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    feeds: list[ScriptedFeed] = []
    controls = Controls(clock=lambda: clock[0], alert=lambda lv, m: sent.append((lv, m)))
    controls.token_check = lambda: feeds[0].last_ts >= ist("11:00")
    controls.token_recheck_seconds = 0.0

    def factory(events: list, start: int, side_of) -> ScriptedFeed:  # type: ignore[no-untyped-def,type-arg]
        feeds.append(
            ScriptedFeed(materialize(events, start, side_of), clock, at_time={ist("10:00"): lambda: lost[0]("401")})
        )
        return feeds[0]

    replay(tmp_path, market, SYMBOLS, DAY, S, controls=controls, feed_factory=factory, broker_hook=TokenBroker)
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    times = [
        rec.ts for rec, ev in read_events(journal) if isinstance(ev, AlertRaised) and ev.cause == Cause.TOKEN_INVALID
    ]
    journal.close()
    assert ist("09:58") <= times[0] <= ist("10:00")  # the last tick's time when it was refused
    # Then, while it lasts (up to the last tick before 11:00), at the first tick once 15 minutes passed.
    ticks = sorted({ev.ts for ev in feeds[0].events if isinstance(ev, Tick) and times[0] <= ev.ts < ist("11:00")})
    assert times == greedy([float(t) for t in ticks], 900), times
    assert len(times) == 5  # 09:59:24, then every 15 minutes up to 10:59:24
    msgs = [m for _, m in sent if "token was rejected" in m]
    assert len(msgs) == 5 and all("What to do: log in again" in m for m in msgs)


def test_the_token_expiry_is_alerted_before_it_and_after_it(market, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The token expires at 11:00. One WARNING once it is less than 30 minutes away; from
    11:00 a CRITICAL, again every 15 minutes of market time until the close."""
    clock = [0.0]
    sent: Sent = []
    cfg = S.replace({"live.heartbeat_seconds": 1})  # the expiry is looked at with the heartbeat
    controls = Controls(clock=lambda: clock[0], alert=lambda lv, m: sent.append((lv, m)))
    controls.token_expiry = lambda: float(ist("11:00"))
    alerts, _ = run_scripted(tmp_path, market, cfg, controls, clock, step=1.0)
    soon = [ts for ts, ev in alerts if ev.cause == Cause.TOKEN_EXPIRING]
    gone = [ts for ts, ev in alerts if ev.cause == Cause.TOKEN_EXPIRED]
    assert len(soon) == 1 and ist("10:30") <= soon[0] < ist("10:32")
    assert ist("11:00") <= gone[0] < ist("11:02")
    assert all(900 <= b_ - a_ < 960 for a_, b_ in pairwise(gone))
    assert gone[-1] > ist("15:00") - 960  # reminded to the end of the session
    assert [lv for lv, m in sent if "token expires at" in m] == ["WARNING"]
    assert {lv for lv, m in sent if "token expired at" in m} == {"CRITICAL"}
