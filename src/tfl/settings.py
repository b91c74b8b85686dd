"""One validated settings object for every world (backtest, replay, paper, live).

Precedence, lowest first: built-in defaults (the numbers on the strategy page), a TOML
file, environment variables ``TFL_<SECTION>__<KEY>``, then explicit overrides (CLI flags).
An unknown key or an invalid value is a :class:`SettingsError` that names the key, so a
typo can never silently fall back to a default while real money is at stake.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "TFL_"
ENV_SEPARATOR = "__"


class SettingsError(ValueError):
    """A settings key is unknown or its value is invalid; the message names the key."""


def _num(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Any:
    return {"lo": lo, "hi": hi, "lo_open": lo_open}


def _choice(*values: str) -> Any:
    return {"choices": values}


@dataclass(frozen=True)
class BiasSettings:
    """The daily traffic light (strategy page, section 1)."""

    benchmark_symbol: str = "NIFTY200_INDEX"
    vix_symbol: str = "INDIAVIX"
    breadth_sma: int = field(default=50, metadata=_num(2, 500))
    breadth_threshold_pct: float = field(default=60.0, metadata=_num(0, 100))
    long_index_sma: int = field(default=30, metadata=_num(2, 500))
    short_index_sma: int = field(default=100, metadata=_num(2, 500))
    vix_threshold: float = field(default=17.0, metadata=_num(0, 200))


@dataclass(frozen=True)
class IndicatorSettings:
    rsi_period: int = field(default=14, metadata=_num(2, 200))
    atr_period: int = field(default=14, metadata=_num(2, 200))
    mvwap_period: int = field(default=50, metadata=_num(2, 500))


@dataclass(frozen=True)
class StrategySettings:
    """Pattern, filters, entry window and the exit ladder (sections 3, 4 and 6)."""

    min_run: int = field(default=1, metadata=_num(1, 50))
    max_run: int = field(default=9, metadata=_num(1, 50))
    long_rsi_min: float = field(default=75.0, metadata=_num(0, 100))
    short_rsi_max: float = field(default=25.0, metadata=_num(0, 100))
    session_open: str = "09:15"
    last_bar: str = "15:15"  # the 15-minute series keeps bars starting 09:15..15:15 (no pre-open, no evening)
    squareoff_time: str = "15:15"  # a bar start on the 15-minute grid; no entries on or after it
    target_r: float = field(default=10.0, metadata=_num(0, 1000, lo_open=True))
    breakeven_trigger_r: float = field(default=1.0, metadata=_num(0, 100, lo_open=True))
    breakeven_lock_r: float = field(default=0.1, metadata=_num(0, 100))
    long_trail_atr: float = field(default=4.0, metadata=_num(0, 100, lo_open=True))
    long_aggressive_r: float = field(default=5.0, metadata=_num(0, 1000, lo_open=True))
    short_trail_atr: float = field(default=3.0, metadata=_num(0, 100, lo_open=True))
    short_aggressive_r: float = field(default=3.0, metadata=_num(0, 1000, lo_open=True))
    aggressive_trail_atr: float = field(default=1.0, metadata=_num(0, 100, lo_open=True))
    # Ablation switches (research): each turns one part of the rules off, so a sweep can show
    # which parts carry the result. The strategy page's rules are all on; paper and live refuse
    # any switched off (docs/backtest-assumptions.md, "Ablation switches").
    use_bias: bool = True  # false: every session trades both sides (as bias BOTH)
    use_rsi_filter: bool = True  # false: no daily-RSI condition (the RSI still orders the setups)
    use_trend_filter: bool = True  # false: no close-vs-MVWAP (EMA for indices) condition
    use_breakeven: bool = True  # false: the stop never moves to breakeven
    use_trail: bool = True  # false: no ATR trail, aggressive trail included
    use_target: bool = True  # false: no target order; exits by stop, trail, EOD or the loss limit


ABLATION_SWITCHES = (
    "use_bias",
    "use_rsi_filter",
    "use_trend_filter",
    "use_breakeven",
    "use_trail",
    "use_target",
)


def switched_off(st: StrategySettings) -> list[str]:
    """The ablation switches that turn a part of the rules off, as 'strategy.<key>' names."""
    return [f"strategy.{k}" for k in ABLATION_SWITCHES if not getattr(st, k)]


@dataclass(frozen=True)
class RiskSettings:
    """Sizing and portfolio limits (section 5)."""

    risk_per_trade_pct: float = field(default=1.0, metadata=_num(0, 100, lo_open=True))
    open_risk_budget_pct: float = field(default=5.0, metadata=_num(0, 100, lo_open=True))
    max_position_pct: float = field(default=25.0, metadata=_num(0, 100, lo_open=True))
    equity_cap_multiple: float = field(default=15.0, metadata=_num(1, 1e6))
    max_positions: int = field(default=15, metadata=_num(1, 1000))
    margin_multiplier: float = field(default=1.0, metadata=_num(1, 20))
    daily_loss_limit_pct: float = field(default=3.0, metadata=_num(0, 100, lo_open=True))
    # "reserve": size every valid setup at the previous close, in priority order (what the live
    # trader does); "bar": the strategy page's within-bar rule, backtest-only (needs the bar's future).
    allocation: str = field(default="reserve", metadata=_choice("reserve", "bar"))


@dataclass(frozen=True)
class CostSettings:
    """Slippage and the two charge models (section 7); rates in percent of turnover."""

    model: str = field(default="nse_intraday", metadata=_choice("nse_intraday", "flat"))
    slippage_pct: float = field(default=0.05, metadata=_num(0, 5))
    flat_pct: float = field(default=0.03, metadata=_num(0, 5))
    brokerage_pct: float = field(default=0.03, metadata=_num(0, 5))
    brokerage_cap: float = field(default=20.0, metadata=_num(0, 1e6))
    stt_sell_pct: float = field(default=0.025, metadata=_num(0, 5))
    exchange_txn_pct: float = field(default=0.00297, metadata=_num(0, 5))
    sebi_per_crore: float = field(default=10.0, metadata=_num(0, 1e6))
    stamp_buy_pct: float = field(default=0.003, metadata=_num(0, 5))
    gst_pct: float = field(default=18.0, metadata=_num(0, 100))


@dataclass(frozen=True)
class BacktestSettings:
    capital: float = field(default=1_000_000.0, metadata=_num(0, 1e12, lo_open=True))
    bias: str = field(default="auto", metadata=_choice("auto", "LONGS", "SHORTS", "BOTH", "NO_TRADES"))
    universe_file: str = ""  # empty: universe.csv or nifty200.csv in the data directory, if any
    index_symbols: tuple[str, ...] = ("NIFTY200_INDEX", "NIFTY_200", "INDIAVIX", "NIFTY50-INDEX")


@dataclass(frozen=True)
class LiveSettings:
    """The live runtime (replay, paper and live worlds)."""

    feed_stale_seconds: float = field(default=30.0, metadata=_num(0, 3600, lo_open=True))
    heartbeat_seconds: float = field(default=60.0, metadata=_num(1, 3600))
    # The operator store: how often the runtime asks for operator commands (the status page's
    # controls, ``tfl ctl``, ``tfl halt``) and writes the snapshot the status page shows.
    command_poll_seconds: float = field(default=1.0, metadata=_num(0.05, 60))
    status_beat_seconds: float = field(default=5.0, metadata=_num(0.05, 600))
    # A command not picked up this long after it was issued (no trader was running) is refused
    # when a trader next sees it: a halt or an exit must not fire hours later, out of context.
    command_max_age_seconds: int = field(default=300, metadata=_num(1, 86400))
    bias_file: str = ""  # the dated bias record (JSON); empty: bias.json beside the journal
    calendar_file: str = ""  # extra NSE sessions / closures announced by circular
    kill_file: str = ""  # its existence halts trading; empty: <journal>.halt
    max_tick_jump_pct: float = field(default=20.0, metadata=_num(0, 100, lo_open=True))
    token_recheck_seconds: float = field(default=30.0, metadata=_num(0.1, 3600))
    # Between boundaries, exchange seconds between asks about what is unsettled: orders of
    # unknown fate, unanswered cancels, unconfirmed stop moves, shares without a stop.
    retry_seconds: int = field(default=10, metadata=_num(1, 600))
    # Paper/live: how long to wait for the day's bias record (the pre-market job writes it at
    # 08:45 IST; after an AWS error its record is provisional and Lambda retries the job twice
    # within minutes); no final record by then means NO_TRADES for the day.
    bias_deadline: str = "09:12"
    bias_poll_seconds: float = field(default=20.0, metadata=_num(0.01, 600))
    # Paper/live: history that must be on disk before the open (fetched from FYERS when missing).
    history_days: int = field(default=400, metadata=_num(30, 3650))
    # Paper/live: the broker's own intraday square-off (FYERS' risk system starts at 15:15 IST
    # and treats an order placed after it as a delivery trade). TFL's square-off starts this
    # many seconds before it (or before the square-off bar, if that is earlier), so that every
    # exit is filled first; checked against the full book at the rate limit.
    broker_squareoff_time: str = "15:15"
    squareoff_lead_seconds: int = field(default=120, metadata=_num(0, 3600))
    # Live: at the close, how long (wall clock) the trader waits for the last exits' fills.
    close_wait_seconds: float = field(default=120.0, metadata=_num(0, 3600))


@dataclass(frozen=True)
class FyersSettings:
    """The FYERS adapters. URLs are settings so tests and operators can point them elsewhere;
    TFL_FYERS_API_URL, TFL_FYERS_DATA_URL and TFL_FYERS_CLIENT_ID override them too, and
    TFL_FYERS_DATA_SOCKET_URL, TFL_FYERS_ORDER_SOCKET_URL, TFL_FYERS_SYMBOL_TOKEN_URL and
    TFL_FYERS_INDEX_MAP_URL the endpoints the SDK's sockets use (defaults: the SDK 3.2.0's own)."""

    api_url: str = "https://api-t1.fyers.in/api/v3"
    data_url: str = "https://api-t1.fyers.in/data"
    symbol_master_url: str = "https://public.fyers.in/sym_details/NSE_CM.csv"
    data_socket_url: str = "wss://socket.fyers.in/hsm/v1-5/prod"  # the binary market-data socket
    order_socket_url: str = "wss://socket.fyers.in/trade/v3"  # order, trade and position updates
    # The data socket asks these over HTTP before each subscription: symbol -> HSM token, and
    # the index tokens (the SDK falls back to its bundled map when the latter fails).
    symbol_token_url: str = "https://api-t1.fyers.in/data/symbol-token"
    index_map_url: str = "https://public.fyers.in/sym_details/index_hsm_mapping.json"
    # At exit: how long closing the sockets (and the SDK's threads) may take before the
    # process exits regardless, with its code (the SDK's ping thread sleeps 10 s).
    socket_close_seconds: float = field(default=15.0, metadata=_num(0.1, 120))
    client_id: str = ""  # the app id, e.g. ABCD1234-100 (not a secret)
    redirect_uri: str = "https://trade.fyers.in/api-login/redirect-uri/index.html"
    secrets_file: str = ""  # 0600 JSON with secret_key and the daily access token; empty: ~/.tfl/secrets.json
    token_deadline: str = "09:10"  # no valid token by then: no trading today
    # Before this the trader waits quietly for the day's login (the link went out at 08:30);
    # from it on a missing token is an ERROR and an alert.
    login_grace: str = "09:00"
    token_retry_seconds: float = field(default=30.0, metadata=_num(0.01, 600))  # while waiting for a login
    http_timeout_seconds: float = field(default=10.0, metadata=_num(0.5, 120))
    max_per_second: int = field(default=8, metadata=_num(1, 10))  # FYERS allows 10/s
    max_per_minute: int = field(default=180, metadata=_num(1, 200))  # FYERS allows 200/min
    socket_silence_seconds: float = field(default=20.0, metadata=_num(1, 600))  # no tick: reconnect
    order_socket_fallback_seconds: float = field(default=5.0, metadata=_num(0.5, 600))
    tick_size: float = field(default=0.05, metadata=_num(0, 100, lo_open=True))  # when the symbol master lacks it
    symbol_format: str = "NSE:{symbol}-EQ"
    index_symbols: str = "NIFTY50=NSE:NIFTY50-INDEX,INDIAVIX=NSE:INDIAVIX-INDEX,NIFTY200_INDEX=NSE:NIFTY200-INDEX"


# The SDK's socket endpoints and the URL schemes each accepts (a wrong one fails at start-up,
# not as a socket that never connects).
FYERS_URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "data_socket_url": ("wss://", "ws://"),
    "order_socket_url": ("wss://", "ws://"),
    "symbol_token_url": ("https://", "http://"),
    "index_map_url": ("https://", "http://"),
}


@dataclass(frozen=True)
class AwsSettings:
    """The AWS deployment. Empty names mean "not on AWS": the local file adapters are used.

    On the EC2 instance the stack writes these into /etc/tfl/tfl.env as TFL_AWS__<KEY>.
    """

    region: str = "ap-south-1"
    stack_name: str = "TFL-Trading-System-Prod"
    journal_table: str = ""  # DynamoDB journal; empty: the SQLite journal file
    bias_parameter: str = ""  # SSM parameter with the dated bias record, e.g. /tfl/bias
    credentials_secret: str = ""  # Secrets Manager: client_id, secret_key, redirect_uri
    token_secret: str = ""  # Secrets Manager: the daily access token and the login state
    topic_arn: str = ""  # SNS topic for alerts and reports
    data_bucket: str = ""  # S3 bucket: daily bars for the bias job, journal exports
    metrics_namespace: str = "TFL"
    metrics_file: str = ""  # EMF lines for the CloudWatch agent; empty: no metrics


@dataclass(frozen=True)
class AlertSettings:
    """The operator's alerts (docs/live-runtime.md, "Alerts"): SNS when ``aws.topic_arn`` is set,
    Telegram when a chat id is set and the secrets store holds ``telegram_bot_token``."""

    # One alert per cause and subject (a symbol, an order, the feed) in this many minutes of
    # market time; a condition that lasts is alerted again after it.
    repeat_minutes: float = field(default=15.0, metadata=_num(1, 1440))
    # Live: the broker token's expiry (its JWT) is alerted this long before it comes.
    token_warn_minutes: float = field(default=30.0, metadata=_num(1, 1440))
    telegram_chat_id: str = ""  # empty: no Telegram
    telegram_api_url: str = "https://api.telegram.org"  # a setting so tests can point it elsewhere
    telegram_timeout_seconds: float = field(default=5.0, metadata=_num(0.1, 60))


@dataclass(frozen=True)
class Settings:
    bias: BiasSettings = field(default_factory=BiasSettings)
    indicators: IndicatorSettings = field(default_factory=IndicatorSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    costs: CostSettings = field(default_factory=CostSettings)
    backtest: BacktestSettings = field(default_factory=BacktestSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    fyers: FyersSettings = field(default_factory=FyersSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain, JSON-ready view (tuples become lists) for reports and journals."""
        out: dict[str, dict[str, Any]] = {}
        for sec in fields(self):
            section = getattr(self, sec.name)
            out[sec.name] = {
                f.name: (list(v) if isinstance(v := getattr(section, f.name), tuple) else v) for f in fields(section)
            }
        return out

    def replace(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with dotted overrides (``{"risk.max_positions": 10}``) applied."""
        nested: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            if "." not in dotted:
                raise SettingsError(f"setting '{dotted}': expected 'section.key'")
            sec, key = dotted.split(".", 1)
            nested.setdefault(sec, {})[key] = value
        return _merge(self, nested, source="override")


def parse_hhmm(text: str) -> int:
    """Minutes after midnight of an 'HH:MM' string; raises ValueError if malformed."""
    hh, sep, mm = text.partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ValueError(f"'{text}' is not HH:MM")
    h, m = int(hh), int(mm)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"'{text}' is not a valid time of day")
    return h * 60 + m


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _bool(value: Any) -> bool:
    """A boolean from TOML (true/false), or text from the environment or --set; ints 0 and 1
    too. Anything else is an error, never a silent default."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no or 1/0)")


def _coerce(name: str, ftype: Any, value: Any, meta: Mapping[str, Any]) -> Any:
    """Convert ``value`` to the field's type and check its bounds; errors name the key."""
    tname = ftype if isinstance(ftype, str) else getattr(ftype, "__name__", str(ftype))
    try:
        if tname == "int":
            if isinstance(value, bool):
                raise ValueError("a boolean is not an integer")
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(f"{value!r} is not a whole number")
                value = int(value)
            out: Any = int(value)
        elif tname == "float":
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            out = float(value)
            if not math.isfinite(out):
                raise ValueError(f"{value!r} is not a finite number")
        elif tname == "bool":
            out = _bool(value)
        elif tname == "str":
            if not isinstance(value, str):
                raise ValueError(f"{value!r} is not a string")
            out = value.strip()
        elif tname.startswith("tuple"):
            if isinstance(value, str):
                value = [v for v in (p.strip() for p in value.split(",")) if v]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{value!r} is not a list of strings")
            out = tuple(value)
        else:  # pragma: no cover - a programming error, not user input
            raise ValueError(f"unsupported setting type {tname}")
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting '{name}': {exc}") from None
    if "choices" in meta and out not in meta["choices"]:
        raise SettingsError(f"setting '{name}': {out!r} is not one of {', '.join(meta['choices'])}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (out < lo or (meta.get("lo_open") and out == lo)):
        rel = ">" if meta.get("lo_open") else ">="
        raise SettingsError(f"setting '{name}': {out!r} must be {rel} {lo}")
    if hi is not None and out > hi:
        raise SettingsError(f"setting '{name}': {out!r} must be <= {hi}")
    return out


def _merge(base: Settings, data: Mapping[str, Any], *, source: str) -> Settings:
    sections = {f.name: f for f in fields(base)}
    new_sections: dict[str, Any] = {}
    for sec_name, sec_values in data.items():
        if sec_name not in sections:
            raise SettingsError(
                f"unknown settings section '{sec_name}' in {source} (known: {', '.join(sorted(sections))})"
            )
        if not isinstance(sec_values, Mapping):
            raise SettingsError(f"settings section '{sec_name}' in {source} must be a table")
        current = new_sections.get(sec_name, getattr(base, sec_name))
        known = {f.name: f for f in fields(current)}
        changes: dict[str, Any] = {}
        for key, value in sec_values.items():
            if key not in known:
                raise SettingsError(
                    f"unknown setting '{sec_name}.{key}' in {source} "
                    f"(known in [{sec_name}]: {', '.join(sorted(known))})"
                )
            f = known[key]
            changes[key] = _coerce(f"{sec_name}.{key}", f.type, value, f.metadata)
        new_sections[sec_name] = dataclasses.replace(current, **changes)
    merged = dataclasses.replace(base, **new_sections)
    _cross_check(merged)
    return merged


# Requests the live square-off may need for one position: cancel its stop and its target (each
# followed by an order-book read, to book what traded before the cancel), then the exit.
SQUAREOFF_REQUESTS_PER_POSITION = 5
# An exit that is not filled within this many retries is cancelled and sent again.
EXIT_RESEND_RETRIES = 3


def squareoff_lead_needed(s: Settings) -> int:
    """Seconds the live square-off needs before the broker's own: the full book's requests at
    the rate limits, then time for an unfilled (price-protected) exit to be sent once more."""
    n = SQUAREOFF_REQUESTS_PER_POSITION * s.risk.max_positions
    per_second = math.ceil(n / s.fyers.max_per_second)
    per_minute = 60 * ((n - 1) // s.fyers.max_per_minute)
    return max(per_second, per_minute) + 2 * EXIT_RESEND_RETRIES * s.live.retry_seconds


def check_squareoff_lead(s: Settings) -> None:
    """Paper and live only (a backtest may hold any number of positions): the square-off must
    start early enough to close the full book before the broker's own square-off."""
    needed = squareoff_lead_needed(s)
    if s.live.squareoff_lead_seconds < needed:
        raise SettingsError(
            f"setting 'live.squareoff_lead_seconds' is {s.live.squareoff_lead_seconds} s; closing "
            f"{s.risk.max_positions} positions (risk.max_positions) at {s.fyers.max_per_second} requests a second "
            f"needs at least {needed} s before the broker's square-off"
        )


def _cross_check(s: Settings) -> None:
    """Checks that involve more than one key."""
    st = s.strategy
    for key in ("session_open", "last_bar", "squareoff_time"):
        try:
            parse_hhmm(getattr(st, key))
        except ValueError as exc:
            raise SettingsError(f"setting 'strategy.{key}': {exc}") from None
    open_m, last_m, sq_m = (parse_hhmm(st.session_open), parse_hhmm(st.last_bar), parse_hhmm(st.squareoff_time))
    if last_m <= open_m or (last_m - open_m) % 15:
        raise SettingsError("setting 'strategy.last_bar' must be a 15-minute bar start after 'strategy.session_open'")
    if not open_m < sq_m <= last_m or (sq_m - open_m) % 15:
        raise SettingsError(
            "setting 'strategy.squareoff_time' must be a 15-minute bar start after the session open and no later "
            f"than the last bar ({st.last_bar}): the square-off happens at a bar's open, before the broker's own "
            "auto square-off"
        )
    for section, key in (
        ("fyers", "token_deadline"),
        ("fyers", "login_grace"),
        ("live", "bias_deadline"),
        ("live", "broker_squareoff_time"),
    ):
        try:
            parse_hhmm(getattr(getattr(s, section), key))
        except ValueError as exc:
            raise SettingsError(f"setting '{section}.{key}': {exc}") from None
    for key, schemes in FYERS_URL_SCHEMES.items():
        url = getattr(s.fyers, key)
        if not url.startswith(schemes):
            raise SettingsError(f"setting 'fyers.{key}': '{url}' is not a {' or '.join(schemes)} URL")
    if parse_hhmm(s.fyers.login_grace) > parse_hhmm(s.fyers.token_deadline):
        raise SettingsError("setting 'fyers.login_grace' must not be after 'fyers.token_deadline'")
    if st.min_run > st.max_run:
        raise SettingsError("setting 'strategy.min_run' must be <= 'strategy.max_run'")
    if st.short_rsi_max >= st.long_rsi_min:
        raise SettingsError("setting 'strategy.short_rsi_max' must be below 'strategy.long_rsi_min'")
    if s.risk.risk_per_trade_pct > s.risk.open_risk_budget_pct:
        raise SettingsError("setting 'risk.risk_per_trade_pct' must not exceed 'risk.open_risk_budget_pct'")
    if not st.use_bias and s.backtest.bias not in ("auto", "BOTH"):
        raise SettingsError(
            f"setting 'strategy.use_bias' is false (both sides every session), which contradicts "
            f"'backtest.bias' {s.backtest.bias}: use one or the other"
        )
    if not s.alerts.telegram_api_url.startswith(("https://", "http://")):
        raise SettingsError(f"setting 'alerts.telegram_api_url': '{s.alerts.telegram_api_url}' is not an https:// URL")
    if not s.bias.benchmark_symbol or not s.bias.vix_symbol:
        raise SettingsError("settings 'bias.benchmark_symbol' and 'bias.vix_symbol' must not be empty")


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``TFL_RISK__MAX_POSITIONS=10`` -> ``{"risk": {"max_positions": "10"}}``.

    Only variables with the double-underscore form are settings; other ``TFL_`` variables
    (credentials, URLs) belong to the adapters and are left alone.
    """
    out: dict[str, dict[str, str]] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        sec, _, key = name[len(ENV_PREFIX) :].partition(ENV_SEPARATOR)
        if not sec or not key:
            raise SettingsError(f"environment variable '{name}' is not TFL_<SECTION>__<KEY>")
        out.setdefault(sec.lower(), {})[key.lower()] = environ[name]
    return out


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings: defaults, then ``path`` (TOML), then environment, then overrides."""
    settings = Settings()
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise SettingsError(f"config file {p}: cannot read ({exc.strerror})") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"config file {p}: not valid TOML ({exc})") from None
        settings = _merge(settings, data, source=f"config file {p}")
    env = os.environ if environ is None else environ
    env_data = _env_overrides(env)
    for var, key in (
        ("TFL_FYERS_API_URL", "api_url"),
        ("TFL_FYERS_DATA_URL", "data_url"),
        ("TFL_FYERS_CLIENT_ID", "client_id"),
        ("TFL_FYERS_DATA_SOCKET_URL", "data_socket_url"),
        ("TFL_FYERS_ORDER_SOCKET_URL", "order_socket_url"),
        ("TFL_FYERS_SYMBOL_TOKEN_URL", "symbol_token_url"),
        ("TFL_FYERS_INDEX_MAP_URL", "index_map_url"),
    ):
        if env.get(var):
            env_data.setdefault("fyers", {})[key] = env[var]
    if env_data:
        settings = _merge(settings, env_data, source="environment")
    if overrides:
        settings = settings.replace(overrides)
    return settings
