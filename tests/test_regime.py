from __future__ import annotations

import datetime as dt
import json

import pytest

from tfl.domain import Bias
from tfl.regime import DailyCloses, compute_bias, parse_bias_record, previous_session
from tfl.settings import BiasSettings

P = BiasSettings()
D0 = dt.date(2024, 1, 1)
SESSION = dt.date(2024, 6, 3)


def days(n: int) -> list[dt.date]:
    return [D0 + dt.timedelta(days=i) for i in range(n)]


def series(closes: list[float]) -> DailyCloses:
    return DailyCloses.from_dates(days(len(closes)), closes)


def universe(n_up: int, n_down: int, n_flat: int = 0) -> dict[str, DailyCloses]:
    u = {}
    for i in range(n_up):
        u[f"U{i}"] = series([100.0] * 59 + [120.0])
    for i in range(n_down):
        u[f"D{i}"] = series([100.0] * 59 + [80.0])
    for i in range(n_flat):
        u[f"F{i}"] = series([100.0] * 60)
    return u


def prev() -> dt.date:
    return days(60)[-1]


def test_short_index_history_means_no_trades() -> None:
    idx = DailyCloses.from_dates(days(60), [100.0] * 59 + [110.0])
    # 60 bars are not enough for the 100-day SMA: any missing input means NO_TRADES.
    r = compute_bias(SESSION, prev(), universe(7, 3), idx, series([15.0] * 60), P)
    assert r.bias == "NO_TRADES" and "lacks" in r.reason


def long_index(last: float, n: int = 120) -> DailyCloses:
    start = days(60)[-1] - dt.timedelta(days=n - 1)
    return DailyCloses.from_dates([start + dt.timedelta(days=i) for i in range(n)], [100.0] * (n - 1) + [last])


def vix(value: float, n: int = 60) -> DailyCloses:
    return series([value] * n)


def test_decisions() -> None:
    r = compute_bias(SESSION, prev(), universe(7, 3), long_index(110.0), vix(15.0), P)
    assert r.bias == "LONGS" and r.breadth_above == pytest.approx(70.0) and r.breadth_count == 10
    r = compute_bias(SESSION, prev(), universe(3, 7), long_index(90.0), vix(20.0), P)
    assert r.bias == "SHORTS" and r.breadth_below == pytest.approx(70.0)
    # Shorts need VIX above 17: otherwise nothing.
    assert compute_bias(SESSION, prev(), universe(3, 7), long_index(90.0), vix(16.0), P).bias == "NO_TRADES"
    # Exactly 60% is not "above 60".
    assert compute_bias(SESSION, prev(), universe(6, 4), long_index(110.0), vix(15.0), P).bias == "NO_TRADES"
    # A close equal to its SMA counts in the total only.
    r = compute_bias(SESSION, prev(), universe(7, 2, 1), long_index(110.0), vix(15.0), P)
    assert (r.breadth_above, r.breadth_below, r.breadth_count) == (70.0, 20.0, 10)


def test_shorts_are_checked_first() -> None:
    p = BiasSettings(breadth_threshold_pct=10.0)  # both breadth conditions hold
    r = compute_bias(SESSION, prev(), universe(5, 5), long_index(90.0), vix(20.0), p)
    assert r.bias == "SHORTS"


def test_missing_or_invalid_inputs_give_no_trades() -> None:
    u = universe(7, 3)
    assert compute_bias(SESSION, None, u, long_index(110.0), vix(15.0), P).bias == "NO_TRADES"
    assert compute_bias(SESSION, prev(), u, None, vix(15.0), P).bias == "NO_TRADES"
    assert compute_bias(SESSION, prev(), u, long_index(110.0), None, P).bias == "NO_TRADES"
    assert compute_bias(SESSION, prev(), u, long_index(110.0), vix(-1.0), P).bias == "NO_TRADES"
    assert compute_bias(SESSION, prev(), {}, long_index(110.0), vix(15.0), P).bias == "NO_TRADES"
    # The VIX has no row on the previous session.
    short_vix = series([15.0] * 59)
    r = compute_bias(SESSION, prev(), u, long_index(110.0), short_vix, P)
    assert r.bias == "NO_TRADES" and "no bar" in r.reason
    # Stocks without a bar on the previous session or with < 50 bars do not count.
    u2 = dict(u, OLD=series([100.0] * 59), NEW=DailyCloses.from_dates(days(60)[-10:], [1.0] * 10))
    assert compute_bias(SESSION, prev(), u2, long_index(110.0), vix(15.0), P).breadth_count == 10


def test_no_future_data_is_read() -> None:
    """Rows after the previous session (the session's own close included) change nothing."""
    u = universe(7, 3)
    base = compute_bias(SESSION, prev(), u, long_index(110.0), vix(15.0), P)
    future = days(61)[-1]
    u_future = {k: DailyCloses([*v.days, (future - dt.date(1970, 1, 1)).days], [*v.closes, 1.0]) for k, v in u.items()}
    assert compute_bias(SESSION, prev(), u_future, long_index(110.0), vix(15.0), P) == base


def test_previous_session_uses_the_calendar() -> None:
    cal = [(d - dt.date(1970, 1, 1)).days for d in days(10)]
    assert previous_session(cal, days(10)[5]) == days(10)[4]
    assert previous_session(cal, days(10)[0]) is None
    assert previous_session(cal, days(20)[15]) == days(10)[-1]


def test_published_record_is_read_strictly() -> None:
    r = compute_bias(SESSION, prev(), universe(7, 3), long_index(110.0), vix(15.0), P)
    assert parse_bias_record(r.to_json(), SESSION) == (Bias.LONGS, "")
    assert parse_bias_record(r.to_json(), SESSION + dt.timedelta(days=1))[0] is Bias.NO_TRADES
    assert parse_bias_record("{not json", SESSION)[0] is Bias.NO_TRADES
    assert parse_bias_record("[]", SESSION)[0] is Bias.NO_TRADES
    bad = json.loads(r.to_json()) | {"bias": "BOTH"}
    assert parse_bias_record(json.dumps(bad), SESSION)[0] is Bias.NO_TRADES
