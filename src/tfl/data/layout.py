"""The data folder's layout, in words: one text for `--help` and the docs to quote.

Built from the names the loader uses, so the help cannot drift from what is read.
"""

from __future__ import annotations

from tfl.data.loader import DAILY_DIR, EXTENSIONS, INTRADAY_DIR, TIME_COLUMNS
from tfl.data.market import UNIVERSE_FILES
from tfl.settings import BiasSettings, StrategySettings

_EXT = "|".join(e.lstrip(".") for e in EXTENSIONS)
_BIAS = BiasSettings()
_DAY = StrategySettings()

DATA_LAYOUT = f"""\
data folder layout (--data DIR):
  DIR/{INTRADAY_DIR}/SYMBOL.{_EXT}   15-minute bars, one file per symbol; bars starting
                               {_DAY.session_open}..{_DAY.last_bar} IST are used, others dropped
  DIR/{DAILY_DIR}/SYMBOL.{_EXT}   daily bars, one file per symbol; also the benchmark
                               ({_BIAS.benchmark_symbol}) and the VIX ({_BIAS.vix_symbol}) the bias needs
  DIR/{UNIVERSE_FILES[0]} or DIR/{UNIVERSE_FILES[1]}   optional: the symbols to trade (column Symbol);
                               without it, every symbol with both files except the indices
  columns: a time column ({", ".join(TIME_COLUMNS)}), then open, high, low, close, volume.
  Times are the bar's start: Parquet timestamps or dates, or in CSV ISO-8601 text or epoch
  seconds/milliseconds (UTC); a time without a zone is IST. A daily row's IST calendar
  date is the trading day.
  Parquet wins when a symbol has both files. `tfl data check DIR` lists each file's defects."""
