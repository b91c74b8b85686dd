"""Indicators in two forms that agree bit-for-bit or within 1e-9 relative.

``streaming`` updates one bar at a time in O(1) (the live trader); ``vectorised``
computes a whole series at once (the backtester). Both follow the conventions of the
strategy page: Wilder averages are seeded with the simple mean of their first n values,
and the first true range is high - low.
"""
