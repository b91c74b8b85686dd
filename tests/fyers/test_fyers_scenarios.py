"""Full live sessions against the fake FYERS, one scripted failure at a time.

Every scenario must end with no duplicate order, no lost fill, a flat book, and (where
something went wrong) the right alert. The logs of every scenario are scanned for the
token, the app secret and the auth code: none may appear.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_fyers import Scenario
from fyers_harness import DAY, SYMBOLS, Run, check_invariants, run_live, start_fake

from tfl.core.state import CoreState
from tfl.live.journal import SqliteJournal
from tfl.live.paper import LateFill
from tfl.live.report import rebuild
from tfl.timeutil import epoch_of_ist


def no_secrets(run: Run) -> None:
    text = run.logs.text() + "\n".join(m for _, m in run.alerts)
    for secret in (run.store.get("access_token"), run.fake.secret, *run.fake.tokens, *run.fake.codes):
        assert secret and secret not in text


@pytest.fixture
def go(fyers_market, tmp_path: Path):  # type: ignore[no-untyped-def]
    def _go(scenario: Scenario | None = None, **kw) -> Run:  # type: ignore[no-untyped-def]
        fake = start_fake(fyers_market, scenario)
        try:
            run = run_live(tmp_path / "run", fyers_market, fake, **kw)
        finally:
            fake.stop()
        no_secrets(run)
        return run

    return _go


def test_a_normal_live_session(go) -> None:  # type: ignore[no-untyped-def]
    run = go()
    check_invariants(run)
    assert run.state.book.trades, "the session traded"
    tags = [o.tag for o in run.fake.orders.values()]
    assert all(t.isalnum() and len(t) <= 30 for t in tags)
    stops = [o for o in run.fake.orders.values() if o.type == 3 and o.side == -1 and o.tag[10] == "S"]
    assert stops, "every filled entry got a protective SL-M order at FYERS"
    assert all(round(o.stop / t, 6) == round(o.stop / t) for o in stops for t in [run.fake.tick_of(o.symbol)])
    assert not [a for a in run.alerts if a[0] in ("ERROR", "CRITICAL")]


def test_partial_fills(go) -> None:  # type: ignore[no-untyped-def]
    run = go(Scenario(partial_fills=True))
    check_invariants(run)
    multi = [
        oid
        for oid in {t["orderNumber"] for t in run.fake.trades}
        if sum(1 for t in run.fake.trades if t["orderNumber"] == oid) > 1
    ]
    assert multi, "the scenario produced partial fills"


def test_rejections(go) -> None:  # type: ignore[no-untyped-def]
    run = go(Scenario(reject_symbols={"TRENT", "SAIL", "BHEL", "DLF"}))
    check_invariants(run)
    rejected = [o for o in run.fake.orders.values() if o.status == 5]
    assert rejected
    assert all(run.state.orders[o.tag].status.value == "REJECTED" for o in rejected)


@pytest.mark.parametrize("outcome", ["201", "timeout", "drop"])  # -99 is a refusal: test_rejections
def test_ambiguous_answers_are_resolved_by_tag(go, outcome: str) -> None:  # type: ignore[no-untyped-def]
    run = go(Scenario(place_outcomes=[outcome, "ok", outcome, "ok", outcome] * 3))
    check_invariants(run)
    unknown = [r for r in run.state.orders.values() if r.status.value == "UNKNOWN"]
    assert not unknown, "every ambiguous order was resolved"
    assert any("never re-send blind" in r.getMessage() for r in run.logs.records)


def test_rate_limited_with_retry_after(go) -> None:  # type: ignore[no-untyped-def]
    run = go(Scenario(rate_limited_requests=6, retry_after=0.3))
    check_invariants(run)
    assert any("rate limit" in r.getMessage() for r in run.logs.records)
    assert run.state.book.trades  # it traded once the broker answered


def test_duplicate_order_socket_events(go) -> None:  # type: ignore[no-untyped-def]
    """The same fill (and status) twice on the order socket: booked once, nothing alerted."""
    run = go(Scenario(duplicate_socket_events=True))
    check_invariants(run)
    assert any(sock.sent_twice for sock in run.fake.order_sockets_made), "FYERS sent reports twice"
    assert not run.state.anomalies and not [a for a in run.alerts if a[0] in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize(
    ("late", "status"),
    [
        (LateFill(0.5, "CANCELLED"), "CANCELLED"),
        (LateFill(1.0, "CANCELLED"), "FILLED"),
        (LateFill(1.0, "EXPIRED"), "FILLED"),
        (LateFill(0.5, "CANCELLED", after_ack=False), "CANCELLED"),
    ],
    ids=["cancel then partial fill", "cancel then full fill", "fill after expiry", "partial fill during the cancel"],
)
def test_a_fill_after_the_cancel_is_booked_protected_and_alerted(
    go,
    tmp_path: Path,
    late: LateFill,
    status: str,  # type: ignore[no-untyped-def]
) -> None:
    """FYERS answers the cancel of an entry order, then its trade report arrives: the shares are
    booked (the order is not re-opened), a protective SL-M goes out at once, one ERROR alert.
    When the trade is in FYERS' order book by the time of the cancel's answer (it filled
    while the cancel was pending), the trader reads it there with the answer: booked with
    the cancel, not late, no alert."""
    run = go(Scenario(late_fill_on_cancel=late))
    check_invariants(run)
    tag = run.fake.late_filled
    assert tag, "the scenario hit an entry order"
    rec = run.state.orders[tag]
    assert rec.filled > 0 and rec.status.value == status
    odd = ["LATE_FILL"] if late.after_ack else []
    assert [a.kind.value for a in run.state.anomalies] == odd
    assert bool([m for lv, m in run.alerts if lv == "ERROR" and "late fill" in m]) == late.after_ack
    stops = [
        o
        for o in run.fake.orders.values()
        if o.symbol == rec.request.symbol and o.tag[10] == "S" and o.tag[:10] == tag[:10]
    ]
    assert stops and stops[0].qty == rec.filled  # protected, for exactly the late shares
    assert not run.state.reduce_only  # the trader knows what is true: it keeps trading
    # A trader that died right after the late fill restarts from a journal that loads.
    cut = _journal_until_fill(tmp_path / "run" / "journal.sqlite", tmp_path / "cut.sqlite", tag)
    assert cut.book.positions[rec.request.symbol].qty >= min(rec.filled, rec.request.qty)
    assert [a.kind.value for a in cut.anomalies] == odd


def _journal_until_fill(source: Path, dest: Path, tag: str) -> CoreState:
    """The journal as it stood right after ``tag``'s first fill, rebuilt."""
    src, out = SqliteJournal(source), SqliteJournal(dest)
    found = False
    for rec in src.records():
        out.append(rec)
        if rec.kind == "FILL" and rec.data["cid"] == tag:
            found = True
            break
    src.close()
    assert found, f"no fill of {tag} in the journal"
    state = rebuild(out)
    out.close()
    return state


def test_an_over_fill_is_flattened_and_stops_entries(go, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """FYERS reports more shares filled than the entry order asked for: the order keeps its
    quantity, the excess is flattened (the broker does hold it), the trader goes reduce-only."""
    run = go(Scenario(overfill_first_entry=5))
    check_invariants(run)
    assert run.fake.overfilled, "FYERS reported an over-fill"
    assert [a.kind.value for a in run.state.anomalies] == ["OVERFILL"]
    assert run.state.reduce_only
    assert [m for lv, m in run.alerts if lv == "CRITICAL" and "over-fill" in m]
    flatten = [o for o in run.fake.orders.values() if len(o.tag) > 10 and o.tag[10] == "F"]
    assert len(flatten) == 1 and flatten[0].qty == 5 and flatten[0].filled == 5
    cut = _journal_until_fill(tmp_path / "run" / "journal.sqlite", tmp_path / "cut.sqlite", run.fake.overfilled)
    assert [a.kind.value for a in cut.anomalies] == ["OVERFILL"] and cut.book.stray


def test_data_socket_drop_reconnects_and_resubscribes(go) -> None:  # type: ignore[no-untyped-def]
    run = go(Scenario(data_socket_drop_at=epoch_of_ist(DAY, 11 * 60)))
    check_invariants(run)
    assert any("forcing a data socket reconnect" in r.getMessage() for r in run.logs.records)
    assert len(run.fake.data_sockets) == 1 and run.fake.data_sockets[0].subscribed == {f"NSE:{s}-EQ" for s in SYMBOLS}


def test_silent_data_socket(go) -> None:  # type: ignore[no-untyped-def]
    run = go(Scenario(data_socket_silent_from=epoch_of_ist(DAY, 10 * 60), silent_for=3 * 3600), silence=0.3)
    check_invariants(run)
    assert any("forcing a data socket reconnect" in r.getMessage() for r in run.logs.records)


def test_external_orders_at_startup_mean_reduce_only(go) -> None:  # type: ignore[no-untyped-def]
    run = go(Scenario(external_orders=[{"symbol": "SBIN", "side": 1, "qty": 10, "price": 270.0, "tag": "MANUAL1"}]))
    check_invariants(run)
    assert run.state.reduce_only
    assert any(level == "ERROR" and "reduce-only" in msg for level, msg in run.alerts)
    assert not [o for o in run.state.orders.values() if o.leg.value == "E"], "no new entries while reduce-only"


def test_token_expires_mid_session_without_a_new_login(go) -> None:  # type: ignore[no-untyped-def]
    # (A new login that recovers the session is tested end to end in test_fyers_e2e.py.)
    expiry = epoch_of_ist(DAY, 11 * 60)
    run = go(Scenario(token_expires_at=expiry), on_market_start=None)
    assert run.fake.duplicate_tags() == {}
    # Entries stop; exits are still attempted (and fail without a token).
    assert not [o for o in run.fake.orders.values() if o.placed > expiry and o.tag[10] == "E"]
    # Entry orders resting at FYERS when the token died cannot be cancelled: the alert is
    # CRITICAL and names them, because one may fill with no protective stop.
    resting = {
        o.symbol
        for o in run.fake.orders.values()
        if o.tag[10] == "E" and o.placed <= expiry and (o.status == 6 or (o.filled_at or 0) > expiry)
    }
    assert resting, "the scenario left entry orders resting when the token died"
    token_alerts = [(lv, m) for lv, m in run.alerts if "token" in m.lower()]
    assert token_alerts and token_alerts[0][0] == "CRITICAL"
    assert all(sym in token_alerts[0][1] for sym in resting)
    # Every position the trader held when the token died still has its SL-M resting at FYERS
    # (or was closed by it): a dead token does not leave a known position naked.
    held = {
        o.symbol for o in run.fake.orders.values() if o.tag[10] == "E" and o.filled and (o.filled_at or 0) <= expiry
    }
    for p in run.fake.positions():
        sym = p["symbol"][4:-3]
        if p["netQty"] and sym in held:
            want = -1 if p["netQty"] > 0 else 1
            stops = [
                o
                for o in run.fake.orders.values()
                if o.symbol == sym and o.type == 3 and o.status == 6 and o.side == want
            ]
            assert sum(o.qty for o in stops) >= abs(p["netQty"]), f"naked position {p}"
    assert any(lv == "CRITICAL" and "not flat" in m for lv, m in run.alerts)
