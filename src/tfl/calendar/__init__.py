"""The NSE session calendar."""
