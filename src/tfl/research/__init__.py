"""Research at scale: parameter sweeps, walk-forward and the statistics that keep them honest."""
