"""The supervised collector fleet: `stock-pipelines fleet run|status` (docs/fleet.md)."""
