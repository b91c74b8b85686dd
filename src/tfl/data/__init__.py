"""Market data: loading, validation, the defect report, and the synthetic market."""
