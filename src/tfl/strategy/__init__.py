"""The pure trading rules: patterns, setup filters, entries, exits, sizing, the book.

Nothing here reads a clock, a file, a socket or the environment; every world (backtest,
replay, paper, live) calls the same functions.
"""
