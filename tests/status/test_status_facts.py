"""The status facts from real replay journals, checked against the journal's raw events
(fills, order reports) and the cost model, computed here independently of the book."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from status_helpers import MIDDAY_CUT, REJECTED_SYMBOL, Journals, ack_pending_stand_in, copy_journal

from tfl.core.events import Allocated, Filled, OrderPlaced, OrderReported, SessionOpened, SignalRejected
from tfl.core.orders import Leg, Report
from tfl.costs import CostModel
from tfl.live.journal import ReadOnlySqliteJournal, SqliteJournal, read_events, to_record
from tfl.live.ops_store import Beat, CommandKind, SqliteOpsStore, new_command
from tfl.live.report import journal_day_report
from tfl.settings import Settings
from tfl.status.facts import STALE_BEATS, Sources, facts_text, gather
from tfl.status.sources import local_sources

NOW = MIDDAY_CUT + 5


def _facts(path: Path, now: int = NOW, sources: Sources | None = None, writable: bool = False):  # type: ignore[no-untyped-def]
    journal = ReadOnlySqliteJournal(path, snapshot=True)
    ops = SqliteOpsStore(path, read_only=not writable)
    try:
        return gather(journal, ops, sources or Sources(path.name), now)
    finally:
        journal.close()
        ops.close()


def _events(path: Path) -> list:  # type: ignore[type-arg]
    j = SqliteJournal(path)
    try:
        return [ev for _, ev in read_events(j)]
    finally:
        j.close()


def _open_from_fills(events: list) -> dict[str, tuple[int, float]]:  # type: ignore[type-arg]
    """Symbol -> (shares held, entry fill price), from the fills and the legs of their orders."""
    legs = {ev.cid: ev.leg for ev in events if isinstance(ev, OrderPlaced)}
    held: dict[str, tuple[int, float]] = {}
    for ev in events:
        if not isinstance(ev, Filled):
            continue
        sym = ev.symbol
        n, price = held.get(sym, (0, 0.0))
        if legs[ev.cid] is Leg.ENTRY:
            held[sym] = (n + ev.qty, ev.price)
        else:
            held[sym] = (n - ev.qty, price)
    return {s: v for s, v in held.items() if v[0]}


def test_midday_positions_entries_and_resting_stops_match_the_raw_events(journals: Journals) -> None:
    f = _facts(journals.midday)
    events = _events(journals.midday)
    expected = _open_from_fills(events)
    initial = {ev.symbol: ev.stop for ev in events if isinstance(ev, Allocated) and ev.reject is None}
    assert len(expected) == 3  # the fixture's point: positions open at 11:16
    assert {p.symbol: (p.qty, p.entry) for p in f.positions} == expected
    assert all(p.stop_resting and p.stop_status == "ACCEPTED" for p in f.positions)
    for p in f.positions:
        assert p.side == "LONG" and p.stop < p.entry < p.target
        assert abs(p.r - (p.entry - initial[p.symbol])) < 1e-4  # R: from the fill to the planned stop
        assert abs(p.pnl - p.qty * (p.mark - p.entry)) < 0.01
    assert not f.closed and f.day_report == ""
    assert f.runtime.running is False and f.runtime.state == "ACTIVE"  # no heartbeat: not running


def test_a_stop_the_broker_cancelled_is_shown_as_not_resting(journals: Journals, tmp_path: Path) -> None:
    path = copy_journal(journals.midday, tmp_path)
    events = _events(path)
    stop = next(ev for ev in events if isinstance(ev, OrderPlaced) and ev.leg is Leg.STOP and ev.symbol == "DLF")
    j = SqliteJournal(path)
    j.append(to_record("2023-05-16", MIDDAY_CUT, OrderReported(stop.cid, Report.CANCELLED, n=9)))
    j.close()
    f = _facts(path)
    by = {p.symbol: p for p in f.positions}
    assert by["DLF"].stop_resting is False and by["DLF"].stop_status == "CANCELLED"
    assert by["TRENT"].stop_resting and by["ICICIBANK"].stop_resting
    assert "stop at broker: NO (CANCELLED)" in facts_text(f)


def test_closed_day_pnl_charges_and_loss_limit_from_the_fills_and_the_cost_model(journals: Journals) -> None:
    f = _facts(journals.closed, now=MIDDAY_CUT + 86_400)
    events = _events(journals.closed)
    settings = next(ev.settings for ev in events if isinstance(ev, SessionOpened))
    assert settings is not None
    legs = {ev.cid: ev.leg for ev in events if isinstance(ev, OrderPlaced)}
    sides = {ev.cid: ev.side for ev in events if isinstance(ev, OrderPlaced)}
    fills = [ev for ev in events if isinstance(ev, Filled)]
    assert fills and all(legs[ev.cid] in (Leg.ENTRY, Leg.STOP, Leg.TARGET, Leg.EXIT) for ev in fills)
    cost = CostModel(settings.costs)
    charges = sum(cost.charges(ev.qty * ev.price, sides[ev.cid] > 0).total for ev in fills)
    gross = sum(-sides[ev.cid] * ev.qty * ev.price for ev in fills)  # flat at the close: cash in minus cash out
    assert abs(f.charges - charges) < 0.02
    assert abs(f.pnl.realised - (gross - charges)) < 0.02
    assert abs(f.pnl.pnl - f.pnl.realised) < 0.02 and f.positions == ()
    capital = settings.backtest.capital
    limit = capital * settings.risk.daily_loss_limit_pct / 100
    assert f.pnl.loss_limit == round(limit, 2)
    assert abs(f.pnl.limit_used_pct - max(0.0, -f.pnl.pnl) / limit * 100) < 0.06
    signals = [(ev.symbol, ev.reason.value) for ev in events if isinstance(ev, SignalRejected)]
    assert signals and [(s.symbol, s.reason) for s in f.rejected_signals] == signals
    assert f.closed
    rep = journal_day_report(ReadOnlySqliteJournal(journals.closed), dt.date(2023, 5, 16))
    assert rep is not None and f.day_report == rep.text()


def test_rejected_orders_carry_the_brokers_reason(journals: Journals) -> None:
    f = _facts(journals.rejecting)
    raw = [ev for ev in _events(journals.rejecting) if isinstance(ev, OrderReported) and ev.report is Report.REJECTED]
    assert raw, "the fixture's broker refused nothing"
    assert [o.cid for o in f.rejected_orders] == list(dict.fromkeys(ev.cid for ev in raw))
    assert all(o.symbol == REJECTED_SYMBOL and o.status == "REJECTED" for o in f.rejected_orders)
    assert all(o.reason == next(ev.reason for ev in raw if ev.cid == o.cid) and o.reason for o in f.rejected_orders)


def test_heartbeat_decides_running_state_feed_and_token(journals: Journals, tmp_path: Path) -> None:
    path = copy_journal(journals.midday, tmp_path)
    store = SqliteOpsStore(path)
    hb = Settings().live.heartbeat_seconds
    beat = Beat(
        NOW - 10,
        "paper",
        "2023-05-16",
        "REDUCE-ONLY",
        "reconcile",
        NOW - 12,
        True,
        True,
        NOW + 3600,
        4242,
        (("DLF", 480.0),),
    )
    store.write_beat(beat)
    store.close()
    f = _facts(path, now=NOW)
    rt = f.runtime
    assert (rt.running, rt.state, rt.state_reason, rt.world, rt.pid) == (
        True,
        "REDUCE-ONLY",
        "reconcile",
        "paper",
        4242,
    )
    assert (rt.beat_age_s, rt.feed_lag_s, rt.feed_fresh, rt.token_ok, rt.token_expires_at) == (
        10,
        2,
        True,
        True,
        NOW + 3600,
    )
    dlf = next(p for p in f.positions if p.symbol == "DLF")
    assert dlf.mark == 480.0 and abs(dlf.pnl - dlf.qty * (480.0 - dlf.entry)) < 0.01  # the beat's newer mark
    late = NOW - 10 + int(STALE_BEATS * hb) + 1
    g = _facts(path, now=late)
    assert not g.runtime.running and g.runtime.state == "ACTIVE"  # the journal's state, not the stale beat's
    assert not g.runtime.feed_fresh and not g.runtime.token_ok
    assert "NOT RUNNING" in facts_text(g)


def test_commands_show_pending_until_acknowledged(journals: Journals, tmp_path: Path) -> None:
    path = copy_journal(journals.midday, tmp_path)
    store = SqliteOpsStore(path)
    cmd = new_command(CommandKind.EXIT_POSITION, "page", NOW, symbol="dlf")
    store.send(cmd)
    assert [(c.id, c.state, c.symbol) for c in _facts(path).commands] == [(cmd.id, "pending", "DLF")]
    assert ack_pending_stand_in(store, NOW + 1) == [cmd.id]
    store.close()
    assert [(c.state, c.acked_at) for c in _facts(path).commands] == [("done", NOW + 1)]


def test_log_lines_keep_warnings_and_errors_only(journals: Journals, tmp_path: Path) -> None:
    log = tmp_path / "journal.sqlite.log"
    lines = [
        {"time": "t1", "level": "INFO", "event": "tick"},
        {"time": "t2", "level": "WARNING", "event": "feed stale", "seconds": 31},
        "not json at all",
        {"time": "t3", "level": "ERROR", "event": "order rejected", "symbol": "DLF"},
        {"time": "t4", "level": "FATAL", "event": "trader stopped"},
    ]
    log.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    f = _facts(journals.midday, sources=Sources("journal.sqlite", log))
    assert [(x.at, x.level) for x in f.log_lines] == [("t2", "WARNING"), ("t3", "ERROR"), ("t4", "FATAL")]
    assert f.log_lines[0].message == "feed stale seconds=31"


def test_bias_record_inputs_only_for_the_same_session(journals: Journals, tmp_path: Path) -> None:
    path = copy_journal(journals.midday, tmp_path)
    opened = next(ev for ev in _events(path) if isinstance(ev, SessionOpened))
    record = {"session": "2023-05-16", "bias": "LONGS", "breadth_pct": 63.5, "index": {"close": 1.0, "sma": 0.9}}
    (tmp_path / "bias.json").write_text(json.dumps(record))
    f = _facts(path, sources=local_sources(str(path), Settings()))
    assert (f.bias.bias, f.bias.reason) == (opened.bias.value, opened.bias_reason)
    assert f.bias.record_source == "bias file bias.json"
    assert dict(f.bias.inputs) == {"bias": "LONGS", "breadth_pct": "63.5", "index.close": "1.0", "index.sma": "0.9"}
    (tmp_path / "bias.json").write_text(json.dumps({**record, "session": "2023-05-15"}))
    g = _facts(path, sources=local_sources(str(path), Settings()))
    assert g.bias.inputs == () and g.bias.record_source == ""


def test_reading_creates_nothing(journals: Journals, tmp_path: Path) -> None:
    path = copy_journal(journals.midday, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    f = _facts(path)
    assert f.positions
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert json.loads(f.to_json())["session"] == "2023-05-16"
