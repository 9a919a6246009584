"""RFC-008 data quality: completeness and consistency of a trading day's minute bars, and the
day's report. Pure domain code over polars frames: no Dagster imports (defs/ wraps it)."""
