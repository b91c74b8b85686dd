"""Run a full session of the live runtime against the fake FYERS, in-process."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_fyers import FakeDataSocket, FakeFyers, FakeOrderSocket, Scenario

from tfl.calendar.nse import NseCalendar
from tfl.core.state import CoreState
from tfl.data.market import Market
from tfl.domain import Bias
from tfl.fyers.auth import check_token
from tfl.fyers.broker import FyersBroker
from tfl.fyers.feed import FyersFeed
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.rest import FyersRest
from tfl.fyers.sockets import OrderStream
from tfl.fyers.symbols import SymbolMap
from tfl.live.journal import SqliteJournal
from tfl.live.paper import PaperBroker
from tfl.live.report import rebuild
from tfl.live.runtime import Controls, SessionResult, run_session
from tfl.secrets import FileSecretStore
from tfl.settings import Settings
from tfl.timeutil import epoch_of_ist

DAY = dt.date(2020, 12, 7)  # a busy LONGS day
SYMBOLS = ["ADANIENT", "AXISBANK", "BEL", "BHEL", "BPCL", "CANBK", "DLF", "GAIL", "NMDC", "SAIL", "TATASTEEL", "TRENT"]
SETTINGS = Settings()


class LogCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        from tfl.logs import JsonFormatter

        f = JsonFormatter()
        return "\n".join(f.format(r) for r in self.records)


@dataclass
class Run:
    fake: FakeFyers
    state: CoreState
    result: SessionResult
    alerts: list[tuple[str, str]]
    logs: LogCatcher
    store: FileSecretStore
    broker: Any
    extra: dict[str, Any] = field(default_factory=dict)


BROKER_SQUARE_OFF = epoch_of_ist(DAY, 15 * 60 + 15)  # FYERS' own intraday square-off begins


def held(fake: FakeFyers) -> dict[str, int]:
    """Our symbols' net positions at FYERS just before its own square-off."""
    return {k: v for k, v in fake.net_at(BROKER_SQUARE_OFF - 1).items() if k in SYMBOLS}


def flat(fake: FakeFyers) -> bool:
    return not held(fake)


def hold_the_market(fake: FakeFyers, done: Callable[[FakeFyers], bool]) -> Callable[[], None]:
    """Before the first tick of 15:15 the replayed market (which runs far faster than real
    time, so the trader lags it by minutes of market time) waits at 15:14 until the trader
    has done what it does before the broker's own square-off: ``done`` says so. A generous
    wall-clock bound, never a fixed pause: on a slow machine it only waits longer."""

    def hold() -> None:
        with fake.lock:
            fake.clock = max(fake.clock, float(BROKER_SQUARE_OFF - 60))
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            with fake.lock:
                if done(fake):
                    return
            time.sleep(0.01)

    return hold


def start_fake(market: Market, scenario: Scenario | None = None) -> FakeFyers:
    return FakeFyers(market, DAY, SYMBOLS, scenario=scenario).start()


def run_live(
    tmp: Path,
    market: Market,
    fake: FakeFyers,
    *,
    world: str = "live",
    token: str | None = None,
    on_market_start: Any = None,
    silence: float = 2.0,
    squareoff_lead: int = SETTINGS.live.squareoff_lead_seconds,
    hold_until: Callable[[FakeFyers], bool] = flat,
    rms: bool = False,
) -> Run:
    """``hold_until``: at 15:15 the market waits for the trader until this holds (see
    :func:`hold_the_market`); ``rms``: then FYERS' own square-off closes what is left."""
    if world == "live":
        fake.s.at.append((BROKER_SQUARE_OFF, hold_the_market(fake, hold_until)))
    seen = [0]  # the exchange time the trader has reached (its last market event)
    if rms:

        def rms_now() -> None:
            """FYERS' own square-off, once the trader's own time has reached 15:15 too: in
            the real market both clocks are one, while here the trader lags the fast replay.
            The trader handles one event at a time, so nothing it decided before 15:15 is
            still on its way then (a generous wall-clock bound, never a fixed pause)."""
            with fake.lock:
                fake.clock = max(fake.clock, float(BROKER_SQUARE_OFF))
            deadline = time.monotonic() + 60.0
            while seen[0] < BROKER_SQUARE_OFF and time.monotonic() < deadline:
                time.sleep(0.01)
            with fake.lock:
                fake.rms_square_off()

        fake.s.at.append((BROKER_SQUARE_OFF, rms_now))
    tmp.mkdir(parents=True, exist_ok=True)
    store = FileSecretStore(tmp / "secrets.json", environ={})
    store.put("access_token", token or fake.issue_token())
    store.put("token_date", DAY.isoformat())
    store.put("secret_key", fake.secret)
    limiter = RateLimiter(500, 30_000)  # the replayed market runs a bar in ~0.1 s; the real limits are tested apart
    rest = FyersRest(
        fake.api_url,
        fake.data_url,
        fake.client_id,
        lambda: store.get("access_token"),
        limiter,
        timeout=0.6,
        rate_limit_backoff=0.2,
    )
    symbols = SymbolMap(SETTINGS.fyers)
    token_fn = lambda: f"{fake.client_id}:{store.get('access_token')}"  # noqa: E731
    journal = SqliteJournal(tmp / "journal.sqlite")
    paper = PaperBroker(tmp / "broker.sqlite")
    if world == "live":
        stream = OrderStream(lambda **kw: FakeOrderSocket(fake, **kw), token_fn, tmp / "sdk-logs")
        stream.start()
        broker: Any = FyersBroker(rest, symbols, stream=stream, fallback_seconds=1.0)
        sim = None
    else:
        broker, sim = paper, paper
    close_ts = epoch_of_ist(DAY, 930)

    def factory(events: list[Any], start_ts: int, side_of: Any) -> FyersFeed:
        feed = FyersFeed(
            lambda **kw: FakeDataSocket(fake, **kw),
            token_fn,
            symbols,
            SYMBOLS,
            close_ts,
            log_dir=tmp / "sdk-logs",
            silence_seconds=silence,
            now=fake.now,
            sleep=lambda s: None,
            open_ts=start_ts,
            limiter=limiter,
        )
        feed.start()
        ask = feed.next

        def next_event(timeout: float) -> Any:
            ev = ask(timeout)
            if ev is not None:
                seen[0] = max(seen[0], ev.ts)
            return ev

        feed.next = next_event  # type: ignore[method-assign]
        threading.Thread(target=fake.run_market, daemon=True).start()
        if on_market_start is not None:
            on_market_start(feed)
        return feed

    alerts: list[tuple[str, str]] = []
    catcher = LogCatcher()
    root = logging.getLogger()
    root.addHandler(catcher)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        controls = Controls(
            alert=lambda level, msg: alerts.append((level, msg)),
            token_check=lambda: check_token(rest, store, DAY).ok,
            token_recheck_seconds=0.2,
            exit_wait_seconds=10.0,
            squareoff_lead_seconds=squareoff_lead,
        )
        session = NseCalendar().session(DAY)
        assert session is not None
        result = run_session(
            session,
            market,
            SYMBOLS,
            journal,
            broker,
            SETTINGS,
            Bias.LONGS,
            "test",
            controls,
            feed_factory=factory,
            market_sim=sim,
        )
    finally:
        root.removeHandler(catcher)
        root.setLevel(old_level)
        if world == "live":
            broker.close()
    state = rebuild(journal)
    journal.close()
    paper.close()
    return Run(fake, state, result, alerts, catcher, store, broker)


def check_invariants(run: Run) -> None:
    """No duplicate order, no lost fill, a flat book at the close."""
    fake = run.fake
    assert fake.duplicate_tags() == {}, f"duplicate orders at FYERS: {fake.duplicate_tags()}"
    ours = {o.id for o in fake.orders.values() if o.tag and o.tag in run.state.orders}
    assert fake.fill_ids(ours) == run.state.fills_seen, "a fill was lost (or invented)"
    net = {p["symbol"]: p["netQty"] for p in fake.positions()}
    our_net = {k: v for k, v in net.items() if k[4:-3] in SYMBOLS and v}
    external = {f"NSE:{e['symbol']}-EQ" for e in fake.s.external_orders}
    assert {k: v for k, v in our_net.items() if k not in external} == {}, f"positions left open at FYERS: {our_net}"
    assert run.result.flat and not run.state.book.positions
    if run.broker is not None and not isinstance(run.broker, PaperBroker) and not fake.rms_orders:
        # Flat at FYERS before its own square-off starts (15:15): TFL's square-off came first.
        assert flat(fake), f"not flat at FYERS before its square-off: {held(fake)}"
