"""The continuous multi-day soak: a simulated trading week with faults (docs/reliability.md)."""
