"""The portfolio backtester: vectorised signals, an event-driven portfolio loop, reports."""
