"""The end of a live day against the fake FYERS: TFL's square-off finishes before the
broker's own (15:15), and when it cannot (exits left standing by FYERS' price protection),
the broker's own square-off is booked as EOD, alerted, and never left as a phantom position.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_fyers import FakeFyers, Scenario
from fyers_harness import BROKER_SQUARE_OFF, SYMBOLS, Run, check_invariants, held, run_live, start_fake
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
    late = [o for o in fake.orders.values() if o.tag in run.state.orders and o.placed >= BROKER_SQUARE_OFF]
    assert late == [], "an order was sent after the broker's square-off"
    assert fake.duplicate_tags() == {}
    assert not run.state.anomalies
