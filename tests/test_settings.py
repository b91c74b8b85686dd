from __future__ import annotations

from pathlib import Path

import pytest

from tfl.settings import Settings, SettingsError, load_settings


def test_defaults_are_the_numbers_on_the_strategy_page() -> None:
    s = Settings()
    assert (
        s.bias.breadth_sma,
        s.bias.breadth_threshold_pct,
        s.bias.long_index_sma,
        s.bias.short_index_sma,
        s.bias.vix_threshold,
    ) == (50, 60.0, 30, 100, 17.0)
    assert (s.indicators.rsi_period, s.indicators.atr_period, s.indicators.mvwap_period) == (14, 14, 50)
    st = s.strategy
    assert (st.min_run, st.max_run, st.long_rsi_min, st.short_rsi_max) == (1, 9, 75.0, 25.0)
    assert (st.target_r, st.breakeven_trigger_r, st.breakeven_lock_r) == (10.0, 1.0, 0.1)
    assert (
        st.long_trail_atr,
        st.long_aggressive_r,
        st.short_trail_atr,
        st.short_aggressive_r,
        st.aggressive_trail_atr,
    ) == (4.0, 5.0, 3.0, 3.0, 1.0)
    assert (st.squareoff_time, st.session_open) == ("15:15", "09:15")
    r = s.risk
    assert (
        r.risk_per_trade_pct,
        r.open_risk_budget_pct,
        r.max_position_pct,
        r.equity_cap_multiple,
        r.max_positions,
        r.margin_multiplier,
    ) == (1.0, 5.0, 25.0, 15.0, 15, 1.0)
    c = s.costs
    assert (
        c.model,
        c.slippage_pct,
        c.flat_pct,
        c.brokerage_pct,
        c.brokerage_cap,
        c.stt_sell_pct,
        c.exchange_txn_pct,
        c.sebi_per_crore,
        c.stamp_buy_pct,
        c.gst_pct,
    ) == ("nse_intraday", 0.05, 0.03, 0.03, 20.0, 0.025, 0.00297, 10.0, 0.003, 18.0)


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "tfl.toml"
    cfg.write_text("[risk]\nmax_positions = 7\nrisk_per_trade_pct = 0.5\n[costs]\nmodel = 'flat'\n")
    s = load_settings(
        cfg,
        environ={"TFL_RISK__MAX_POSITIONS": "9", "TFL_FYERS_API_URL": "ignored"},
        overrides={"costs.model": "nse_intraday"},
    )
    assert s.risk.max_positions == 9  # env beats the file
    assert s.risk.risk_per_trade_pct == 0.5  # file beats the default
    assert s.costs.model == "nse_intraday"  # flags beat everything


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[risk]\nmax_postions = 3\n", "risk.max_postions"),
        ("[riks]\nmax_positions = 3\n", "riks"),
        ("[risk]\nmax_positions = 'many'\n", "risk.max_positions"),
        ("[risk]\nmax_positions = 0\n", "risk.max_positions"),
        ("[risk]\nmax_positions = 2.5\n", "risk.max_positions"),
        ("[costs]\nmodel = 'free'\n", "costs.model"),
        ("[strategy]\nsquareoff_time = '15:25'\n", "strategy.squareoff_time"),
        ("[strategy]\nsquareoff_time = '15:20'\n", "strategy.squareoff_time"),  # not a bar start
        ("[strategy]\nsquareoff_time = '09:15'\n", "strategy.squareoff_time"),  # the first bar
        ("[strategy]\nlast_bar = '15:10'\n", "strategy.last_bar"),
        ("[risk]\nallocation = 'greedy'\n", "risk.allocation"),
        ("[strategy]\nsquareoff_time = '3pm'\n", "strategy.squareoff_time"),
        ("[strategy]\nmin_run = 5\nmax_run = 3\n", "strategy.min_run"),
        ("[risk]\nrisk_per_trade_pct = nan\n", "risk.risk_per_trade_pct"),
        ("[risk\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=needle.replace(".", r"\.")):
        load_settings(cfg, environ={})


def test_bad_environment_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"risk\.max_positions"):
        load_settings(environ={"TFL_RISK__MAX_POSITIONS": "ten"})
    with pytest.raises(SettingsError, match=r"unknown setting 'risk\.nope'"):
        load_settings(environ={"TFL_RISK__NOPE": "1"})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_settings_are_immutable_and_serialisable() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.risk.max_positions = 3  # type: ignore[misc]
    d = s.to_dict()
    assert d["backtest"]["index_symbols"] == list(s.backtest.index_symbols)
