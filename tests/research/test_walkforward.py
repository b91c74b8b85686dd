"""Walk-forward building blocks: periods, folds (embargo, no look-ahead), purging, the choice
on a train window, the stitched out-of-sample curve, degradation and parameter stability.

Expected values are worked by hand in the comments (calendar of 2024: 1 January is a Monday).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tfl.costs import Charges
from tfl.domain import ExitReason, Side
from tfl.indicators import vectorised as V
from tfl.research.walkforward import (
    Fold,
    Period,
    WalkForwardError,
    choose_params,
    degradation,
    gap_for,
    make_folds,
    param_stability,
    parse_period,
    purge_trades,
    stitch_oos,
)
from tfl.settings import Settings
from tfl.strategy.book import Trade
from tfl.timeutil import epoch_of_ist

D = dt.date


def weekdays(start: dt.date, n: int) -> list[dt.date]:
    out: list[dt.date] = []
    d = start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


# 12 weeks of weekday sessions: Mon 2024-01-01 .. Fri 2024-03-22.
SIXTY = weekdays(D(2024, 1, 1), 60)


# --------------------------------------------------------------------------------------------
# Periods


def test_parse_period() -> None:
    assert parse_period("24m") == Period(months=24)
    assert parse_period("6m") == Period(months=6)
    assert parse_period("1y") == Period(months=12)
    assert parse_period(" 90d ") == Period(days=90)
    assert parse_period("2w") == Period(days=14)
    for bad in ("", "m", "6", "6 months", "-3m", "1.5y", "0d", "3h", "6M"):
        with pytest.raises(WalkForwardError, match=f"'{bad}'"):
            parse_period(bad)


def test_calendar_months_clip_to_the_month_end() -> None:
    one = Period(months=1)
    assert one.after(D(2024, 1, 31)) == D(2024, 2, 29)  # leap year
    assert one.after(D(2023, 1, 31)) == D(2023, 2, 28)
    assert Period(months=12).after(D(2024, 2, 29)) == D(2025, 2, 28)
    assert Period(months=2).after(D(2024, 11, 30)) == D(2025, 1, 30)
    assert one.before(D(2024, 3, 31)) == D(2024, 2, 29)
    assert Period(days=90).after(D(2024, 1, 1)) == D(2024, 3, 31)
    assert Period(months=1, days=1).after(D(2024, 1, 31)) == D(2024, 3, 1)


# --------------------------------------------------------------------------------------------
# Folds by hand


def test_rolling_folds_by_hand() -> None:
    folds = make_folds(SIXTY, parse_period("28d"), parse_period("14d"), mode="rolling", gap_sessions=3)

    # Fold 0: train [1 Jan, 29 Jan) = 20 sessions to Fri 26 Jan; gap Mon 29 .. Wed 31 Jan;
    # test [Thu 1 Feb, 15 Feb) = 10 sessions. Then the test windows tile by 14 days from 1 Feb;
    # each train window ends 3 sessions before its test window and spans 28 days back.
    def days(month: int, *ds: int) -> tuple[dt.date, ...]:
        return tuple(D(2024, month, d) for d in ds)

    expected = [
        Fold(0, D(2024, 1, 1), D(2024, 1, 26), D(2024, 2, 1), D(2024, 2, 14), days(1, 29, 30, 31), 20, 10),
        Fold(1, D(2024, 1, 15), D(2024, 2, 9), D(2024, 2, 15), D(2024, 2, 28), days(2, 12, 13, 14), 20, 10),
        Fold(2, D(2024, 1, 29), D(2024, 2, 23), D(2024, 2, 29), D(2024, 3, 13), days(2, 26, 27, 28), 20, 10),
        # [14 Mar, 28 Mar) but the data end on Fri 22 Mar: 9 of its 14 days, kept as partial.
        Fold(3, D(2024, 2, 12), D(2024, 3, 8), D(2024, 3, 14), D(2024, 3, 22), days(3, 11, 12, 13), 20, 7, True),
    ]
    assert folds == expected
    assert folds[3].as_row() == {
        "fold": 3, "train_start": "2024-02-12", "train_end": "2024-03-08", "gap_sessions": 3,
        "test_start": "2024-03-14", "test_end": "2024-03-22", "train_sessions": 20, "test_sessions": 7,
        "partial": True,
    }  # fmt: skip


def test_expanding_folds_keep_the_first_session() -> None:
    rolling = make_folds(SIXTY, Period(days=28), Period(days=14), mode="rolling", gap_sessions=3)
    expanding = make_folds(SIXTY, Period(days=28), Period(days=14), mode="expanding", gap_sessions=3)
    assert [f.train_start for f in expanding] == [D(2024, 1, 1)] * 4
    assert [f.train_sessions for f in expanding] == [20, 30, 40, 50]
    # Everything but the train start is the same as rolling.
    for r, e in zip(rolling, expanding, strict=True):
        assert (r.train_end, r.gap, r.test_start, r.test_end) == (e.train_end, e.gap, e.test_start, e.test_end)


def test_last_partial_test_window_kept_from_half() -> None:
    # The last window is [14 Mar, 28 Mar): 14 calendar days.
    to_wed = [d for d in SIXTY if d <= D(2024, 3, 20)]  # data to 20 Mar: 7 of 14 days -> kept
    assert make_folds(to_wed, Period(days=28), Period(days=14), gap_sessions=3)[-1].test_end == D(2024, 3, 20)
    to_tue = [d for d in SIXTY if d <= D(2024, 3, 19)]  # 6 of 14 days -> dropped
    folds = make_folds(to_tue, Period(days=28), Period(days=14), gap_sessions=3)
    assert len(folds) == 3 and folds[-1].test_end == D(2024, 3, 13) and not folds[-1].partial
    to_27 = weekdays(D(2024, 1, 1), 63)  # data to Wed 27 Mar: the window is complete, not partial
    last = make_folds(to_27, Period(days=28), Period(days=14), gap_sessions=3)[-1]
    assert (last.test_end, last.test_sessions, last.partial) == (D(2024, 3, 27), 10, False)


def test_gap_zero_and_a_longer_step() -> None:
    folds = make_folds(SIXTY, Period(days=28), Period(days=7), gap_sessions=0, step=Period(days=14))
    # No gap: test starts Mon 29 Jan, the session after the train window. Test windows of a
    # week every two weeks: 29 Jan, 12 Feb, 26 Feb, 11 Mar.
    assert [f.test_start for f in folds] == [D(2024, 1, 29), D(2024, 2, 12), D(2024, 2, 26), D(2024, 3, 11)]
    assert all(f.test_sessions == 5 and f.gap == () for f in folds)
    assert [f.train_end for f in folds] == [D(2024, 1, 26), D(2024, 2, 9), D(2024, 2, 23), D(2024, 3, 8)]


def test_a_hole_in_the_data_gives_no_empty_fold() -> None:
    holed = [d for d in SIXTY if not D(2024, 2, 15) <= d <= D(2024, 2, 28)]  # fold 1's test window
    folds = make_folds(holed, Period(days=28), Period(days=14), gap_sessions=3)
    assert [f.test_start for f in folds] == [D(2024, 2, 1), D(2024, 2, 29), D(2024, 3, 14)]
    assert [f.index for f in folds] == [0, 1, 2]
    # The window [15 Feb, 29 Feb) holds no session: no fold. The next test window starts 29 Feb
    # and its train window ends 3 sessions earlier, across the hole: Fri 9 Feb.
    assert folds[1].train_end == D(2024, 2, 9)
    assert folds[1].gap == (D(2024, 2, 12), D(2024, 2, 13), D(2024, 2, 14))


def test_too_little_data_names_the_numbers() -> None:
    with pytest.raises(WalkForwardError, match=r"23 sessions .* 20 sessions .* gap of 3 sessions leaves 0"):
        make_folds(SIXTY[:23], Period(days=28), Period(days=14), gap_sessions=3)
    # 25 sessions: the test window from 1 Feb has 2 of its 14 days.
    with pytest.raises(WalkForwardError, match=r"25 sessions .* from 2024-02-01 .* less than 50%"):
        make_folds(SIXTY[:25], Period(days=28), Period(days=14), gap_sessions=3)


def test_bad_fold_arguments() -> None:
    with pytest.raises(WalkForwardError, match="strictly increasing"):
        make_folds([D(2024, 1, 2), D(2024, 1, 2)], Period(days=1), Period(days=1), gap_sessions=0)
    with pytest.raises(WalkForwardError, match="gap"):
        make_folds(SIXTY, Period(days=28), Period(days=14), gap_sessions=-1)
    with pytest.raises(WalkForwardError, match="overlap"):
        make_folds(SIXTY, Period(days=28), Period(days=14), gap_sessions=3, step=Period(days=7))
    with pytest.raises(WalkForwardError, match="no sessions"):
        make_folds([], Period(days=28), Period(days=14), gap_sessions=3)


# --------------------------------------------------------------------------------------------
# Folds: properties


periods = st.one_of(
    st.builds(lambda n: Period(days=n), st.integers(1, 120)),
    st.builds(lambda n: Period(months=n), st.integers(1, 8)),
)


@settings(max_examples=300, deadline=None)
@given(
    start=st.dates(D(2000, 1, 1), D(2030, 12, 31)),
    n=st.integers(1, 800),
    weekdays_only=st.booleans(),
    holes=st.lists(st.tuples(st.integers(0, 799), st.integers(1, 90)), max_size=4),
    train=periods,
    test=periods,
    gap=st.integers(0, 40),
    mode=st.sampled_from(["rolling", "expanding"]),
    step=st.one_of(st.none(), periods),
)
def test_folds_never_look_ahead(
    start: dt.date,
    n: int,
    weekdays_only: bool,
    holes: list[tuple[int, int]],
    train: Period,
    test: Period,
    gap: int,
    mode: str,
    step: Period | None,
) -> None:
    # n sessions, every day or every weekday, with a few holes (closures, missing data).
    extra = dict(holes)
    sessions = [start]
    while len(sessions) < n:
        d = sessions[-1] + dt.timedelta(days=1 + extra.get(len(sessions), 0))
        while weekdays_only and d.weekday() >= 5:
            d += dt.timedelta(days=1)
        sessions.append(d)
    try:
        folds = make_folds(sessions, train, test, mode=mode, gap_sessions=gap, step=step)  # type: ignore[arg-type]
    except WalkForwardError as exc:
        assert "too few for one fold" in str(exc) or (step is not None and "would overlap" in str(exc))
        event("refused")
        return
    event(f"folds: {min(len(folds), 5)}{'+' if len(folds) > 5 else ''}")
    pos = {d: i for i, d in enumerate(sessions)}
    prev: Fold | None = None
    for k, f in enumerate(folds):
        assert f.index == k
        for d in (f.train_start, f.train_end, f.test_start, f.test_end, *f.gap):
            assert d in pos  # every date is a session
        # The train window's choice uses data up to train_end; the test window starts after
        # train_end and exactly `gap` embargoed sessions.
        assert f.train_start <= f.train_end < f.test_start <= f.test_end
        assert pos[f.test_start] - pos[f.train_end] == gap + 1
        assert f.gap == tuple(sessions[pos[f.train_end] + 1 : pos[f.test_start]])
        assert all(f.train_end < g < f.test_start for g in f.gap)
        assert f.train_sessions == pos[f.train_end] - pos[f.train_start] + 1
        assert f.test_sessions == pos[f.test_end] - pos[f.test_start] + 1
        # The calendar length of a window is never exceeded (rolling train windows and all tests).
        assert mode == "expanding" or (f.train_end - f.train_start).days < train.months * 31 + train.days
        assert (f.test_end - f.test_start).days < test.months * 31 + test.days
        if mode == "expanding" or k == 0:
            assert f.train_start == sessions[0]
        elif train.months == 0:  # rolling, in days: exactly the sessions of the last `days` days
            assert f.train_start == min(d for d in sessions if d > f.train_end - dt.timedelta(days=train.days))
        if prev is not None:
            # In order, without overlap, and with the default step without hole: the test
            # windows are consecutive sessions.
            assert prev.test_end < f.test_start
            assert step is not None or pos[f.test_start] == pos[prev.test_end] + 1
            assert prev.train_end < f.train_end
        assert not f.partial or k == len(folds) - 1  # only the last may be partial
        prev = f
    # The first train window is the calendar period `train` from the first session.
    assert folds[0].train_end == max(d for d in sessions if d < train.after(sessions[0]))


# --------------------------------------------------------------------------------------------
# Embargo


def test_gap_is_the_longest_look_back() -> None:
    assert gap_for(Settings()) == 100  # bias.short_index_sma
    s = Settings().replace(
        {"bias.short_index_sma": 20, "bias.long_index_sma": 20, "bias.breadth_sma": 20, "indicators.rsi_period": 14}
    )
    assert gap_for(s) == 20
    assert gap_for(s.replace({"bias.breadth_sma": 40})) == 40
    assert gap_for(s.replace({"bias.long_index_sma": 41})) == 41
    assert gap_for(s.replace({"indicators.rsi_period": 30})) == 31  # RSI(p) reads p + 1 closes
    # 15-minute look-backs in sessions of 25 bars: MVWAP(500) spans 20 sessions, ATR(99) 4.
    small = s.replace(
        {"bias.short_index_sma": 5, "bias.long_index_sma": 5, "bias.breadth_sma": 5, "indicators.rsi_period": 2}
    )
    assert gap_for(small) == 5
    assert gap_for(small.replace({"indicators.mvwap_period": 500})) == 20
    assert gap_for(small.replace({"indicators.atr_period": 199})) == 8
    # A sweep: the longest over its cells.
    assert gap_for([s, s.replace({"bias.breadth_sma": 77}), small]) == 77
    with pytest.raises(WalkForwardError, match="no settings"):
        gap_for([])


def test_embargo_keeps_train_closes_out_of_the_first_test_decision() -> None:
    """The bias on a session reads SMA(n) of the n previous closes. With a gap of gap_for(),
    changing every close of the train window leaves what the test window's first session reads
    unchanged; one session less of gap and it changes."""
    n = 100
    cfg = Settings()
    assert gap_for(cfg) == n
    sessions = weekdays(D(2020, 1, 1), 600)
    rng = np.random.default_rng(7)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(sessions))))
    for gap, unchanged in ((gap_for(cfg), True), (gap_for(cfg) - 1, False)):
        f = make_folds(sessions, Period(months=12), Period(months=3), gap_sessions=gap)[0]
        i_test, i_end = sessions.index(f.test_start), sessions.index(f.train_end)
        moved = closes.copy()
        moved[: i_end + 1] *= 1.5  # anything at all in the train window
        read = V.sma(closes, n)[i_test - 1]  # the previous session's SMA, as the bias reads it
        assert bool(V.sma(moved, n)[i_test - 1] == read) is unchanged


# --------------------------------------------------------------------------------------------
# Purging


def trade(entry: tuple[dt.date, int], exit_: tuple[dt.date, int], symbol: str = "X") -> Trade:
    """A trade entered and exited at (IST date, minute after IST midnight)."""
    return Trade(
        symbol=symbol,
        side=Side.LONG,
        setup_ts=epoch_of_ist(entry[0], entry[1]) - 900,
        entry_ts=epoch_of_ist(*entry),
        entry_price=100.0,
        qty=10,
        exit_ts=epoch_of_ist(*exit_),
        exit_price=101.0,
        exit_reason=ExitReason.EOD,
        initial_stop=99.0,
        r=1.0,
        rsi=80.0,
        entry_charges=Charges(),
        exit_charges=Charges(),
    )


def test_purging_drops_trades_straddling_each_boundary() -> None:
    fold = make_folds(SIXTY, Period(days=28), Period(days=14), gap_sessions=3)[1]
    # train 15 Jan .. 9 Feb, gap 12..14 Feb, test 15 Feb .. 28 Feb
    m10, m15 = 10 * 60, 15 * 60
    inside_train = trade((D(2024, 1, 15), m10), (D(2024, 1, 15), m15), "A")  # on the first train session
    last_train = trade((D(2024, 2, 9), m10), (D(2024, 2, 9), m15), "B")
    over_train_start = trade((D(2024, 1, 12), m15), (D(2024, 1, 15), m10), "C")
    over_train_end = trade((D(2024, 2, 9), m15), (D(2024, 2, 12), m10), "D")  # into the gap
    in_gap = trade((D(2024, 2, 13), m10), (D(2024, 2, 13), m15), "E")
    over_test_start = trade((D(2024, 2, 14), m15), (D(2024, 2, 15), m10), "F")
    inside_test = trade((D(2024, 2, 15), m10), (D(2024, 2, 28), m15), "G")  # first to last test session
    over_test_end = trade((D(2024, 2, 28), m15), (D(2024, 2, 29), m10), "H")
    # IST, not UTC: 00:20 IST on 29 Feb is 18:50 UTC on 28 Feb.
    past_midnight = trade((D(2024, 2, 28), m15), (D(2024, 2, 29), 20), "I")
    # 00:10 IST on 15 Feb is 18:40 UTC on 14 Feb: an entry inside the test window.
    early_entry = trade((D(2024, 2, 15), 10), (D(2024, 2, 15), m15), "J")
    everything = [
        inside_train, last_train, over_train_start, over_train_end, in_gap,
        over_test_start, inside_test, over_test_end, past_midnight, early_entry,
    ]  # fmt: skip

    tr = purge_trades(everything, fold.train_start, fold.train_end)
    assert [t.symbol for t in tr.kept] == ["A", "B"]
    assert [t.symbol for t in tr.dropped] == ["C", "D"] and tr.n_dropped == 2

    te = purge_trades(everything, fold.test_start, fold.test_end)
    assert [t.symbol for t in te.kept] == ["G", "J"]
    assert [t.symbol for t in te.dropped] == ["F", "H", "I"]

    assert purge_trades([], fold.test_start, fold.test_end).n_dropped == 0
    with pytest.raises(WalkForwardError, match="after its end"):
        purge_trades(everything, fold.test_end, fold.test_start)
    with pytest.raises(WalkForwardError, match="before it enters"):
        purge_trades([trade((D(2024, 2, 15), m15), (D(2024, 2, 15), m10))], fold.test_start, fold.test_end)


# --------------------------------------------------------------------------------------------
# The choice on a train window


def grid_5x5(spike_at: tuple[int, int], plateau: set[tuple[int, int]]) -> tuple[list[dict[str, object]], list[float]]:
    points: list[dict[str, object]] = []
    scores: list[float] = []
    for a in (1, 2, 3, 4, 5):
        for b in (10, 20, 30, 40, 50):
            points.append({"a": a, "b": b})
            scores.append(10.0 if (a, b) == spike_at else 6.0 if (a, b) in plateau else 0.0)
    return points, scores


PLATEAU = {(a, b) for a in (4, 5) for b in (30, 40, 50)}


def test_a_lone_spike_wins_best_and_loses_to_the_plateau() -> None:
    points, scores = grid_5x5((2, 20), PLATEAU)
    best = choose_params(points, scores, method="best")
    assert best.params == {"a": 2, "b": 20} and best.score == 10.0 and best.neighbourhood == "none"
    plateau = choose_params(points, scores)  # the default
    # Spike: (10 + 4 x 0) / 5 = 2. (4, 40): (6 + 0 + 6 + 6 + 6) / 5 = 4.8. (5, 40): its three
    # neighbours (4, 40), (5, 30), (5, 50) all 6: 6. (5, 30) has (4, 30), (5, 40) at 6 and
    # (5, 20) at 0: 18 / 4 = 4.5.
    assert plateau.method == "plateau" and plateau.neighbourhood == "grid"
    assert plateau.params == {"a": 5, "b": 40}
    assert plateau.smoothed == pytest.approx(6.0) and plateau.score == 6.0
    idx = {(p["a"], p["b"]): i for i, p in enumerate(points)}
    assert plateau.neighbours == tuple(sorted((idx[4, 40], idx[5, 30], idx[5, 50])))


def test_plateau_ignores_missing_cells_and_nan_neighbours() -> None:
    points, scores = grid_5x5((2, 20), PLATEAU)
    keep = [i for i, p in enumerate(points) if (p["a"], p["b"]) != (5, 50)]  # a rejected combination
    pts, sc = [points[i] for i in keep], [scores[i] for i in keep]
    c = choose_params(pts, sc)
    assert c.params == {"a": 5, "b": 40}
    assert sorted((pts[j]["a"], pts[j]["b"]) for j in c.neighbours) == [(4, 40), (5, 30)]
    assert c.smoothed == pytest.approx(6.0)
    # The spike's neighbours have no score (e.g. no trades): they count as missing, so the spike
    # averages only itself -- and a NaN cell is never chosen.
    sc2 = [
        math.nan if (p["a"], p["b"]) in {(1, 20), (3, 20), (2, 10), (2, 30)} else s
        for p, s in zip(points, scores, strict=True)
    ]
    assert choose_params(points, sc2).params == {"a": 2, "b": 20}
    sc3 = [math.nan if (p["a"], p["b"]) == (2, 20) else s for p, s in zip(points, scores, strict=True)]
    assert choose_params(points, sc3, method="best").params == {"a": 4, "b": 30}  # first of the 6s


def test_ties_are_broken_by_own_score_then_order() -> None:
    pts: list[dict[str, object]] = [{"x": v} for v in (1, 2, 3, 4)]
    assert choose_params(pts, [1.0, 3.0, 3.0, 0.0], method="best").index == 1
    # NaN never wins, wherever it stands (NaN compares false both ways).
    assert choose_params(pts, [math.nan, 1.0, 2.0, 0.0], method="best").index == 2
    assert choose_params(pts, [math.nan, 1.0, 2.0, 0.0]).index == 1  # averages: -, 1.5, 1, 1
    # Plateau averages: 2, 2, 3, 3 -> tie between x=3 (own 2) and x=4 (own 4): x=4.
    c = choose_params(pts, [1.0, 3.0, 2.0, 4.0])
    assert (c.index, c.smoothed) == (3, 3.0)
    # Averages 1, 4/3, 4/3, 1 with equal own scores: the first.
    assert choose_params(pts, [0.0, 2.0, 2.0, 0.0]).index == 1
    # Order of the grid values in the points does not matter: steps are by value.
    shuffled: list[dict[str, object]] = [{"x": v} for v in (3, 1, 4, 2)]
    assert choose_params(shuffled, [2.0, 1.0, 4.0, 3.0]).params == {"x": 4}


def test_random_points_use_nearest_neighbours() -> None:
    # Normalised (a / 8, b): P0 (0, 0), P1 (.125, 0), P2 (1, 1), P3 (.875, 1), P4 (.5, .5)
    # (exact in binary). They fill 5 of 5 x 3 cells: not a grid. With k = 1: P0<->P1, P2<->P3,
    # and P4's nearest are P1 and P3 at equal distance: the lower index, P1.
    pts: list[dict[str, object]] = [
        {"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 0.0}, {"a": 8.0, "b": 1.0}, {"a": 7.0, "b": 1.0}, {"a": 4.0, "b": 0.5},
    ]  # fmt: skip
    scores = [2.0, 2.0, 5.0, -4.0, 0.0]
    assert choose_params(pts, scores, method="best").index == 2
    c = choose_params(pts, scores, k=1)
    # Averages: 2, 2, .5, .5, 1: P0 and P1 tie on average and own score -> P0.
    assert (c.neighbourhood, c.index, c.neighbours, c.smoothed) == ("nearest", 0, (1,), 2.0)
    c4 = choose_params(pts, [0.0, 2.0, 0.0, 0.0, 3.0], k=1)
    # P4 (3) with P1 (2): 2.5; P1 with P0: 1.
    assert (c4.index, c4.neighbours, c4.smoothed) == (4, (1,), 2.5)
    # Forced "grid": P0 and P1 differ by one step of a (0 and 1 are adjacent values), so do P2
    # and P3 (7 and 8); P4 has no grid neighbour. Averages 2, 2, .5, .5, 0.
    g = choose_params(pts, scores, neighbourhood="grid")
    assert (g.neighbourhood, g.index, g.neighbours) == ("grid", 0, (1,))


def test_categorical_parameters_are_one_step_apart() -> None:
    pts: list[dict[str, object]] = [{"alloc": a, "n": n} for a in ("reserve", "bar", "x") for n in (1, 2)]
    # (reserve,1) neighbours: (bar,1), (x,1), (reserve,2).
    c = choose_params(pts, [9.0, 0.0, 3.0, 0.0, 3.0, 3.0])
    # Averages: (reserve,1) (9+0+3+3)/4 = 3.75; (reserve,2) (0+9+0+3)/4 = 3; (bar,1) (3+0+9+3)/4
    # = 3.75; (bar,2) (0+3+0+3)/4 = 1.5; (x,1) (3+3+9+3)/4 = 4.5; (x,2) (3+3+0+0)/4 = 1.5.
    assert c.params == {"alloc": "x", "n": 1} and c.smoothed == pytest.approx(4.5)


def brute_force_plateau(points: list[dict[str, object]], scores: list[float], kind: str, k: int) -> list[float]:
    """Each point's plateau average by the definitions, pair by pair, without the module's machinery."""
    names = sorted(points[0])
    values = {n: sorted({float(p[n]) for p in points}) for n in names}  # type: ignore[arg-type]

    def x(i: int, n: str) -> float:
        return float(points[i][n])  # type: ignore[arg-type]

    def grid_nb(i: int, j: int) -> bool:
        diff = [n for n in names if x(i, n) != x(j, n)]
        return len(diff) == 1 and abs(values[diff[0]].index(x(i, diff[0])) - values[diff[0]].index(x(j, diff[0]))) == 1

    def dist2(i: int, j: int) -> float:
        total = 0.0
        for n in names:
            lo, hi = values[n][0], values[n][-1]
            if hi > lo:
                total += ((x(i, n) - lo) / (hi - lo) - (x(j, n) - lo) / (hi - lo)) ** 2
        return total

    out: list[float] = []
    for i in range(len(points)):
        others = [j for j in range(len(points)) if j != i]
        nb = (
            [j for j in others if grid_nb(i, j)]
            if kind == "grid"
            else sorted(others, key=lambda j: (dist2(i, j), j))[:k]
        )
        vals = [scores[i]] + [scores[j] for j in nb if not math.isnan(scores[j])]
        out.append(math.nan if math.isnan(scores[i]) else sum(vals) / len(vals))
    return out


@settings(max_examples=150, deadline=None)
@given(
    cells=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 3), st.one_of(st.floats(-5, 5), st.just(math.nan))),
        min_size=2,
        max_size=25,
        unique_by=lambda c: (c[0], c[1]),
    ),
    kind=st.sampled_from(["grid", "nearest"]),
    k=st.integers(1, 6),
)
def test_plateau_matches_the_definition(cells: list[tuple[int, int, float]], kind: str, k: int) -> None:
    points: list[dict[str, object]] = [{"a": 10 * a, "b": 0.5 * b} for a, b, _ in cells]
    scores = [sc for _, _, sc in cells]
    if all(math.isnan(v) for v in scores):
        return
    c = choose_params(points, scores, neighbourhood=kind, k=k)  # type: ignore[arg-type]
    avg = brute_force_plateau(points, scores, kind, min(k, len(points) - 1))
    top = max(v for v in avg if not math.isnan(v))
    assert c.neighbourhood == kind
    assert c.smoothed == pytest.approx(avg[c.index], abs=1e-12)
    assert avg[c.index] >= top - 1e-9
    near_top = [i for i, v in enumerate(avg) if v >= top - 1e-9]
    if len(near_top) == 1:  # no tie, not even one the last bit of a sum could decide
        assert c.index == near_top[0]


def test_choice_rejects_bad_input() -> None:
    with pytest.raises(WalkForwardError, match="2 points but 1 scores"):
        choose_params([{"a": 1}, {"a": 2}], [1.0])
    with pytest.raises(WalkForwardError, match="none of the 2 points"):
        choose_params([{"a": 1}, {"a": 2}], [math.nan, math.nan])
    with pytest.raises(WalkForwardError, match="point 1 has parameters b"):
        choose_params([{"a": 1}, {"b": 2}], [1.0, 2.0])
    with pytest.raises(WalkForwardError, match="no points"):
        choose_params([], [])


# --------------------------------------------------------------------------------------------
# Stitching, degradation, stability


def test_stitched_out_of_sample_curve() -> None:
    f0, f1, f2 = make_folds(SIXTY, Period(days=28), Period(days=14), gap_sessions=3)[:3]
    curve = stitch_oos(
        [
            (f0, [D(2024, 2, 1), D(2024, 2, 14)], [0.01, -0.02]),
            (f1, [D(2024, 2, 15)], [0.03]),
            (f2, [], []),
        ],
        100.0,
    )
    assert curve.dates == (D(2024, 2, 1), D(2024, 2, 14), D(2024, 2, 15))
    # 100 x 1.01 = 101; x 0.98 = 98.98; x 1.03 = 101.9494
    assert curve.equity == pytest.approx((101.0, 98.98, 101.9494), rel=1e-12)
    assert curve.fold == (0, 0, 1) and curve.returns == (0.01, -0.02, 0.03)


def test_stitching_refuses_overlap_and_in_sample_dates() -> None:
    f0, f1 = make_folds(SIXTY, Period(days=28), Period(days=14), gap_sessions=3)[:2]
    with pytest.raises(WalkForwardError, match="overlap or are out of order"):
        stitch_oos([(f1, [D(2024, 2, 15)], [0.0]), (f0, [D(2024, 2, 1)], [0.0])], 100.0)
    with pytest.raises(WalkForwardError, match="overlap"):
        stitch_oos([(f0, [], []), (f0, [], [])], 100.0)
    with pytest.raises(WalkForwardError, match="outside its test window"):
        stitch_oos([(f1, [D(2024, 2, 13)], [0.0])], 100.0)  # a gap session
    with pytest.raises(WalkForwardError, match="outside its test window"):
        stitch_oos([(f0, [D(2024, 1, 26)], [0.0])], 100.0)  # its train window's last session
    with pytest.raises(WalkForwardError, match="does not follow"):
        stitch_oos([(f0, [D(2024, 2, 2), D(2024, 2, 1)], [0.0, 0.0])], 100.0)
    with pytest.raises(WalkForwardError, match="2 dates but 1 returns"):
        stitch_oos([(f0, [D(2024, 2, 1), D(2024, 2, 2)], [0.0])], 100.0)
    with pytest.raises(WalkForwardError, match="nan"):
        stitch_oos([(f0, [D(2024, 2, 1)], [math.nan])], 100.0)
    with pytest.raises(WalkForwardError, match="capital"):
        stitch_oos([], 0.0)


def test_degradation() -> None:
    d = degradation([1.0, 2.0, 3.0, 4.0, math.nan], [0.5, 1.0, 0.0, 2.0, 1.0])
    assert (d.folds, d.used) == (5, 4)
    assert d.mean_is == 2.5 and d.mean_oos == 0.875
    assert d.difference == pytest.approx(-1.625) and d.ratio == pytest.approx(0.35)
    assert d.frac_oos_below_is == 1.0
    # Pearson by hand: deviations (-1.5, -.5, .5, 1.5) and (-.375, .125, -.875, 1.125):
    # 1.75 / sqrt(5 x 2.1875).
    assert d.correlation == pytest.approx(1.75 / math.sqrt(5 * 2.1875))
    assert d.correlation == pytest.approx(statistics.correlation([1, 2, 3, 4], [0.5, 1, 0, 2]))
    two = degradation([1.0, 2.0], [2.0, 1.0])
    assert two.correlation is None and two.frac_oos_below_is == 0.5
    assert math.isnan(degradation([-1.0, 0.5], [1.0, 1.0]).ratio)  # mean IS <= 0: no ratio
    assert degradation([], []).used == 0
    with pytest.raises(WalkForwardError, match="2 in-sample scores but 1"):
        degradation([1.0, 2.0], [1.0])


def test_parameter_stability() -> None:
    grid = {"a": [5, 1, 3, 2, 4], "b": [7], "c": ["x", "y"]}
    choices: list[dict[str, object]] = [
        {"a": 1, "b": 7, "c": "x"},
        {"a": 3, "b": 7, "c": "x"},
        {"a": 3, "b": 7, "c": "y"},
        {"a": 5, "b": 7, "c": "x"},
    ]
    s = param_stability(choices, grid)
    # a moves 2, 0, 2 steps of 4: (4 / 3) / 4; b never can; c moves 0, 1, 1 of 1 step.
    assert s == pytest.approx({"a": 1 / 3, "b": 0.0, "c": 2 / 3})
    assert param_stability(choices[:1] * 3, grid) == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert all(math.isnan(v) for v in param_stability(choices[:1], grid).values())
    with pytest.raises(WalkForwardError, match="a=6 is not among"):
        param_stability([{"a": 6, "b": 7, "c": "x"}], grid)
