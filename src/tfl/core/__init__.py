"""The deterministic trading core every world calls: typed events, the order state
machine, the reducer, the fill model and the strategy's per-slot decisions.

Nothing here reads a clock, a file, a socket or the environment, and nothing here
imports NumPy: the post-market Lambda job rebuilds a trader's state with it.
"""
