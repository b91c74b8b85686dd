"""TrafficLight-Manny (TFL): an intraday NSE trading system.

One deterministic core (``tfl.strategy``, ``tfl.regime``, ``tfl.indicators``) shared by
the backtester and the live runtime; adapters per world around it.
"""

__version__ = "0.1.0"
