"""The end of a live day against the fake FYERS: TFL's square-off finishes before the
broker's own (15:15), and when it cannot (exits left standing by FYERS' price protection),
the broker's own square-off is booked as EOD, alerted, and never left as a phantom position.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_fyers import FakeFyers, Scenario
from fyers_harness import BROKER_SQUARE_OFF, SETTINGS, SYMBOLS, Run, check_invariants, held, run_live, start_fake
from test_fyers_scenarios import no_secrets

from tfl.core.orders import Leg
from tfl.domain import ExitReason


def exits_working(fake: FakeFyers) -> bool:
    """Every symbol held at FYERS has a market exit of ours resting (unfilled)."""
    resting = {o.symbol for o in fake.orders.values() if o.type == 2 and o.status == 6 and o.tag}
    return set(held(fake)) <= resting


@pytest.fixture
def go(fyers_market, tmp_path: Path):  # type: ignore[no-untyped-def]
    def _go(scenario: Scenario | None = None, **kw) -> Run:  # type: ignore[no-untyped-def]
        fake = start_fake(fyers_market, scenario)
        try:
            run = run_live(tmp_path / "run", fyers_market, fake, rms=True, **kw)
        finally:
            fake.stop()
        no_secrets(run)
        return run

    return _go


def eod_exits(run: Run) -> list[tuple[str, int | None]]:
    return [
        (o.tag, o.filled_at)
        for o in run.fake.orders.values()
        if o.tag in run.state.orders and run.state.orders[o.tag].leg is Leg.EXIT and o.filled
    ]


def test_the_square_off_is_filled_before_the_brokers_own(go) -> None:  # type: ignore[no-untyped-def]
    run = go()
    check_invariants(run)  # flat at FYERS before 15:15
    exits = eod_exits(run)
    assert exits, "the session held positions into the square-off"
    assert all(at is not None and at < BROKER_SQUARE_OFF for _, at in exits)
    assert run.fake.rms_orders == []  # FYERS' own square-off found nothing to close
    assert all(t.exit_reason is not ExitReason.EOD or t.exit_ts <= BROKER_SQUARE_OFF for t in run.state.book.trades)


def test_exits_left_standing_then_the_brokers_own_square_off_is_booked_as_eod(go) -> None:  # type: ignore[no-untyped-def]
    """FYERS' price protection leaves every market exit unfilled until the close; at 15:15
    FYERS cancels them and closes the positions itself. The
    journal books those fills as EOD exits (never phantom positions), alerts that the broker
    did it, and TFL sends nothing after 15:15."""
    scenario = Scenario(mpp_unfilled=set(SYMBOLS), mpp_until=BROKER_SQUARE_OFF + 3600)
    run = go(scenario, hold_until=exits_working)
    fake = run.fake
    assert fake.rms_orders, "FYERS' own square-off closed positions"
    assert not run.state.book.positions and run.result.flat
    assert fake.net_at(BROKER_SQUARE_OFF + 3600) == {} or not {
        k for k in fake.net_at(BROKER_SQUARE_OFF + 3600) if k in SYMBOLS
    }
    booked = [t for t in run.state.book.trades if t.exit_reason is ExitReason.EOD]
    rms_symbols = {fake.orders[i].symbol for i in fake.rms_orders}
    assert rms_symbols <= {t.symbol for t in booked}
    messages = [m for _, m in run.alerts]
    assert any("broker's own square-off closed" in m for m in messages)
    assert fake.before_rms is not None
    late = [o for i, o in fake.orders.items() if o.tag in run.state.orders and i not in fake.before_rms]
    assert late == [], "an order was sent after the broker's square-off began"
    assert fake.duplicate_tags() == {}
    assert not run.state.anomalies


# ---------------------------------------------------------------------- refused protective stops


def journal_times(path: Path) -> dict[tuple[str, str], int]:
    """(kind, client id) -> the exchange time the trader journalled it at (the first time)."""
    from tfl.live.journal import SqliteJournal, read_events

    journal = SqliteJournal(path)
    out: dict[tuple[str, str], int] = {}
    for rec, ev in read_events(journal):
        cid = getattr(ev, "cid", None)
        if isinstance(cid, str):
            out.setdefault((rec.kind, cid), rec.ts)
    journal.close()
    return out


def test_a_refused_protective_stop_is_placed_again_within_seconds(go, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """FYERS refuses the first protective stop (-99, with a reason): a refusal, not an unknown
    outcome. It is alerted, and a new stop goes to FYERS within a retry (10 s of exchange
    time, as the trader saw it: the replayed market itself runs far faster)."""
    run = go(Scenario(refuse_stops=1))
    check_invariants(run)
    (tag,) = run.fake.refused_stops
    rec = run.state.orders[tag]
    assert rec.status.value == "REJECTED"
    times = journal_times(tmp_path / "run" / "journal.sqlite")
    refused_at = times[("ORDER", tag)]
    again = [
        t
        for (kind, cid), t in times.items()
        if kind == "INTENT" and cid != tag and cid[:-1] == tag[:-1] and t >= refused_at
    ]
    # The retry comes at the first market event 10 s on; the replay's events are seconds apart.
    assert again and min(again) - refused_at <= 2 * SETTINGS.live.retry_seconds, (refused_at, again)
    assert any("rejected" in m for _, m in run.alerts)


def test_a_stop_refused_because_the_price_crossed_it_is_an_exit_at_once(go, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = go(Scenario(cross_stops=1))
    check_invariants(run)
    (tag,) = run.fake.refused_stops
    rec = run.state.orders[tag]
    sym, setup = rec.request.symbol, rec.setup_ts
    stops = [
        r for r in run.state.orders.values() if r.leg is Leg.STOP and r.request.symbol == sym and r.setup_ts == setup
    ]
    assert len(stops) == 1  # never sent again
    exits = [
        r for r in run.state.orders.values() if r.leg is Leg.EXIT and r.request.symbol == sym and r.setup_ts == setup
    ]
    times = journal_times(tmp_path / "run" / "journal.sqlite")
    assert exits and times[("INTENT", exits[0].request.client_id)] == times[("ORDER", tag)]  # in the same step
    trade = next(t for t in run.state.book.trades if t.symbol == sym and t.entry_ts >= setup)
    assert trade.exit_reason is ExitReason.STOP
