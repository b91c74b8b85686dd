"""The trader's exit: the socket endpoints are settings, the sockets are closed within a
bound, and a thread left behind never holds the process (fast tests; the whole sessions at
the wire are in ``test_fyers_wire.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tfl.cli.exit_guard import close_all
from tfl.cli.main import main
from tfl.settings import SettingsError, load_settings

SRC = str(Path(__file__).resolve().parents[2] / "src")
GUARD = 60.0  # a hang guard only


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD,
    )


def test_a_thread_left_running_does_not_hold_the_exit_and_the_code_survives() -> None:
    done = _python(
        """
        import logging, sys, threading
        from tfl.cli.exit_guard import exit_if_stuck, non_daemon_threads
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
        before = non_daemon_threads()
        threading.Thread(target=threading.Event().wait, name="stray-sdk-thread").start()  # never ends
        exit_if_stuck(before, 3, 0.2)
        sys.exit(0)  # what the entry point would do: it would hang on the stray thread
        """
    )
    assert done.returncode == 3
    assert "threads still running at exit" in done.stdout


def test_no_stray_thread_no_hard_exit() -> None:
    done = _python(
        """
        import sys, threading
        from tfl.cli.exit_guard import exit_if_stuck, non_daemon_threads
        before = non_daemon_threads()
        t = threading.Thread(target=lambda: None)
        t.start()
        exit_if_stuck(before, 3, 5.0)
        print("returned")
        sys.exit(4)
        """
    )
    assert done.returncode == 4 and "returned" in done.stdout


def test_closing_is_bounded_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    closed: list[str] = []

    def fails() -> None:
        raise RuntimeError("already closed")

    try:
        stuck = close_all([release.wait, fails, lambda: closed.append("ok")], timeout=0.3)
    finally:
        release.set()
    assert stuck == ["tfl-close-0"] and closed == ["ok"]
    assert "closing a socket failed" in caplog.text


def test_the_socket_endpoints_are_settings() -> None:
    s = load_settings(environ={})
    assert s.fyers.data_socket_url == "wss://socket.fyers.in/hsm/v1-5/prod"  # the SDK 3.2.0's own
    assert s.fyers.order_socket_url == "wss://socket.fyers.in/trade/v3"
    assert s.fyers.symbol_token_url == "https://api-t1.fyers.in/data/symbol-token"
    env = {
        "TFL_FYERS_DATA_SOCKET_URL": "ws://127.0.0.1:1/hsm",
        "TFL_FYERS_ORDER_SOCKET_URL": "ws://127.0.0.1:1/trade",
        "TFL_FYERS_SYMBOL_TOKEN_URL": "http://127.0.0.1:1/data/symbol-token",
        "TFL_FYERS_INDEX_MAP_URL": "http://127.0.0.1:1/index.json",
    }
    f = load_settings(environ=env).fyers
    assert (f.data_socket_url, f.order_socket_url, f.symbol_token_url, f.index_map_url) == tuple(env.values())
    with pytest.raises(SettingsError, match=r"fyers\.data_socket_url"):
        load_settings(environ={"TFL_FYERS__DATA_SOCKET_URL": "https://socket.fyers.in/hsm"})


def test_a_bad_socket_url_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "j.sqlite"
    bad = "fyers.order_socket_url=socket.fyers.in/trade/v3"
    rc = main(["trade", "--world", "live", "--data", str(tmp_path), "--journal", str(journal), "--set", bad])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[0].startswith("tfl: error: setting 'fyers.order_socket_url'")
    assert not journal.exists()


def test_the_factories_point_the_real_sdk_at_the_settings(tmp_path: Path) -> None:
    """The SDK's own objects get the URLs (its symbol look-up through this socket's copy only)."""
    from fyers_apiv3.FyersWebsocket import data_ws

    from tfl.fyers import sockets

    noop = lambda *a: None  # noqa: E731
    sock = sockets.sdk_data_socket(
        access_token="APP:x.y.z",
        log_dir=tmp_path,
        url="ws://127.0.0.1:1/hsm",
        on_message=noop,
        on_connect=noop,
        on_close=noop,
        on_error=noop,
        token_url="http://127.0.0.1:1/data/symbol-token",
        index_url="http://127.0.0.1:1/index.json",
    )
    assert sock._FyersDataSocket__url == "ws://127.0.0.1:1/hsm"
    assert sock.write_to_file is True  # the SDK's background mode: daemon threads
    lookup = sock._FyersDataSocket__symbol_conversion.__func__.__globals__["SymbolConversion"]
    conv = lookup("APP:tok", "SymbolUpdate", str(tmp_path))
    assert conv.symbols_token_api == "http://127.0.0.1:1/data/symbol-token"
    assert data_ws.SymbolConversion("t", "SymbolUpdate", str(tmp_path)).symbols_token_api.startswith("https://api")
    order = sockets.sdk_order_socket(
        access_token="APP:tok",
        log_dir=tmp_path,
        url="ws://127.0.0.1:1/trade",
        on_orders=noop,
        on_trades=noop,
        on_positions=noop,
        on_connect=noop,
        on_close=noop,
        on_error=noop,
    )
    assert order._FyersOrderSocket__url == "ws://127.0.0.1:1/trade" and order.write_to_file is True
