"""The core's own parts: the order state machine, the codec, the reducer's robustness, and
journals written by the code before the events were typed."""

from __future__ import annotations

import ast
import dataclasses
import gzip
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.core.codec import CodecError, decode, encode
from tfl.core.events import (
    AlertRaised,
    Allocated,
    CancelRequested,
    Event,
    Filled,
    Halted,
    LevelsSet,
    Marked,
    OrderPlaced,
    OrderReported,
    ReconcileDifference,
    ReduceOnly,
    SessionClosed,
    SessionOpened,
    SignalRejected,
    SlotClosed,
    StopConfirmed,
    StopMoved,
    StrayCorrected,
    Unrecognised,
)
from tfl.core.orders import TERMINAL, TRANSITIONS, Leg, Oddity, OrderStatus, OrderType, Report, transition
from tfl.core.state import AnomalyKind, CoreState, apply
from tfl.domain import Bias, ExitReason, HaltReason, RejectReason, Side
from tfl.settings import Settings

S, R = OrderStatus, Report
FIXTURES = Path(__file__).parent / "fixtures" / "journal_v1"


# ----------------------------------------------------------------------------- the state machine


@pytest.mark.parametrize(
    ("start", "fact", "end", "odd"),
    [
        (S.CANCELLED, R.PARTIAL_FILL, S.CANCELLED, Oddity.LATE_FILL),  # a fill after the cancel's ack
        (S.CANCELLED, R.FULL_FILL, S.FILLED, Oddity.LATE_FILL),
        (S.EXPIRED, R.PARTIAL_FILL, S.EXPIRED, Oddity.LATE_FILL),  # a fill reported after expiry
        (S.EXPIRED, R.FULL_FILL, S.FILLED, Oddity.LATE_FILL),
        (S.PENDING_CANCEL, R.PARTIAL_FILL, S.PENDING_CANCEL, None),  # fills while a cancel is on its way
        (S.PENDING_CANCEL, R.FULL_FILL, S.FILLED, None),
        (S.PENDING_CANCEL, R.CANCELLED, S.CANCELLED, None),
        (S.UNKNOWN, R.FULL_FILL, S.FILLED, None),  # an ambiguous answer resolved by the broker's report
        (S.INTENT, R.PARTIAL_FILL, S.PARTIALLY_FILLED, None),
        (S.FILLED, R.ACCEPTED, S.FILLED, Oddity.STALE),  # out of order: an old status after a newer one
        (S.FILLED, R.CANCELLED, S.FILLED, Oddity.STALE),  # a cancel that lost the race
        (S.PARTIALLY_FILLED, R.ACCEPTED, S.PARTIALLY_FILLED, Oddity.STALE),
        (S.FILLED, R.REJECTED, S.FILLED, Oddity.CONTRADICTION),
        (S.FILLED, R.PARTIAL_FILL, S.FILLED, Oddity.CONTRADICTION),  # more fills than the order
        (S.REJECTED, R.FULL_FILL, S.REJECTED, Oddity.CONTRADICTION),
    ],
)
def test_the_state_machine_admits_what_brokers_do(start: S, fact: R, end: S, odd: Oddity | None) -> None:
    assert transition(start, fact) == (end, odd)


@given(st.sampled_from(list(S)), st.sampled_from(list(R)))
def test_no_fact_raises_and_terminal_states_never_reopen(start: S, fact: R) -> None:
    end, odd = transition(start, fact)
    assert isinstance(end, S)
    if start in TERMINAL:
        assert end in TERMINAL  # a late fill is booked, but a dead order is never working again
    if (start, fact) in TRANSITIONS:
        assert odd in (None, Oddity.LATE_FILL)


# ----------------------------------------------------------------------------- the codec

_num = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
_text = st.text(min_size=1, max_size=12)
_ts = st.integers(0, 2**40)
_side = st.sampled_from(list(Side))
_reason = st.sampled_from(list(RejectReason))
_marks = st.lists(st.tuples(_text, _num), max_size=3, unique_by=lambda x: x[0]).map(lambda x: tuple(sorted(x)))
EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        SessionOpened,
        _text,
        st.sampled_from(list(Bias)),
        st.text(max_size=20),
        st.floats(1, 1e9),
        _marks,
        st.none() | st.just(Settings()),
        st.none() | st.decimals(0, 10**9, places=4, allow_nan=False, allow_infinity=False).map(Decimal),
    ),
    st.builds(
        Allocated,
        _text,
        _text,
        st.sampled_from(list(Side)),
        _num,
        _num,
        st.integers(0, 10**6),
        _num,
        _num,
        _num,
        _ts,
        _ts,
        st.none() | st.sampled_from(list(RejectReason)),
    ),
    st.builds(
        SignalRejected, _ts, _text, st.sampled_from(list(Side)), st.sampled_from(list(RejectReason)), _num, _text
    ),
    st.builds(
        OrderPlaced,
        _text,
        st.sampled_from(list(Leg)),
        _text,
        st.sampled_from([1, -1]),
        st.sampled_from(list(OrderType)),
        st.integers(1, 10**6),
        st.none() | _num,
        st.none() | _num,
        st.none() | _text,
        _ts,
        st.none() | st.sampled_from(list(ExitReason)),
        st.none() | _ts,
    ),
    st.builds(CancelRequested, _text, st.integers(1, 99), st.text(max_size=20)),
    st.builds(StopMoved, _text, st.integers(1, 99), _num),
    st.builds(StopConfirmed, _text, st.integers(1, 99)),
    st.builds(
        OrderReported,
        _text,
        st.sampled_from([r for r in R if r not in (R.PARTIAL_FILL, R.FULL_FILL)]),
        st.text(max_size=8),
        st.text(max_size=20),
        st.integers(0, 99),
    ),
    st.builds(
        Filled, _text, _text, st.integers(1, 10**6), _num, _ts, _ts, st.text(max_size=8), st.sampled_from([0, 1, -1])
    ),
    st.builds(LevelsSet, _text, _num, _num, _num, _ts),
    st.builds(
        Marked,
        st.lists(st.tuples(_text, _num), max_size=2, unique_by=lambda x: x[0]).map(lambda x: tuple(sorted(x))),
        _ts,
    ),
    st.builds(SlotClosed, _ts, _num),
    st.builds(Halted, st.sampled_from(list(HaltReason))),
    st.builds(ReduceOnly, _text),
    st.builds(SessionClosed, _text, st.booleans(), _num, st.integers(0, 999)),
    st.builds(ReconcileDifference, _text, _ts),
    st.builds(StrayCorrected, _text, st.integers(-999, 999), _text),
    st.builds(AlertRaised, st.sampled_from(["ERROR", "CRITICAL"]), _text, _text, _text),
    st.builds(Unrecognised, _text, _text),
)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_every_event_survives_the_journal(ev: Event) -> None:
    import json

    kind, payload = encode(ev)
    stored = json.loads(json.dumps(payload))  # what SQLite and DynamoDB keep
    session = ev.session if isinstance(ev, SessionOpened | SessionClosed) else "2024-03-06"
    back = decode(kind, session, stored)
    if isinstance(ev, Filled) and not ev.symbol:
        ev = dataclasses.replace(ev, side=0)  # without a symbol the side is not stored (our own orders)
    assert back == ev


@pytest.mark.parametrize(
    ("kind", "payload", "names"),
    [
        ("FILL", {"fill_id": "a", "cid": "b", "qty": "ten", "price": 1.0, "ts": 1, "slot": 1}, "qty"),
        ("ALLOC", {"cid": "a"}, "symbol"),
        ("ORDER", {"cid": "a", "state": "LOST"}, "state"),
        ("LEVELS", {"symbol": "X", "stop": None, "best": 1, "mark": 1}, "stop"),
    ],
)
def test_a_damaged_payload_is_an_error_that_names_the_field(kind: str, payload: dict, names: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(CodecError, match=names):
        decode(kind, "2024-03-06", payload)


# ----------------------------------------------------------------------------- the reducer


def _order(cid: str, leg: Leg = Leg.ENTRY, qty: int = 10) -> OrderPlaced:
    return OrderPlaced(cid, leg, "X", 1 if leg is Leg.ENTRY else -1, OrderType.STOP, qty, 100.0, None, None, 1000)


def _alloc(cid: str, qty: int = 10) -> Allocated:
    return Allocated(cid, "X", Side.LONG, 100.0, 98.0, qty, 100.05, 19.5, 80.0, 1000, 1900, None)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(
                Filled,
                st.sampled_from(["f1", "f2", "f3", "f4"]),
                st.sampled_from(["E1", "S1", "NOTOURS"]),
                st.integers(1, 25),
                st.floats(90, 110),
                st.just(2000),
                st.just(1900),
                st.just("X"),
                st.just(1),
            ),
            st.builds(
                OrderReported,
                st.sampled_from(["E1", "S1", "NOTOURS"]),
                st.sampled_from(list(R)),
            ),
            st.builds(CancelRequested, st.sampled_from(["E1", "S1"]), st.integers(1, 5), st.just("")),
        ),
        max_size=25,
    )
)
def test_the_reducer_never_raises_on_broker_facts(facts: list[Event]) -> None:
    """Any order of fills, duplicates, over-fills, late and contradictory reports: applied as far
    as they are true, odd ones recorded; the state stays usable."""
    state = CoreState.fresh(Settings())
    for ev in (
        SessionOpened("2024-03-06", Bias.LONGS, "", 1e6, (), None),
        _alloc("E1"),
        _order("E1"),
        _order("S1", Leg.STOP),
    ):
        apply(state, ev)
    for ev in facts:
        apply(state, ev)
    for rec in state.orders.values():
        assert rec.filled <= rec.request.qty  # an order never books more than it asked for
        assert (rec.request.client_id in state.working) == rec.open
    state.equity()  # still computes


def test_an_over_fill_is_booked_as_stray_shares_not_to_the_order() -> None:
    state = CoreState.fresh(Settings())
    for ev in (SessionOpened("2024-03-06", Bias.LONGS, "", 1e6, (), None), _alloc("E1"), _order("E1")):
        apply(state, ev)
    apply(state, Filled("f1", "E1", 14, 100.05, 2000, 1900))
    assert state.orders["E1"].filled == 10 and state.orders["E1"].status is S.FILLED
    assert state.book.positions["X"].qty == 10
    assert state.book.stray == {"X": (4, 100.05)}
    assert [a.kind for a in state.anomalies] == [AnomalyKind.OVERFILL]
    cash = state.book.cash
    apply(state, StrayCorrected("X", 0, "the broker does not hold them"))  # a phantom: no P&L invented
    assert state.book.stray == {} and state.book.cash == cash + Decimal(4 * 100.05)


# ----------------------------------------------------------------------------- old journals


@pytest.mark.parametrize("name", ["loss_limit", "halted"])
def test_journals_written_before_the_events_were_typed_still_load(name: str, tmp_path: Path) -> None:
    """Two journals made by the code of 2026-12-01 (replayed sessions of a synthetic market,
    one with the daily loss limit tripping five times, one halted by the kill switch): they
    load unchanged and give that code's exports byte for byte."""
    from tfl.cli.main import main

    path = tmp_path / f"{name}.sqlite"
    with gzip.open(FIXTURES / f"{name}.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    before = path.read_bytes()
    assert (
        main(["journal", "export", str(path), "--out", str(tmp_path / "t.csv"), "--orders", str(tmp_path / "o.csv")])
        == 0
    )
    assert (tmp_path / "t.csv").read_text() == (FIXTURES / f"{name}.trades.csv").read_text()
    assert (tmp_path / "o.csv").read_text() == (FIXTURES / f"{name}.orders.csv").read_text()
    assert path.read_bytes() == before  # reading wrote nothing


def test_an_old_journal_reports_the_same_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tfl.cli.main import main

    path = tmp_path / "j.sqlite"
    with gzip.open(FIXTURES / "loss_limit.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    assert main(["report", "--journal", str(path), "--date", "2023-02-21"]) == 0
    assert capsys.readouterr().out == (FIXTURES / "loss_limit.report-2023-02-21.txt").read_text()


def test_an_old_journal_where_a_fill_followed_a_cancel_loads(tmp_path: Path) -> None:
    """The journal the old code left when an entry was cancelled and a partial fill arrived
    after: ORDER CANCELLED, FILL, ORDER PARTIALLY_FILLED. The old reducer raised on it at every
    restart; now the fill is booked and the late fill recorded."""
    from tfl.live.journal import Record, SqliteJournal
    from tfl.live.report import rebuild

    j = SqliteJournal(tmp_path / "j.sqlite")
    sid = "2024-03-06"
    base = {"symbol": "X", "side": 1, "type": "STOP", "qty": 10, "trigger": 100.0, "limit": None, "oco": None}
    for i, (kind, data) in enumerate(
        [
            ("SESSION_OPEN", {"bias": "LONGS", "bias_reason": "", "capital": 1e6, "marks": {}}),
            ("ALLOC", {**_alloc_payload("E1"), "reject": ""}),
            ("INTENT", {**base, "cid": "E1", "leg": "E", "setup_ts": 1000}),
            ("ORDER", {"cid": "E1", "state": "ACCEPTED", "broker_id": "B1"}),
            ("ORDER", {"cid": "E1", "state": "CANCELLED"}),
            ("FILL", {"fill_id": "B1-5", "cid": "E1", "qty": 5, "price": 100.05, "ts": 2100, "slot": 2000}),
            ("ORDER", {"cid": "E1", "state": "PARTIALLY_FILLED"}),
        ]
    ):
        j.append(Record(f"{sid}:k{i}", sid, 2000 + i, kind, data))
    state = rebuild(j)
    j.close()
    assert state.book.positions["X"].qty == 5
    assert state.orders["E1"].status is S.CANCELLED and state.orders["E1"].filled == 5
    assert [a.kind for a in state.anomalies] == [AnomalyKind.LATE_FILL]


def _alloc_payload(cid: str) -> dict:  # type: ignore[type-arg]
    _, payload = encode(_alloc(cid))
    return payload


# ----------------------------------------------------------------------------- defined once


SRC = Path(__file__).resolve().parents[1] / "src" / "tfl"
# The bar length (900 s), the IST offset and zone, and the session's open (09:15 = 555 minutes).
PATTERNS = r"\b900\b|\b555\b|hours=5, minutes=30|Asia/Kolkata|\b19_?800\b|9 \* 60 \+ 15"


def test_the_bar_length_and_the_ist_zone_are_defined_once() -> None:
    """``BAR_SECONDS = 900`` and the +05:30 zone live in tfl.timeutil and nowhere else."""
    hits = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if path.name == "timeutil.py":
            continue
        for m in re.finditer(PATTERNS, text):
            hits.append(f"{path.relative_to(SRC)}:{text[: m.start()].count(chr(10)) + 1}: {m.group()}")
    assert hits == []


def test_no_isinstance_or_hasattr_on_broker_or_feed_types() -> None:
    """Worlds differ by the objects passed in (protocols), never by type checks on them."""
    banned = {"PaperBroker", "FyersBroker", "ReplayFeed", "FyersFeed", "ListFeed", "SimExchange"}
    hits = []
    for path in (SRC / "live").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "hasattr")
            ):
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                if node.func.id == "hasattr" or names & banned:  # type: ignore[attr-defined]
                    hits.append(f"{path.name}:{node.lineno}")
    assert hits == []
