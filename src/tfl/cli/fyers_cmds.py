"""`tfl auth ...`, `tfl data fetch`, `tfl data symbols`, and the FYERS wiring for `tfl trade`."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import getpass
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfl.fyers import sockets
from tfl.fyers.errors import FyersError
from tfl.fyers.ratelimit import RateLimiter
from tfl.fyers.rest import FyersRest
from tfl.fyers.symbols import SymbolMap, parse_symbol_master, read_instruments, write_instruments
from tfl.secrets import SecretStore
from tfl.settings import Settings
from tfl.timeutil import BAR_SECONDS, IST

INSTRUMENTS_FILE = "symbols.csv"


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def market_now() -> float:
    """Wall-clock epoch seconds (a seam: tests drive a simulated market clock)."""
    return time.time()


def today_ist() -> dt.date:
    return dt.datetime.fromtimestamp(market_now(), IST).date()


@dataclass
class FyersKit:
    settings: Settings
    store: SecretStore
    limiter: RateLimiter
    rest: FyersRest
    symbols: SymbolMap

    def session_token(self) -> str:
        return f"{self.rest.client_id}:{self.store.get('access_token') or ''}"


def build_kit(settings: Settings, data_dir: Path | None = None) -> FyersKit:
    from tfl.cli.wiring import secret_store

    f = settings.fyers
    store = secret_store(settings)
    client_id = f.client_id or store.get("client_id") or ""  # on AWS the credentials secret holds it
    if not client_id:
        raise ValueError(
            "no FYERS app id: set 'fyers.client_id' (or TFL_FYERS_CLIENT_ID), or client_id in the credentials secret"
        )
    limiter = RateLimiter(f.max_per_second, f.max_per_minute)
    rest = FyersRest(
        f.api_url, f.data_url, client_id, lambda: store.get("access_token"), limiter, timeout=f.http_timeout_seconds
    )
    return FyersKit(settings, store, limiter, rest, symbol_map(settings, data_dir))


def symbol_map(settings: Settings, data_dir: Path | None) -> SymbolMap:
    """Tickers and ticks from the data directory's symbol master (flagged stale when it is
    not today's: its ticks may predate a monthly revision)."""
    master = data_dir / INSTRUMENTS_FILE if data_dir else None
    instruments = read_instruments(master) if master else {}
    stale = master is not None and master.exists() and not master_is_current(master, today_ist())
    return SymbolMap(settings.fyers, instruments, stale=stale)


# --------------------------------------------------------------------------- auth


def cmd_auth_login(args: argparse.Namespace, settings: Settings) -> int:
    from tfl.fyers.auth import LoginError, exchange_code, login_url, new_state, parse_redirect

    kit = build_kit(settings)
    if args.redirect:
        state = kit.store.get("login_state")
        text = args.redirect
    else:
        state = new_state()
        kit.store.put("login_state", state)
        _out("Open this URL, log in with your FYERS 2FA, then paste the URL you are redirected to (or the code):")
        redirect = kit.store.get("redirect_uri") or settings.fyers.redirect_uri
        _out(login_url(settings.fyers.api_url, kit.rest.client_id, redirect, state))
        text = sys.stdin.readline()
    try:
        code = parse_redirect(text, state)
        exchange_code(kit.rest, kit.store, code, today_ist())
    except LoginError as exc:
        raise ValueError(f"login failed: {exc}") from None
    kit.store.put("login_state", "")
    _out(f"logged in: the access token for {today_ist().isoformat()} is stored")
    return 0


def cmd_auth_secret(args: argparse.Namespace, settings: Settings) -> int:
    kit = build_kit(settings)
    value = read_secret(args.stdin)
    kit.store.put("secret_key", value)
    _out("the app secret is stored in the secrets store")
    return 0


def read_secret(from_stdin: bool) -> str:
    """The app secret: one line of stdin with ``--stdin``, else typed at a hidden prompt.

    A closed or empty stdin (``< /dev/null``, a job without a terminal) is one clear
    refusal, not an EOFError: nothing can be typed there."""
    stdin = sys.stdin
    if not from_stdin and not _can_prompt():
        raise ValueError("no terminal to type the secret at: pipe it in with --stdin")
    try:
        if from_stdin:
            if stdin is None:
                raise EOFError
            value = stdin.readline()
        else:
            value = getpass.getpass("FYERS app secret: ")
    except EOFError:
        raise ValueError("no secret given: the input ended before a line was read") from None
    value = value.strip()
    if not value:
        raise ValueError("no secret given")
    return value


def _can_prompt() -> bool:
    """Whether getpass has a terminal to ask on (it falls back to an echoing stdin otherwise)."""
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return sys.stdin is not None and sys.stdin.isatty()


def cmd_auth_status(args: argparse.Namespace, settings: Settings) -> int:
    from tfl.fyers.auth import check_token

    kit = build_kit(settings)
    check = check_token(kit.rest, kit.store, today_ist())
    _out(("token OK: " if check.ok else "token NOT usable: ") + check.reason)
    return 0 if check.ok else 1


# --------------------------------------------------------------------------- data


def download_symbol_master(
    settings: Settings, out: Path, universe: Path | None = None, url: str | None = None
) -> tuple[int, list[str]]:
    """Download the FYERS symbol master into ``out`` (the instruments of ``universe``, or all):
    (instruments written, universe symbols the master lacks). A failed download is a ValueError."""
    import requests

    from tfl.data.loader import read_universe

    url = url or settings.fyers.symbol_master_url
    try:
        resp = requests.get(url, timeout=settings.fyers.http_timeout_seconds)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise ValueError(f"symbol master {url}: download failed ({type(exc).__name__})") from None
    names = read_universe(universe) if universe else None
    instruments = parse_symbol_master(resp.text, names)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_instruments(out, instruments)
    return len(instruments), sorted(set(names or []) - {i.symbol for i in instruments})


def master_is_current(path: Path, today: dt.date) -> bool:
    """Whether the symbol master at ``path`` was written today (IST) or later."""
    try:
        written = dt.datetime.fromtimestamp(path.stat().st_mtime, IST).date()
    except OSError:
        return False
    return written >= today


def refresh_symbol_master(settings: Settings, data: Path, today: dt.date, universe: Path | None = None) -> bool:
    """Before the open: download the day's symbol master (NSE revises tick sizes monthly)
    unless the file is already today's. A failed download keeps the previous file, with a
    WARNING. Returns whether the file on disk is today's."""
    import logging

    path = data / INSTRUMENTS_FILE
    if path.exists() and master_is_current(path, today):
        return True
    try:
        download_symbol_master(settings, path, universe if universe is not None and universe.exists() else None)
    except (ValueError, OSError) as exc:  # no master, or a read-only data directory
        logging.getLogger("tfl.fyers.symbols").warning(
            "symbol master not refreshed: "
            + (
                "yesterday's tick sizes are used, with the band table's where coarser"
                if path.exists()
                else "the band table's tick sizes are used"
            ),
            extra={"fields": {"file": str(path), "error": str(exc)}},
        )
        return False
    return True


def cmd_data_symbols(args: argparse.Namespace, settings: Settings) -> int:
    written, missing = download_symbol_master(settings, args.out, args.universe, args.url)
    _out(
        f"wrote {written} instruments to {args.out}" + (f"; not in the master: {', '.join(missing)}" if missing else "")
    )
    return 0 if not missing else 1


def cmd_data_fetch(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from tfl.fyers.history import fetch

    kit = build_kit(settings, args.out)
    names = args.symbols
    with tqdm(total=len(names), desc="fetch", unit="sym", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        got, problems = fetch(
            kit.rest,
            kit.symbols,
            names,
            args.resolution,
            args.from_date,
            args.to_date,
            args.out,
            now=int(market_now()),
            progress=lambda s: bar.update(1),
        )
    _out(
        f"fetched {sum(got.values())} new candles for {len(got)} symbols into {args.out}"
        + (f"; {len(problems)} failed" if problems else "")
    )
    for p in problems:
        _out(f"  {p}")
    return 0 if not problems else 1


# --------------------------------------------------------------------------- trade


def fyers_feed_factory(
    kit: FyersKit, names: list[str], close_ts: int, log_dir: Path, alert: Callable[[str, str], None] | None = None
) -> Any:
    from tfl.fyers.feed import FyersFeed
    from tfl.live.runtime import log_alert

    f = kit.settings.fyers

    def factory(events: list[Any], start_ts: int, side_of: Any) -> FyersFeed:
        feed = FyersFeed(
            functools.partial(sockets.sdk_data_socket, token_url=f.symbol_token_url, index_url=f.index_map_url),
            kit.session_token,
            kit.symbols,
            names,
            close_ts,
            log_dir=log_dir,
            url=f.data_socket_url,
            silence_seconds=kit.settings.fyers.socket_silence_seconds,
            now=market_now,
            open_ts=start_ts,  # the session's open (or the resumed slot): no forced reconnects before it
            limiter=kit.limiter,  # subscribing calls FYERS' symbol-token API
            alert=alert or log_alert,
        )
        feed.start()
        return feed

    return factory


def fyers_broker(kit: FyersKit, log_dir: Path) -> Any:
    from tfl.fyers.broker import FyersBroker

    url = kit.settings.fyers.order_socket_url
    stream = sockets.OrderStream(sockets.sdk_order_socket, kit.session_token, log_dir, url=url)
    stream.start()
    return FyersBroker(
        kit.rest, kit.symbols, stream=stream, fallback_seconds=kit.settings.fyers.order_socket_fallback_seconds
    )


def ist_time(session: dt.date, hhmm: str) -> dt.datetime:
    """``HH:MM`` IST on ``session`` as an aware datetime."""
    from tfl.settings import parse_hhmm

    minute = parse_hhmm(hhmm)
    return dt.datetime.combine(session, dt.time(minute // 60, minute % 60), IST)


def token_gate(
    kit: FyersKit,
    session: dt.date,
    alert: Any,
    sleep: Callable[[float], None] = time.sleep,
    *,
    until: dt.datetime | None = None,
) -> bool:
    """Before the session: wait (until the deadline) for a token FYERS accepts.

    ``until`` replaces the deadline and the quiet grace time: a trader restarted in the middle
    of its session waits for a login until the close, since its positions need it.
    When FYERS could not even be asked, that is no verdict on the token: the run ends with a
    restartable error (exit 5) instead of "no token" (exit 4, final).
    """
    from tfl.fyers.auth import wait_for_token

    f = kit.settings.fyers
    check = wait_for_token(
        kit.rest,
        kit.store,
        session,
        until or ist_time(session, f.token_deadline),
        now=lambda: dt.datetime.fromtimestamp(market_now(), IST),
        alert=alert,
        sleep=sleep,
        retry_seconds=f.token_retry_seconds,
        grace=None if until else ist_time(session, f.login_grace),
    )
    if not check.ok and check.transient:
        raise FyersError("profile", f"FYERS unreachable at the token deadline: {check.reason}")
    return check.ok


def refresh_today(kit: FyersKit, market: Any, names: list[str], session: dt.date, open_ts: int) -> None:
    """Started (or restarted) after the open: today's completed bars come from FYERS history."""
    import numpy as np

    from tfl.data.bars import BarSeries

    now = int(market_now())
    if now <= open_ts + BAR_SECONDS:
        return
    for name in names:
        try:
            rows = kit.rest.history(kit.symbols.ticker(name), "15", open_ts, now)
        except FyersError:
            continue
        rows = [r for r in rows if int(r[0]) + BAR_SECONDS <= now]
        if not rows:
            continue
        arr = np.asarray(rows, dtype=np.float64)
        s = market.intraday[name]
        keep = s.ts < open_ts
        market.intraday[name] = BarSeries(
            name,
            np.concatenate([s.ts[keep], arr[:, 0].astype(np.int64)]),
            np.concatenate([s.open[keep], arr[:, 1]]),
            np.concatenate([s.high[keep], arr[:, 2]]),
            np.concatenate([s.low[keep], arr[:, 3]]),
            np.concatenate([s.close[keep], arr[:, 4]]),
            np.concatenate([s.volume[keep], arr[:, 5]]),
        )
    del session
