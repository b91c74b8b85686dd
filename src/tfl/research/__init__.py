"""Research: parameter search, walk-forward and the statistics that keep it honest."""
