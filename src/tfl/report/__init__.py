"""Reports: the self-contained interactive HTML page."""
